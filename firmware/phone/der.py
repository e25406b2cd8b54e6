# Minimal DER reading: just enough for X.509 certificates and RSA keys.
# Works on a buffer (bytes, bytearray or memoryview) by offsets, so nothing is copied until a
# caller asks for a value. Every malformed input raises DerError (a ValueError), never an
# IndexError. Common subset of MicroPython and CPython (the host imports it too).
from micropython import const

INTEGER = const(0x02)
BIT_STRING = const(0x03)
OID = const(0x06)
_UTF8_STRING = const(0x0C)
UTC_TIME = const(0x17)
GENERALIZED_TIME = const(0x18)
BMP_STRING = const(0x1E)
SEQUENCE = const(0x30)
SET = const(0x31)
CTX0 = const(0xA0)   # [0] EXPLICIT (certificate version)

_MAX_LEN_BYTES = const(4)
_MAX_OID = const(64)       # content bytes; real ones are < 30 (thousands of arcs ran out of RAM)


class DerError(ValueError):
    pass


def header(buf, pos, end):
    """Read the tag and length at `pos` (no further than `end`).
    Returns (tag, value_start, value_end)."""
    if pos + 2 > end:
        raise DerError('truncated at %d' % pos)
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise DerError('multi-byte tag at %d' % pos)
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        count = n & 0x7F
        if count == 0:
            raise DerError('indefinite length at %d' % pos)
        if count > _MAX_LEN_BYTES or pos + count > end:
            raise DerError('bad length at %d' % pos)
        n = 0
        for i in range(count):
            n = (n << 8) | buf[pos + i]
        pos += count
    if pos + n > end:
        raise DerError('element at %d overruns its container' % pos)
    return tag, pos, pos + n


def expect(buf, pos, end, tag):
    """Like header() but the tag must be `tag`."""
    t, s, e = header(buf, pos, end)
    if t != tag:
        raise DerError('expected tag 0x%02x at %d, found 0x%02x' % (tag, pos, t))
    return s, e


def children(buf, start, end):
    """Yield (tag, value_start, value_end) for each element in [start, end)."""
    pos = start
    while pos < end:
        t, s, e = header(buf, pos, end)
        yield t, s, e
        pos = e


def integer(buf, start, end):
    """A non-negative INTEGER's value (RSA moduli, serials). Negative ones raise."""
    if start >= end:
        raise DerError('empty INTEGER')
    if buf[start] & 0x80:
        raise DerError('negative INTEGER')
    return int.from_bytes(bytes(buf[start:end]), 'big')


def unsigned_bytes(buf, start, end):
    """INTEGER content as minimal big-endian bytes (leading zero bytes removed; b'\\x00' for 0)."""
    while start < end - 1 and buf[start] == 0:
        start += 1
    return bytes(buf[start:end])


def oid(buf, start, end):
    """OBJECT IDENTIFIER content -> dotted string, e.g. '1.2.840.113549.1.1.11'."""
    if start >= end:
        raise DerError('empty OID')
    if end - start > _MAX_OID:
        raise DerError('OID of %d bytes' % (end - start))
    parts = []
    v = 0
    first = True
    for i in range(start, end):
        b = buf[i]
        v = (v << 7) | (b & 0x7F)
        if not b & 0x80:
            if first:
                if v < 80:
                    parts.append(str(v // 40))
                    parts.append(str(v % 40))
                else:
                    parts.append('2')
                    parts.append(str(v - 80))
                first = False
            else:
                parts.append(str(v))
            v = 0
    if buf[end - 1] & 0x80:
        raise DerError('truncated OID')
    return '.'.join(parts)


def text(buf, start, end, tag=_UTF8_STRING):
    """A string value (UTF8/Printable/IA5/T61 as UTF-8, BMP as UCS-2). Undecodable -> hex."""
    raw = bytes(buf[start:end])
    try:
        if tag == BMP_STRING:
            # UCS-2 -> UTF-8 bytes, then decode: MicroPython's chr() interns every distinct
            # character as a qstr, for good (a BMPString of 3000 characters kept 35 KB)
            out = bytearray()
            for i in range(0, len(raw) - 1, 2):
                c = (raw[i] << 8) | raw[i + 1]
                if c < 0x80:
                    out.append(c)
                elif c < 0x800:
                    out += bytes((0xC0 | c >> 6, 0x80 | c & 0x3F))
                else:
                    out += bytes((0xE0 | c >> 12, 0x80 | c >> 6 & 0x3F, 0x80 | c & 0x3F))
            raw = out
        return raw.decode('utf-8')
    except Exception:  # UnicodeError on both interpreters
        return raw.hex() if hasattr(raw, 'hex') else ''.join(['%02x' % b for b in raw])


def _digits(buf, pos, n):
    v = 0
    for i in range(pos, pos + n):
        d = buf[i] - 48
        if d < 0 or d > 9:
            raise DerError('bad digit in time')
        v = v * 10 + d
    return v


def time_value(buf, start, end, tag):
    """UTCTime / GeneralizedTime -> (year, month, day, hour, minute, second), always UTC.
    Only the DER forms are accepted (YYMMDDHHMMSSZ / YYYYMMDDHHMMSSZ)."""
    n = end - start
    if tag == UTC_TIME and n == 13:
        year = _digits(buf, start, 2)
        year += 2000 if year < 50 else 1900
        pos = start + 2
    elif tag == GENERALIZED_TIME and n == 15:
        year = _digits(buf, start, 4)
        pos = start + 4
    else:
        raise DerError('bad time (tag 0x%02x, %d bytes)' % (tag, n))
    if buf[end - 1] != 0x5A:  # 'Z'
        raise DerError('time is not UTC')
    t = (year, _digits(buf, pos, 2), _digits(buf, pos + 2, 2), _digits(buf, pos + 4, 2),
         _digits(buf, pos + 6, 2), _digits(buf, pos + 8, 2))
    if not (1 <= t[1] <= 12 and 1 <= t[2] <= 31 and t[3] < 24 and t[4] < 60 and t[5] < 61):
        raise DerError('time out of range')
    return t


def rsa_public_key(buf, start, end):
    """RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } -> (n, e).
    `start`/`end` span exactly the SEQUENCE element."""
    s, e = expect(buf, start, end, SEQUENCE)
    if e != end:
        raise DerError('trailing bytes after RSA public key')
    ns, ne = expect(buf, s, e, INTEGER)
    es, ee = expect(buf, ne, e, INTEGER)
    if ee != e:
        raise DerError('trailing bytes in RSA public key')
    return integer(buf, ns, ne), integer(buf, es, ee)
