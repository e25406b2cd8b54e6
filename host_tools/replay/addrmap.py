"""Captured addresses onto the lab's documentation ranges (RFC 5737), so a field capture
never puts a real network's addresses into the replay namespaces.

- the phone's LAN (the ACK's yiaddr and subnet mask): onto 192.0.2.0/24, keeping the last
  octet (10.1.20.57 -> 192.0.2.57). A LAN already inside 192.0.2.0/24 stays as it is.
- everything else (TFTP servers behind a router, DNS, ...): onto 203.0.113.0/24, keeping the
  last octet; addresses already in 198.51.100.0/24 or 203.0.113.0/24 stay.
- collisions (two addresses with the same last octet) take the next free one from .10 up;
  0.0.0.0 and 255.255.255.255 are never mapped.
"""
from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv4Network

LAN_TARGET = ipaddress.ip_network("192.0.2.0/24")
WAN_TARGET = ipaddress.ip_network("203.0.113.0/24")
KEEP_WAN = (ipaddress.ip_network("198.51.100.0/24"), WAN_TARGET)
FIXED = ("0.0.0.0", "255.255.255.255")


class AddressMap:
    def __init__(self, lan: IPv4Network | None) -> None:
        self.lan = lan
        self.table: dict[str, str] = {}
        self._used: set[str] = set()

    @classmethod
    def for_lease(cls, ip: str | None, mask: str | None) -> "AddressMap":
        if not ip or ip == "0.0.0.0":
            return cls(None)
        net = ipaddress.ip_network(f"{ip}/{mask or '255.255.255.0'}", strict=False)
        return cls(net)  # type: ignore[arg-type]

    @property
    def lan_identity(self) -> bool:
        return self.lan is not None and self.lan.subnet_of(LAN_TARGET)  # type: ignore[arg-type]

    @property
    def prefixlen(self) -> int:
        """Prefix of the mapped LAN on the server side (at least /24: the target's size)."""
        return max(self.lan.prefixlen, 24) if self.lan is not None else 24

    def on_lan(self, ip: str) -> bool:
        return self.lan is not None and IPv4Address(ip) in self.lan

    def map(self, ip: str) -> str:
        if ip in FIXED:
            return ip
        got = self.table.get(ip)
        if got is not None:
            return got
        a = IPv4Address(ip)
        if self.on_lan(ip):
            out = ip if self.lan_identity else self._place(LAN_TARGET, a)
        elif any(a in n for n in KEEP_WAN):
            out = ip
        else:
            out = self._place(WAN_TARGET, a)
        self.table[ip] = out
        self._used.add(out)
        return out

    def map_all(self, ips: list[str]) -> list[str]:
        return [self.map(i) for i in ips]

    def prepare(self, ips: list[str]) -> None:
        """Map a set of addresses at once: those that stay as they are first, so a moved
        address never takes the place of one that stays."""
        def stays(ip: str) -> bool:
            a = IPv4Address(ip)
            return self.lan_identity if self.on_lan(ip) else any(a in n for n in KEEP_WAN)
        for ip in sorted(set(ips), key=lambda i: (not stays(i), IPv4Address(i))):
            self.map(ip)

    def _place(self, net: IPv4Network, a: IPv4Address) -> str:
        base = int(net.network_address)
        want = int(a) & 0xFF
        order = [want] + [o for o in range(10, 255) if o != want] + list(range(1, 10))
        for o in order:
            if o in (0, 255):
                continue
            cand = str(IPv4Address(base + o))
            if cand not in self._used and cand not in self.table:
                return cand
        raise ValueError(f"no free address left in {net}")

    def changed(self) -> dict[str, str]:
        """Only the addresses that were moved (for reports)."""
        return {k: v for k, v in self.table.items() if k != v}
