"""pytest plugin (registered through the `pytest11` entry point): choose the board(s) a test
run drives. `--board virtual` (default) or `--board /dev/ttyUSB0`, repeatable."""
from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("phonelab", "Secure SRST phone lab")
    group.addoption("--board", action="append", default=None, metavar="virtual|PORT",
                    help="board to test: 'virtual' (default) or a serial port; repeatable")
    group.addoption("--vboard-heap", default="96K", metavar="SIZE",
                    help="MicroPython heap of virtual boards (default 96K)")


@pytest.fixture(scope="session")
def board_specs(request: pytest.FixtureRequest) -> list[str]:
    return request.config.getoption("--board") or ["virtual"]
