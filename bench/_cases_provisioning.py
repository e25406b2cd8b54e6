"""Fault-matrix procedures: TFTP servers that drip or do not answer: provisioning bounded in time.
Same contract as bench/_cases.py: each procedure drives one Rig and returns
(passed, observed text, figures); CASES are the matrix rows (fault_matrix.Case fields).

Each case starts from a phone that has booted once (its trust list and config are stored), so
a bounded pass must end with the stored state and a registration with the call manager."""
from __future__ import annotations

import json
from typing import Any, Callable

from bench._cases import Result, _first
from bench._rig import Rig
from host_tools.lab.tftp_server import Faults

# Option 150 holds at most 63 addresses (255 bytes). The dead ones are HQ addresses nothing
# owns: the WAN router forwards them to HQ, which drops them without a word (no ICMP).
DEAD = [f"203.0.113.{k}" for k in range(100, 162)]


def _settings(rig: Rig, **kw: Any) -> None:
    """settings.json overrides for the next boot (read by the board at reset)."""
    path = rig.folder / "settings.json"
    cur = json.loads(path.read_text()) if path.exists() else {}
    cur.update(kw)
    path.write_text(json.dumps(cur, indent=2) + "\n")


def _boot_to_primary(rig: Rig, timeout: float = 120) -> tuple[Any, Any, Any]:
    """Reboot; returns (boot, provisioned, registered) stamps."""
    boot = rig.wait("boot", rig.reboot(), 30)
    prov = rig.wait("provisioned", boot.host, timeout)
    reg = rig.wait("registered", prov.host, 60)
    rig.settled(reg.host, 30)
    return boot, prov, reg


def tftp_drip(rig: Rig, blksize: int = 8, gap_s: float = 0.9) -> Result:
    """The TFTP server answers every OACK with a tiny blksize and drips one block a gap."""
    rig.lab.tftp.faults = Faults(drip=(blksize, gap_s))
    boot, prov, reg = _boot_to_primary(rig)
    rig.lab.tftp.faults = Faults()
    failed = [s.event for s in rig.since(boot.host, "tftp_failed") if s.host <= prov.host]
    reason = str(failed[0].get("reason")) if failed else ""
    refused = f"blksize {blksize} refused" in reason
    offline = bool(prov.event.get("offline"))
    secs = (prov.event.t - boot.event.t) / 1000
    link = reg.event.get("link")
    ok = refused and offline and link == "primary"
    return ok, (f"{'OACK refused' if refused else 'OACK NOT refused'} ({reason or 'no tftp_failed'}), "
                f"provisioned {'from the stored state' if offline else 'online'} {secs:.1f} s after "
                f"boot, registered with {link}"), {"provision_s": round(secs, 1), "offline": offline}


def tftp_pass_deadline(rig: Rig, deadline_ms: int = 15000, gap_s: float = 0.9) -> Result:
    """Blocks of 512 bytes (not refused) dripped one every gap_s, no per-file deadline
    (tftp_min_rate 0): the pass deadline ends the download, the stored state is used."""
    _settings(rig, provision_deadline_ms=deadline_ms, tftp_min_rate=0)
    rig.lab.tftp.faults = Faults(drip=(512, gap_s))
    boot, prov, reg = _boot_to_primary(rig)
    rig.lab.tftp.faults = Faults()
    late = _first(rig, boot.host, "provision_deadline")
    offline = bool(prov.event.get("offline"))
    secs = (prov.event.t - boot.event.t) / 1000
    link = reg.event.get("link")
    ok = late is not None and offline and link == "primary"
    return ok, (f"{'provision_deadline' if late else 'NO provision_deadline'} "
                f"({deadline_ms / 1000:.0f} s), provisioned "
                f"{'from the stored state' if offline else 'online'} {secs:.1f} s after boot, "
                f"registered with {link}"), {"provision_s": round(secs, 1), "offline": offline}


def option150_dead(rig: Rig, live_at: int = 63) -> Result:
    """DHCP option 150 lists 63 servers; the lab's TFTP server is number `live_at`, the others
    are dead (silent). Only the first tftp_max_servers (4) are asked."""
    dhcp = rig.lab.dhcp
    if dhcp is None:
        return False, "no DHCP in this lab (loopback mode): option 150 needs namespaces", {}
    live = rig.lab.endpoints["tftp"][0]
    servers = DEAD[:live_at - 1] + [live] + DEAD[live_at - 1:]
    dhcp.option150 = servers[:63]
    rig.lab.restart("dhcp")
    boot, prov, reg = _boot_to_primary(rig)
    lease = _first(rig, boot.host, "dhcp_lease")
    offered = len(lease.get("tftp_servers") or []) if lease else 0
    bounded = _first(rig, boot.host, "tftp_servers_bounded")
    tried = list(bounded.get("tried") or []) if bounded else []
    asked = sorted({str(s.event.get("server")) for s in rig.since(boot.host, "tftp_start")
                    if s.host <= prov.host})
    offline = bool(prov.event.get("offline"))
    lease_t = lease.t if lease else boot.event.t
    secs = (prov.event.t - lease_t) / 1000
    link = reg.event.get("link")
    want_offline = live_at > 4
    ok = (offered == 63 and len(tried) == 4 and set(asked) <= set(tried)
          and offline == want_offline and link == "primary")
    return ok, (f"{offered} servers offered, {len(asked)} asked (first {len(tried)} in DHCP "
                f"order), provisioned {'from the stored state' if offline else 'online'} "
                f"{secs:.1f} s after the lease, registered with {link}"), \
        {"offered": offered, "asked": len(asked), "provision_s": round(secs, 1),
         "offline": offline}


PROCEDURES: dict[str, Callable[..., Result]] = {
    "tftp_drip": tftp_drip, "tftp_pass_deadline": tftp_pass_deadline,
    "option150_dead": option150_dead,
}
CASES: list[dict[str, Any]] = [
    {"fault": "TFTP drips tiny blocks", "phase": "boot",
     "expected": "OACK blksize 8 refused at once (tftp_failed), provisions from its stored "
                 "state, registers with the call manager", "proc": "tftp_drip"},
    {"fault": "TFTP drips 512-byte blocks, no per-file deadline", "phase": "boot",
     "expected": "the pass deadline (15 s) ends the download (provision_deadline), stored "
                 "state, registers with the call manager", "proc": "tftp_pass_deadline"},
    {"fault": "option 150 with many dead servers", "phase": "boot",
     "expected": "63 servers offered, the live one last: only the first 4 asked, stored state "
                 "within 15 s of the lease (short timers), registers with the call manager",
     "proc": "option150_dead"},
    {"fault": "option 150 with many dead servers, live 4th", "phase": "boot",
     "expected": "3 dead servers asked briefly, provisions online from the 4th, registers "
                 "with the call manager", "proc": "option150_dead", "args": {"live_at": 4}},
]
