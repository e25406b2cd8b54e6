from fwtest import eq, raises
from phone import pkcs1
from phone.sha512 import SHA512, sha512

EMPTY = ('cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce'
         '47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e')
ABC = ('ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a'
       '2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f')
# FIPS 180-2 two-block message (896 bits)
LONG = (b'abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno'
        b'ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu')
LONG_D = ('8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018'
          '501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909')
MILLION_A = ('e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973eb'
             'de0ff244877ea60a4cb0432ce577c31beb009c5c2c49aa2e4eadb217ad8cc09b')


def test_known_vectors():
    eq(sha512(b'').hexdigest(), EMPTY)
    eq(sha512(b'abc').hexdigest(), ABC)
    eq(SHA512(LONG).hexdigest(), LONG_D)
    eq(len(sha512(b'abc').digest()), 64)


def test_streaming_in_odd_pieces_gives_the_same_digest():
    for step in (1, 7, 111, 112, 127, 128, 129):
        h = SHA512()
        for i in range(0, len(LONG), step):
            h.update(LONG[i:i + step])
        eq(h.hexdigest(), LONG_D, 'step %d' % step)
    h = SHA512()
    h.update(memoryview(bytearray(LONG))[:50])
    h.update(LONG[50:])
    eq(h.hexdigest(), LONG_D)


def test_padding_boundaries():
    # lengths around the 112-byte boundary where the length field spills into a new block;
    # one-shot and byte-by-byte must agree
    for n in (111, 112, 113, 127, 128, 129, 239, 240, 255, 256):
        data = bytes([n & 0xFF]) * n
        h = SHA512()
        for i in range(n):
            h.update(data[i:i + 1])
        eq(h.digest(), sha512(data).digest(), 'len %d' % n)


def test_million_a():
    h = SHA512()
    chunk = b'a' * 1000
    for _ in range(1000):
        h.update(chunk)
    eq(h.hexdigest(), MILLION_A)


def test_digest_is_final_and_repeatable():
    h = sha512(b'abc')
    d = h.digest()
    eq(h.digest(), d)
    with raises(ValueError):
        h.update(b'more')


def test_pkcs1_hash_factory():
    h = pkcs1.new_hash(pkcs1.SHA512)
    h.update(b'abc')
    eq(h.digest(), sha512(b'abc').digest())
    eq(pkcs1.new_hash(99), None)
