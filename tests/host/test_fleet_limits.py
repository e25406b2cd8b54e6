"""What a 2,000-phone fleet needs of the host process (docs/fleet.md, "Limits"): open files
for every phone's sessions, and the simulators' TLS read buffers at 4 KiB, not asyncio's
256 KiB per connection."""
from __future__ import annotations

import asyncio.sslproto
import resource
from pathlib import Path

import pytest

from host_tools.fleet import procs
from host_tools.lab import sccp_server


def test_open_files_raised_to_what_the_fleet_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = {"now": (1024, 4096)}
    monkeypatch.setattr(resource, "getrlimit", lambda _what: limits["now"])
    monkeypatch.setattr(resource, "setrlimit", lambda _what, v: limits.__setitem__("now", v))
    need = procs.open_files_needed(2000)
    assert need >= 2 * 2000 + 256             # the simulators' end of two sessions a phone
    got = procs.raise_open_files(need)        # the hard limit caps it, and says so
    assert got == {"before": 1024, "after": 4096, "hard": 4096, "needed": need}
    limits["now"] = (1024, resource.RLIM_INFINITY)
    assert procs.raise_open_files(need)["after"] == need
    limits["now"] = (50000, resource.RLIM_INFINITY)       # never lowered
    assert procs.raise_open_files(need)["after"] == 50000


def test_simulators_read_tls_in_small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asyncio.sslproto.SSLProtocol, "max_size", 256 * 1024)
    sccp_server.small_tls_reads()
    assert asyncio.sslproto.SSLProtocol.max_size == sccp_server.TLS_READ_BUFFER == 4096
    sccp_server.small_tls_reads(64 * 1024)    # only ever made smaller
    assert asyncio.sslproto.SSLProtocol.max_size == 4096


def test_processes_by_default_one_per_core_and_per_500_phones(monkeypatch: pytest.MonkeyPatch) -> None:
    from host_tools.fleet.run import PHONES_PER_PROC, FleetOptions
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert FleetOptions(phones=2000).procs_count() == 2000 // PHONES_PER_PROC == 4
    assert FleetOptions(phones=1001).procs_count() == 3
    assert FleetOptions(phones=300).procs_count() == 2
    assert FleetOptions(phones=1).procs_count() == 1
    assert FleetOptions(phones=2000, procs=2).procs_count() == 2      # asked for: as asked


def test_phone_processes_run_niced(tmp_path: Path) -> None:
    """The servers under test get the CPU first: each phone process is niced as it starts."""
    import os

    from host_tools.fleet.procs import FleetProc
    from host_tools.fleet.spec import ProcSpec
    from host_tools.fleet.track import Tracker

    p = FleetProc(ProcSpec(0, [], tmp_path), firmware=tmp_path, heap=65536,
                  prefix=["sh", "-c", "sleep 5", "fleet"], tracker=Tracker({0: []}), nice=7)
    p.start()
    try:
        assert p.pid is not None
        assert os.getpriority(os.PRIO_PROCESS, p.pid) == 7
    finally:
        p.proc.kill()
        p.proc.wait(5)
