"""The benchmarks still run: `python -m bench --quick` (every benchmark, CI-sized, on the
PLACE schedule of bench/__main__.py) as one subprocess, checking the JSON each writes, the
behaviour the figures stand on (no stuck soak cycle, the store unchanged, TFTP files
identical, every fault-matrix case as expected, SCCP and SIP) and the headline summary. No
figure is asserted here: figures come from bench/, never from timed assertions. Plus the
benchmarks' pure parts (statistics, plans, the matrix's markdown, the README section),
without a lab."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from host_tools import ROOT
from host_tools.lab import netns


@pytest.mark.slow
@pytest.mark.netns
@pytest.mark.long("every benchmark's quick form, one after another (2.5 minutes); "
                  "`make bench-quick` runs the same")
def test_every_benchmark_runs_quick(tmp_path: Path) -> None:
    why = netns.unusable_reason()
    if why:
        pytest.skip(why)
    from bench.__main__ import modules
    env = {**os.environ, "BENCH_TMP": str(tmp_path)}
    env.pop("BENCH_SOAK_CYCLES", None)
    env.pop("BENCH_FUZZ_INPUTS", None)
    p = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-3000:]
    for name in modules():
        res = json.loads((tmp_path / f"{name}.json").read_text())
        assert res["quick"] is True and res["title"] and res["columns"], name
        assert res["rows"] and all(len(r) == len(res["columns"]) for r in res["rows"]), name
        assert not res.get("errors"), (name, res.get("errors"))
    tftp = json.loads((tmp_path / "tftp.json").read_text())
    assert not [c for c in tftp["cells"] if "error" in c or not c.get("identical")]
    soak = json.loads((tmp_path / "soak.json").read_text())
    assert soak["stuck"] == 0 and not soak["store_changed"] and soak["boot_from_store"]["ok"]
    assert all(isinstance(c.get("heap_used"), int) for c in soak["cycles"])  # from `rehomed`
    for matrix in ("fault_matrix", "fault_matrix_sip"):    # the SIP one: 0/0 without Kamailio
        fm = json.loads((tmp_path / f"{matrix}.json").read_text())
        assert fm["passed"] == fm["total"], [c for c in fm["cases"]
                                             if not c["passed"] and not c.get("na")]
    story = json.loads((tmp_path / "memory.json").read_text())["story"]
    assert story["ok"] and {"provisioning", "registration", "failover", "re-home"} <= set(
        story["phases"]), story
    fuzz = json.loads((tmp_path / "fuzz.json").read_text())
    assert all(t["crashes"] == t["hangs"] == t["unclear"] == 0 for t in fuzz["targets"].values())
    summary = (tmp_path / "SUMMARY.md").read_text()
    for name in modules():
        assert f"| {name} |" in summary, name
    assert "Not run yet" not in summary


# -- the pure parts, no lab ------------------------------------------------------------------

def test_stats_and_series_split() -> None:
    from bench import _rig, failover
    assert _rig.stats([]) == {"n": 0, "median": None, "worst": None, "best": None, "p90": None}
    s = _rig.stats([5, 1, None, 3, 9])
    assert (s["n"], s["median"], s["worst"], s["best"]) == (4, 4, 9, 1)
    assert _rig.split(20, 2) == [10, 10] and _rig.split(3, 1) == [3]
    assert sum(_rig.split(7, 2)) == 7 and _rig.split(2, 5) == [1, 1]
    full, quick = failover.plan(False), failover.plan(True)
    assert sum(t.runs for t in quick if t.label == "blackhole") == 6        # 3 per keepalive
    for kind in failover.KINDS:
        for ka in (30, 5):
            assert sum(t.runs for t in full if t.label == kind and t.keepalive == ka) == 20


def test_fault_matrix_covers_every_kind_and_phase_and_writes_markdown() -> None:
    from bench import fault_matrix as fm
    cases = fm.cases()
    got = {(c.fault, c.phase) for c in cases}
    for kind in fm.KINDS:
        for phase in fm.PHASES:
            assert (f"WAN {kind}", phase) in got
    quick = fm.plan(True)
    assert {c.phase for c in quick} >= set(fm.PHASES)
    assert {c.fault.removeprefix("WAN ") for c in quick} >= set(fm.KINDS)
    res = fm.summarize([{"fault": "a|b", "phase": "p", "expected": "e", "expected_final": "PRIMARY",
                         "observed": "o", "final_state": "FALLBACK", "passed": False}], True)
    md = fm.markdown(res)
    assert "a\\|b" in md and "**FAIL**" in md and "FALLBACK (want PRIMARY)" in md


def test_readme_section_is_rewritten_between_its_markers(tmp_path: Path) -> None:
    from bench import _readme, soak
    res = soak.summarize([{"kind": "blackhole", "failover_ms": 900, "rehome_ms": 300,
                           "heap_used": 80000}], 10, {"a": 1}, {"a": 1}, {"ok": True}, {}, 2, 0,
                         70000, 5.0, 4.0, True)
    (tmp_path / "soak.json").write_text(json.dumps({**res, "quick": True}))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{_readme.START}\nold figures\n{_readme.END}\noutro\n")
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"## Soak\n<!-- bench:soak -->\nold table\n{_readme.END}\nprose\n"
                    f"<!-- bench:tftp -->\nnot run, kept\n{_readme.END}\n")
    _readme.update(tmp_path, readme, docs)
    text = docs.read_text()
    assert "old table" not in text and "| cycles | heap min |" in text and "prose" in text
    assert "not run, kept" in text
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old figures" not in text
    assert "| soak | 1 failover/re-home cycles" in text and "0 stuck; store unchanged" in text
    assert "`python -m bench --quick --only soak`" in text and "Not run yet: failover" in text
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="no <!-- bench:start -->"):
        _readme.update(tmp_path, readme, None)
