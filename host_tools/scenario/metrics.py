"""From a run's timeline (board events stamped with host time, lab actions) to the pinned
metrics and the expectation verdicts."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from host_tools.events import Event

CUT_ACTIONS = ("wan_cut", "flap", "kill:callmanager", "hang:callmanager",
               "replace_cert:callmanager")


@dataclass
class Stamped:
    host: float          # time.monotonic() when the line arrived
    event: Event


@dataclass
class Action:
    host: float
    action: str
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        server = self.args.get("server")
        return f"{self.action}:{server}" if server else self.action


def matches(spec: str, e: Event) -> bool:
    """'registered', 'registered:srst' (the suffix matches any field's value) or
    'state:state=PRIMARY' (that field's value only)."""
    name, _, value = spec.partition(":")
    if e.ev != name:
        return False
    if "=" in value:
        field, _, want = value.partition("=")
        return field in e.fields and str(e.fields[field]) == want
    return not value or any(str(v) == value for v in e.fields.values())


def _first(evs: list[Stamped], spec: str, after: float = float("-inf")) -> Stamped | None:
    for s in evs:
        if s.host >= after and matches(spec, s.event):
            return s
    return None


def compute(evs: list[Stamped], actions: list[Action]) -> dict[str, Any]:
    m: dict[str, Any] = {"boot_to_registered_ms": None, "standby_up_ms": None,
                         "failover_ms": None, "rehome_ms": None, "peak_heap_bytes": None}
    boot = _first(evs, "boot")
    if boot is not None:
        reg = _first(evs, "registered", boot.host)
        if reg is not None:
            m["boot_to_registered_ms"] = reg.event.t - boot.event.t
        sb = _first(evs, "standby_up", boot.host)
        if sb is not None:
            m["standby_up_ms"] = sb.event.t - boot.event.t
    failovers, rehomes = [], []
    for a in actions:
        if a.key in CUT_ACTIONS and a.args.get("on", True):     # (not a hang's end)
            reg = _first(evs, "registered:srst", a.host)
            if reg is not None:
                failovers.append({"after": a.key, "ms": round((reg.host - a.host) * 1000),
                                  "over_standby": reg.event.get("over_standby"),
                                  "register_ms": reg.event.get("register_ms")})
        restored = None
        if a.action in ("wan_restore", "restart") and a.key != "restart:srst":
            restored = a.host
        elif a.key == "hang:callmanager" and a.args.get("on") is False:
            restored = a.host            # the call manager answers again
        elif a.action == "flap":         # the WAN is back for good after the last period
            restored = a.host + a.args.get("period", 2.0) * a.args.get("count", 3)
        if restored is not None:
            rh = _first(evs, "rehomed", restored)
            if rh is not None:
                rehomes.append({"after": a.key, "ms": round((rh.host - restored) * 1000)})
    if failovers:
        m["failover_ms"] = failovers[0]["ms"]
        # Only a Register over the standby session is that figure: a limited board's failover
        # opens its SRST session fresh (its register_ms is in `failovers`).
        first = failovers[0]
        m["register_over_standby_ms"] = first["register_ms"] if first["over_standby"] else None
    if rehomes:
        m["rehome_ms"] = rehomes[0]["ms"]
    m["failovers"] = failovers
    m["rehomes"] = rehomes
    heaps = [s.event.get("heap_used") for s in evs if isinstance(s.event.get("heap_used"), int)]
    m["peak_heap_bytes"] = max(heaps) if heaps else None
    m["registrations"] = sum(1 for s in evs if s.event.ev == "registered")
    states = [s.event.get("state") for s in evs if s.event.ev == "state"]
    m["final_state"] = states[-1] if states else None
    return m


def verdicts(expect: dict[str, Any], evs: list[Stamped], m: dict[str, Any]) -> list[dict]:
    out: list[dict] = []

    def add(name: str, expected: Any, actual: Any, ok: bool, why: str = "") -> None:
        out.append({"name": name, "expected": expected, "actual": actual, "passed": bool(ok),
                    "message": why or ("ok" if ok else f"expected {expected!r}, got {actual!r}")})

    names = [s.event for s in evs]
    for key, want in expect.items():
        if key == "final_state":
            add(key, want, m["final_state"], m["final_state"] == want)
        elif key.startswith("max_"):
            metric = key[4:]
            got = m.get(metric, m.get("registrations") if metric == "registrations" else None)
            if got is None:
                add(key, f"<= {want}", None, False, f"{metric} was never measured")
            else:
                add(key, f"<= {want}", got, got <= want)
        elif key in ("events", "no_events"):
            for spec in want:
                seen = any(matches(spec, e) for e in names)
                ok = seen if key == "events" else not seen
                add(f"{'event' if key == 'events' else 'no event'} {spec}",
                    key == "events", seen, ok,
                    "" if ok else (f"event {spec!r} never happened" if key == "events"
                                   else f"event {spec!r} happened"))
        elif key in ("ctl_rejected", "config_rejected"):
            seen = any(e.ev == key for e in names)
            add(key, want, seen, seen == want)
        elif key == "registered_over_standby":
            got = bool(m["failovers"]) and all(f["over_standby"] for f in m["failovers"])
            add(key, want, got, got == want)
    return out
