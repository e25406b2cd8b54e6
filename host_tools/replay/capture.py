"""One capture analysed for a replay: which phone, its DHCP exchange, its TFTP transfers and
the files they delivered, with timing.

    cap = analyse("phone.pcap")                 # mac=None: the first client that got an ACK
    cap.mac, cap.phone_ip, cap.dhcp, cap.inform, cap.files, cap.transfers, cap.to_dict()
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from host_tools.replay import dhcp as dhcplib
from host_tools.replay import dns as dnslib
from host_tools.replay import tftp as tftplib
from host_tools.replay.pcap import Datagram, ReadStats, udp_datagrams


class CaptureError(ValueError):
    pass


@dataclass
class File:
    """A file the capture delivered completely (the first complete transfer of its name)."""
    name: str
    content: bytes
    server: str
    transfer: tftplib.Transfer
    versions: int = 1            # complete transfers of this name with different content

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256,
                "server": self.server, "versions": self.versions}


@dataclass
class Analysis:
    path: Path
    stats: ReadStats
    exchanges: list[dhcplib.Exchange]
    mac: str | None
    dhcp: dhcplib.Exchange | None            # the full exchange (the boot)
    inform: dhcplib.Exchange | None
    phone_ip: str | None
    transfers: list[tftplib.Transfer]        # the phone's, in capture order
    files: dict[str, File] = field(default_factory=dict)
    other_clients: list[str] = field(default_factory=list)
    t0: float | None = None                  # the phone's first DHCP/TFTP packet
    dns_servers: list[str] = field(default_factory=list)   # the phone asked them (port 53)
    dns_names: dict[str, str] = field(default_factory=dict)  # name -> IPv4 they answered

    @property
    def tftp_servers(self) -> list[str]:
        out: list[str] = []
        for x in self.transfers:
            if x.answer is not None and x.server not in out:
                out.append(x.server)
        return out

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Read requests in order: file, server, how it went."""
        return [{"file": x.file, "server": x.server, "status": x.status,
                 "at_ms": self.rel_ms(x.rrq_ts[0])} for x in self.transfers]

    @property
    def incomplete(self) -> list[tftplib.Transfer]:
        """Transfers that delivered some blocks but not the whole file."""
        return [x for x in self.transfers if x.blocks and not x.complete]

    def rel_ms(self, ts: float | None) -> float | None:
        if ts is None or self.t0 is None:
            return None
        return round((ts - self.t0) * 1000, 3)

    def timing(self) -> dict[str, Any]:
        t: dict[str, Any] = {}
        if self.dhcp is not None:
            od, oi = self.dhcp.offer_delay()
            ad, ai = self.dhcp.ack_delay()
            ack = self.dhcp.ack
            t["dhcp"] = {"offer_delay_ms": od, "unanswered_discovers": oi,
                         "ack_delay_ms": ad, "unanswered_requests": ai,
                         "lease_at_ms": self.rel_ms(ack.ts) if ack else None}
        if self.inform is not None:
            ad, ai = self.inform.ack_delay()
            t["inform"] = {"ack_delay_ms": ad, "unanswered_informs": ai}
        t["tftp"] = [{"file": x.file, "at_ms": self.rel_ms(x.rrq_ts[0]),
                      "first_answer_ms": x.first_answer_ms, "unanswered_rrqs": x.retransmitted_rrqs,
                      "duration_ms": x.duration_ms} for x in self.transfers]
        ends = [x.last_ts for x in self.transfers if x.complete]
        t["last_file_at_ms"] = self.rel_ms(max(ends)) if ends else None
        return t

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "mac": self.mac, "phone_ip": self.phone_ip,
            "frames": self.stats.frames, "udp": self.stats.udp, "warnings": self.stats.warnings,
            "other_clients": self.other_clients,
            "dns": {"servers": self.dns_servers, "names": self.dns_names},
            "dhcp": {"offer": _desc(self.dhcp.offer) if self.dhcp else None,
                     "ack": _desc(self.dhcp.ack) if self.dhcp else None,
                     "inform_ack": _desc(self.inform.ack) if self.inform else None,
                     "exchanges": len(self.exchanges)},
            "files": [f.summary() for f in self.files.values()],
            "requests": self.requests,
            "transfers": [x.summary() for x in self.transfers],
            "timing": self.timing(),
        }


def _desc(seen: dhcplib.Seen | None) -> dict[str, Any] | None:
    return dhcplib.describe(seen.packet) if seen is not None else None


def analyse(path: str | Path, mac: str | None = None,
            tftp_ports: Iterable[int] = (tftplib.TFTP_PORT,)) -> Analysis:
    """Read a capture and pick the phone: `mac` (12 hex digits, any separators), or the first
    DHCP client that got an ACK, or else the client of the first TFTP read request. Without
    DHCP the phone's address is the one whose frames carry its MAC or, on a link type that
    carries none (BSD loopback, raw IP), the client that asks for its per-device files
    (SEP<MAC>.cnf.xml, CTLSEP<MAC>.tlv, ...) or, without a `mac`, of the first read request."""
    path = Path(path)
    stats = ReadStats()
    dgs: list[Datagram] = list(udp_datagrams(path, stats))
    exs = dhcplib.exchanges(dgs)
    xfers = tftplib.transfers(dgs, tftp_ports)
    want = _norm_mac(mac) if mac else None
    acked = dhcplib.clients(exs)
    chosen = want or (acked[0] if acked else None)
    full, inform = dhcplib.pick(exs, chosen) if chosen else (None, None)
    phone_ip = None
    if full is not None and full.ack is not None:
        phone_ip = full.ack.packet.yiaddr
    elif inform is not None and inform.requests:
        phone_ip = inform.requests[0].packet.ciaddr
    if phone_ip is None and xfers:
        phone_ip = _client_of(dgs, xfers, want)
        if phone_ip is None:
            raise CaptureError(f"{path}: no TFTP read request from {want} (the capture's read "
                               f"requests come from {', '.join(_clients(xfers))}; "
                               f"other MACs: {', '.join(_macs(dgs, xfers)) or 'none on this link type'})")
        chosen = chosen or _mac_of(dgs, phone_ip) or _mac_in_names(xfers, phone_ip)
        if chosen is None:
            raise CaptureError(f"{path}: the capture's link type carries no MAC address and the "
                               f"read requests of {phone_ip} name none (SEP<MAC>...): give --mac")
    mine = [x for x in xfers if phone_ip is None or x.client == phone_ip]
    stamps = [x.rrq_ts[0] for x in mine]
    for ex in (full, inform):
        if ex is not None:
            stamps.append(ex.first_ts)
    a = Analysis(path, stats, exs, chosen, full, inform, phone_ip, mine,
                 other_clients=[m for m in acked if m != chosen], t0=min(stamps) if stamps else None)
    if phone_ip is not None:
        a.dns_servers, a.dns_names = dnslib.seen(dgs, phone_ip)
    for x in mine:
        c = x.content
        if c is None:
            continue
        f = a.files.get(x.file)
        if f is None:
            a.files[x.file] = File(x.file, c, x.server, x)
        elif f.content != c:
            f.versions += 1
    return a


def _clients(xfers: list[tftplib.Transfer]) -> list[str]:
    return list(dict.fromkeys(x.client for x in xfers))


def _macs(dgs: list[Datagram], xfers: list[tftplib.Transfer]) -> list[str]:
    return [m for m in (_mac_of(dgs, c) for c in _clients(xfers)) if m]


def _client_of(dgs: list[Datagram], xfers: list[tftplib.Transfer], want: str | None) -> str | None:
    """The phone's address without DHCP: the first read request's client, or for `want` the
    client whose frames carry that MAC or, when the link type carries none, whose read
    requests name it (SEP<MAC>)."""
    if want is None:
        return xfers[0].client
    for c in _clients(xfers):
        if _mac_of(dgs, c) == want:
            return c
    for c in _clients(xfers):
        if _mac_of(dgs, c) is None and _mac_in_names(xfers, c) == want:
            return c
    # no MAC anywhere (the link type carries none, no per-device name): the one client
    anon = [c for c in _clients(xfers) if _mac_of(dgs, c) is None and _mac_in_names(xfers, c) is None]
    return anon[0] if len(anon) == 1 and len(_clients(xfers)) == 1 else None


_SEP = re.compile(r"SEP([0-9A-Fa-f]{12})")


def _mac_in_names(xfers: list[tftplib.Transfer], ip: str) -> str | None:
    """The MAC a client's read requests name (SEP<MAC>.cnf.xml, ITLSEP<MAC>.tlv, ...)."""
    for x in xfers:
        m = _SEP.search(x.file) if x.client == ip else None
        if m:
            return m.group(1).upper()
    return None


def _norm_mac(mac: str) -> str:
    h = "".join(ch for ch in mac if ch.isalnum()).upper()
    if h.startswith("SEP"):
        h = h[3:]
    if len(h) != 12 or any(ch not in "0123456789ABCDEF" for ch in h):
        raise CaptureError(f"bad MAC address {mac!r}: want 12 hex digits")
    return h


def _mac_of(dgs: list[Datagram], ip: str) -> str | None:
    for dg in dgs:
        if dg.src == ip and dg.src_mac:
            return dg.src_mac.replace(":", "").upper()
    return None
