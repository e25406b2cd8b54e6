"""TFTP transfers for the firmware's TFTP client (phone.tftp): option acknowledgements with odd
values, blocks lost, duplicated, reordered or too long, errors in between."""
from __future__ import annotations

import struct

from host_tools.fuzz.gen.base import Src, chance, mutate_bytes, pack_datagrams, pick
from host_tools.fuzz.gen.corpus import Corpus


def _tftp_oack(src: Src, blksize: int, tsize: int, window: int) -> bytes:
    opts = []
    for name, value in (("blksize", blksize), ("tsize", tsize), ("windowsize", window), ("timeout", 1)):
        if not chance(src, 4):
            opts.append((name, str(value)))
    if chance(src, 3):
        i = src.int(0, max(0, len(opts) - 1))
        name = opts[i][0] if opts else "blksize"
        val = pick(src, ("0", "-1", "", " 12", "abc", "1e3", "0x10", "9" * 60, "65465", "7",
                         "65464", "256", "1_0", "\xff", "٣"))
        opts[i:i + 1] = [(name, val)]
    if chance(src, 6):
        opts.append((pick(src, ("BLKSIZE", "multicast", "tsize", "", "rollover")), pick(src, ("1", "", "0"))))
    out = b"\x00\x06" + b"".join(k.encode() + b"\x00" + v.encode() + b"\x00" for k, v in opts)
    if chance(src, 8):
        out = out[:-1]                       # last field not NUL-terminated
    if chance(src, 10):
        out += b"odd\x00"                    # a name without a value
    if chance(src, 10):
        out = out.replace(b"blksize", b"blk\xffsize")
    return out


def _tftp_error(src: Src) -> bytes:
    code = pick(src, (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 255, 0xFFFF))
    msg = pick(src, (b"File not found", b"", b"\xff\xfe bad", b"x" * 600, b"caf\xc3\xa9"))
    out = struct.pack(">HH", 5, code) + msg
    return out if chance(src, 4) else out + b"\x00"


def _tftp_data(blk: int, n: int, fill: int = 0x41) -> bytes:
    return struct.pack(">HH", 3, blk & 0xFFFF) + bytes([fill]) * n


def gen_tftp(src: Src, corpus: Corpus) -> bytes:
    flags = src.int(0, 127)
    blk = (512, 1428, 8, 64)[(flags >> 1) & 3]
    negotiated = not flags & 1 and not chance(src, 5)
    dgs: list[bytes] = []
    if flags & 1 == 0 and chance(src, 8):
        dgs.append(struct.pack(">HH", 5, 8) + b"no options\x00")     # refused: retry plain
        negotiated = False
    if negotiated:
        b2 = pick(src, (blk, blk, 8, max(8, blk // 2), blk + 1, 512))
        nblocks = src.int(0, 12)
        size = b2 * nblocks + src.int(0, b2 - 1)
        tsize = pick(src, (size, size, size + 1, max(0, size - 1), 0, 1 << 40, 5000))
        win = pick(src, (4, 1, 2, 16, 3))
        dgs.append(_tftp_oack(src, b2, tsize, win))
    else:
        b2 = 512
        nblocks = src.int(0, 6)
        size = b2 * nblocks + src.int(0, b2 - 1)
    blocks = []
    for i in range(size // b2 + 1):
        n = min(b2, size - i * b2)
        blocks.append(_tftp_data(i + 1, n))
    if chance(src, 3):                                   # network disorder
        for _ in range(src.int(1, 4)):
            if not blocks:
                break
            op = src.int(0, 4)
            i = src.int(0, len(blocks) - 1)
            if op == 0:
                blocks.insert(i, blocks[i])              # duplicate
            elif op == 1:
                j = src.int(0, len(blocks) - 1)
                blocks[i], blocks[j] = blocks[j], blocks[i]
            elif op == 2:
                del blocks[i]                            # lost
            elif op == 3:
                blocks[i] = blocks[i][:2] + struct.pack(">H", pick(src, (0, 0xFFFF, 0x8000, i + 40))) + blocks[i][4:]
            else:
                blocks[i] = blocks[i] + b"B" * src.int(1, 2000)  # longer than blksize
    dgs += blocks
    while chance(src, 4) and len(dgs) < 80:
        dgs.insert(src.int(0, len(dgs)), pick(src, (
            _tftp_error(src), b"", b"\x00", b"\x00\x03", b"\x00\x03\x00", b"\x00\x04\x00\x01",
            src.bytes(src.int(0, 40)), b"\x00\x06blksize\x00512\x00", struct.pack(">H", src.int(0, 0xFFFF)))))
    if dgs and chance(src, 4):
        i = src.int(0, len(dgs) - 1)
        dgs[i] = mutate_bytes(src, dgs[i])
    return bytes([flags]) + pack_datagrams(dgs)
