"""DHCP answers for the firmware's DHCP client (phone.dhcp): rogue_dhcp offers and acks with
mutated options (lengths that lie, RFC 3396 repeats, options in sname/file)."""
from __future__ import annotations

import struct

from host_tools.fuzz.gen.base import Src, chance, mutate_bytes, pack_datagrams, pick, truncate
from host_tools.fuzz.gen.corpus import Corpus


# The harness's DHCP client identity (host_tools/mpscripts/fuzz_harness.py).
XID = 0x5EED1234
MAC = bytes.fromhex("001122334455")


def _ip(text: str) -> bytes:
    return bytes(int(x) for x in text.split("."))


def _dhcp_opts(src: Src, mtype: int, server: bytes) -> list[tuple[int, bytes]]:
    opts = [(53, bytes([mtype])), (54, server), (1, _ip("255.255.255.0")), (51, struct.pack(">I", 600))]
    extra = src.int(0, 6)
    for _ in range(extra):
        code = pick(src, (3, 6, 15, 66, 150, 58, 59, 56, 12, 43, 125, 224, 57, 52, src.int(1, 254)))
        if code in (3, 6, 150):
            k = pick(src, (1, 2, 3))
            v = b"".join(_ip(pick(src, ("192.0.2.1", "0.0.0.0", "198.51.100.7", "255.255.255.255")))
                         for _ in range(k))
            if chance(src, 4):
                v = v[:len(v) - src.int(1, 3)] if chance(src, 2) else v + b"\x01"
        elif code in (15, 56, 12):
            v = pick(src, (b"lab.example", b"\xff\xfe", b"caf\xc3\xa9", b"x\x00\x00", b"",
                           src.bytes(src.int(1, 30)), b"A" * 255))
        elif code == 66:
            v = pick(src, (b"192.0.2.9", b"tftp.lab", b"192.0.2.9,198.51.100.3 tftp2", b"tftp\x00",
                           b"\x00\x00", b"\x01\x02", b"t\x7f", b"caf\xc3\xa9", b"", b" ", b"," * 5,
                           b"256.1.1.1", b"1.2.3", b"A" * 255))
        elif code in (51, 58, 59):
            v = pick(src, (struct.pack(">I", 0xFFFFFFFF), struct.pack(">I", 0), b"\x00\x01", b""))
        elif code == 57:
            v = pick(src, (b"\x02\x40", b"\x00", b"\xff\xff\xff"))
        elif code == 52:
            v = bytes([src.int(0, 4)]) if chance(src, 4) else bytes([pick(src, (1, 2, 3))])
        else:
            v = src.bytes(src.int(0, 40))
        opts.append((code, v))
    if chance(src, 6):
        del opts[src.int(0, len(opts) - 1)]
    if chance(src, 8):                         # RFC 3396: a repeated option concatenates
        opts.append(pick(src, opts))
    if chance(src, 8):
        opts.insert(0, (53, bytes([pick(src, (1, 3, 4, 7, 8, 9, 0, 255))])))
    return opts


def _encode_opts(src: Src, opts: list[tuple[int, bytes]]) -> bytes:
    out = bytearray()
    lie = src.int(0, len(opts)) if chance(src, 5) else -1
    for i, (code, v) in enumerate(opts):
        if chance(src, 20):
            out += b"\x00" * src.int(1, 5)     # pads
        n = len(v) & 0xFF
        if i == lie:
            n = pick(src, (0, 255, (n + 1) & 0xFF, max(0, n - 1), src.int(0, 255)))
        out += bytes([code, n]) + v[:255]
    if not chance(src, 8):
        out.append(255)
    if chance(src, 8):
        out += src.bytes(src.int(1, 20))
    return bytes(out)


def dhcp_packet(src: Src, mtype: int, yiaddr: str = "192.0.2.50", server: str = "192.0.2.1") -> bytes:
    from host_tools.lab import rogue_dhcp
    xid = XID if not chance(src, 12) else src.int(0, 0xFFFFFFFF)
    mac = MAC if not chance(src, 12) else src.bytes(6)
    opts = _dhcp_opts(src, mtype, _ip(server))
    raw = _encode_opts(src, opts)
    pkt = bytearray(rogue_dhcp.offer(xid, mac, yiaddr, server, options=raw,
                                     op=2 if not chance(src, 16) else src.int(0, 3),
                                     cookie=rogue_dhcp.COOKIE if not chance(src, 16) else src.bytes(4)))
    if any(c == 52 for c, _ in opts) or chance(src, 10):   # options in sname (44..108), file (108..236)
        for lo, hi in ((44, 108), (108, 236)):
            if chance(src, 2):
                more = _encode_opts(src, [(pick(src, (66, 150, 15, 3, 53)), src.bytes(src.int(0, 70)))])
                more = more[:hi - lo]
                pkt[lo:lo + len(more)] = more
    if chance(src, 12):
        pkt[1], pkt[2] = pick(src, ((1, 6), (6, 1), (1, 16), (0, 0)))
    if chance(src, 4):
        pkt = bytearray(mutate_bytes(src, bytes(pkt)))
    if chance(src, 10):
        pkt = bytearray(truncate(src, bytes(pkt)))
    return bytes(pkt)


def gen_dhcp(src: Src, corpus: Corpus) -> bytes:
    flags = src.int(0, 3)
    inform = bool(flags & 2)
    yi = pick(src, ("192.0.2.50", "0.0.0.0", "192.0.2.51"))
    sv = pick(src, ("192.0.2.1", "192.0.2.2"))
    if inform:
        dgs = [dhcp_packet(src, pick(src, (5, 5, 6, 2)), "0.0.0.0", sv)]
    else:
        dgs = [dhcp_packet(src, pick(src, (2, 2, 5, 6)), yi, sv)]
        if not chance(src, 3):
            dgs.append(dhcp_packet(src, pick(src, (5, 5, 6, 2)), pick(src, (yi, "192.0.2.77")),
                                   pick(src, (sv, sv, "192.0.2.3"))))
    while chance(src, 4) and len(dgs) < 8:
        dgs.insert(src.int(0, len(dgs)), pick(src, (
            src.bytes(src.int(0, 300)), dhcp_packet(src, src.int(0, 9)), b"", b"\x02" * 239,
            dgs[0][:240])))
    return bytes([flags]) + pack_datagrams(dgs)
