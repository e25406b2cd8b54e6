"""Where a generator's choices come from (`Src`: a seeded PRNG here, hypothesis draws in
`strategies`), byte-level mutations every generator falls back on, and the harness's framing of
a datagram sequence."""
from __future__ import annotations

import random
import struct
from typing import Protocol, Sequence, TypeVar


T = TypeVar("T")


class Src(Protocol):
    def int(self, lo: int, hi: int) -> int: ...
    def bytes(self, n: int) -> bytes: ...


class RandomSrc:
    def __init__(self, seed: int | str = 0):
        self.r = random.Random(seed)

    def int(self, lo: int, hi: int) -> int:
        return self.r.randint(lo, hi)

    def bytes(self, n: int) -> bytes:
        return self.r.randbytes(n)


def pick(src: Src, seq: Sequence[T]) -> T:
    return seq[src.int(0, len(seq) - 1)]


def chance(src: Src, k: int) -> bool:
    """True one time in k."""
    return src.int(1, k) == 1


INTERESTING8 = (0, 1, 0x7F, 0x80, 0xFF, 0x20, 0x0D, 0x1E)
INTERESTING16 = (0, 1, 3, 4, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)
INTERESTING32 = (0, 1, 4, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x10000, 2052, 2053)


def mutate_bytes(src: Src, b: bytes, ops: int | None = None, other: bytes | None = None) -> bytes:
    """Byte-level havoc: bit flips, interesting values, deletions, insertions, duplicated
    ranges, truncation, a splice with `other`."""
    out = bytearray(b)
    for _ in range(ops if ops is not None else src.int(1, 4)):
        n = len(out)
        op = src.int(0, 9)
        if not n and op not in (5, 9):
            op = 5
        if op == 0:
            i = src.int(0, n - 1)
            out[i] ^= 1 << src.int(0, 7)
        elif op == 1:
            out[src.int(0, n - 1)] = pick(src, INTERESTING8)
        elif op == 2:
            out[src.int(0, n - 1)] = src.int(0, 255)
        elif op == 3 and n >= 2:
            i = src.int(0, n - 2)
            struct.pack_into(pick(src, (">H", "<H")), out, i, pick(src, INTERESTING16))
        elif op == 4 and n >= 4:
            i = src.int(0, n - 4)
            struct.pack_into(pick(src, (">I", "<I")), out, i, pick(src, INTERESTING32))
        elif op == 5:
            i = src.int(0, n)
            out[i:i] = src.bytes(src.int(1, 16))
        elif op == 6:
            i = src.int(0, n - 1)
            del out[i:i + src.int(1, min(64, n - i))]
        elif op == 7:
            i = src.int(0, n - 1)
            k = src.int(1, min(64, n - i))
            j = src.int(0, n)
            out[j:j] = out[i:i + k]
        elif op == 8:
            del out[src.int(0, n):]
        elif op == 9 and other:
            i = src.int(0, len(out))
            j = src.int(0, len(other))
            out = out[:i] + bytearray(other[j:])
    return bytes(out)


def truncate(src: Src, b: bytes) -> bytes:
    return b[:src.int(0, max(0, len(b) - 1))]


def roughen(src: Src, b: bytes, havoc_one_in: int, cut_one_in: int = 10) -> bytes:
    """What a structure-aware generator adds at the end: now and then one or two byte-level
    mutations, now and then a cut."""
    if chance(src, havoc_one_in):
        b = mutate_bytes(src, b, src.int(1, 2))
    if chance(src, cut_one_in):
        b = truncate(src, b)
    return b


def pack_datagrams(dgs: Sequence[bytes]) -> bytes:
    return b"".join(struct.pack(">H", min(len(d), 0xFFFF)) + d[:0xFFFF] for d in dgs)
