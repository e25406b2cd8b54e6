"""The DHCP exchanges of a capture: per client (MAC) and transaction (xid), the client's
requests and the servers' answers, with the timing a replay needs.

    exs = exchanges(datagrams)             # in order of their first packet
    ex = pick(exs, mac)                    # the exchange a replay serves (see pick)
    ex.offer.packet.addresses(150), ex.ack.packet.u32(51), ex.offer_delay_ms(), ...
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from host_tools.replay import bootp
from host_tools.replay.pcap import Datagram

DHCP_PORTS = (67, 68)


@dataclass
class Seen:
    """One DHCP packet in the capture."""
    ts: float
    frame: int
    src: str
    packet: bootp.Bootp


@dataclass
class Exchange:
    mac: str
    xid: int
    requests: list[Seen] = field(default_factory=list)   # DISCOVER, REQUEST, INFORM, ...
    offers: list[Seen] = field(default_factory=list)
    acks: list[Seen] = field(default_factory=list)
    naks: list[Seen] = field(default_factory=list)

    @property
    def kind(self) -> str:
        types = {r.packet.msg_type for r in self.requests}
        return "inform" if bootp.INFORM in types and bootp.DISCOVER not in types else "full"

    @property
    def first_ts(self) -> float:
        return min(s.ts for s in [*self.requests, *self.offers, *self.acks, *self.naks])

    @property
    def ack(self) -> Seen | None:
        return self.acks[0] if self.acks else None

    @property
    def server(self) -> str | None:
        """The server the client settled on: the ACK's server id (or source address)."""
        a = self.ack
        if a is None:
            return None
        return (a.packet.addresses(bootp.OPT_SERVER_ID) or [a.src])[0]

    @property
    def offer(self) -> Seen | None:
        """The OFFER of the server that ACKed (the first OFFER when nobody did)."""
        srv = self.server
        for o in self.offers:
            if srv is None or srv in (o.packet.addresses(bootp.OPT_SERVER_ID) or [o.src]):
                return o
        return None

    def _answer(self, answer: Seen | None, kinds: tuple[int, ...]) -> tuple[float | None, int]:
        """(ms from the last request of `kinds` before the answer, how many such requests
        the server left unanswered before it)."""
        if answer is None:
            return None, 0
        before = [r for r in self.requests if r.packet.msg_type in kinds and r.ts <= answer.ts]
        if not before:
            return None, 0
        return round((answer.ts - before[-1].ts) * 1000, 3), len(before) - 1

    def offer_delay(self) -> tuple[float | None, int]:
        return self._answer(self.offer, (bootp.DISCOVER,))

    def ack_delay(self) -> tuple[float | None, int]:
        return self._answer(self.ack, (bootp.REQUEST, bootp.INFORM))


def exchanges(datagrams: Iterable[Datagram]) -> list[Exchange]:
    """Every DHCP exchange (client MAC + xid) of the capture, in order of first packet."""
    by_key: dict[tuple[str, int], Exchange] = {}
    for dg in datagrams:
        if dg.sport not in DHCP_PORTS and dg.dport not in DHCP_PORTS:
            continue
        try:
            p = bootp.parse(dg.payload)
        except bootp.BootpError:
            continue
        key = (p.mac, p.xid)
        ex = by_key.get(key)
        if ex is None:
            ex = by_key[key] = Exchange(p.mac, p.xid)
        seen = Seen(dg.ts, dg.index, dg.src, p)
        t = p.msg_type
        if p.op == 1:
            ex.requests.append(seen)
        elif t == bootp.OFFER:
            ex.offers.append(seen)
        elif t == bootp.ACK:
            ex.acks.append(seen)
        elif t == bootp.NAK:
            ex.naks.append(seen)
    return sorted(by_key.values(), key=lambda e: e.first_ts)


def clients(exs: Iterable[Exchange]) -> list[str]:
    """MACs of clients that got an ACK, in order of appearance."""
    out: list[str] = []
    for e in exs:
        if e.ack is not None and e.mac not in out:
            out.append(e.mac)
    return out


def pick(exs: list[Exchange], mac: str) -> tuple[Exchange | None, Exchange | None]:
    """(full exchange, INFORM exchange) a replay serves for `mac`: the first full exchange
    that reached an ACK (the boot), and the first answered INFORM (ESP32 boards take their
    address from the built-in client and ask for options 150/66 with an INFORM)."""
    full = next((e for e in exs if e.mac == mac and e.kind == "full" and e.ack), None)
    inform = next((e for e in exs if e.mac == mac and e.kind == "inform" and e.ack), None)
    return full, inform


def describe(p: bootp.Bootp) -> dict[str, Any]:
    """The options a phone cares about, readable (for reports)."""
    d: dict[str, Any] = {"msg": p.msg_name, "yiaddr": p.yiaddr, "siaddr": p.siaddr}
    mask = p.addresses(bootp.OPT_MASK)
    d["subnet_mask"] = mask[0] if mask else None
    d["router"] = p.addresses(bootp.OPT_ROUTER)
    d["dns"] = p.addresses(bootp.OPT_DNS)
    d["lease_s"] = p.u32(bootp.OPT_LEASE)
    sid = p.addresses(bootp.OPT_SERVER_ID)
    d["server_id"] = sid[0] if sid else None
    d["option150"] = p.addresses(bootp.OPT_TFTP_LIST)
    d["option66"] = p.text(bootp.OPT_TFTP_NAME)
    if p.file:
        d["file"] = p.file.decode("latin-1")
    if p.sname:
        d["sname"] = p.sname.decode("latin-1")
    d["options"] = [c for c, _ in p.options]
    return d
