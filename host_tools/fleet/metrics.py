"""A fleet run's figures from the Tracker: registrations per second at boot, time until all
phones are on the SRST router after the WAN cut, memory per phone, failures with reasons."""
from __future__ import annotations

import statistics
from typing import Any, Iterable

from host_tools.fleet.track import Phone, Tracker

_FAILS = ("register_failed", "standby_failed", "link_down", "agent_crashed", "srst_lost")


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


def peak_rate(times: Iterable[float], window: float = 1.0) -> float:
    """The most events in any `window` seconds, per second."""
    ts = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(ts):
        while ts[j] < t - window:
            j += 1
        best = max(best, i - j + 1)
    return best / window


def boot(tr: Tracker, start: float | None, with_standby: bool) -> dict[str, Any]:
    phones = list(tr.phones.values())
    reg = [p.registered for p in phones if p.registered is not None]
    sby = [p.standby for p in phones if p.standby is not None]
    out: dict[str, Any] = {"phones": len(phones), "registered": len(reg), "standby": len(sby)}
    if start is None or not reg:
        return out
    last = max(reg)
    span = max(last - start, 1e-3)
    lat = [p.boot_register_ms for p in phones if p.boot_register_ms is not None]
    out.update(
        all_registered_s=_r(last - start) if len(reg) == len(phones) else None,
        first_registered_s=_r(min(reg) - start), last_registered_s=_r(last - start),
        registrations_per_s=_r(len(reg) / span, 1),
        peak_registrations_per_s=_r(peak_rate(reg), 1),
        all_standby_s=_r(max(sby) - start) if with_standby and len(sby) == len(phones) else None,
        register_ms_p50=_pct(lat, 0.5), register_ms_max=max(lat) if lat else None,
        retries=sum(p.failures for p in phones),
        retry_reasons=retry_reasons(phones, None, last + 1e-3),
    )
    return out


def retry_reasons(phones: list[Phone], since: float | None, until: float | None,
                  top: int = 5) -> list[tuple[str, int]]:
    """What the agents reported going wrong between two times (boot: retries, timeouts)."""
    c: dict[str, int] = {}
    for p in phones:
        for at, ev in p.events:
            if ev.ev in _FAILS and (since is None or at >= since) and (until is None or at <= until):
                why = f"{ev.ev} {ev.get('link') or ''}: {ev.get('reason')}".replace(" :", ":")
                c[why] = c.get(why, 0) + 1
    return sorted(c.items(), key=lambda kv: -kv[1])[:top]


def failover(tr: Tracker) -> dict[str, Any]:
    cut = tr.cut_at
    phones = list(tr.phones.values())
    on = [p for p in phones if p.on_srst is not None]
    out: dict[str, Any] = {"phones": len(phones), "on_srst": len(on)}
    if cut is None or not on:
        return out
    times = [p.on_srst - cut for p in on]  # type: ignore[operator]
    fo = [p.failover_ms for p in on if p.failover_ms is not None]
    rg = [p.register_ms for p in on if p.register_ms is not None]
    first, last = min(times), max(times)
    out.update(
        all_on_srst_s=_r(last) if len(on) == len(phones) else None,
        last_on_srst_s=_r(last), first_on_srst_s=_r(first),
        median_on_srst_s=_r(statistics.median(times)),
        srst_registrations_per_s=_r(len(on) / max(last - first, 1e-3), 1),
        failover_ms_p50=_pct(fo, 0.5), failover_ms_max=max(fo) if fo else None,
        register_ms_p50=_pct(rg, 0.5), register_ms_max=max(rg) if rg else None,
        over_standby=sum(1 for p in on if p.over_standby),
    )
    return out


def memory(tr: Tracker) -> dict[str, Any]:
    """MicroPython heap per phone (gc.mem_alloc deltas summed over processes) and RSS."""
    by: dict[str, dict[int, dict]] = {}
    for proc, _at, ev in tr.proc_events_named("fleet_heap"):
        by.setdefault(str(ev["phase"]), {})[proc] = dict(ev.fields)
    n = {p: len([x for x in tr.phones.values() if x.proc == p]) for p in tr.proc_events}
    out: dict[str, Any] = {"phases": {k: {str(p): v for p, v in d.items()} for k, d in by.items()}}

    def per_phone(a: str, b: str, key: str = "alloc", scale: float = 1.0) -> float | None:
        procs = [p for p in n if p in by.get(a, {}) and p in by.get(b, {})
                 and by[a][p].get(key) is not None and by[b][p].get(key) is not None]
        phones = sum(n[p] for p in procs)
        if not procs or not phones:
            return None
        return sum(by[b][p][key] - by[a][p][key] for p in procs) * scale / phones

    out.update(
        identity_bytes=_r(per_phone("base", "identities"), 0),
        agent_bytes=_r(per_phone("identities", "agents"), 0),
        links_up_bytes=_r(per_phone("identities", "links_up"), 0),
        heap_per_phone_bytes=_r(per_phone("base", "links_up"), 0),
        heap_per_phone_fallback_bytes=_r(per_phone("base", "fallback"), 0),
        rss_per_phone_kb=_r(per_phone("base", "links_up", "rss_kb"), 1),
        heap_base_bytes=max((v["alloc"] for v in by.get("base", {}).values()), default=None),
    )
    return out


def failures(tr: Tracker, fail_over: bool, with_standby: bool) -> list[dict[str, Any]]:
    """Every phone that did not reach what the run asked of it, with the last reason."""
    out = []
    for p in tr.phones.values():
        missing = _missing(p, fail_over, with_standby)
        if missing:
            out.append({"phone": p.mac, "proc": p.proc, "missing": missing, "state": p.state,
                        "reason": p.reason(), "final": p.final})
    return out


def _missing(p: Phone, fail_over: bool, with_standby: bool) -> list[str]:
    m = []
    if p.registered is None:
        m.append("registered")
    if with_standby and p.standby is None:
        m.append("standby")
    if fail_over and p.on_srst is None:
        m.append("on_srst")
    return m


def reasons(fails: list[dict[str, Any]], top: int = 5) -> list[tuple[str, int]]:
    """The most common failure reasons, with counts."""
    c: dict[str, int] = {}
    for f in fails:
        c[f["reason"]] = c.get(f["reason"], 0) + 1
    return sorted(c.items(), key=lambda kv: -kv[1])[:top]


def loop(tr: Tracker) -> dict[str, dict[str, float]]:
    """Per process, where asyncio's waits went (fleet_tune.fast_poll counters, summed):
    sweeps per second, share of time in sweeps and in sleeps (idle)."""
    acc: dict[int, dict[str, float]] = {}
    for proc, _at, ev in tr.proc_events_named("fleet_loop"):
        a = acc.setdefault(proc, {"periods": 0, "sweeps": 0, "sweep_ms": 0, "sleep_ms": 0})
        a["periods"] += 1
        for k in ("sweeps", "sweep_ms", "sleep_ms"):
            a[k] += ev.get(k) or 0
    out = {}
    for proc, a in acc.items():
        span = a["periods"] * 5000.0
        out[str(proc)] = {"sweeps_per_s": round(a["sweeps"] * 1000 / span, 1),
                          "sweep_share": round(a["sweep_ms"] / span, 3),
                          "idle_share": round(a["sleep_ms"] / span, 3)}
    return out
