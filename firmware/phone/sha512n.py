# SHA-512 compression as viper (native) code, for phone.sha512 on ports with a native emitter
# (x64 on the unix port, Xtensa on the ESP32). Imported by phone.sha512 only; a port or build
# without the emitter cannot compile this module and phone.sha512 falls back to pure Python.
#
# A 64-bit word is two 32-bit halves (hi, lo) held in viper `uint`s, as a 32-bit target needs
# anyway. The code is correct whatever the machine word: every value is kept below 2**32 (M is
# all ones in the low 32 bits: a no-op on a 32-bit target, a truncation on a 64-bit one; a
# store through ptr32 truncates too), right shifts only see such values (logical on uint),
# carries come from unsigned compares of truncated sums, and no constant needs more than 16
# bits (a bigger one would be an object on a 32-bit target).
#
# State: a bytearray(704) of 32-bit words in machine order: 0..15 the hash (hi, lo per
# word), 16..175 the message schedule. K: the 160 round-constant halves (set by sha512).
import micropython

K = None


@micropython.viper
def be_words(src: ptr8, dst: ptr32, n: int):
    """n big-endian 32-bit words from src into dst, in machine order."""
    i = 0
    while i < n:
        j = i << 2
        dst[i] = (uint(src[j]) << 24) | (uint(src[j + 1]) << 16) | (uint(src[j + 2]) << 8) \
            | uint(src[j + 3])
        i += 1


@micropython.viper
def put_be(src: ptr32, dst: ptr8, n: int):
    """n words of src as big-endian bytes into dst."""
    i = 0
    while i < n:
        v = uint(src[i])
        j = i << 2
        dst[j] = v >> 24
        dst[j + 1] = v >> 16
        dst[j + 2] = v >> 8
        dst[j + 3] = v
        i += 1


@micropython.viper
def blocks(st: ptr32, data: ptr8, off: int, n: int):
    """Compress n 128-byte blocks of data, from byte offset off, into the state st."""
    M = (uint(0xFFFF) << 16) | uint(0xFFFF)
    k = ptr32(K)
    w = ptr32(uint(st) + 64)            # the schedule, after the 16 hash words
    while n > 0:
        n -= 1
        # message words, big-endian
        i = 0
        while i < 32:
            j = off + (i << 2)
            w[i] = (uint(data[j]) << 24) | (uint(data[j + 1]) << 16) \
                | (uint(data[j + 2]) << 8) | uint(data[j + 3])
            i += 1
        off += 128
        # schedule: w[t] = w[t-16] + s0(w[t-15]) + w[t-7] + s1(w[t-2])
        i = 32
        while i < 160:
            xh = uint(w[i - 30])
            xl = uint(w[i - 29])
            s0h = (((xh >> 1) | (xl << 31)) ^ ((xh >> 8) | (xl << 24)) ^ (xh >> 7)) & M
            s0l = (((xl >> 1) | (xh << 31)) ^ ((xl >> 8) | (xh << 24))
                   ^ ((xl >> 7) | (xh << 25))) & M
            xh = uint(w[i - 4])
            xl = uint(w[i - 3])
            s1h = (((xh >> 19) | (xl << 13)) ^ ((xl >> 29) | (xh << 3)) ^ (xh >> 6)) & M
            s1l = (((xl >> 19) | (xh << 13)) ^ ((xh >> 29) | (xl << 3))
                   ^ ((xl >> 6) | (xh << 26))) & M
            lo = uint(w[i - 31])
            hi = uint(w[i - 32])
            t = (lo + s0l) & M
            if t < lo:
                hi += 1
            hi += s0h
            lo = t
            t = (lo + uint(w[i - 13])) & M
            if t < lo:
                hi += 1
            hi += uint(w[i - 14])
            lo = t
            t = (lo + s1l) & M
            if t < lo:
                hi += 1
            hi += s1h
            w[i] = hi
            w[i + 1] = t
            i += 2
        ah = uint(st[0])
        al = uint(st[1])
        bh = uint(st[2])
        bl = uint(st[3])
        ch = uint(st[4])
        cl = uint(st[5])
        dh = uint(st[6])
        dl = uint(st[7])
        eh = uint(st[8])
        el = uint(st[9])
        fh = uint(st[10])
        fl = uint(st[11])
        gh = uint(st[12])
        gl = uint(st[13])
        hh = uint(st[14])
        hl = uint(st[15])
        i = 0
        while i < 160:
            # t1 = h + S1(e) + Ch(e, f, g) + K[t] + W[t]
            s1h = (((eh >> 14) | (el << 18)) ^ ((eh >> 18) | (el << 14))
                   ^ ((el >> 9) | (eh << 23))) & M
            s1l = (((el >> 14) | (eh << 18)) ^ ((el >> 18) | (eh << 14))
                   ^ ((eh >> 9) | (el << 23))) & M
            lo = hl
            hi = hh
            t = (lo + s1l) & M
            if t < lo:
                hi += 1
            hi += s1h
            lo = t
            t = (lo + (gl ^ (el & (fl ^ gl)))) & M
            if t < lo:
                hi += 1
            hi += gh ^ (eh & (fh ^ gh))
            lo = t
            t = (lo + uint(k[i + 1])) & M
            if t < lo:
                hi += 1
            hi += uint(k[i])
            lo = t
            t = (lo + uint(w[i + 1])) & M
            if t < lo:
                hi += 1
            t1h = (hi + uint(w[i])) & M
            t1l = t
            # t2 = S0(a) + Maj(a, b, c)
            s0h = (((ah >> 28) | (al << 4)) ^ ((al >> 2) | (ah << 30))
                   ^ ((al >> 7) | (ah << 25))) & M
            s0l = (((al >> 28) | (ah << 4)) ^ ((ah >> 2) | (al << 30))
                   ^ ((ah >> 7) | (al << 25))) & M
            lo = (al & bl) | (cl & (al | bl))
            t = (lo + s0l) & M
            hi = (ah & bh) | (ch & (ah | bh))
            if t < lo:
                hi += 1
            t2h = hi + s0h
            t2l = t
            hh = gh
            hl = gl
            gh = fh
            gl = fl
            fh = eh
            fl = el
            t = (dl + t1l) & M
            eh = dh + t1h
            if t < dl:
                eh += 1
            eh &= M
            el = t
            dh = ch
            dl = cl
            ch = bh
            cl = bl
            bh = ah
            bl = al
            t = (t1l + t2l) & M
            ah = t1h + t2h
            if t < t1l:
                ah += 1
            ah &= M
            al = t
            i += 2
        # add the working variables into the hash
        t = (uint(st[1]) + al) & M
        st[0] = uint(st[0]) + ah + (1 if t < al else 0)
        st[1] = t
        t = (uint(st[3]) + bl) & M
        st[2] = uint(st[2]) + bh + (1 if t < bl else 0)
        st[3] = t
        t = (uint(st[5]) + cl) & M
        st[4] = uint(st[4]) + ch + (1 if t < cl else 0)
        st[5] = t
        t = (uint(st[7]) + dl) & M
        st[6] = uint(st[6]) + dh + (1 if t < dl else 0)
        st[7] = t
        t = (uint(st[9]) + el) & M
        st[8] = uint(st[8]) + eh + (1 if t < el else 0)
        st[9] = t
        t = (uint(st[11]) + fl) & M
        st[10] = uint(st[10]) + fh + (1 if t < fl else 0)
        st[11] = t
        t = (uint(st[13]) + gl) & M
        st[12] = uint(st[12]) + gh + (1 if t < gl else 0)
        st[13] = t
        t = (uint(st[15]) + hl) & M
        st[14] = uint(st[14]) + hh + (1 if t < hl else 0)
        st[15] = t
