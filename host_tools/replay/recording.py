"""Replay of a lab recording: a `phonelab run` report (JSON) run again with its faults at the
recorded times, to reproduce a failure deterministically, and compared with the recording.

The report gives the scenario's name, the actions the run performed (with `host_ms`, time
since the board started) and the board's events; the scenario file (scenarios/NAME.toml, or
`scenario=`) gives the lab, board settings and expectations. The replayed timeline is the
recorded actions at their recorded times (an action that waited for an event in the original
run fires when it fired then). Reproduced = every expectation has the recorded verdict and the
board goes through the same states in the same order.

    rep = load_report("out/reports/wan-blackhole.json")
    res, cmp = replay_recording(rep, RunOptions(workdir=...))
"""
from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

from host_tools import ROOT
from host_tools.scenario import report as reportlib
from host_tools.scenario import runner, spec

SKIP_ARGS = ("host_ms", "action")


class RecordingError(ValueError):
    pass


def load_report(path: str | Path) -> dict[str, Any]:
    from host_tools import readers
    p = Path(path)
    try:
        rep = readers.read_json(p, "report")
    except readers.InputError as e:
        raise RecordingError(str(e)) from None
    if not isinstance(rep, dict) or not {"scenario", "actions", "events"} <= set(rep):
        raise RecordingError(f"{p}: not a `phonelab run` report (needs scenario, actions, events)")
    try:
        reportlib.check(rep, p)
    except ValueError as e:
        raise RecordingError(str(e)) from None
    return rep


def scenario_for(rep: dict[str, Any], path: Path | None = None) -> spec.Scenario:
    p = path or ROOT / "scenarios" / f"{rep['scenario']}.toml"
    if not p.exists():
        raise RecordingError(f"no scenario file {p} for {rep['scenario']!r}: give it with --scenario")
    return spec.load(p)


def timed(sc: spec.Scenario, rep: dict[str, Any]) -> spec.Scenario:
    """The scenario with its timeline replaced by the recorded actions at recorded times."""
    out = copy.deepcopy(sc)
    out.timeline = [spec.Step(action=a["action"], at=a["host_ms"] / 1000.0,
                              args={k: v for k, v in a.items() if k not in SKIP_ARGS}, line=i + 1)
                    for i, a in enumerate(sorted(rep["actions"], key=lambda a: a["host_ms"]))]
    ends = [e.get("host_ms", 0) for e in rep["events"]] + [a["host_ms"] for a in rep["actions"]]
    span = (max(ends) if ends else 0) / 1000.0 + 1.0
    if out.until is None:
        out.duration = span
    out.timeout = max(out.timeout, span + 15.0)
    return out


def _states(events: list[dict[str, Any]]) -> list[str]:
    return [e.get("state") for e in events if e.get("ev") == "state"]  # type: ignore[misc]


def compare(rep: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    diffs: list[dict[str, Any]] = []
    was = {e["name"]: e["passed"] for e in rep.get("expectations", [])}
    now = {e["name"]: e["passed"] for e in new.get("expectations", [])}
    for name in sorted(set(was) | set(now)):
        if was.get(name) != now.get(name):
            diffs.append({"kind": "expectation", "what": name, "recorded": was.get(name),
                          "replay": now.get(name), "verdict": True})
    s_was, s_now = _states(rep["events"]), _states(new["events"])
    if s_was != s_now:
        diffs.append({"kind": "states", "what": "the board's states in order", "recorded": s_was,
                      "replay": s_now, "verdict": True})
    n_was = Counter(e["ev"] for e in rep["events"])
    n_now = Counter(e["ev"] for e in new["events"])
    only_was, only_now = sorted(set(n_was) - set(n_now)), sorted(set(n_now) - set(n_was))
    if only_was or only_now:
        diffs.append({"kind": "events", "what": "event names seen in one run only",
                      "recorded": only_was, "replay": only_now, "verdict": False})
    skew = [abs(a["host_ms"] - b["host_ms"]) for a, b in zip(rep["actions"], new["actions"])]
    metrics = {k: {"recorded": (rep.get("metrics") or {}).get(k),
                   "replay": (new.get("metrics") or {}).get(k)} for k in reportlib.PINNED}
    return {"reproduced": not any(d["verdict"] for d in diffs), "differences": diffs,
            "max_action_skew_ms": max(skew) if skew else 0, "metrics": metrics,
            "recorded_passed": rep.get("passed"), "replay_passed": new.get("passed")}


def replay_recording(rep: dict[str, Any], opts: runner.RunOptions,
                     scenario: Path | None = None) -> tuple[runner.Result, dict[str, Any]]:
    sc = timed(scenario_for(rep, scenario), rep)
    res = runner.run(sc, opts)
    return res, compare(rep, reportlib.to_dict(res))


def summary(cmp: dict[str, Any], rep: dict[str, Any]) -> str:
    lines = [f"replay of the recording of {rep['scenario']}: "
             f"{'REPRODUCED' if cmp['reproduced'] else 'NOT REPRODUCED'} "
             f"(recorded run {'passed' if cmp['recorded_passed'] else 'failed'}, replay "
             f"{'passed' if cmp['replay_passed'] else 'failed'}; actions within "
             f"{cmp['max_action_skew_ms']} ms of their recorded times)"]
    for k, v in cmp["metrics"].items():
        lines.append(f"    {k:24} recorded {v['recorded']}  replay {v['replay']}")
    for d in cmp["differences"]:
        tag = "verdict" if d["verdict"] else "info   "
        lines.append(f"  [{tag}] {d['kind']} {d['what']}: recorded {d['recorded']} / replay {d['replay']}")
    return "\n".join(lines)
