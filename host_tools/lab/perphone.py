"""Each phone as a lab SCCP server saw it, from the server's sessions, live and closed: the
messages it received from the phone per minute, beside what a real phone sends (issue 14:
the load the agent's probes put on a call manager), and each session's registration dialogue
(docs/reports.md, "servers"; docs/fleet.md).

    view = lab.topology.hq.call(perphone.view, lab.callmanager, t0)   # on the server's loop
    view["phones"]["SEP001122AABBCC"]["per_min"], view["real_phone_per_min"]
    perphone.load(view)        # {"phones": 1, "per_min_avg": ..., "worst": ..., ...}
"""
from __future__ import annotations

import time
from typing import Any

# The lab's two SCCP servers: (the Lab's attribute and the reports' key, what a summary says)
SERVERS = (("callmanager", "call manager"), ("srst", "SRST router"))


def real_phone_per_min(keepalive_s: float) -> float:
    """The reference beside every rate here: a real phone registered with a server sends it
    one KeepAlive per keepalive interval (the one RegisterAck gives), so 60 / keepalive_s
    messages a minute: 2 at the usual 30 s."""
    return round(60.0 / keepalive_s, 2)


def phone_of(s: dict[str, Any]) -> str:
    """The phone a session (a Session.summary()) came from: its Register's device name, else
    its certificate's CN (SEP<MAC> for the lab's phones: a standby session, a probe), else its
    address without the port."""
    name = s.get("device") or s.get("cert_cn")
    if name:
        return str(name).upper()
    return str(s.get("peer") or "?").rsplit(":", 1)[0]


def outcome(s: dict[str, Any]) -> str:
    """What a session's registration came to: `registered` (the whole dialogue), `incomplete`
    (RegisterAck, the dialogue unfinished: `missing` names the rest), `rejected`, or
    `keepalives only` (no Register: a standby session, a probe)."""
    st = s.get("was") if s.get("state") == "closed" else s.get("state")
    if st in ("registered", "unregistered"):
        return "registered"
    if st == "registering":
        return "incomplete"
    if st == "rejected":
        return "rejected"
    return "keepalives only"


def view(srv: Any, origin: float | None = None) -> dict[str, Any]:
    """The server's sessions by phone. Run it on the server's own loop (a topology loop's
    call()). `origin`: a time.monotonic() value; session times are then ms since it (a
    scenario report's host_ms), else seconds of the server's clock.

    Per phone: `messages` and `keepalives` it sent (every session's count, KeepAlives
    included, and while the server was hung), `minutes` from its first connection to now,
    `per_min` and `keepalives_per_min` over those minutes, and its `sessions`."""
    now = srv.now()
    zero = time.monotonic() - now            # the server's clock origin, host monotonic

    def at(t: float | None) -> float | int | None:
        if t is None:
            return None
        return round((zero + t - origin) * 1000) if origin is not None else round(t, 3)

    live = [s.summary() for s in list(srv.sessions.values()) if s.state != "closed"]
    phones: dict[str, dict[str, Any]] = {}
    for s in sorted(list(srv.history) + live, key=lambda x: x["sid"]):
        p = phones.setdefault(phone_of(s), {"messages": 0, "keepalives": 0,
                                            "first": s["connected_at"], "sessions": []})
        p["messages"] += s.get("rx", 0)
        p["keepalives"] += s.get("keepalives", 0)
        p["first"] = min(p["first"], s["connected_at"])
        p["sessions"].append(_session(s, at))
    for p in phones.values():
        minutes = max(now - p.pop("first"), 1e-3) / 60
        p["minutes"] = round(minutes, 3)
        p["per_min"] = round(p["messages"] / minutes, 2)
        p["keepalives_per_min"] = round(p["keepalives"] / minutes, 2)
    return {"server": srv.name, "role": srv.role, "keepalive_s": srv.keepalive,
            "real_phone_per_min": real_phone_per_min(srv.keepalive),
            "phones": dict(sorted(phones.items()))}


def _session(s: dict[str, Any], at: Any) -> dict[str, Any]:
    closed = s.get("state") == "closed"
    return {"sid": s["sid"], "at": at(s["connected_at"]),
            "until": at(s.get("closed_at")) if closed else None,
            "state": s.get("was") if closed else s.get("state"), "closed": closed,
            "outcome": outcome(s), "messages": s.get("rx", 0),
            "keepalives": s.get("keepalives", 0), "dialogue": list(s.get("dialogue") or []),
            "missing": list(s.get("missing") or []),
            "close_reason": s.get("close_reason") if closed else None}


def load(v: dict[str, Any] | None, only: set[str] | None = None) -> dict[str, Any] | None:
    """The figure over the phones of a view (`only`: those names): messages per phone per
    minute, average and worst, beside the real phone's; None without a phone."""
    if not v:
        return None
    rates = {k: p["per_min"] for k, p in v["phones"].items() if only is None or k in only}
    if not rates:
        return None
    worst = max(rates, key=lambda k: rates[k])
    return {"phones": len(rates), "per_min_avg": round(sum(rates.values()) / len(rates), 2),
            "per_min_max": rates[worst], "worst": worst,
            "real_phone_per_min": v["real_phone_per_min"], "keepalive_s": v["keepalive_s"]}


def load_line(what: str, ld: dict[str, Any] | None) -> str | None:
    """One line of a human summary for a load(), or None."""
    if not ld:
        return None
    many = ld["phones"] > 1
    rate = (f"{ld['per_min_avg']} per phone, worst {ld['per_min_max']} ({ld['worst']})"
            if many else f"{ld['per_min_avg']}")
    return (f"messages/min received by the {what}: {rate}; a real phone: "
            f"{ld['real_phone_per_min']} (a KeepAlive every {ld['keepalive_s']} s)")
