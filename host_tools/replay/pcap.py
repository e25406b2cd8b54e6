"""Reading captures down to UDP datagrams: classic pcap (both byte orders, micro- and
nanosecond stamps) and pcapng (SHB/IDB/EPB/SPB and the obsolete PB, per-interface link type
and time resolution), link types Ethernet (with 802.1Q/802.1ad tags), Linux cooked SLL and
SLL2, raw IPv4, BSD loopback. IPv4 fragments are put back together; checksums are not
checked (captures from offloading NICs carry wrong ones). Nothing else is decoded here.

    for dg in udp_datagrams("phone.pcap"):
        dg.ts, dg.src, dg.sport, dg.dst, dg.dport, dg.payload, dg.truncated
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

# link types (tcpdump.org/linktypes.html)
LINK_NULL, LINK_ETHERNET, LINK_RAW, LINK_LOOP, LINK_SLL, LINK_IPV4, LINK_SLL2 = 0, 1, 101, 108, 113, 228, 276
ETH_IPV4 = 0x0800
VLAN_TYPES = (0x8100, 0x88A8, 0x9100)
PCAP_MAGICS = {0xA1B2C3D4: 1e-6, 0xA1B23C4D: 1e-9, 0xA1B2CD34: 1e-6}   # the last: "modified" pcap
PCAPNG_SHB = 0x0A0D0D0A
MAX_FRAGMENT_SETS = 256


class PcapError(ValueError):
    pass


@dataclass(frozen=True)
class Frame:
    """One captured frame: link type, time (s since the epoch), bytes (maybe cut at snaplen)."""
    index: int              # 1-based, as Wireshark numbers frames
    ts: float
    linktype: int
    data: bytes
    truncated: bool         # captured length < original length


@dataclass(frozen=True)
class Datagram:
    index: int              # frame of the (last) fragment
    ts: float
    src: str
    dst: str
    sport: int
    dport: int
    payload: bytes
    src_mac: str | None = None
    truncated: bool = False  # the payload is shorter than the UDP header says


@dataclass
class ReadStats:
    frames: int = 0
    ipv4: int = 0
    udp: int = 0
    fragments: int = 0
    unsupported_links: set[int] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------
def frames(path: str | Path, stats: ReadStats | None = None) -> Iterator[Frame]:
    """The frames of a pcap or pcapng file. A file cut short (a capture killed while
    writing) ends the iteration with a warning in `stats` rather than an error."""
    st = stats if stats is not None else ReadStats()
    with open(path, "rb") as f:
        head = f.read(4)
        if len(head) < 4:
            raise PcapError(f"{path}: not a capture (too short)")
        try:
            if struct.unpack("<I", head)[0] == PCAPNG_SHB:
                yield from _pcapng(f, head, st)
                return
            for order in ("<", ">"):
                magic = struct.unpack(order + "I", head)[0]
                if magic in PCAP_MAGICS:
                    yield from _pcap(f, order, magic, st)
                    return
        except PcapError as e:
            if str(e).startswith(str(path)):
                raise
            raise PcapError(f"{path}: {e}") from None
        raise PcapError(f"{path}: not a pcap or pcapng file (magic {head.hex()})")


def _pcap(f: BinaryIO, order: str, magic: int, st: ReadStats) -> Iterator[Frame]:
    rest = f.read(20)
    if len(rest) < 20:
        raise PcapError("pcap header cut short")
    _vmaj, _vmin, _zone, _sig, _snap, link = struct.unpack(order + "HHiIII", rest)
    # the link type is the low 16 bits; above them: reserved bits, the P bit (bit 26) and
    # the FCS length (bits 28-31) of frames that end with their FCS, which the IP total
    # length trims off like Ethernet padding
    link &= 0xFFFF
    unit = PCAP_MAGICS[magic]
    extra = 8 if magic == 0xA1B2CD34 else 0
    n = 0
    while True:
        rec = f.read(16 + extra)
        if not rec:
            return
        if len(rec) < 16 + extra:
            st.warnings.append(f"record header cut short after frame {n}")
            return
        sec, frac, incl, orig = struct.unpack(order + "IIII", rec[:16])
        data = f.read(incl)
        if len(data) < incl:
            st.warnings.append(f"frame {n + 1} cut short (file ends)")
            return
        n += 1
        st.frames += 1
        yield Frame(n, sec + frac * unit, link, data, incl < orig)


@dataclass
class _Iface:
    link: int
    unit: float = 1e-6
    offset: int = 0
    snaplen: int = 0


def _pcapng(f: BinaryIO, head: bytes, st: ReadStats) -> Iterator[Frame]:
    order = "<"
    ifaces: list[_Iface] = []
    n = 0
    last_ts = 0.0
    pending = head
    while True:
        hdr = pending + f.read(8 - len(pending))
        pending = b""
        if not hdr:
            return
        if len(hdr) < 8:
            st.warnings.append(f"block header cut short after frame {n}")
            return
        if struct.unpack("<I", hdr[:4])[0] == PCAPNG_SHB:
            bom = f.read(4)
            if len(bom) < 4:
                st.warnings.append("section header cut short")
                return
            if bom == b"\x4d\x3c\x2b\x1a":
                order = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                order = ">"
            else:
                raise PcapError(f"pcapng: bad byte-order magic {bom.hex()}")
            total = struct.unpack(order + "I", hdr[4:8])[0]
            body = bom + f.read(max(0, total - 12))
            ifaces = []                       # a new section has its own interfaces
            if len(body) < total - 8:
                st.warnings.append("section header cut short")
                return
            continue
        btype, total = struct.unpack(order + "II", hdr)
        if total < 12 or total % 4:
            st.warnings.append(f"pcapng: bad block length {total} after frame {n}; stopped")
            return
        body = f.read(total - 8)
        if len(body) < total - 8:
            st.warnings.append(f"block cut short after frame {n} (file ends)")
            return
        body = body[:-4]                      # trailing copy of the length
        if btype == 1:
            ifaces.append(_idb(body, order))
        elif btype in (6, 2):                # enhanced / obsolete packet block
            if btype == 6:
                iid, hi, lo, cap, orig = struct.unpack(order + "IIIII", body[:20])
            else:
                iid, _drops, hi, lo, cap, orig = struct.unpack(order + "HHIIII", body[:20])
            if iid >= len(ifaces):
                st.warnings.append(f"pcapng: packet for unknown interface {iid}")
                continue
            itf = ifaces[iid]
            data = body[20:20 + cap]
            last_ts = ((hi << 32) | lo) * itf.unit + itf.offset
            n += 1
            st.frames += 1
            yield Frame(n, last_ts, itf.link, data, cap < orig or len(data) < cap)
        elif btype == 3:                     # simple packet block: interface 0, no time
            if not ifaces:
                continue
            itf = ifaces[0]
            orig = struct.unpack(order + "I", body[:4])[0]
            cap = min(orig, itf.snaplen or orig, len(body) - 4)
            n += 1
            st.frames += 1
            yield Frame(n, last_ts, itf.link, body[4:4 + cap], cap < orig)
        # other blocks (name resolution, statistics, custom, DSB) carry no packets


def _idb(body: bytes, order: str) -> _Iface:
    link, _res, snap = struct.unpack(order + "HHI", body[:8])
    itf = _Iface(link, snaplen=snap)
    i = 8
    while i + 4 <= len(body):
        code, ln = struct.unpack(order + "HH", body[i:i + 4])
        val = body[i + 4:i + 4 + ln]
        if code == 0:
            break
        if code == 9 and ln >= 1:             # if_tsresol
            v = val[0]
            itf.unit = 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        elif code == 14 and ln >= 8:          # if_tsoffset
            itf.offset = struct.unpack(order + "q", val[:8])[0]
        i += 4 + ((ln + 3) & ~3)
    return itf


# ---------------------------------------------------------------------------------------
# Link layer -> IPv4
# ---------------------------------------------------------------------------------------
def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def ipv4_of(fr: Frame) -> tuple[bytes, str | None] | None:
    """(IPv4 packet, source MAC or None) of a frame, None when it carries no IPv4."""
    d, link = fr.data, fr.linktype
    if link == LINK_ETHERNET:
        if len(d) < 14:
            return None
        etype, off = struct.unpack("!H", d[12:14])[0], 14
        while etype in VLAN_TYPES and len(d) >= off + 4:
            etype = struct.unpack("!H", d[off + 2:off + 4])[0]
            off += 4
        return (d[off:], _mac(d[6:12])) if etype == ETH_IPV4 else None
    if link == LINK_SLL:
        if len(d) < 16 or struct.unpack("!H", d[14:16])[0] != ETH_IPV4:
            return None
        alen = struct.unpack("!H", d[4:6])[0]
        return d[16:], (_mac(d[6:12]) if alen == 6 else None)
    if link == LINK_SLL2:
        if len(d) < 20 or struct.unpack("!H", d[0:2])[0] != ETH_IPV4:
            return None
        return d[20:], (_mac(d[12:18]) if d[11] == 6 else None)
    if link in (LINK_RAW, LINK_IPV4):
        return (d, None) if d and d[0] >> 4 == 4 else None
    if link in (LINK_NULL, LINK_LOOP):
        if len(d) < 4:
            return None
        # AF_INET is 2 everywhere; NULL stores it in the capturing host's byte order
        fams = {struct.unpack("!I", d[:4])[0]} if link == LINK_LOOP else \
            {struct.unpack("<I", d[:4])[0], struct.unpack(">I", d[:4])[0]}
        return (d[4:], None) if 2 in fams else None
    return None


# ---------------------------------------------------------------------------------------
# IPv4 -> UDP, with fragment reassembly
# ---------------------------------------------------------------------------------------
class _Fragments:
    """Pieces of one fragmented datagram: offset -> bytes; complete when contiguous from 0
    to the piece without the more-fragments flag."""

    def __init__(self) -> None:
        self.pieces: dict[int, bytes] = {}
        self.total: int | None = None
        self.header = b""

    def add(self, offset: int, more: bool, header: bytes, data: bytes) -> bytes | None:
        self.pieces.setdefault(offset, data)
        if offset == 0:
            self.header = header
        if not more:
            self.total = offset + len(data)
        if self.total is None or not self.header:
            return None
        out = bytearray()
        pos = 0
        for off in sorted(self.pieces):
            if off > pos:
                return None                     # a hole
            piece = self.pieces[off]
            if off + len(piece) > pos:
                out += piece[pos - off:]
                pos = off + len(piece)
        return bytes(out[:self.total]) if pos >= self.total else None


def udp_datagrams(path: str | Path, stats: ReadStats | None = None) -> Iterator[Datagram]:
    """Every IPv4/UDP datagram of a capture, in capture order."""
    st = stats if stats is not None else ReadStats()
    frags: dict[tuple, _Fragments] = {}
    for fr in frames(path, st):
        got = ipv4_of(fr)
        if got is None:
            if fr.linktype not in (LINK_ETHERNET, LINK_SLL, LINK_SLL2, LINK_RAW, LINK_IPV4,
                                   LINK_NULL, LINK_LOOP):
                st.unsupported_links.add(fr.linktype)
            continue
        ip, mac = got
        if len(ip) < 20 or ip[0] >> 4 != 4:
            continue
        st.ipv4 += 1
        ihl = (ip[0] & 15) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        if ihl < 20 or total < ihl:
            continue
        cut = fr.truncated or len(ip) < total
        ip = ip[:total]                          # Ethernet padding goes
        if ip[9] != 17:
            continue
        ident, flags_off = struct.unpack("!HH", ip[4:8])
        more, offset = bool(flags_off & 0x2000), (flags_off & 0x1FFF) * 8
        header, body = ip[:ihl], ip[ihl:]
        if more or offset:
            st.fragments += 1
            key = (ip[12:16], ip[16:20], ident)
            fs = frags.get(key)
            if fs is None:
                if len(frags) >= MAX_FRAGMENT_SETS:
                    frags.pop(next(iter(frags)))
                fs = frags[key] = _Fragments()
            whole = fs.add(offset, more, header, body)
            if whole is None:
                continue
            del frags[key]
            body = whole
        dg = _udp(fr, ip[12:16], ip[16:20], body, mac, cut)
        if dg is not None:
            st.udp += 1
            yield dg
    if frags:
        st.warnings.append(f"{len(frags)} fragmented datagram(s) never completed")


def _udp(fr: Frame, src: bytes, dst: bytes, body: bytes, mac: str | None,
         cut: bool) -> Datagram | None:
    if len(body) < 8:
        return None
    sport, dport, length = struct.unpack("!HHH", body[:6])
    length = max(length, 8)
    payload = body[8:length]
    return Datagram(fr.index, fr.ts, socket.inet_ntoa(src), socket.inet_ntoa(dst), sport, dport,
                    payload, mac, cut or len(body) < length)
