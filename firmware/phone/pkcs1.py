# RSA PKCS#1 v1.5 signature verification with big integers (pow(s, e, n)) and the hash
# objects for hash codes 1/2/3 = SHA-1/SHA-256/SHA-512 (as CTL headers number them).
# Common subset of MicroPython and CPython.
import hashlib

from micropython import const

SHA1 = const(1)
SHA256 = const(2)
SHA512 = const(3)
NAMES = {1: 'sha1', 2: 'sha256', 3: 'sha512'}

# DigestInfo prefixes (DER) that precede the digest inside the signature block
_PREFIX = {
    1: b'\x30\x21\x30\x09\x06\x05\x2b\x0e\x03\x02\x1a\x05\x00\x04\x14',
    2: b'\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20',
    3: b'\x30\x51\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x03\x05\x00\x04\x40',
}


def new_hash(code):
    """A hashlib-like object for a hash code, or None if this board cannot make it."""
    if code == SHA512:
        if hasattr(hashlib, 'sha512'):
            return hashlib.sha512()
        from phone.sha512 import SHA512 as H
        return H()
    name = NAMES.get(code)
    if name is None or not hasattr(hashlib, name):
        return None
    return getattr(hashlib, name)()


def check(n, e, sig, code, digest):
    """Verify an RSA PKCS#1 v1.5 signature. Returns None if it holds, else the reason."""
    k = len(sig)
    # Real keys are 1024..4096 bits, real exponents 3..65537: a 30000-bit key ran pow() out of
    # memory at 96K, a 56000-bit exponent made it run for seconds (minutes on a board). Sizes
    # are compared, never shifted: a shift copies the number (MemoryError with a huge one).
    if k > 1024:
        return 'RSA key longer than 8192 bits'
    # the signature must be exactly as long as the modulus (ints have no bit_length here);
    # nothing kept: the caller may have freed room for pow() just before
    if not k or n >= 1 << (8 * k) or n < 1 << (8 * k - 8):
        return 'signature length %d does not match the key' % k
    if e > 0xFFFFFFFF:
        return 'RSA exponent longer than 32 bits'
    prefix = _PREFIX.get(code)
    if prefix is None:
        return 'unsupported hash algorithm %r' % (code,)
    t = len(prefix) + len(digest)
    if k < t + 11:
        return 'RSA key too short for this hash'
    s = int.from_bytes(bytes(sig), 'big')
    if s >= n:
        return 'bad signature (out of range)'
    em = pow(s, e, n).to_bytes(k, 'big')
    # 00 01 FF..FF 00 DigestInfo digest; every byte is looked at (no early exit)
    bad = em[0] | (em[1] ^ 1) | em[k - t - 1]
    for i in range(2, k - t - 1):
        bad |= em[i] ^ 0xFF
    if bad or em[k - t:k - len(digest)] != prefix or em[k - len(digest):] != bytes(digest):
        return 'bad signature'
    return None
