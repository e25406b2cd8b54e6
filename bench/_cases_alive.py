"""Fault-matrix procedures: servers that misbehave after registration, and the backoff of failed TLS links.
Same contract as bench/_cases.py: each procedure drives one Rig and returns
(passed, observed text, figures); CASES are the matrix rows (fault_matrix.Case fields)."""
from __future__ import annotations

import time
from typing import Any, Callable

from bench._cases import Result, _new_srst_cert
from bench._rig import Rig

# the lab's short timers (host_tools.lab.lab): retry_min_ms / retry_max_ms of the agent
RETRY_MIN, RETRY_MAX = 500, 4000
WATCH_S = 24.0                       # how long the certificate case counts tries


def _quirk(rig: Rig, quirk: str | None) -> None:
    cm = rig.lab.callmanager
    rig.lab.topology.hq.call(cm.set_quirk, quirk)


def _quirk_hits(rig: Rig, since_t: int) -> int:
    return sum(1 for e in list(rig.lab.callmanager.events)
               if e["ev"] == "quirk" and e["t"] >= since_t)


def cm_quirk_after_ack(rig: Rig, quirk: str) -> Result:
    """The call manager takes each registration and drops it at once (quirk): the phone
    falls back to SRST and stays alive there (every re-home attempt meets the quirk), then
    re-homes once the call manager behaves."""
    cm = rig.lab.callmanager
    t0_cm = int(cm.now() * 1000)
    _quirk(rig, quirk)
    t = time.monotonic()
    rig.lab.topology.hq.run(cm.drop_connections(), 10)
    reg = rig.wait("registered:srst", t, 30)
    rh = rig.wait_state("REHOME", reg.host, 30)
    fb = rig.wait_state("FALLBACK", rh.host, 20)      # the re-home met the quirk
    time.sleep(2.0)
    hits = _quirk_hits(rig, t0_cm)
    crashed = rig.since(t, "agent_crashed") + rig.since(t, "agent_error")
    state = rig.state()
    t_ok = time.monotonic()
    _quirk(rig, None)
    home = rig.wait("rehomed", t_ok, 60)
    rig.settled(home.host, 60)
    ok = hits >= 1 and not crashed and state == "FALLBACK"
    return ok, (f"{hits} registration(s) dropped by the call manager; with SRST "
                f"{reg.host - t:.1f} s after the drop, back in FALLBACK "
                f"{fb.host - rh.host:.1f} s after the re-home met the quirk"
                f"{', agent errors: ' + str(len(crashed)) if crashed else ', agent alive'}; "
                f"re-homed {home.host - t_ok:.1f} s after the call manager behaved"), \
        {"dropped": hits, "agent_errors": len(crashed)}


def srst_cert_backoff(rig: Rig) -> Result:
    """The SRST router presents a certificate other than the pinned one: count the standby
    tries in a window; each must come at least the previous one's announced retry_ms later,
    and the announced delays must double from retry_min_ms to retry_max_ms."""
    t = time.monotonic()
    _new_srst_cert(rig)
    first = rig.wait_for(lambda e: e.ev == "standby_failed"
                         and "ECONNREFUSED" not in str(e.get("reason")), t, 30,
                         "standby_failed from the router")
    time.sleep(WATCH_S)
    fails = [s.event for s in rig.since(first.host, "standby_failed")]
    gaps_ok = all(b.t - a.t >= a.get("retry_ms", 0) for a, b in zip(fails, fails[1:]))
    want, announced_ok = fails[0].get("retry_ms") if fails else 0, True
    for e in fails:
        announced_ok = announced_ok and e.get("retry_ms") == want
        want = min(want * 2, RETRY_MAX)
    span_s = (fails[-1].t - fails[0].t) / 1000 if len(fails) > 1 else 0.0
    per_min = round((len(fails) - 1) * 60 / span_s, 1) if span_s else 0.0
    # what the announced delays allow at most, from the first try's delay on
    d = (fails[0].get("retry_ms") or RETRY_MIN) if fails else RETRY_MIN
    allowed, left = 0, span_s * 1000
    while left >= d:
        allowed, left, d = allowed + 1, left - d, min(d * 2, RETRY_MAX)
    up = rig.since(t, "standby_up")
    ok = (len(fails) >= 3 and gaps_ok and announced_ok and len(fails) - 1 <= allowed
          and not up and rig.state() == "PRIMARY")
    return ok, (f"{len(fails)} standby tries in {span_s:.1f} s ({per_min}/min; the announced "
                f"backoff allows {allowed + 1}), announced retry_ms "
                f"{[e.get('retry_ms') for e in fails][:8]}, every gap >= the announced delay: "
                f"{gaps_ok}; primary kept"), \
        {"tries": len(fails), "per_minute": per_min, "gaps_ok": gaps_ok}


def srst_cert_backoff_failover(rig: Rig) -> Result:
    """Limited board (no standby link): the router's other certificate shows at failover.
    With the WAN cut, every try of the call manager and then the router fails; each
    `retrying` announces the wait, and the next try of the router comes no sooner."""
    _new_srst_cert(rig)
    time.sleep(1.0)
    t_cut = rig.cut("blackhole")
    rig.wait_for(lambda e: e.ev == "register_failed" and e.get("link") == "srst", t_cut, 60,
                 "register_failed from the router")
    time.sleep(WATCH_S)
    evs = [s.event for s in rig.since(t_cut) if s.event.ev == "retrying" or
           (s.event.ev == "register_failed" and s.event.get("link") == "srst")]
    fails = [e for e in evs if e.ev == "register_failed"]
    # each retrying's retry_ms must pass before the next router try
    gaps_ok, waits, last_retry = True, [], None
    for e in evs:
        if e.ev == "retrying":
            last_retry = e
            waits.append(e.get("retry_ms"))
        elif last_retry is not None:
            gaps_ok = gaps_ok and e.t - last_retry.t >= (last_retry.get("retry_ms") or 0)
    doubling = all(b == min(a * 2, RETRY_MAX) for a, b in zip(waits, waits[1:]))
    on_srst = rig.since(t_cut, "registered:srst")
    t_back = rig.restore()
    reg = rig.wait("registered:primary", t_back, 90)
    span_s = (fails[-1].t - fails[0].t) / 1000 if len(fails) > 1 else 0.0
    ok = len(fails) >= 2 and gaps_ok and doubling and bool(waits) and not on_srst
    return ok, (f"{len(fails)} router tries in {span_s:.1f} s after the cut, announced "
                f"retry_ms {waits[:8]}, every try after its announced wait: {gaps_ok}; "
                f"{'REGISTERED with the router; ' if on_srst else 'never registered with it; '}"
                f"call manager {reg.host - t_back:.1f} s after restore"), \
        {"tries": len(fails), "gaps_ok": gaps_ok}


PROCEDURES: dict[str, Callable[..., Result]] = {
    "cm_quirk_after_ack": cm_quirk_after_ack,
    "srst_cert_backoff": srst_cert_backoff,
    "srst_cert_backoff_failover": srst_cert_backoff_failover,
}
CASES: list[dict[str, Any]] = [
    {"fault": "call manager closes right after RegisterAck", "phase": "registered",
     "expected": "the agent lives: falls back to SRST, each re-home meets the fault and "
                 "returns to FALLBACK; re-homes once the call manager behaves",
     "proc": "cm_quirk_after_ack", "args": {"quirk": "close_after_ack"}},
    {"fault": "call manager sends a 64 KB DisplayText, then closes", "phase": "registered",
     "expected": "the agent lives: falls back to SRST, each re-home meets the fault and "
                 "returns to FALLBACK; re-homes once the call manager behaves",
     "proc": "cm_quirk_after_ack", "args": {"quirk": "big_display_close"}},
    {"fault": "SRST certificate changed (pin is the old one)", "phase": "registered",
     "expected": "standby tries per minute match the announced backoff (each gap >= the "
                 "announced retry_ms, doubling to retry_max_ms); primary kept",
     "proc": "srst_cert_backoff",
     "limited": {"expected": "no standby link: at failover the router is refused; each try "
                             "comes after the announced retry_ms (doubling to retry_max_ms); "
                             "call manager after restore", "proc": "srst_cert_backoff_failover"}},
]
