"""Fault-matrix procedures: the DHCP lease over time: renewal, rebinding, a server gone mid-lease.
Same contract as bench/_cases.py: each procedure drives one Rig and returns
(passed, observed text, figures); CASES are the matrix rows (fault_matrix.Case fields).

The lab's DHCP server is dnsmasq (the real one, not a simulator); its leases are made as
short as it allows (2 minutes: T1 60 s, T2 105 s) and the phone restarted to take one."""
from __future__ import annotations

import re
import time
from typing import Any, Callable

from bench._cases import Result
from bench._rig import Rig
from host_tools.lab.dnsmasq import lease_seconds


_EPS = 1e-6        # "after this event": since() and wait() take events at or after a time


def _short_lease(rig: Rig, lease: str) -> tuple[Any, Any]:
    """dnsmasq restarted with `lease`, the phone rebooted onto it; returns its dhcp_lease
    and the registration that followed."""
    rig.lab.dhcp.lease = str(lease_seconds(lease))
    rig.lab.restart("dhcp")
    boot = rig.wait("boot", rig.reboot(), 30)
    got = rig.wait("dhcp_lease", boot.host, 60)
    reg = rig.wait("registered:primary", got.host, 60)
    rig.settled(reg.host, 30)
    return got, reg


def _acks(rig: Rig, ip: str | None) -> int:
    """DHCPACKs for `ip` in dnsmasq's log (the log of this lab, every boot)."""
    return sum(1 for line in rig.lab.dhcp.log
               if re.search(r"DHCPACK\(\S+\) " + re.escape(ip or "?") + " ", line))


def _phone_addresses(rig: Rig) -> list[str]:
    topo = rig.lab.topology
    return [a for a in topo.phone_ns[0].addresses(topo.PHONE_IF) if not a.startswith("0.")]


def dhcp_gone_mid_lease(rig: Rig, lease: str = "2m", away_s: float = 5.0) -> Result:
    """The server dies right after the phone got its lease: RENEWING from T1 (unicast,
    unanswered), REBINDING from T2 (broadcast, unanswered), at the end of the lease the
    address is dropped (dhcp_lost: off the interface, links down) and DISCOVER starts over;
    the server comes back `away_s` later and the phone has an address and registers again."""
    got, _ = _short_lease(rig, lease)
    ip = got.event.get("ip")
    t_kill = time.monotonic()
    rig.lab.kill("dhcp")
    renew = rig.wait("dhcp_renew:renewing", t_kill, 150)
    rebind = rig.wait("dhcp_renew:rebinding", renew.host, 150)
    lost = rig.wait("dhcp_lost", rebind.host, 60)
    time.sleep(1.0)                     # the address is off the interface
    left = _phone_addresses(rig)
    trying = [s for s in rig.since(lost.host) if s.event.ev == "state"
              and s.event.get("state") == "TRYING"]
    time.sleep(away_s)
    registered_meanwhile = rig.since(lost.host, "registered")
    t_back = time.monotonic()
    rig.lab.restart("dhcp")
    again = rig.wait("dhcp_lease", t_back, 90)
    reg = rig.wait("registered:primary", again.host, 90)
    rig.settled(reg.host, 30)
    restarted = bool(rig.since(lost.host, "boot"))
    t0 = got.event.t
    renew_s = (renew.event.t - t0) / 1000
    rebind_s = (rebind.event.t - t0) / 1000
    lost_s = (lost.event.t - t0) / 1000
    requests = sum(1 for line in rig.lab.dhcp.log
                   if re.search(r"DHCPREQUEST\(\S+\) " + re.escape(ip or "?") + " ", line))
    ok = (lost.event.get("reason") == "expired" and not left and not registered_meanwhile
          and bool(trying) and renew_s < rebind_s < lost_s)
    return ok, (f"lease {ip} ({got.event.get('lease_s')} s); server killed; renewing from "
                f"{renew_s:.0f} s, rebinding from {rebind_s:.0f} s, address dropped at "
                f"{lost_s:.0f} s ({'gone from the interface' if not left else f'STILL ON: {left}'}"
                f", links {'closed (TRYING)' if trying else 'NOT closed'}, "
                f"{len(registered_meanwhile)} registrations without it); server back: lease {again.event.get('ip')} "
                f"{(again.host - t_back):.1f} s later, registered with the call manager "
                f"{(reg.host - t_back):.1f} s after"
                f"{' (board restarted: new address)' if restarted else ''}"), \
        {"renew_s": renew_s, "rebind_s": rebind_s, "lost_s": lost_s,
         "recovered_s": round(reg.host - t_back, 1), "dnsmasq_requests": requests}


def dhcp_renewals(rig: Rig, lease: str = "2m", renewals: int = 2) -> Result:
    """The server stays: each lease is renewed at T1 with a unicast REQUEST that dnsmasq
    ACKs (its log), the address and the links stay, no second registration."""
    got, reg = _short_lease(rig, lease)
    ip = got.event.get("ip")
    acks0 = _acks(rig, ip)
    since = got.host
    done = []
    for _ in range(renewals):
        r = rig.wait("dhcp_renewed", since, 150)
        done.append(r)
        since = r.host + _EPS
    time.sleep(0.5)                     # dnsmasq's log line of the last ACK
    regs = rig.since(reg.host + _EPS, "registered")
    downs = rig.since(got.host, "link_down") + [
        s for s in rig.since(reg.host + _EPS) if s.event.ev == "state"]
    acks = _acks(rig, ip) - acks0
    # every REQUEST the phone says it sent (dhcp_renew), each ACKed once: a try the phone
    # had to repeat (a keeper step that met a full heap, a lost answer) is announced, paced
    # by its backoff and ACKed too; anything unannounced, or a storm, shows as a mismatch
    sent = [s.event for s in rig.since(got.host, "dhcp_renew") if s.host <= done[-1].host]
    stages = [r.event.get("stage") for r in done]
    ok = (all(s == "renewing" for s in stages) and not regs and not downs
          and acks == len(sent) and all(e.get("stage") == "renewing" for e in sent)
          and all(r.event.get("ip") == ip for r in done))
    at = ", ".join(f"{(r.event.t - got.event.t) / 1000:.0f} s" for r in done)
    return ok, (f"lease {ip} renewed at {at} into it ({', '.join(map(str, stages))}); "
                f"{len(sent)} unicast REQUESTs sent, dnsmasq ACKed {acks}; {len(regs)} new "
                f"registrations, {len(downs)} links down or state changes"), \
        {"renewals": len(done), "requests": len(sent),
         "heap_bytes": done[-1].event.get("heap_bytes")}


PROCEDURES: dict[str, Callable[..., Result]] = {
    "dhcp_gone_mid_lease": dhcp_gone_mid_lease, "dhcp_renewals": dhcp_renewals,
}
CASES: list[dict[str, Any]] = [
    {"fault": "DHCP short lease (2 min)", "phase": "registered",
     "expected": "renews at T1 (unicast REQUEST, dnsmasq ACKs), keeps the address and the "
                 "links, no new registration", "proc": "dhcp_renewals"},
    {"fault": "DHCP server gone mid-lease", "phase": "registered",
     "expected": "renews at T1, rebinds at T2, drops the address when the lease ends, "
                 "DISCOVERs again, registers once the server is back",
     "proc": "dhcp_gone_mid_lease"},
]
