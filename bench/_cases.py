"""The fault matrix's procedures (bench/fault_matrix.py): each drives one Rig through one
fault and returns (passed, observed text, figures). A wait that times out raises RigError,
which the matrix reports as a stuck phone.

Where a phase lasts milliseconds on a host CPU (registration, the Register of a re-home),
the call manager is hung (host_tools.lab: TCP up, nothing answered) just before it, so the
WAN cut lands while the phone is waiting in that phase; the hang is lifted right after the
cut."""
from __future__ import annotations

import hashlib
import time
from typing import Any, Callable

from bench._rig import Rig, sleep_until
from host_tools.lab.tftp_server import Faults
from host_tools.scenario import faults as scfaults

Result = tuple[bool, str, dict[str, Any]]


def _s(a: float, b: float) -> str:
    return f"{b - a:.1f} s"


def _back_home(rig: Rig) -> tuple[float, float]:
    """Restore the WAN, wait until re-homed and the standby link is up again."""
    t_back = rig.restore()
    rh = rig.wait("rehomed", t_back, 90)
    rig.settled(rh.host, 60)
    return t_back, rh.host


def _first(rig: Rig, since: float, spec: str) -> Any:
    got = rig.since(since, spec)
    return got[0].event if got else None


# -- WAN fault kind x phase ------------------------------------------------------------------

def wan_provisioning(rig: Rig, kind: str) -> Result:
    """Phone restarts with TFTP slowed down; the cut lands after the first file (CTL)."""
    rig.lab.tftp.faults = Faults(delay_s=0.15)
    boot = rig.wait("boot", rig.reboot(), 30)
    rig.wait("tftp_done", boot.host, 30)
    t_cut = rig.cut(kind)
    rig.lab.tftp.faults = Faults()
    reg = rig.wait("registered", rig.cut_began, 90)
    prov = _first(rig, boot.host, "provisioned")
    offline = bool(prov and prov.get("offline"))
    t_back, t_home = _back_home(rig)
    want_offline = kind != "cm_reset"         # cm_reset leaves TFTP reachable
    ok = reg.event.get("link") == "srst" and offline == want_offline
    return ok, (f"provisioned {'offline (stored config)' if offline else 'online'}, "
                f"SRST {_s(t_cut, reg.host)} after the cut, re-homed {_s(t_back, t_home)} "
                f"after restore"), {"offline": offline, "link": reg.event.get("link")}


def wan_registration(rig: Rig, kind: str) -> Result:
    rig.lab.hang("callmanager", True)
    try:
        start = rig.wait("agent_start", rig.reboot(), 30)
        time.sleep(0.3)                       # the first connect is waiting for its answer
        t_cut = rig.cut(kind)
    finally:
        rig.lab.hang("callmanager", False)
    reg = rig.wait("registered", rig.cut_began, 60)
    t_back, t_home = _back_home(rig)
    link = reg.event.get("link")
    return link == "srst", (f"registered with {link} {_s(t_cut, reg.host)} after the cut "
                            f"(agent started {_s(start.host, t_cut)} before it), re-homed "
                            f"{_s(t_back, t_home)} after restore"), {"link": link}


def wan_registered(rig: Rig, kind: str) -> Result:
    time.sleep(1.0)
    t_cut = rig.cut(kind)
    reg = rig.wait("registered:srst", rig.cut_began, 30)
    t_back, t_home = _back_home(rig)
    over = bool(reg.event.get("over_standby"))
    # a limited board has no standby link: a fresh, pinned TLS session at failover
    return over != rig.spec.limited, (f"SRST over standby={over} {_s(t_cut, reg.host)} after the cut, re-homed "
                  f"{_s(t_back, t_home)} after restore"), \
        {"failover_ms": round((reg.host - t_cut) * 1000)}


def wan_fallback(rig: Rig, kind: str) -> Result:
    """Registered with SRST, WAN back, call manager reachable: cut again during the
    connectionMonitorDuration wait."""
    t_cut = rig.cut(kind)
    rig.wait("registered:srst", rig.cut_began, 30)
    time.sleep(0.5)
    t_back = rig.restore()
    rig.wait("primary_reachable", rig.restore_began, 30)
    time.sleep(1.0)
    t_cut2 = rig.cut(kind)
    unst = rig.wait("primary_unstable", rig.cut_began, 20)
    time.sleep(1.0)
    t_back2, t_home = _back_home(rig)
    early = [s for s in rig.since(rig.cut_began) if s.host < t_back2 and s.event.ev == "state"
             and s.event.get("state") in ("PRIMARY", "REHOME")]
    return not early, (f"stayed with SRST (primary_unstable {_s(t_cut2, unst.host)} after the "
                       f"second cut{', but left it' if early else ''}), re-homed "
                       f"{_s(t_back2, t_home)} after restore"), {"left_srst_early": bool(early)}


def wan_rehome(rig: Rig, kind: str, monitor: int) -> Result:
    """The cut lands while the re-home Register is in flight."""
    t_cut = rig.cut(kind)
    rig.wait("registered:srst", rig.cut_began, 30)
    time.sleep(0.5)
    t_back = rig.restore()
    reach = rig.wait("primary_reachable", rig.restore_began, 30)
    sleep_until(reach.host + monitor - 0.6)
    rig.lab.hang("callmanager", True)
    try:
        rh = rig.wait_state("REHOME", reach.host, 10)
        t_cut2 = rig.cut(kind)
    finally:
        rig.lab.hang("callmanager", False)
    fb = rig.wait_state("FALLBACK", rh.host, 20)
    homed = [s for s in rig.since(rh.host, "rehomed") if s.host < fb.host]
    time.sleep(1.0)
    t_back2, t_home = _back_home(rig)
    return not homed, (f"re-home aborted ({fb.event.get('reason') or 'FALLBACK'}) "
                       f"{_s(t_cut2, fb.host)} after the cut, stayed with SRST, re-homed "
                       f"{_s(t_back2, t_home)} after restore"), {}


# -- servers ---------------------------------------------------------------------------------

def srst_down(rig: Rig) -> Result:
    time.sleep(1.0)
    t = time.monotonic()
    rig.lab.kill("srst")
    down = rig.wait_any(["link_down:srst", "standby_failed"], t, 30)
    time.sleep(4.0)
    t_up = time.monotonic()
    rig.lab.restart("srst")
    sb = rig.wait("standby_up", t_up, 30)
    lost = rig.since(t, "primary_lost")
    return not lost, (f"{down.event.ev} {_s(t, down.host)} after the kill, primary kept, "
                      f"standby back {_s(t_up, sb.host)} after the restart"), {}


def srst_down_limited(rig: Rig) -> Result:
    """A limited board holds no session with the router while on the call manager: its
    loss changes nothing, and the router back changes nothing either."""
    time.sleep(1.0)
    t = time.monotonic()
    rig.lab.kill("srst")
    time.sleep(5.0)
    t_up = time.monotonic()
    rig.lab.restart("srst")
    time.sleep(2.0)
    moved = [s.event.ev for s in rig.since(t) if s.event.ev in
             ("primary_lost", "link_down", "register_failed", "standby_failed")
             or (s.event.ev == "state" and s.event.get("state") != "PRIMARY")]
    return not moved, (f"router down {t_up - t:.0f} s: "
                       f"{', '.join(moved) if moved else 'nothing changed'}, primary kept"), {}


def srst_down_wan_cut(rig: Rig) -> Result:
    t = time.monotonic()
    rig.lab.kill("srst")
    if not rig.spec.limited:                # a limited board has no standby link to lose
        rig.wait_any(["link_down:srst", "standby_failed"], t, 30)
    time.sleep(1.0)
    t_cut = rig.cut("blackhole")
    tr = rig.wait_state("TRYING", t_cut, 40)
    time.sleep(2.0)
    t_back = rig.restore()
    reg = rig.wait("registered:primary", t_back, 60)
    t_up = time.monotonic()
    rig.lab.restart("srst")
    if not rig.spec.limited:
        rig.wait("standby_up", t_up, 30)
    return True, (f"no service (TRYING {_s(t_cut, tr.host)} after the cut), call manager "
                  f"again {_s(t_back, reg.host)} after restore, standby back with the "
                  f"router"), {}


def tftp_down_boot(rig: Rig) -> Result:
    rig.lab.kill("tftp")
    boot = rig.wait("boot", rig.reboot(), 30)
    reg = rig.wait("registered", boot.host, 90)
    rig.settled(reg.host, 30)
    rig.lab.restart("tftp")
    prov = _first(rig, boot.host, "provisioned")
    offline = bool(prov and prov.get("offline"))
    link = reg.event.get("link")
    return offline and link == "primary", (
        f"provisioned {'offline (stored)' if offline else 'online'}, registered with {link} "
        f"{(reg.event.t - boot.event.t) / 1000:.1f} s after boot"), {"offline": offline}


def tftp_down_first_boot(rig: Rig) -> Result:
    rig.lab.kill("tftp")
    rig.boot()
    fail = rig.wait("provision_failed", rig.booted, 60)
    time.sleep(2.0)
    t_up = time.monotonic()
    rig.lab.restart("tftp")
    reg = rig.wait("registered", t_up, 90)
    rig.settled(reg.host, 30)
    retries = len(rig.since(rig.booted, "provision_retry"))
    link = reg.event.get("link")
    return link == "primary", (f"provision_failed ({fail.event.get('reason')}), {retries} "
                               f"retries, registered with {link} {_s(t_up, reg.host)} after "
                               f"TFTP came back"), {"retries": retries}


def tftp_lossy(rig: Rig, loss: float = 0.2) -> Result:
    scfaults.tftp_fault(rig.lab, {"loss": loss, "seed": 5})
    boot = rig.wait("boot", rig.reboot(), 30)
    reg = rig.wait("registered", boot.host, 120)
    rig.lab.tftp.faults = Faults()
    rig.settled(reg.host, 30)
    prov = _first(rig, boot.host, "provisioned")
    offline = bool(prov and prov.get("offline"))
    done = [s.event for s in rig.since(boot.host, "tftp_done") if s.host <= reg.host]
    rt = sum(int(e.get("retransmits") or 0) for e in done)
    link = reg.event.get("link")
    return (not offline and link == "primary"), (
        f"provisioned {'offline' if offline else 'online'}: {len(done)} files, {rt} "
        f"retransmissions; registered with {link} {_s(boot.host, reg.host)} after boot"), \
        {"retransmits": rt, "offline": offline}


def dhcp_slow(rig: Rig, delay_s: int = 3) -> Result:
    rig.lab.dhcp.reply_delay_s = delay_s
    rig.lab.restart("dhcp")
    boot = rig.wait("boot", rig.reboot(), 30)
    lease = rig.wait("dhcp_lease", boot.host, 60)
    reg = rig.wait("registered", lease.host, 60)
    rig.settled(reg.host, 30)
    ms = lease.event.get("ms") or 0
    link = reg.event.get("link")
    return (ms >= delay_s * 1000 - 500 and link == "primary"), (
        f"lease after {ms / 1000:.1f} s, registered with {link} "
        f"{(reg.event.t - boot.event.t) / 1000:.1f} s after boot"), {"lease_ms": ms}


# -- certificate changes ---------------------------------------------------------------------

_CLEAR = ("cert", "verif", "x509", "trust", "handshake")


def _clear(reason: str | None) -> bool:
    return bool(reason) and any(w in reason.lower() for w in _CLEAR)


def _answered(ev: str) -> Callable[[Any], bool]:
    """An `ev` (standby_failed, probe_failed) from a server that answered: while a server
    restarts, a try can be refused at the TCP level, which says nothing about its certificate."""
    return lambda e: e.ev == ev and "ECONNREFUSED" not in str(e.get("reason"))


def _new_srst_cert(rig: Rig) -> Any:
    """The SRST router re-enrolled with its own CA (same CN, same issuer, another key and
    serial: not the certificate the config pins) and restarted with it; for a SIP phone the
    branch's Kamailio (host_tools.scenario.faults.replace_cert). Returns the new identity."""
    return scfaults.replace_cert(rig.lab, "srst", rig.workdir)


def srst_cert_replaced(rig: Rig) -> Result:
    t = time.monotonic()
    _new_srst_cert(rig)
    fail = rig.wait_for(_answered("standby_failed"), t, 30, "standby_failed from the router")
    time.sleep(3.0)
    up = rig.since(t, "standby_up")
    reason = fail.event.get("reason")
    ok = _clear(reason) and not up and rig.state() == "PRIMARY"
    return ok, (f"standby refused: standby_failed reason={reason!r}"
                f"{'' if _clear(reason) else ' (does not say certificate)'}; "
                f"{'standby came up anyway; ' if up else ''}primary kept"), {"reason": reason}


def srst_cert_at_failover(rig: Rig) -> Result:
    """Limited board (no standby link): the replaced certificate shows only at failover.
    The router is refused with a reason that names the certificate, never registered."""
    _new_srst_cert(rig)
    time.sleep(1.0)
    t_cut = rig.cut("blackhole")
    fail = rig.wait_for(lambda e: _answered("register_failed")(e) and e.get("link") == "srst",
                        t_cut, 60, "register_failed from the router")
    time.sleep(3.0)
    on_srst = rig.since(t_cut, "registered:srst")
    t_back = rig.restore()
    reg = rig.wait("registered:primary", t_back, 90)
    reason = fail.event.get("reason")
    ok = _clear(reason) and not on_srst
    return ok, (f"SRST refused at failover {_s(t_cut, fail.host)} after the cut: "
                f"register_failed reason={reason!r}"
                f"{'' if _clear(reason) else ' (does not say certificate)'}; "
                f"{'REGISTERED with it anyway; ' if on_srst else ''}call manager "
                f"{_s(t_back, reg.host)} after restore"), {"reason": reason}


def srst_cert_reissued(rig: Rig) -> Result:
    t = time.monotonic()
    new = _new_srst_cert(rig)
    if not rig.spec.limited:                # no standby link to refuse on a limited board
        rig.wait("standby_failed", t, 30)
    rig.lab.write_configs()        # the call manager fetches the new one over the WAN
    mac = rig.lab.macs[0]
    t_reset = time.monotonic()
    if not rig.lab.topology.hq.run(rig.lab.callmanager.reset_phone(f"SEP{mac}", 2), 10):
        return False, "the call manager had no session to send Reset on", {}
    boot = rig.wait("boot", t_reset, 30)
    pin = rig.wait("srst_pinned", boot.host, 60)
    sb = rig.settled(boot.host, 60)
    want = hashlib.sha256(new.cert_der).hexdigest()
    ok = pin.event.get("sha256") == want
    return ok, (f"Reset -> re-provisioned, new certificate pinned "
                f"({'matches' if ok else 'does NOT match'} the router's), "
                f"{'registered' if rig.spec.limited else 'standby up'} "
                f"{_s(t_reset, sb.host)} after the Reset"), {}


def cm_cert_replaced(rig: Rig) -> Result:
    # self-signed with the call manager's CN, in no trust list; for a SIP phone HQ's Kamailio
    t = time.monotonic()
    scfaults.replace_cert(rig.lab, "callmanager", rig.workdir)
    reg = rig.wait("registered:srst", t, 30)
    # a limited board watches the primary with TCP only: its TLS try is the re-home
    ev = "register_failed" if rig.spec.limited else "probe_failed"
    pf = rig.wait_for(_answered(ev), reg.host, 30, f"{ev} from the call manager")
    # FALLBACK comes with the SRST registration, before or after the first refusal
    rig.wait_state("FALLBACK", reg.host, 30)
    time.sleep(4.0)
    back = rig.since(t, "registered:primary")
    reason = pf.event.get("reason")
    ok = not back and rig.state() == "FALLBACK"
    what = "the re-home's TLS refused" if rig.spec.limited else "probes refused"
    return ok, (f"failed over to SRST, {what} (reason={reason!r}"
                f"{'' if _clear(reason) else ', does not say certificate'}), never "
                f"registered with the unknown call manager"), {"reason": reason}


def ctl_unknown_sast(rig: Rig) -> Result:
    scfaults.replace_file(rig.lab, "ctl", "unknown_sast")
    boot = rig.wait("boot", rig.reboot(), 30)
    rej = rig.wait("ctl_rejected", boot.host, 30)
    reg = rig.wait("registered:primary", boot.host, 60)
    rig.settled(reg.host, 30)
    return True, (f"ctl_rejected ({rej.event.get('reason')}), stored trust list kept, "
                  f"registered with the call manager"), {}


PROCEDURES: dict[str, Callable[..., Result]] = {
    "wan_provisioning": wan_provisioning, "wan_registration": wan_registration,
    "wan_registered": wan_registered, "wan_fallback": wan_fallback, "wan_rehome": wan_rehome,
    "srst_down": srst_down, "srst_down_limited": srst_down_limited,
    "srst_down_wan_cut": srst_down_wan_cut, "srst_cert_at_failover": srst_cert_at_failover,
    "tftp_down_boot": tftp_down_boot, "tftp_down_first_boot": tftp_down_first_boot,
    "tftp_lossy": tftp_lossy, "dhcp_slow": dhcp_slow, "srst_cert_replaced": srst_cert_replaced,
    "srst_cert_reissued": srst_cert_reissued, "cm_cert_replaced": cm_cert_replaced,
    "ctl_unknown_sast": ctl_unknown_sast,
}
