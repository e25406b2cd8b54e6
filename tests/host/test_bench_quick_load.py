"""The probe rule's benchmark runs in `make test` (issue 16: CI's quick benchmarks cover the
new ones): `python -m bench --quick --only probe_curve`, two short-cycle settings in their
own labs, as one subprocess. What is checked is the behaviour the curve stands on, not a
speed: every cut failed over over the standby session, and the call manager received one
message per probe cycle from a registered phone and from its FALLBACK probe session (the
probe rule's load), within the count's rounding."""
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
def test_the_probe_curve_runs_quick(tmp_path: Path) -> None:
    why = netns.unusable_reason()
    if why:
        pytest.skip(why)
    from bench import probe_curve
    env = {**os.environ, "BENCH_TMP": str(tmp_path)}
    p = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "probe_curve",
                        "--out", str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-3000:]
    res = json.loads((tmp_path / "probe_curve.json").read_text())
    assert not res["errors"], res["errors"]
    assert [pt["label"] for pt in res["points"]] == list(probe_curve.QUICK)
    for pt in res["points"]:
        assert len(pt["runs"]) == 2 and all(r["over_standby"] for r in pt["runs"]), pt
        cycle_min = 60 / (pt["probe_after_ms"] / 1000)
        for what in ("steady_per_min", "fallback_per_min"):
            # one KeepAlive per cycle (the round trip on top: a little under 60 / cycle); the
            # window's ends are KeepAlives seen by polling the server every 20 ms, and the
            # FALLBACK figure of a quick run is two windows of one cycle each
            assert 0.9 * cycle_min <= pt[what] <= 1.06 * cycle_min, (what, pt[what], pt)
        assert pt["opening_messages"] == 1, pt       # the probe session's opening KeepAlive
    assert res["rows"][-1][0].startswith("real phones")
    assert "| probe_curve |" in (tmp_path / "SUMMARY.md").read_text()
