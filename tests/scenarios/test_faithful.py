"""A representative part of the scenario library on the ESP32-faithful virtual boards, at
their calibrated CPU speed (docs/vboard.md), so that every `make test` proves the agent at
ESP32 speed: a board with PSRAM (standby link; first boot to registered, silent WAN cut ->
SRST over the standby link -> re-home) and a `limited` one (one TLS session: the failover
opens the SRST session fresh). `make test-faithful` runs the whole library on both profiles.

Skipped when --board names a board (that run is about that board) and without namespaces
(the faithful board's network stack takes its DHCP lease in the namespace lab)."""
from __future__ import annotations

from pathlib import Path

import pytest

from host_tools import ROOT
from host_tools.lab import netns
from host_tools.scenario import report, runner, spec

OLIMEX = "virtual:olimex-esp32-poe-iso-wrover"
WT32 = "virtual:wt32-eth01"
CASES = [(OLIMEX, "registered-standby"), (OLIMEX, "wan-blackhole"), (WT32, "wan-blackhole")]


@pytest.mark.slow
@pytest.mark.netns
@pytest.mark.skipif(netns.unusable_reason() is not None,
                    reason="the faithful board needs root and ip netns")
@pytest.mark.parametrize("board, name", CASES, ids=[f"{b[8:]}-{n}" for b, n in CASES])
def test_scenario_on_faithful_board(board: str, name: str, tmp_path: Path,
                                    request: pytest.FixtureRequest) -> None:
    if (request.config.getoption("--board") or ["virtual"]) != ["virtual"]:
        pytest.skip("--board names the board of this run (make test-faithful: every scenario)")
    sc = spec.load(ROOT / "scenarios" / f"{name}.toml")
    res = runner.run(sc, runner.RunOptions(workdir=tmp_path, board=board))
    report.write(res, tmp_path / "report.json")
    text = report.summary(res)
    if not res.passed:
        text += "\n  board console:\n    " + "\n    ".join(res.console[-25:])
    assert res.passed, text
    assert res.board == board
