# SHA-512 for MicroPython ports whose hashlib has no sha512 (none has: MicroPython's hashlib
# offers sha256, and sha1/md5 with SSL, on the unix and ESP32 ports alike). Same interface as
# hashlib: update(data) any number of times, then digest() / hexdigest(). Streams: only one
# 128-byte block is buffered.
# Two engines, same result: phone.sha512n (viper: native code, 32-bit halves; ~100x the
# speed) where the port has a native emitter, else the pure-Python rounds below on big ints.
# `native` is the engine module or None; setting it to None forces pure Python (tests).
# On CPython (host tools) prefer hashlib.sha512; this module is identical in result.
from micropython import const

try:
    from phone import sha512n as native
except (ImportError, SyntaxError, ValueError, NameError, AttributeError):
    # CPython (host_tools.fw's micropython stand-in has no viper), no native emitter, or an
    # .mpy for another arch
    native = None

_BLOCK = const(128)
_M = const(0xFFFFFFFFFFFFFFFF)

# the 80 round constants, big-endian (cheaper to compile than 80 big-int literals): one bytes
# object, no big ints kept (sha512n.K is a 640-byte table made from it on first use)
_KB = (
    b'\x42\x8a\x2f\x98\xd7\x28\xae\x22\x71\x37\x44\x91\x23\xef\x65\xcd\xb5\xc0\xfb\xcf\xec\x4d\x3b\x2f\xe9\xb5\xdb\xa5\x81\x89\xdb\xbc'
    b'\x39\x56\xc2\x5b\xf3\x48\xb5\x38\x59\xf1\x11\xf1\xb6\x05\xd0\x19\x92\x3f\x82\xa4\xaf\x19\x4f\x9b\xab\x1c\x5e\xd5\xda\x6d\x81\x18'
    b'\xd8\x07\xaa\x98\xa3\x03\x02\x42\x12\x83\x5b\x01\x45\x70\x6f\xbe\x24\x31\x85\xbe\x4e\xe4\xb2\x8c\x55\x0c\x7d\xc3\xd5\xff\xb4\xe2'
    b'\x72\xbe\x5d\x74\xf2\x7b\x89\x6f\x80\xde\xb1\xfe\x3b\x16\x96\xb1\x9b\xdc\x06\xa7\x25\xc7\x12\x35\xc1\x9b\xf1\x74\xcf\x69\x26\x94'
    b'\xe4\x9b\x69\xc1\x9e\xf1\x4a\xd2\xef\xbe\x47\x86\x38\x4f\x25\xe3\x0f\xc1\x9d\xc6\x8b\x8c\xd5\xb5\x24\x0c\xa1\xcc\x77\xac\x9c\x65'
    b'\x2d\xe9\x2c\x6f\x59\x2b\x02\x75\x4a\x74\x84\xaa\x6e\xa6\xe4\x83\x5c\xb0\xa9\xdc\xbd\x41\xfb\xd4\x76\xf9\x88\xda\x83\x11\x53\xb5'
    b'\x98\x3e\x51\x52\xee\x66\xdf\xab\xa8\x31\xc6\x6d\x2d\xb4\x32\x10\xb0\x03\x27\xc8\x98\xfb\x21\x3f\xbf\x59\x7f\xc7\xbe\xef\x0e\xe4'
    b'\xc6\xe0\x0b\xf3\x3d\xa8\x8f\xc2\xd5\xa7\x91\x47\x93\x0a\xa7\x25\x06\xca\x63\x51\xe0\x03\x82\x6f\x14\x29\x29\x67\x0a\x0e\x6e\x70'
    b'\x27\xb7\x0a\x85\x46\xd2\x2f\xfc\x2e\x1b\x21\x38\x5c\x26\xc9\x26\x4d\x2c\x6d\xfc\x5a\xc4\x2a\xed\x53\x38\x0d\x13\x9d\x95\xb3\xdf'
    b'\x65\x0a\x73\x54\x8b\xaf\x63\xde\x76\x6a\x0a\xbb\x3c\x77\xb2\xa8\x81\xc2\xc9\x2e\x47\xed\xae\xe6\x92\x72\x2c\x85\x14\x82\x35\x3b'
    b'\xa2\xbf\xe8\xa1\x4c\xf1\x03\x64\xa8\x1a\x66\x4b\xbc\x42\x30\x01\xc2\x4b\x8b\x70\xd0\xf8\x97\x91\xc7\x6c\x51\xa3\x06\x54\xbe\x30'
    b'\xd1\x92\xe8\x19\xd6\xef\x52\x18\xd6\x99\x06\x24\x55\x65\xa9\x10\xf4\x0e\x35\x85\x57\x71\x20\x2a\x10\x6a\xa0\x70\x32\xbb\xd1\xb8'
    b'\x19\xa4\xc1\x16\xb8\xd2\xd0\xc8\x1e\x37\x6c\x08\x51\x41\xab\x53\x27\x48\x77\x4c\xdf\x8e\xeb\x99\x34\xb0\xbc\xb5\xe1\x9b\x48\xa8'
    b'\x39\x1c\x0c\xb3\xc5\xc9\x5a\x63\x4e\xd8\xaa\x4a\xe3\x41\x8a\xcb\x5b\x9c\xca\x4f\x77\x63\xe3\x73\x68\x2e\x6f\xf3\xd6\xb2\xb8\xa3'
    b'\x74\x8f\x82\xee\x5d\xef\xb2\xfc\x78\xa5\x63\x6f\x43\x17\x2f\x60\x84\xc8\x78\x14\xa1\xf0\xab\x72\x8c\xc7\x02\x08\x1a\x64\x39\xec'
    b'\x90\xbe\xff\xfa\x23\x63\x1e\x28\xa4\x50\x6c\xeb\xde\x82\xbd\xe9\xbe\xf9\xa3\xf7\xb2\xc6\x79\x15\xc6\x71\x78\xf2\xe3\x72\x53\x2b'
    b'\xca\x27\x3e\xce\xea\x26\x61\x9c\xd1\x86\xb8\xc7\x21\xc0\xc2\x07\xea\xda\x7d\xd6\xcd\xe0\xeb\x1e\xf5\x7d\x4f\x7f\xee\x6e\xd1\x78'
    b'\x06\xf0\x67\xaa\x72\x17\x6f\xba\x0a\x63\x7d\xc5\xa2\xc8\x98\xa6\x11\x3f\x98\x04\xbe\xf9\x0d\xae\x1b\x71\x0b\x35\x13\x1c\x47\x1b'
    b'\x28\xdb\x77\xf5\x23\x04\x7d\x84\x32\xca\xab\x7b\x40\xc7\x24\x93\x3c\x9e\xbe\x0a\x15\xc9\xbe\xbc\x43\x1d\x67\xc4\x9c\x10\x0d\x4c'
    b'\x4c\xc5\xd4\xbe\xcb\x3e\x42\xb6\x59\x7f\x29\x9c\xfc\x65\x7e\x2a\x5f\xcb\x6f\xab\x3a\xd6\xfa\xec\x6c\x44\x19\x8c\x4a\x47\x58\x17'
)
_H0B = (
    b'\x6a\x09\xe6\x67\xf3\xbc\xc9\x08\xbb\x67\xae\x85\x84\xca\xa7\x3b\x3c\x6e\xf3\x72\xfe\x94\xf8\x2b\xa5\x4f\xf5\x3a\x5f\x1d\x36\xf1'
    b'\x51\x0e\x52\x7f\xad\xe6\x82\xd1\x9b\x05\x68\x8c\x2b\x3e\x6c\x1f\x1f\x83\xd9\xab\xfb\x41\xbd\x6b\x5b\xe0\xcd\x19\x13\x7e\x21\x79'
)
def _compress(st, data, off):
    """The 128-byte block data[off:off + 128] into the state st (a bytearray(64), the hash
    words big-endian). No big int outlives the call: between blocks this engine holds none,
    so the garbage it makes on every round leaves nothing scattered behind on the heap (the
    round constants, too, are read from _KB as they are needed)."""
    M = _M
    fb = int.from_bytes
    w = [0] * 80
    for i in range(16):
        j = off + i * 8
        w[i] = fb(bytes(data[j:j + 8]), 'big')
    for i in range(16, 80):
        x = w[i - 15]
        y = w[i - 2]
        s0 = (((x >> 1) | (x << 63)) ^ ((x >> 8) | (x << 56)) ^ (x >> 7)) & M
        s1 = (((y >> 19) | (y << 45)) ^ ((y >> 61) | (y << 3)) ^ (y >> 6)) & M
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & M
    h = [fb(st[i:i + 8], 'big') for i in range(0, 64, 8)]
    a, b, c, d, e, f, g, hh = h
    K = _KB
    for i in range(80):
        s1 = (((e >> 14) | (e << 50)) ^ ((e >> 18) | (e << 46)) ^ ((e >> 41) | (e << 23))) & M
        t1 = hh + s1 + (g ^ (e & (f ^ g))) + fb(K[i * 8:i * 8 + 8], 'big') + w[i]
        s0 = (((a >> 28) | (a << 36)) ^ ((a >> 34) | (a << 30)) ^ ((a >> 39) | (a << 25))) & M
        t2 = s0 + ((a & b) | (c & (a | b)))
        hh = g
        g = f
        f = e
        e = (d + t1) & M
        d = c
        c = b
        b = a
        a = (t1 + t2) & M
    w = None
    for i, v in enumerate((a, b, c, d, e, f, g, hh)):
        st[i * 8:i * 8 + 8] = ((h[i] + v) & M).to_bytes(8, 'big')


class SHA512:
    digest_size = 64
    block_size = 128
    name = 'sha512'

    def __init__(self, data=None):
        nat = self._nat = native
        if nat is not None:
            if nat.K is None:
                k = bytearray(640)
                nat.be_words(_KB, k, 160)
                nat.K = k
            self._st = bytearray(704)       # hash words, then the message schedule
            nat.be_words(_H0B, self._st, 16)
        else:
            self._st = bytearray(_H0B)
        self._buf = bytearray(_BLOCK)
        self._n = 0          # bytes waiting in _buf
        self._len = 0        # total bytes hashed
        self._done = None
        if data is not None:
            self.update(data)

    @property
    def engine(self):
        return 'native' if self._nat is not None else 'python'

    def _blocks(self, data, off, n):
        if self._nat is not None:
            self._nat.blocks(self._st, data, off, n)
        else:
            for i in range(n):
                _compress(self._st, data, off + i * _BLOCK)

    def update(self, data):
        if self._done is not None:
            raise ValueError('digest already taken')
        mv = memoryview(data)
        total = len(mv)
        self._len += total
        pos = 0
        buf = self._buf
        if self._n:
            take = min(_BLOCK - self._n, total)
            buf[self._n:self._n + take] = mv[:take]
            self._n += take
            pos = take
            if self._n < _BLOCK:
                return
            self._blocks(buf, 0, 1)
            self._n = 0
        n = (total - pos) // _BLOCK
        if n:
            self._blocks(mv, pos, n)
            pos += n * _BLOCK
        rest = total - pos
        if rest:
            buf[0:rest] = mv[pos:]
            self._n = rest

    def digest(self):
        if self._done is None:
            bits = self._len * 8
            buf = self._buf
            n = self._n
            buf[n] = 0x80
            n += 1
            if n > _BLOCK - 16:
                for i in range(n, _BLOCK):
                    buf[i] = 0
                self._blocks(buf, 0, 1)
                n = 0
            for i in range(n, _BLOCK - 16):
                buf[i] = 0
            buf[_BLOCK - 16:] = bits.to_bytes(16, 'big')
            self._blocks(buf, 0, 1)
            out = bytearray(64)
            if self._nat is not None:
                self._nat.put_be(self._st, out, 16)
            else:
                out[:] = self._st
            self._st = None
            self._done = bytes(out)
        return self._done

    def hexdigest(self):
        return ''.join(['%02x' % b for b in self.digest()])


def sha512(data=None):
    return SHA512(data)
