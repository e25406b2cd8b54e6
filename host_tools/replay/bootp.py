"""DHCP/BOOTP packets (RFC 2131/2132) on the host side: parse what a capture holds, encode
what the replay DHCP responder sends. Options keep their order; repeated options are
concatenated (RFC 3396); option overload (52) into `file`/`sname` is read. Written for the
replay, independently of the firmware's client.
"""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field, replace

COOKIE = b"\x63\x82\x53\x63"
HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")   # 236 bytes
MIN_LEN = 300        # what most servers pad replies to (BOOTP's minimum)

DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
MSG_NAMES = {DISCOVER: "DISCOVER", OFFER: "OFFER", REQUEST: "REQUEST", DECLINE: "DECLINE",
             ACK: "ACK", NAK: "NAK", RELEASE: "RELEASE", INFORM: "INFORM"}

OPT_MASK, OPT_ROUTER, OPT_DNS, OPT_DOMAIN, OPT_BROADCAST = 1, 3, 6, 15, 28
OPT_REQUESTED_IP, OPT_LEASE, OPT_OVERLOAD, OPT_MSG_TYPE, OPT_SERVER_ID = 50, 51, 52, 53, 54
OPT_T1, OPT_T2, OPT_TFTP_NAME, OPT_BOOTFILE, OPT_TFTP_LIST = 58, 59, 66, 67, 150
# options whose value is a list of IPv4 addresses (RFC 2132 and option 150)
ADDRESS_OPTIONS = frozenset({3, 4, 5, 6, 7, 8, 9, 10, 11, 16, 28, 32, 41, 42, 44, 45, 48, 49,
                             50, 54, 65, 68, 69, 70, 71, 72, 73, 74, 75, 76, 150})


class BootpError(ValueError):
    pass


def ip_str(b: bytes) -> str:
    return socket.inet_ntoa(b)


def ip_bytes(s: str) -> bytes:
    return socket.inet_aton(s)


@dataclass
class Bootp:
    op: int
    xid: int
    chaddr: bytes                    # hlen bytes
    htype: int = 1
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: str = "0.0.0.0"
    yiaddr: str = "0.0.0.0"
    siaddr: str = "0.0.0.0"
    giaddr: str = "0.0.0.0"
    sname: bytes = b""
    file: bytes = b""
    options: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def mac(self) -> str:
        """Client hardware address as 12 upper-case hex digits."""
        return self.chaddr.hex().upper()

    @property
    def msg_type(self) -> int | None:
        v = self.option(OPT_MSG_TYPE)
        return v[0] if v and len(v) == 1 else None

    @property
    def msg_name(self) -> str:
        t = self.msg_type
        return MSG_NAMES.get(t, f"type{t}") if t is not None else "BOOTP"

    @property
    def broadcast(self) -> bool:
        return bool(self.flags & 0x8000)

    def option(self, code: int) -> bytes | None:
        for c, v in self.options:
            if c == code:
                return v
        return None

    def addresses(self, code: int) -> list[str]:
        v = self.option(code) or b""
        return [ip_str(v[i:i + 4]) for i in range(0, len(v) - len(v) % 4, 4)]

    def u32(self, code: int) -> int | None:
        v = self.option(code)
        return struct.unpack("!I", v)[0] if v and len(v) == 4 else None

    def text(self, code: int) -> str | None:
        v = self.option(code)
        return v.rstrip(b"\0").decode("latin-1") if v is not None else None

    def set_option(self, code: int, value: bytes | None) -> None:
        """Replace (or, with None, remove) an option, keeping its position."""
        out, done = [], False
        for c, v in self.options:
            if c == code:
                if value is not None and not done:
                    out.append((c, value))
                done = True
            else:
                out.append((c, v))
        if not done and value is not None:
            out.append((code, value))
        self.options = out

    def copy(self) -> "Bootp":
        return replace(self, options=list(self.options))


def parse(data: bytes) -> Bootp:
    """A BOOTP/DHCP packet; BootpError when it is not one."""
    if len(data) < HEADER.size + 4:
        raise BootpError(f"{len(data)} bytes: too short for BOOTP")
    (op, htype, hlen, hops, xid, secs, flags, ci, yi, si, gi, ch, sname,
     file) = HEADER.unpack_from(data)
    if op not in (1, 2):
        raise BootpError(f"op {op}")
    if data[236:240] != COOKIE:
        raise BootpError("no DHCP magic cookie")
    opts: dict[int, bytearray] = {}
    order: list[int] = []
    _options(data[240:], opts, order)
    ov = opts.get(OPT_OVERLOAD)
    if ov and len(ov) == 1:
        if ov[0] & 1:
            _options(file, opts, order)
            file = b""
        if ov[0] & 2:
            _options(sname, opts, order)
            sname = b""
    return Bootp(op=op, xid=xid, chaddr=ch[:min(hlen, 16)], htype=htype, hops=hops, secs=secs,
                 flags=flags, ciaddr=ip_str(ci), yiaddr=ip_str(yi), siaddr=ip_str(si),
                 giaddr=ip_str(gi), sname=sname.rstrip(b"\0"), file=file.rstrip(b"\0"),
                 options=[(c, bytes(opts[c])) for c in order])


def _options(buf: bytes, opts: dict[int, bytearray], order: list[int]) -> bool:
    """Read options into opts (concatenating repeats); True when END was found."""
    i = 0
    while i < len(buf):
        code = buf[i]
        if code == 255:
            return True
        if code == 0:
            i += 1
            continue
        if i + 1 >= len(buf):
            raise BootpError(f"option {code} has no length byte")
        ln = buf[i + 1]
        if i + 2 + ln > len(buf):
            raise BootpError(f"option {code} runs past the end")
        if code not in opts:
            opts[code] = bytearray()
            order.append(code)
        opts[code] += buf[i + 2:i + 2 + ln]
        i += 2 + ln
    return False


def encode(p: Bootp) -> bytes:
    """Bytes on the wire; values over 255 bytes are split into repeated options."""
    hdr = HEADER.pack(p.op, p.htype, len(p.chaddr), p.hops, p.xid, p.secs, p.flags,
                      ip_bytes(p.ciaddr), ip_bytes(p.yiaddr), ip_bytes(p.siaddr),
                      ip_bytes(p.giaddr), p.chaddr.ljust(16, b"\0")[:16], p.sname[:64],
                      p.file[:128])
    body = bytearray(COOKIE)
    for code, val in p.options:
        chunks = [val[i:i + 255] for i in range(0, len(val), 255)] or [b""]
        for c in chunks:
            body += bytes((code, len(c))) + c
    body.append(255)
    pkt = hdr + bytes(body)
    return pkt + b"\0" * max(0, MIN_LEN - len(pkt))
