"""Loopback mode (no root: 127.0.0.x and a blackholing relay) and namespace mode give the same
results for the same scenario: the same expectations hold, the same story is told."""
from __future__ import annotations

from pathlib import Path

import pytest

from host_tools import ROOT
from host_tools.lab import netns
from host_tools.scenario import report, runner, spec


@pytest.mark.slow
@pytest.mark.skipif(netns.unusable_reason() is not None,
                    reason="namespace mode needs root and ip netns")
@pytest.mark.long("each scenario twice, once per lab mode; the library runs in the namespace "
                  "lab in `make test`")
@pytest.mark.parametrize("name", ["wan-blackhole", "ctl-tampered"])
def test_loopback_and_namespace_agree(name: str, tmp_path: Path) -> None:
    sc = spec.load(ROOT / "scenarios" / f"{name}.toml")
    got = {}
    for mode in ("netns", "loopback"):
        res = runner.run(sc, runner.RunOptions(workdir=tmp_path / mode, mode=mode))
        assert res.mode == mode
        assert res.passed, report.summary(res)
        got[mode] = res
    verdicts = {m: [(e["name"], e["passed"]) for e in r.expectations] for m, r in got.items()}
    assert verdicts["netns"] == verdicts["loopback"]
    story = {m: [s for s in (e.event.get("state") for e in r.events if e.event.ev == "state")]
             for m, r in got.items()}
    assert story["netns"] == story["loopback"], story
