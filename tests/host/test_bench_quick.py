"""The benchmarks still run: `python -m bench --quick --only NAME` as a subprocess for the two
quickest of bench/ (tftp about 10 s, rehome about 45 s), checking the JSON they write. The
others (failover, fault_matrix, soak: about 1 min each in quick form) are run by
`make bench-quick`; see docs/benchmarks.md. Plus the benchmarks' pure parts (statistics,
plans, the matrix's markdown), without a lab. No figure is asserted here: figures come from
bench/, never from timed assertions."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from host_tools import ROOT
from host_tools.lab import netns

QUICKEST = ("tftp", "rehome")


@pytest.mark.slow
@pytest.mark.netns
@pytest.mark.parametrize("name", QUICKEST)
def test_bench_quick_runs(name: str, tmp_path: Path) -> None:
    why = netns.unusable_reason()
    if why:
        pytest.skip(why)
    env = {**os.environ, "BENCH_OUT": str(tmp_path), "BENCH_TMP": str(tmp_path)}
    p = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", name,
                        "--out", str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    res = json.loads((tmp_path / f"{name}.json").read_text())
    assert res["quick"] is True and res["title"] and res["columns"]
    assert res["rows"] and all(len(r) == len(res["columns"]) for r in res["rows"])
    assert not res.get("errors"), res.get("errors")
    if name == "tftp":
        fails = [c for c in res["cells"] if "error" in c or not c.get("identical")]
        assert not fails, fails


# -- the pure parts, no lab ------------------------------------------------------------------

def test_stats_and_series_split() -> None:
    from bench import _rig, failover
    assert _rig.stats([]) == {"n": 0, "median": None, "worst": None, "best": None, "p90": None}
    s = _rig.stats([5, 1, None, 3, 9])
    assert (s["n"], s["median"], s["worst"], s["best"]) == (4, 4, 9, 1)
    assert failover._split(20, 2) == [10, 10] and failover._split(3, 1) == [3]
    assert sum(failover._split(7, 2)) == 7
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
