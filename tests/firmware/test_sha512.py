# phone.sha512 under MicroPython, both engines: the viper one (phone.sha512n, native code on
# this port's x64 emitter) and the pure-Python fallback, forced by setting sha512.native to
# None as a port without a native emitter would have it. Vectors: FIPS 180-2 / NIST CAVP
# examples; tests/host/test_sha512_engines.py compares many more lengths with CPython's hashlib.
from fwtest import eq, raises
from phone import pkcs1
from phone import sha512 as S

NATIVE = S.native
EMPTY = ('cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce'
         '47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e')
ABC = ('ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a'
       '2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f')
# FIPS 180-2 two-block message (896 bits)
LONG = (b'abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno'
        b'ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu')
LONG_D = ('8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018'
          '501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909')
# FIPS 180-2 two-block message (448 bits)
MID = b'abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'
MID_D = ('204a8fc6dda82f0a0ced7beb8e08a41657c16ef468b228a8279be331a703c335'
         '96fd15c13b1b07f9aa1d3bea57789ca031ad85c7a71dd70354ec631238ca3445')
# NIST CAVP SHA512ShortMsg, Len = 8
ONE = b'\x21'
ONE_D = ('3831a6a6155e509dee59a7f451eb35324d8f8f2df6e3708894740f98fdee2388'
         '9f4de5adb0c5010dfb555cda77c8ab5dc902094c52de3278f35a75ebc25f093a')
MILLION_A = ('e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973eb'
             'de0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b')


def engines():
    """Each engine this port has, selected in turn; yields its name."""
    for nat in ((NATIVE, None) if NATIVE is not None else (None,)):
        S.native = nat
        yield 'native' if nat is not None else 'python'
    S.native = NATIVE


def test_this_port_runs_the_native_engine():
    # the unix port on x64 has the emitter: if this fails, the fast path silently went away
    if NATIVE is None:
        raise AssertionError('phone.sha512n did not load (no native emitter in this build?)')
    eq(S.sha512(b'').engine, 'native')
    S.native = None
    eq(S.sha512(b'').engine, 'python')


def test_known_vectors():
    for eng in engines():
        eq(S.sha512(b'').hexdigest(), EMPTY, eng)
        eq(S.sha512(b'abc').hexdigest(), ABC, eng)
        eq(S.SHA512(LONG).hexdigest(), LONG_D, eng)
        eq(S.SHA512(MID).hexdigest(), MID_D, eng)
        eq(S.SHA512(ONE).hexdigest(), ONE_D, eng)
        eq(len(S.sha512(b'abc').digest()), 64, eng)


def test_streaming_in_odd_pieces_gives_the_same_digest():
    for eng in engines():
        for step in (1, 7, 111, 112, 127, 128, 129):
            h = S.SHA512()
            for i in range(0, len(LONG), step):
                h.update(LONG[i:i + step])
            eq(h.hexdigest(), LONG_D, '%s step %d' % (eng, step))
        h = S.SHA512()
        h.update(memoryview(bytearray(LONG))[:50])
        h.update(LONG[50:])
        eq(h.hexdigest(), LONG_D, eng)


def test_padding_boundaries_and_engines_agree():
    # lengths around the 112-byte boundary where the length field spills into a new block;
    # one-shot, byte-by-byte, from a memoryview at an odd offset, and both engines agree
    ref = {}
    for eng in engines():
        for n in (0, 1, 111, 112, 113, 127, 128, 129, 239, 240, 255, 256, 1000):
            data = bytes([(i * 7 + n) & 0xFF for i in range(n)])
            h = S.SHA512()
            for i in range(n):
                h.update(data[i:i + 1])
            d = h.digest()
            eq(d, S.sha512(data).digest(), '%s len %d' % (eng, n))
            eq(S.sha512(memoryview(b'x' + data)[1:]).digest(), d, '%s view len %d' % (eng, n))
            if n in ref:
                eq(d, ref[n], 'engines differ at len %d' % n)
            ref[n] = d


def test_high_bits_carry_through_every_word():
    # all-ones input drives every 32-bit half to its top bit: carries between the halves
    # and the unsigned compares behind them are exercised on every round
    for eng in engines():
        got = S.sha512(b'\xff' * 256).hexdigest()
        if eng == 'native':
            want = got
        else:
            eq(got, want, 'engines differ on 0xff input')


def test_million_a():
    for eng in engines():
        h = S.SHA512()
        chunk = b'a' * 1000
        n = 1000 if eng == 'native' else 100
        for _ in range(n):
            h.update(chunk)
        if eng == 'native':
            eq(h.hexdigest(), MILLION_A, eng)
        else:       # 100 KB through the slow engine, against the native one
            S.native, keep = NATIVE, S.native
            ref = S.SHA512()
            for _ in range(n):
                ref.update(chunk)
            S.native = keep
            eq(h.hexdigest(), ref.hexdigest(), eng)


def test_digest_is_final_and_repeatable():
    for eng in engines():
        h = S.sha512(b'abc')
        d = h.digest()
        eq(h.digest(), d, eng)
        with raises(ValueError):
            h.update(b'more')


def test_pkcs1_hash_factory():
    for eng in engines():
        h = pkcs1.new_hash(pkcs1.SHA512)
        eq(h.engine, eng)
        h.update(b'abc')
        eq(h.digest(), S.sha512(b'abc').digest())
    eq(pkcs1.new_hash(99), None)


def test_provisioning_unloads_the_native_engine_with_the_rest():
    # the engine and its table are provisioning's: the agent gets their heap back
    import sys
    from phone import drop
    from phone.provision import Provisioner
    if NATIVE is None:
        raise AssertionError('phone.sha512n did not load')
    S.sha512(b'abc').digest()
    drop(*Provisioner.VERIFY)
    eq('phone.sha512n' in sys.modules, False)
    eq('phone.sha512' in sys.modules, False)
