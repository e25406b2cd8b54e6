"""Shared helpers of the host tests that run firmware under MicroPython against servers in
this process (test_agent_survives.py, test_link_security.py): an asyncio loop in a thread
for the servers, and files for the script's arguments."""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Iterator

import pytest


class Loop:
    """An asyncio loop in a thread, for servers the MicroPython process talks to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 15):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def loop() -> Iterator[Loop]:
    lp = Loop()
    yield lp
    lp.close()


def write_file(tmp: Path, name: str, data: bytes) -> str:
    """`data` as the file tmp/name, for a script argument; returns its path."""
    p = tmp / name
    p.write_bytes(data)
    return str(p)
