"""From a capture to what the replay servers answer: the DHCP OFFER/ACK (the captured packets
with their addresses mapped onto the lab's ranges), per TFTP server the files, the errors it
answered and the requests it never answered, and the captured delays.

    plan = build(analysis, timing="captured")      # or "fast": no delays, nothing ignored
    plan.dhcp.offer, plan.dhcp.ack, plan.tftp[0].files, plan.expected_lease, plan.notes
"""
from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass, field
from typing import Any

from host_tools.replay import bootp
from host_tools.replay.addrmap import AddressMap
from host_tools.replay.capture import Analysis
from host_tools.replay.tftp import Transfer

TIMINGS = ("captured", "fast")
DEFAULT_LEASE_S = 86400
_QUAD = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


class PlanError(ValueError):
    pass


@dataclass
class DhcpPlan:
    offer: bootp.Bootp                  # templates: xid, chaddr, flags come from the request
    ack: bootp.Bootp
    inform_ack: bootp.Bootp
    server: str                         # the server's (mapped) address
    offer_delay_s: float = 0.0
    ack_delay_s: float = 0.0
    ignore_discovers: int = 0           # requests the captured server left unanswered
    ignore_requests: int = 0
    source: str = "captured"            # or how it was made up ("synthesized from ...")


@dataclass
class TftpPlan:
    address: str                        # mapped
    captured_address: str
    files: dict[str, bytes] = field(default_factory=dict)
    errors: dict[str, tuple[int, str]] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)        # RRQs never answered
    # cut off mid-way: (the bytes delivered before the first missing block, tsize or None)
    partial: dict[str, tuple[bytes, int | None]] = field(default_factory=dict)
    # of those, the ones the server ended with an ERROR after its data: (code, message)
    partial_errors: dict[str, tuple[int, str]] = field(default_factory=dict)
    delays_s: dict[str, float] = field(default_factory=dict)
    # for how long after the board's first read request of a name its requests go
    # unanswered (the captured server ignored the phone's first ones for that long)
    silent_s: dict[str, float] = field(default_factory=dict)


@dataclass
class Plan:
    mac: str
    timing: str
    amap: AddressMap
    dhcp: DhcpPlan
    tftp: list[TftpPlan]
    lan_addresses: list[str]            # on the server side of the LAN link
    host_addresses: list[str]           # behind the router (on the server namespace's lo)
    hosts: dict[str, str]               # names the phone resolves (option 66 given as a name)
    expected_lease: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"mac": self.mac, "timing": self.timing, "dhcp_source": self.dhcp.source,
                "dhcp_server": self.dhcp.server, "address_map": self.amap.table,
                "addresses_moved": self.amap.changed(),
                "offer_delay_ms": round(self.dhcp.offer_delay_s * 1000, 3),
                "ack_delay_ms": round(self.dhcp.ack_delay_s * 1000, 3),
                "ignore_discovers": self.dhcp.ignore_discovers,
                "ignore_requests": self.dhcp.ignore_requests,
                "tftp": [{"address": t.address, "captured_address": t.captured_address,
                          "files": sorted(t.files), "errors": {k: list(v) for k, v in t.errors.items()},
                          "silent": sorted(t.silent),
                          "partial": {k: {"bytes": len(v[0]), "tsize": v[1],
                                          "then_error": list(t.partial_errors[k])
                                          if k in t.partial_errors else None}
                                      for k, v in t.partial.items()},
                          "delays_ms": {k: round(v * 1000, 3) for k, v in t.delays_s.items()},
                          "silent_first_ms": {k: round(v * 1000, 3)
                                              for k, v in t.silent_s.items()}}
                         for t in self.tftp],
                "hosts": self.hosts, "expected_lease": self.expected_lease, "notes": self.notes}


# ---------------------------------------------------------------------------------------
def build(cap: Analysis, timing: str = "captured") -> Plan:
    if timing not in TIMINGS:
        raise PlanError(f"timing {timing!r}: one of {', '.join(TIMINGS)}")
    if cap.mac is None:
        raise PlanError(f"{cap.path}: no phone found (no DHCP ACK, no TFTP read request)")
    notes: list[str] = []
    offer, ack, inform_ack, source = _dhcp_packets(cap, notes)
    mask = (ack.addresses(bootp.OPT_MASK) or ["255.255.255.0"])[0]
    amap = AddressMap.for_lease(ack.yiaddr, mask)
    amap.prepare(_addresses(cap, offer, ack, inform_ack))
    m_yi = amap.map(ack.yiaddr)
    bcast = str(ipaddress.ip_network(f"{m_yi}/{mask}", strict=False).broadcast_address) \
        if m_yi != "0.0.0.0" else None
    m_offer, m_ack, m_inform = (_map_packet(p, amap, bcast) for p in (offer, ack, inform_ack))
    server = (m_ack.addresses(bootp.OPT_SERVER_ID) or [amap.map(_server_src(cap))])[0]
    dp = DhcpPlan(m_offer, m_ack, m_inform, server, source=source)
    if timing == "captured" and cap.dhcp is not None:
        od, oi = cap.dhcp.offer_delay()
        ad, ai = cap.dhcp.ack_delay()
        dp.offer_delay_s, dp.ignore_discovers = (od or 0) / 1000, oi
        dp.ack_delay_s, dp.ignore_requests = (ad or 0) / 1000, ai
    tftp = _tftp_plans(cap, amap, timing, notes)
    lan, host = _server_addresses(amap, dp, m_ack, tftp)
    hosts = _hosts(m_ack, m_offer, tftp, notes)
    for name, addr in cap.dns_names.items():
        hosts.setdefault(name, amap.map(addr))
    if cap.dns_names:
        notes.append("names the phone looked up in the capture resolve to what its DNS server "
                     "answered: " + ", ".join(f"{k} -> {hosts[k]}" for k in cap.dns_names))
    if any(f.versions > 1 for f in cap.files.values()):
        notes.append("some files changed during the capture: the first complete version is served")
    for x in cap.incomplete:
        err = x.error if x.error and x.error["by"] == "server" else None
        then = (f"then the server answers ERROR {err['code']} {err['msg']!r} as it did" if err
                else "then the server falls silent")
        notes.append(f"{x.file}: incomplete in the capture ({x.status}, missing blocks "
                     f"{x.missing_blocks[:5]}{'...' if len(x.missing_blocks) > 5 else ''}): "
                     f"served up to its first missing block, {then}")
    if amap.changed():
        notes.append("captured addresses moved onto the lab's documentation ranges: "
                     + ", ".join(f"{k} -> {v}" for k, v in amap.changed().items())
                     + " (file contents are served unchanged)")
    return Plan(cap.mac, timing, amap, dp, tftp, lan, host, hosts,
                expected_lease(m_ack, m_offer, hosts), notes)


# -- DHCP ---------------------------------------------------------------------------------
def _dhcp_packets(cap: Analysis, notes: list[str]) -> tuple[bootp.Bootp, bootp.Bootp, bootp.Bootp, str]:
    full, inform = cap.dhcp, cap.inform
    if full is not None and full.ack is not None:
        ack = full.ack.packet.copy()
        offer = full.offer.packet.copy() if full.offer is not None else _as_type(ack, bootp.OFFER)
        source = "captured"
        if full.offer is None:
            notes.append("no OFFER in the capture: the ACK is offered")
        if inform is not None and inform.ack is not None:
            ia = inform.ack.packet
            for code in (bootp.OPT_TFTP_LIST, bootp.OPT_TFTP_NAME):
                if ack.option(code) is None and ia.option(code) is not None:
                    ack.set_option(code, ia.option(code))
                    offer.set_option(code, ia.option(code))
                    source = "captured (TFTP options from the INFORM answer)"
        inform_ack = _inform_from(inform.ack.packet if inform and inform.ack else ack)
        return offer, ack, inform_ack, source
    if inform is not None and inform.ack is not None:
        ia = inform.ack.packet
        ack = _synthesize(ia, inform.requests[0].packet.ciaddr)
        _dns_seen(ack, cap)
        notes.append("the capture has no DHCP boot, only an INFORM: OFFER/ACK made from its answer")
        return _as_type(ack, bootp.OFFER), ack, _inform_from(ia), "synthesized from the INFORM answer"
    if cap.phone_ip is None or not cap.transfers:
        raise PlanError(f"{cap.path}: no DHCP answer and no TFTP transfer for {cap.mac}")
    ack = _made_up(cap)
    notes.append("the capture has no DHCP: OFFER/ACK made up (option 150 = the captured TFTP "
                 "servers, /24)")
    return _as_type(ack, bootp.OFFER), ack, _inform_from(ack), "synthesized (no DHCP in the capture)"


def _as_type(p: bootp.Bootp, msg: int) -> bootp.Bootp:
    q = p.copy()
    q.set_option(bootp.OPT_MSG_TYPE, bytes((msg,)))
    return q


def _inform_from(p: bootp.Bootp) -> bootp.Bootp:
    """An INFORM answer: an ACK without an address or lease (RFC 2131 4.3.5)."""
    q = _as_type(p, bootp.ACK)
    q.yiaddr = "0.0.0.0"
    for code in (bootp.OPT_LEASE, bootp.OPT_T1, bootp.OPT_T2):
        q.set_option(code, None)
    return q


def _synthesize(template: bootp.Bootp, ip: str) -> bootp.Bootp:
    q = _as_type(template, bootp.ACK)
    q.yiaddr = ip
    if q.option(bootp.OPT_MASK) is None:
        q.set_option(bootp.OPT_MASK, bootp.ip_bytes("255.255.255.0"))
    if q.option(bootp.OPT_LEASE) is None:
        q.set_option(bootp.OPT_LEASE, struct.pack("!I", DEFAULT_LEASE_S))
    return q


def _made_up(cap: Analysis) -> bootp.Bootp:
    ip = cap.phone_ip
    assert ip is not None and cap.mac is not None
    net = ipaddress.ip_network(f"{ip}/24", strict=False)
    hosts = [str(h) for h in (net.network_address + 1, net.broadcast_address - 1)]
    server = hosts[0] if hosts[0] != ip else hosts[1]
    servers = cap.tftp_servers or [x.server for x in cap.transfers]
    opts: list[tuple[int, bytes]] = [
        (bootp.OPT_MSG_TYPE, bytes((bootp.ACK,))), (bootp.OPT_SERVER_ID, bootp.ip_bytes(server)),
        (bootp.OPT_LEASE, struct.pack("!I", DEFAULT_LEASE_S)),
        (bootp.OPT_MASK, bootp.ip_bytes("255.255.255.0"))]
    if any(ipaddress.ip_address(s) not in net for s in servers):
        opts.append((bootp.OPT_ROUTER, bootp.ip_bytes(server)))
    opts.append((bootp.OPT_TFTP_LIST, b"".join(bootp.ip_bytes(s) for s in servers)))
    ack = bootp.Bootp(op=2, xid=0, chaddr=bytes.fromhex(cap.mac), yiaddr=ip, options=opts)
    _dns_seen(ack, cap)
    return ack


def _dns_seen(ack: bootp.Bootp, cap: Analysis) -> None:
    """A made-up answer names the DNS servers the capture shows the phone asking, as the
    real answer must have (or the phone's own settings): a config that names its call
    manager by host name then resolves as it did."""
    if ack.option(bootp.OPT_DNS) is None and cap.dns_servers:
        ack.set_option(bootp.OPT_DNS, b"".join(bootp.ip_bytes(s) for s in cap.dns_servers[:3]))


def _server_src(cap: Analysis) -> str:
    for ex in (cap.dhcp, cap.inform):
        if ex is not None and ex.ack is not None:
            return ex.ack.src
    return "0.0.0.0"


def _addresses(cap: Analysis, *packets: bootp.Bootp) -> list[str]:
    out: list[str] = []
    for p in packets:
        out += [p.yiaddr, p.siaddr]
        for code, _ in p.options:
            if code in bootp.ADDRESS_OPTIONS and code != bootp.OPT_BROADCAST:
                out += p.addresses(code)
        t66 = p.text(bootp.OPT_TFTP_NAME) or ""
        out += [w for w in t66.replace(",", " ").split() if _QUAD.match(w)]
    out += [x.server for x in cap.transfers]
    out += cap.dns_servers + list(cap.dns_names.values())
    for ex in (cap.dhcp, cap.inform):
        if ex is not None and ex.ack is not None:
            out.append(ex.ack.src)
    return [a for a in out if _valid(a)]


def _valid(a: str) -> bool:
    try:
        ipaddress.IPv4Address(a)
        return True
    except ValueError:
        return False


def _map_packet(p: bootp.Bootp, amap: AddressMap, bcast: str | None) -> bootp.Bootp:
    q = p.copy()
    q.yiaddr, q.siaddr = amap.map(p.yiaddr), amap.map(p.siaddr)
    q.ciaddr = q.giaddr = "0.0.0.0"
    q.hops = 0
    opts = []
    for code, val in p.options:
        if code == bootp.OPT_BROADCAST and bcast is not None:
            val = bootp.ip_bytes(bcast)       # the mapped LAN's broadcast address
        elif code in bootp.ADDRESS_OPTIONS and len(val) % 4 == 0:
            val = b"".join(bootp.ip_bytes(amap.map(bootp.ip_str(val[i:i + 4])))
                           for i in range(0, len(val), 4))
        elif code == bootp.OPT_TFTP_NAME:
            words = val.rstrip(b"\0").decode("latin-1").replace(",", " ").split()
            if words and all(_QUAD.match(w) and _valid(w) for w in words):
                val = ",".join(amap.map(w) for w in words).encode()
        opts.append((code, val))
    q.options = opts
    return q


# -- TFTP ---------------------------------------------------------------------------------
def _tftp_plans(cap: Analysis, amap: AddressMap, timing: str, notes: list[str]) -> list[TftpPlan]:
    plans: dict[str, TftpPlan] = {}
    by_name: dict[tuple[str, str], list[Transfer]] = {}
    for x in cap.transfers:
        by_name.setdefault((x.server, x.file), []).append(x)
    for (server, name), xs in by_name.items():
        tp = plans.get(server)
        if tp is None:
            tp = plans[server] = TftpPlan(amap.map(server), server)
        first = xs[0]
        done = next((x for x in xs if x.complete), None)
        err = next((x for x in xs if x.error and x.error["by"] == "server"), None)
        cut = next((x for x in xs if x.answer is not None), None)
        if done is not None:
            tp.files[name] = done.content  # type: ignore[assignment]
            model = first if first.answer is not None else done
        elif err is not None and not err.blocks:
            tp.errors[name] = (err.error["code"], err.error["msg"])  # type: ignore[index]
            model = err
        elif cut is not None:
            # data, then silence or (the first such transfer) an ERROR: both as captured
            if cut.blocks == {} and err is not None:
                cut = err
            tp.partial[name] = (_prefix(cut), cut.tsize)
            if cut.error and cut.error["by"] == "server":
                tp.partial_errors[name] = (cut.error["code"], cut.error["msg"])
            model = cut
        else:
            tp.silent.add(name)
            continue
        if timing == "captured":
            tp.delays_s[name] = (model.first_answer_ms or 0) / 1000
            if model.silent_ms:
                tp.silent_s[name] = model.silent_ms / 1000
    out = [p for p in plans.values() if p.files or p.errors or p.partial]
    for p in plans.values():
        if p not in out:
            notes.append(f"TFTP server {p.captured_address} never answered in the capture: "
                         f"nothing listens at {p.address} in the replay")
    return out


def _prefix(x: Transfer) -> bytes:
    """The bytes a cut-off transfer delivered in order, up to its first missing block."""
    out = bytearray()
    n = 1
    while n in x.blocks and n not in x.cut_blocks:
        out += x.blocks[n]
        n += 1
    return bytes(out)


def _server_addresses(amap: AddressMap, dp: DhcpPlan, ack: bootp.Bootp,
                      tftp: list[TftpPlan]) -> tuple[list[str], list[str]]:
    lan_net = ipaddress.ip_network(f"{ack.yiaddr}/{amap.prefixlen}", strict=False)
    lan: list[str] = []
    host: list[str] = []

    def put(a: str) -> None:
        if a in ("0.0.0.0", ack.yiaddr) or a in lan or a in host:
            return
        (lan if ipaddress.ip_address(a) in lan_net else host).append(a)

    put(dp.server)
    for r in ack.addresses(bootp.OPT_ROUTER)[:1]:
        put(r)
    for t in tftp:
        put(t.address)
    if not lan:
        lan.append(str(next(h for h in lan_net.hosts() if str(h) != ack.yiaddr)))
    return lan, host


def _hosts(ack: bootp.Bootp, offer: bootp.Bootp, tftp: list[TftpPlan],
           notes: list[str]) -> dict[str, str]:
    src = ack if (ack.option(150) or ack.option(66)) else offer
    t66 = src.text(bootp.OPT_TFTP_NAME) or ""
    names = [w for w in t66.replace(",", " ").split() if not _QUAD.match(w)]
    if not names:
        return {}
    if not tftp:
        notes.append(f"option 66 names {names} but no TFTP server answered in the capture")
        return {}
    notes.append(f"option 66 names {', '.join(names)}: the phone resolves it to {tftp[0].address}")
    return {n: tftp[0].address for n in names}


def expected_lease(ack: bootp.Bootp, offer: bootp.Bootp, hosts: dict[str, str]) -> dict[str, Any]:
    """What the board's `dhcp_lease` event should say for these replies (the firmware's
    rule: 150 > 66 > siaddr, the OFFER's when the ACK has neither 150 nor 66)."""
    src = ack if (ack.option(150) is not None or ack.option(66) is not None) else offer
    servers: list[str] = []

    def add(a: str | None) -> None:
        if a and a != "0.0.0.0" and a not in servers:
            servers.append(a)

    for a in src.addresses(bootp.OPT_TFTP_LIST):
        add(a)
    for w in (src.text(bootp.OPT_TFTP_NAME) or "").replace(",", " ").split():
        add(w if _QUAD.match(w) else hosts.get(w))
    add(src.siaddr)
    mask = ack.addresses(bootp.OPT_MASK)
    routers = ack.addresses(bootp.OPT_ROUTER)
    return {"ip": ack.yiaddr, "mask": mask[0] if mask else None,
            "router": routers[0] if routers else None, "dns": ack.addresses(bootp.OPT_DNS),
            "lease_s": ack.u32(bootp.OPT_LEASE), "tftp_servers": servers}
