"""Crafted bad DHCP OFFERs, for proving that a client ignores them.

`RogueOffers` runs inside a namespace (usually the DHCP server's), watches the interface for
DHCPDISCOVERs with a packet socket, and answers each of the first `answers` DISCOVERs with a
series of malformed OFFERs that carry the client's xid and MAC (so the client cannot dismiss
them as someone else's). Every bad OFFER offers `bait_ip` from `bait_server`: a client that
took one would show it in its lease. The packets are built here, independently of the
firmware's DHCP code.
"""
from __future__ import annotations

import select
import socket
import struct
import threading
from typing import Callable

from host_tools.lab import netns as _netns
from host_tools.lab.serverthread import ServerThread

ETH_P_IP = 0x0800
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
COOKIE = b"\x63\x82\x53\x63"


def _ip(s: str) -> bytes:
    return socket.inet_aton(s)


def offer(xid: int, chaddr: bytes, yiaddr: str, server: str, options: bytes | None = None,
          op: int = 2, cookie: bytes = COOKIE) -> bytes:
    """A BOOTREPLY; `options` replaces the default option list (53 OFFER, 54, 1, 51, 150)."""
    hdr = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", op, 1, 6, 0, xid, 0, 0x8000, b"\0" * 4,
                      _ip(yiaddr), _ip(server), b"\0" * 4, chaddr[:6].ljust(16, b"\0"),
                      b"", b"")
    if options is None:
        options = (bytes((53, 1, 2)) + bytes((54, 4)) + _ip(server) + bytes((1, 4))
                   + _ip("255.255.255.0") + bytes((51, 4)) + struct.pack("!I", 600)
                   + bytes((150, 4)) + _ip(server) + b"\xff")
    pkt = hdr + cookie + options
    return pkt + b"\0" * max(0, 300 - len(pkt))


def bad_offers(xid: int, chaddr: bytes, bait_ip: str, bait_server: str) -> dict[str, bytes]:
    """name -> malformed OFFER. Each name is a way a real network goes wrong."""
    good = offer(xid, chaddr, bait_ip, bait_server)
    base = (bytes((53, 1, 2)) + bytes((54, 4)) + _ip(bait_server))
    end = len(good.rstrip(b"\0"))
    return {
        # cut inside option 150's value (the length byte promises 4 bytes, 2 are left)
        "truncated": good[:end - 3],
        "no_cookie": offer(xid, chaddr, bait_ip, bait_server, cookie=b"\0\0\0\0"),
        "bad_150_length": offer(xid, chaddr, bait_ip, bait_server,
                                base + bytes((150, 5)) + _ip(bait_server) + b"\x01\xff"),
        "wrong_op": offer(xid, chaddr, bait_ip, bait_server, op=1),
        "no_message_type": offer(xid, chaddr, bait_ip, bait_server,
                                 bytes((54, 4)) + _ip(bait_server) + b"\xff"),
        "bad_66_text": offer(xid, chaddr, bait_ip, bait_server,
                             base + bytes((66, 4)) + b"\x01\x02\x03\x04\xff"),
        "bad_53_length": offer(xid, chaddr, bait_ip, bait_server,
                               bytes((53, 2, 2, 2)) + bytes((54, 4)) + _ip(bait_server) + b"\xff"),
    }


def parse_discover(ip_packet: bytes) -> tuple[int, bytes] | None:
    """(xid, chaddr) when the IPv4 packet is a DHCPDISCOVER to port 67."""
    if len(ip_packet) < 20 or ip_packet[0] >> 4 != 4 or ip_packet[9] != 17:
        return None
    ihl = (ip_packet[0] & 15) * 4
    udp = ip_packet[ihl:]
    if len(udp) < 8 or struct.unpack("!H", udp[2:4])[0] != 67:
        return None
    d = udp[8:]
    if len(d) < 240 or d[0] != 1 or d[236:240] != COOKIE:
        return None
    i = 240
    while i + 1 < len(d) and d[i] != 255:
        if d[i] == 0:
            i += 1
            continue
        if d[i] == 53 and d[i + 1] == 1 and i + 2 < len(d):
            if d[i + 2] != 1:
                return None
            return struct.unpack("!I", d[4:8])[0], bytes(d[28:34])
        i += 2 + d[i + 1]
    return None


class RogueOffers:
    def __init__(self, ns: _netns.Namespace, interface: str, bait_ip: str = "192.0.2.199",
                 bait_server: str = "192.0.2.66", answers: int = 1,
                 kinds: list[str] | None = None,
                 on_send: Callable[[str, int], None] | None = None) -> None:
        for a in (bait_ip, bait_server):
            _netns.check_doc_address(a)
        self.ns = ns
        self.interface = interface
        self.bait_ip = bait_ip
        self.bait_server = bait_server
        self.answers = answers
        self.kinds = kinds
        self.on_send = on_send
        self.sent: list[tuple[str, int]] = []     # (kind, xid)
        self._stop = threading.Event()
        self._runner = ServerThread("rogue DHCP sender")

    def start(self, timeout: float = 5.0) -> "RogueOffers":
        self._runner.start(self._main, "rogue-dhcp", timeout, spawn=self.ns.thread)
        self.ns.lab.on_close(self.stop)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._runner.join(timeout=3)

    def __enter__(self) -> "RogueOffers":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _main(self) -> None:
        with self._runner:                 # what the set-up raises, start() raises
            sniff = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
            sniff.bind((self.interface, ETH_P_IP))
            out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            out.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            out.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, self.interface.encode())
        if self._runner.error is not None:
            return
        answered = 0
        try:
            while not self._stop.is_set() and answered < self.answers:
                r, _, _ = select.select([sniff], [], [], 0.1)
                if not r:
                    continue
                found = parse_discover(sniff.recv(4096))
                if found is None:
                    continue
                xid, chaddr = found
                answered += 1
                for kind, pkt in bad_offers(xid, chaddr, self.bait_ip, self.bait_server).items():
                    if self.kinds is not None and kind not in self.kinds:
                        continue
                    out.sendto(pkt, ("255.255.255.255", 68))
                    self.sent.append((kind, xid))
                    if self.on_send:
                        self.on_send(kind, xid)
        finally:
            sniff.close()
            out.close()
