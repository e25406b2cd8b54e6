"""What a capture shows of the phone's name lookups: the DNS servers it asked (UDP port 53)
and the IPv4 addresses they answered for each name (A records, RFC 1035; compressed names
followed). A replay gives the board the same servers in its lease and the same answers in
its hosts file, so a configuration naming its call manager by host name still resolves.

    servers, names = seen(datagrams, "10.20.30.57")
"""
from __future__ import annotations

import socket
import struct
from typing import Iterable

from host_tools.replay.pcap import Datagram

DNS_PORT = 53
_A, _IN = 1, 1


def seen(datagrams: Iterable[Datagram], phone_ip: str) -> tuple[list[str], dict[str, str]]:
    servers: list[str] = []
    names: dict[str, str] = {}
    for dg in datagrams:
        if dg.src == phone_ip and dg.dport == DNS_PORT and dg.dst not in servers:
            servers.append(dg.dst)
        elif dg.dst == phone_ip and dg.sport == DNS_PORT:
            for name, addr in answers(dg.payload):
                names.setdefault(name, addr)
    return servers, names


def answers(msg: bytes) -> list[tuple[str, str]]:
    """(name, IPv4) of the A records in a DNS response; [] for anything malformed."""
    try:
        if len(msg) < 12 or not msg[2] & 0x80:
            return []
        qd, an = struct.unpack("!HH", msg[4:8])
        pos = 12
        for _ in range(qd):
            _, pos = _name(msg, pos)
            pos += 4
        out = []
        for _ in range(an):
            name, pos = _name(msg, pos)
            rtype, rclass, _ttl, rdlen = struct.unpack("!HHIH", msg[pos:pos + 10])
            pos += 10
            if rtype == _A and rclass == _IN and rdlen == 4:
                out.append((name, socket.inet_ntoa(msg[pos:pos + 4])))
            pos += rdlen
        return out
    except (struct.error, IndexError, ValueError, OSError):
        return []


def _name(msg: bytes, pos: int) -> tuple[str, int]:
    labels: list[str] = []
    end = None
    for _ in range(128):                      # bounds a pointer loop
        n = msg[pos]
        if n == 0:
            pos += 1
            break
        if n & 0xC0 == 0xC0:
            if end is None:
                end = pos + 2
            pos = ((n & 0x3F) << 8) | msg[pos + 1]
            continue
        labels.append(msg[pos + 1:pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n
    else:
        raise ValueError("name too long")
    return ".".join(labels).lower(), (end if end is not None else pos)
