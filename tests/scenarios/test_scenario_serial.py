"""The real-board path of the scenario runner, exercised without a chip: a virtual board
exposed only as a pty (a serial device as far as pyserial and mpremote can tell) is deployed,
provisioned into a loopback lab over its serial port, and runs library scenarios - the same
code path as `pytest tests/scenarios --board /dev/ttyUSB0` / `phonelab run --board PORT`."""
from __future__ import annotations

from pathlib import Path

import pytest

from host_tools import ROOT
from host_tools.hil import handles, specs
from host_tools.scenario import report, runner, spec
from host_tools.vboard import VirtualBoard


@pytest.mark.slow
@pytest.mark.long("the library over a serial line rather than a pty; tests/host/test_vboard.py "
                  "keeps the serial endpoint in `make test`")
def test_scenarios_on_a_serial_board(tmp_path: Path) -> None:
    with VirtualBoard(tmp_path / "board", heap=runner.DEFAULT_HEAP, pty=True) as vb:
        sp = specs.parse(f"virtual@{vb.pty_path}")   # a fresh board: name its profile
        assert sp.kind == "serial"
        h = handles.SerialHandle(sp, sp.text, vb.pty_path)
        h.start()
        try:
            h.deploy()
            for name in ("wan-blackhole", "ctl-tampered"):
                sc = spec.load(ROOT / "scenarios" / f"{name}.toml")
                res = runner.run(sc, runner.RunOptions(workdir=tmp_path / name, handle=h,
                                                       mode="loopback"))
                assert res.passed, report.summary(res) + "\n" + "\n".join(res.console[-20:])
                assert res.board == sp.text and res.mode == "loopback"
        finally:
            h.close()
