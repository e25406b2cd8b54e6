"""Reports: JSON (pinned shape), a human summary; the timeline picture is in picture.py.

    {"scenario": NAME, "board": "virtual", "mode": "netns", "passed": true, "error": null,
     "expectations": [{"name", "expected", "actual", "passed", "message"}],
     "metrics": {"boot_to_registered_ms", "standby_up_ms", "failover_ms", "rehome_ms",
                 "peak_heap_bytes", ...},
     "events": [{"host_ms", "t", "ev", ...fields}], "actions": [{"host_ms", "action", ...}],
     "files": {"pcap", "keylog", "picture", "report"},
     "servers": {"callmanager": VIEW, "srst": VIEW}}   # host_tools.lab.perphone.view()
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from host_tools.lab import perphone, sipview

if TYPE_CHECKING:          # reading a saved report needs no runner (phonelab report)
    from host_tools.scenario.runner import Result

PINNED = ("boot_to_registered_ms", "standby_up_ms", "failover_ms", "rehome_ms", "peak_heap_bytes")


def to_dict(r: Result) -> dict[str, Any]:
    t0 = r.started
    return {
        "scenario": r.scenario.name,
        "description": r.scenario.description,
        "board": r.board,
        "mode": r.mode,
        "passed": r.passed,
        "error": r.error,
        "ended_ms": round((r.ended - t0) * 1000) if r.ended else None,
        "expectations": r.expectations,
        "metrics": r.metrics,
        "events": [{"host_ms": round((s.host - t0) * 1000), "t": s.event.t, "ev": s.event.ev,
                    **({"ph": s.event.phone} if s.event.phone else {}), **s.event.fields}
                   for s in r.events],
        "actions": [{"host_ms": round((a.host - t0) * 1000), "action": a.action, **a.args}
                    for a in r.actions],
        "files": r.files,
        "lab_events": r.lab_events,
        "servers": r.servers,
    }


def write(r: Result, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    r.files["report"] = str(path)
    path.write_text(json.dumps(to_dict(r), indent=2, default=str) + "\n")
    return path


def check(data: Any, where: str | Path) -> dict[str, Any]:
    """A saved report's shape (what summary() and the picture read), or ValueError naming the
    file and the JSON key that is wrong."""
    def bad(msg: str) -> ValueError:
        return ValueError(f"{where}: not a scenario report: {msg}")

    if not isinstance(data, dict) or "scenario" not in data or "events" not in data:
        raise bad("no 'scenario' and 'events'")
    if not isinstance(data["scenario"], str):
        raise bad("'scenario' is not a string")
    for key, typ in (("metrics", dict), ("files", dict), ("expectations", list),
                     ("actions", list), ("lab_events", list), ("servers", dict)):
        if data.get(key) is not None and not isinstance(data[key], typ):
            raise bad(f"'{key}' is not a JSON {'object' if typ is dict else 'array'}")
    if not isinstance(data["events"], list):
        raise bad("'events' is not a JSON array")
    for key, name in (("events", "ev"), ("actions", "action")):
        for i, item in enumerate(data.get(key) or []):
            if not isinstance(item, dict) or not isinstance(item.get(name), str):
                raise bad(f"{key}[{i}] has no '{name}' string")
            if not isinstance(item.get("host_ms", 0), (int, float)) or isinstance(item.get("host_ms"), bool):
                raise bad(f"{key}[{i}].host_ms is not a number")
    for i, e in enumerate(data.get("expectations") or []):
        if not isinstance(e, dict) or not {"name", "passed", "message"} <= set(e):
            raise bad(f"expectations[{i}] lacks name, passed or message")
    if data.get("ended_ms") is not None and not isinstance(data["ended_ms"], (int, float)):
        raise bad("'ended_ms' is not a number")
    return data


def _fmt(key: str, v: Any) -> str:
    if v is None:
        return "-"
    if key.endswith("_ms") and isinstance(v, (int, float)):
        return f"{v:,} ms ({v / 1000:.1f} s)" if v >= 1000 else f"{v} ms"
    if key.endswith("_bytes") and isinstance(v, int):
        return f"{v:,} bytes ({v / 1024:.1f} KiB)"
    return str(v)


def incomplete(servers: dict[str, Any]) -> list[str]:
    """One line per session whose registration dialogue never finished."""
    out = []
    for name, what in perphone.SERVERS:
        for ph, p in ((servers.get(name) or {}).get("phones") or {}).items():
            for s in p.get("sessions") or []:
                if s.get("outcome") == "incomplete":
                    out.append(f"dialogue incomplete: {what}, {ph}, session {s.get('sid')} "
                               f"at {s.get('at')} ms: missing {', '.join(s.get('missing') or [])}")
    return out


def summary(r: Result | dict[str, Any]) -> str:
    """The human summary of a run, or of a saved report (its JSON dict)."""
    d = r if isinstance(r, dict) else to_dict(r)
    metrics, files, exps = d.get("metrics") or {}, d.get("files") or {}, d.get("expectations")
    lines = [f"scenario {d.get('scenario')} on {d.get('board')} ({d.get('mode')} lab): "
             f"{'PASSED' if d.get('passed') else 'FAILED'}"]
    if d.get("description"):
        lines.append(f"  {d['description']}")
    if d.get("error"):
        lines.append(f"  error: {d['error']}")
    lines.append("  metrics:")
    for k in PINNED:
        lines.append(f"    {k:24} {_fmt(k, metrics.get(k))}")
    if metrics.get("register_over_standby_ms") is not None:
        lines.append(f"    {'register over standby':24} {metrics['register_over_standby_ms']} ms")
    lines.append(f"    {'final state':24} {metrics.get('final_state')}")
    mpm = metrics.get("messages_per_min") or {}
    for name, what in perphone.SERVERS:
        line = perphone.load_line(what, mpm.get(name))
        if line:
            lines.append(f"    {line}")
        line = sipview.summary_line(what, (d.get("servers") or {}).get(name))
        if line:
            lines.append(f"    {line}")
    if mpm.get("not_applicable"):
        lines.append(f"    messages/min {mpm['not_applicable']}")
    lines += [f"  {x}" for x in incomplete(d.get("servers") or {})]
    if exps:
        lines.append("  expectations:")
        for e in exps:
            mark = "ok  " if e["passed"] else "FAIL"
            lines.append(f"    {mark} {e['name']}: {e['message']}")
    for k, v in files.items():
        lines.append(f"  {k}: {v}")
    return "\n".join(lines)
