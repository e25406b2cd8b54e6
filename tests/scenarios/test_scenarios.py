"""Every scenario in scenarios/ runs end to end: the lab (namespaces when root, loopback
otherwise), a virtual board running the agent, the scenario's faults and expectations.
The same files run against a real board with `phonelab run --board PORT` (see README)."""
from __future__ import annotations

from pathlib import Path

import pytest

from host_tools import ROOT
from host_tools.scenario import report, runner, spec

SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml"))


@pytest.mark.slow
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path: Path, tmp_path: Path) -> None:
    sc = spec.load(path)
    res = runner.run(sc, runner.RunOptions(workdir=tmp_path))
    report.write(res, tmp_path / "report.json")
    text = report.summary(res)
    if not res.passed:
        text += "\n  board console:\n    " + "\n    ".join(res.console[-25:])
    assert res.passed, text


def test_wrong_expectation_fails_and_names_it(tmp_path: Path) -> None:
    sc = spec.load(ROOT / "scenarios" / "registered-standby.toml")
    sc.expect = {"final_state": "FALLBACK", "events": ["registered:primary"]}
    res = runner.run(sc, runner.RunOptions(workdir=tmp_path))
    assert not res.passed
    failed = [e for e in res.expectations if not e["passed"]]
    assert [e["name"] for e in failed] == ["final_state"]
    assert "expected 'FALLBACK', got 'PRIMARY'" in report.summary(res)
