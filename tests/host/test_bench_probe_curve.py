"""bench/probe_curve.py's figures from its runs (no lab: the labs' results are given): the
medians, the rates over whole cycles, the verdict against issue 16's target, the picture,
and the README block `python -m bench --readme` writes with it."""
from __future__ import annotations

import ast
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from bench import _readme, probe_curve
from host_tools import ROOT


def _defaults() -> dict:
    tree = ast.parse((ROOT / "firmware/phone/settings.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "DEFAULTS":
            return ast.literal_eval(node.value)
    raise AssertionError("no DEFAULTS in firmware/phone/settings.py")


def test_the_curve_knows_the_firmware_defaults() -> None:
    d = _defaults()
    assert probe_curve.DEFAULT == (d["probe_after_ms"], d["ack_timeout_ms"], d["max_missed"])
    assert sum(1 for s in probe_curve.SETTINGS if tuple(s[1:]) == probe_curve.DEFAULT) == 1


def test_cuts_are_spread_over_the_probe_cycle() -> None:
    for quick in (True, False):
        by: dict[str, list[float]] = {}
        for s in probe_curve.plan(quick):
            by.setdefault(s.label, []).extend(s.fractions)
            assert s.monitor_s > 2 * s.cycle_s        # room for one whole FALLBACK cycle
        for label, fr in by.items():
            n = len(fr)
            assert n == (2 if quick else 20), label
            # one cut in each n-th of the cycle
            assert sorted(int(f * n) for f in fr) == list(range(n)), (label, fr)


def _result(label: str, failovers: list[int], steady: tuple[int, float],
            fallback: tuple[int, float]) -> dict:
    p, a, m = next(s[1:] for s in probe_curve.SETTINGS if s[0] == label)
    return {"label": label, "settings": {"probe_after_ms": p, "ack_timeout_ms": a,
                                         "max_missed": m, "monitor_s": 40, "retry_max_ms": 2000},
            "runs": [{"fraction": 0.5, "failover_ms": f, "detect_ms": f - 30,
                      "over_standby": True} for f in failovers],
            "errors": [], "steady": {"messages": steady[0], "minutes": steady[1]},
            "fallback": [{"messages": fallback[0], "minutes": fallback[1]}],
            "openings": [1], "load": [0.5, 1.0]}


def test_summary_rates_and_verdict() -> None:
    ok = probe_curve.summarize([
        _result("probe 15 s (default)", [9000, 9600, 12000], (16, 4.0), (1, 0.25)),
        _result("probe 5 s", [4000, 5000, 6000], (48, 4.0), (1, 0.083))], quick=True)
    pt = {p["label"]: p for p in ok["points"]}
    assert pt["probe 15 s (default)"]["failover"]["median"] == 9600
    assert pt["probe 15 s (default)"]["steady_per_min"] == 4.0
    assert pt["probe 5 s"]["steady_per_min"] == 12.0
    assert ok["verdict"].startswith("pass")
    assert ok["rows"][-1][0].startswith("real phones")
    slow = probe_curve.summarize([_result("probe 15 s (default)", [9000, 10400, 12000],
                                          (16, 4.0), (1, 0.25))], quick=True)
    assert slow["verdict"].startswith("FAIL")
    busy = probe_curve.summarize([_result("probe 15 s (default)", [9000, 9600, 12000],
                                          (17, 4.0), (1, 0.25))], quick=True)
    assert busy["verdict"].startswith("FAIL")        # 4.25 messages a minute
    none = probe_curve.summarize([_result("probe 5 s", [4000], (48, 4.0), (1, 0.1))], True)
    assert none["verdict"] == "not measured"


def test_the_picture_and_the_readme_block(tmp_path: Path) -> None:
    res = probe_curve.summarize([
        _result("probe 15 s (default)", [9000, 9600, 12000], (16, 4.0), (1, 0.25)),
        _result("keepalive only", [16000, 17000, 31000], (8, 4.0), (1, 0.5))], quick=False)
    svg = ET.fromstring(probe_curve.svg(res))
    circles = [e for e in svg.iter() if e.tag.endswith("circle")]
    assert len(circles) == 2
    texts = " ".join(e.text or "" for e in svg.iter() if e.tag.endswith("text"))
    assert "real phones" in texts and "probe 15 s (default): 9.6 s" in texts
    (tmp_path / "probe_curve.json").write_text(json.dumps({**res, "firmware": "abc1234"}))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{_readme.START}\n{_readme.END}\noutro\n")
    _readme.update(tmp_path, readme, None)
    text = readme.read_text()
    assert "![failover after a silent cut against messages per minute](docs/img/probe_curve.svg)" in text
    assert "| probe 15 s (default) | 15 s / 1 s / 2 |" in text
    assert (tmp_path / "docs/img/probe_curve.svg").read_text().startswith("<svg")
    # rewriting another benchmark keeps the block, picture line included
    _readme.update(tmp_path, readme, None, only=["soak"])
    assert readme.read_text().count("docs/img/probe_curve.svg") == 1


def test_failover_rows_cut_at_spread_points_of_their_cycle() -> None:
    from bench import failover, limited
    for plan in (failover.plan(False), limited.plan(False)):
        groups: dict = {}
        for s in plan:
            if getattr(s, "short_timers", False):
                assert s.phases is None
                continue
            groups.setdefault((s.label, s.keepalive), []).append(s)
        for key, group in groups.items():
            fr = [f for s in group for f in s.phases]
            n = sum(s.runs for s in group)
            assert sorted(int(f * n) for f in fr) == list(range(n)), key
            cycles = {s.cycle_s for s in group}
            assert len(cycles) == 1, key
    cyc = {(s.label, s.keepalive): s.cycle_s for s in failover.plan(False) + limited.plan(False)
           if s.phases}
    assert cyc[("blackhole", 30)] == 15.0 and cyc[("blackhole", 5)] == 5.0
    assert cyc[("blackhole, probe off", 30)] == 30.0
    assert cyc[("limited, blackhole, wt32-eth01", 30)] == 10.0      # the profile's own rule


def test_sip_rows_are_spread_too_and_anchored_on_the_registration() -> None:
    from bench import _rig, failover_sip
    plan = failover_sip.plan(False)
    groups: dict = {}
    for s in plan:
        groups.setdefault(s.label, []).append(s)
    for label, group in groups.items():
        n = sum(s.runs for s in group)
        assert sorted(int(f * n) for s in group for f in s.phases) == list(range(n)), label
        assert {s.cycle_s for s in group} == {15.0}, label

    class Ev:
        def __init__(self, host: float) -> None:
            self.host = host

    class FakeRig:
        def __init__(self, at: float) -> None:
            self.at = at

        def since(self, t: float, spec: str) -> list:
            assert spec == "registered:primary"
            return [Ev(self.at)]

    import time
    t0 = time.monotonic()
    _rig.after_registered(FakeRig(t0 - 0.5), 0.1, 1.0)     # 0.1 of a 1 s cycle: next start
    assert 0.55 <= time.monotonic() - t0 < 0.8
