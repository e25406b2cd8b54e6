"""Building captures byte by byte for the replay tests: pcap and pcapng files, Ethernet
(optionally VLAN-tagged) or Linux cooked frames, IPv4 (with fragments), UDP, DHCP and TFTP
packets. Written with struct here, independently of host_tools.replay."""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

COOKIE = b"\x63\x82\x53\x63"


def ip4(a: str) -> bytes:
    return socket.inet_aton(a)


# -- packets ------------------------------------------------------------------------------
def ipv4(src: str, dst: str, payload: bytes, ident: int = 1, more: bool = False,
         offset: int = 0, proto: int = 17) -> bytes:
    flags = (0x2000 if more else 0) | (offset // 8)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, flags, 64, proto, 0,
                      ip4(src), ip4(dst))
    return hdr + payload


def udp(src: str, sport: int, dst: str, dport: int, payload: bytes, ident: int = 1) -> bytes:
    return ipv4(src, dst, struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload, ident)


def fragments(src: str, sport: int, dst: str, dport: int, payload: bytes, size: int,
              ident: int = 7) -> list[bytes]:
    """A UDP datagram cut into IPv4 fragments of `size` bytes (a multiple of 8)."""
    body = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    out = []
    for off in range(0, len(body), size):
        piece = body[off:off + size]
        out.append(ipv4(src, dst, piece, ident, more=off + size < len(body), offset=off))
    return out


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def ether(src_mac: str, dst_mac: str, ip_packet: bytes, vlan: int | None = None) -> bytes:
    tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    return mac_bytes(dst_mac) + mac_bytes(src_mac) + tag + b"\x08\x00" + ip_packet


def sll(src_mac: str, ip_packet: bytes) -> bytes:
    return struct.pack("!HHH", 0, 1, 6) + mac_bytes(src_mac) + b"\0\0" + b"\x08\x00" + ip_packet


def dhcp(op: int, msg: int, xid: int, mac: str, yiaddr: str = "0.0.0.0",
         siaddr: str = "0.0.0.0", ciaddr: str = "0.0.0.0",
         options: list[tuple[int, bytes]] = ()) -> bytes:  # type: ignore[assignment]
    chaddr = mac_bytes(mac).ljust(16, b"\0")
    hdr = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", op, 1, 6, 0, xid, 0, 0x8000, ip4(ciaddr),
                      ip4(yiaddr), ip4(siaddr), ip4("0.0.0.0"), chaddr, b"", b"")
    opts = bytes((53, 1, msg))
    for code, val in options:
        opts += bytes((code, len(val))) + val
    pkt = hdr + COOKIE + opts + b"\xff"
    return pkt.ljust(300, b"\0")


def rrq(name: str, **opts: object) -> bytes:
    body = name.encode() + b"\0octet\0"
    for k, v in opts.items():
        body += k.encode() + b"\0" + str(v).encode() + b"\0"
    return struct.pack("!H", 1) + body


def oack(**opts: object) -> bytes:
    return struct.pack("!H", 6) + b"".join(k.encode() + b"\0" + str(v).encode() + b"\0"
                                           for k, v in opts.items())


def data(block: int, chunk: bytes) -> bytes:
    return struct.pack("!HH", 3, block & 0xFFFF) + chunk


def ack(block: int) -> bytes:
    return struct.pack("!HH", 4, block)


def error(code: int, msg: str) -> bytes:
    return struct.pack("!HH", 5, code) + msg.encode() + b"\0"


# -- files --------------------------------------------------------------------------------
@dataclass
class Rec:
    ts: float
    frame: bytes
    orig_len: int


@dataclass
class Capture:
    """Frames in order; `write_pcap` / `write_pcapng` put them in a file."""
    linktype: int = 1
    records: list[Rec] = field(default_factory=list)
    t: float = 1_700_000_000.0
    phone_mac: str = "00:11:22:aa:bb:cc"
    server_mac: str = "02:00:5e:00:00:01"
    vlan: int | None = None

    def frame(self, frame: bytes, dt: float = 0.001, snap: int | None = None) -> None:
        self.t += dt
        cut = frame[:snap] if snap is not None else frame
        self.records.append(Rec(self.t, cut, len(frame)))

    def ip(self, ip_packet: bytes, from_phone: bool, dt: float = 0.001, snap: int | None = None) -> None:
        src, dst = (self.phone_mac, self.server_mac) if from_phone else (self.server_mac, self.phone_mac)
        if self.linktype == 113:
            fr = sll(src, ip_packet)
        else:
            fr = ether(src, dst, ip_packet, self.vlan)
        self.frame(fr, dt, snap)

    def udp(self, src: str, sport: int, dst: str, dport: int, payload: bytes,
            from_phone: bool, dt: float = 0.001, snap: int | None = None) -> None:
        self.ip(udp(src, sport, dst, dport, payload), from_phone, dt, snap)

    def write_pcap(self, path, big_endian: bool = False, nano: bool = False) -> None:
        o = ">" if big_endian else "<"
        magic = 0xA1B23C4D if nano else 0xA1B2C3D4
        out = bytearray(struct.pack(o + "IHHiIII", magic, 2, 4, 0, 0, 262144, self.linktype))
        for r in self.records:
            sec = int(r.ts)
            frac = round((r.ts - sec) * (1e9 if nano else 1e6))
            out += struct.pack(o + "IIII", sec, frac, len(r.frame), r.orig_len) + r.frame
        path.write_bytes(bytes(out))

    def write_pcapng(self, path, tsresol: int = 9) -> None:
        def block(btype: int, body: bytes) -> bytes:
            body += b"\0" * (-len(body) % 4)
            n = len(body) + 12
            return struct.pack("<II", btype, n) + body + struct.pack("<I", n)

        shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
        opt = struct.pack("<HHB3x", 9, 1, tsresol) + struct.pack("<HH", 0, 0)
        idb = block(1, struct.pack("<HHI", self.linktype, 0, 262144) + opt)
        out = bytearray(shb + idb)
        out += block(5, struct.pack("<III", 0, 0, 0))   # interface statistics: no packet
        for r in self.records:
            ticks = round(r.ts * 10 ** tsresol)
            out += block(6, struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF,
                                        len(r.frame), r.orig_len) + r.frame)
        path.write_bytes(bytes(out))


def dhcp_boot(cap: Capture, mac: str, ip: str, server: str, options: list[tuple[int, bytes]],
              siaddr: str = "0.0.0.0", xid: int = 0x1234, offer_after: float = 0.002,
              extra_discovers: int = 0) -> None:
    """DISCOVER (+ unanswered ones first), OFFER, REQUEST, ACK."""
    for _ in range(extra_discovers):
        cap.udp("0.0.0.0", 68, "255.255.255.255", 67, dhcp(1, 1, xid, mac), True, dt=0.5)
    cap.udp("0.0.0.0", 68, "255.255.255.255", 67, dhcp(1, 1, xid, mac), True, dt=0.5)
    sid = [(54, ip4(server))]
    cap.udp(server, 67, "255.255.255.255", 68,
            dhcp(2, 2, xid, mac, yiaddr=ip, siaddr=siaddr, options=sid + options), False, dt=offer_after)
    cap.udp("0.0.0.0", 68, "255.255.255.255", 67,
            dhcp(1, 3, xid, mac, options=[(50, ip4(ip))] + sid), True)
    cap.udp(server, 67, "255.255.255.255", 68,
            dhcp(2, 5, xid, mac, yiaddr=ip, siaddr=siaddr, options=sid + options), False)


def tftp_file(cap: Capture, client: str, cport: int, server: str, sport: int, name: str,
              content: bytes | None, blksize: int = 512, window: int = 1, drop: set[int] = frozenset(),
              dup: set[int] = frozenset(), rrqs: int = 1, first_answer: float = 0.001,
              options: bool = True, snap: int | None = None) -> None:
    """One read transfer as a capture sees it: RRQ(s), OACK/ACK 0, DATA (minus `drop`,
    `dup` sent twice) with ACKs every `window` blocks; content None: ERROR 1."""
    opts = {"blksize": blksize, "tsize": 0} if options else {}
    if window > 1 and options:
        opts["windowsize"] = window
    for i in range(rrqs):
        cap.udp(client, cport, server, 69, rrq(name, **opts), True, dt=1.0 if i else 0.001)
    if content is None:
        cap.udp(server, sport, client, cport, error(1, "File not found"), False, dt=first_answer)
        return
    if options:
        o = {"blksize": blksize, "tsize": len(content)}
        if window > 1:
            o["windowsize"] = window
        cap.udp(server, sport, client, cport, oack(**o), False, dt=first_answer)
        cap.udp(client, cport, server, sport, ack(0), True)
    else:
        blksize = 512
    n = len(content) // blksize + 1
    for b in range(1, n + 1):
        chunk = content[(b - 1) * blksize:b * blksize]
        if b not in drop:
            cap.udp(server, sport, client, cport, data(b, chunk), False, snap=snap)
        if b in dup:
            cap.udp(server, sport, client, cport, data(b, chunk), False)
        if b % window == 0 or b == n:
            cap.udp(client, cport, server, sport, ack(b), True)
