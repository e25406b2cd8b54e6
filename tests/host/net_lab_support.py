"""Shared pieces of the DHCP/TFTP tests: a phone namespace and a server namespace joined by
a veth pair, and the firmware's network clients run on the MicroPython unix port (as .mpy,
in a board-sized heap) through host_tools/mpscripts/netclient.py."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from host_tools import FIRMWARE, ROOT, fwbuild, micropython
from host_tools.events import Event, EventReader
from host_tools.lab import netns

NETCLIENT = ROOT / "host_tools" / "mpscripts" / "netclient.py"
HEAP = "96K"
SRV_IP = "192.0.2.1"
ALT_IP = "192.0.2.3"      # a second server address in the server namespace (on lo)
DOWN_IP = "192.0.2.4"     # an address in the server namespace where nothing listens


def skip_without_netns() -> None:
    reason = netns.unusable_reason()
    if reason:
        pytest.skip(reason)


def skip_without_libfaketime() -> None:
    """The faithful board runs under libfaketime (its clock starts at 2000, as at power-up)."""
    from host_tools.vboard import faithful
    try:
        faithful.libfaketime()
    except Exception as e:  # noqa: BLE001
        pytest.skip(str(e))


def at_clock(clock: str) -> dict[str, str]:
    """Environment for a process whose wall clock starts at `clock` ("2000-01-01 00:00:00")
    and runs from there: libfaketime preloaded, as the faithful board does. Not the
    `faketime` wrapper: it names a semaphore after its own pid, and one left by a killed
    wrapper makes a later one with that pid refuse to start ("sem_open: File exists")."""
    from host_tools.vboard import faithful
    try:
        lib = faithful.libfaketime()
    except Exception as e:  # noqa: BLE001
        pytest.skip(str(e))
    return {"LD_PRELOAD": lib, "FAKETIME": "@" + clock}


def content(n: int, seed: int = 1) -> bytes:
    import random
    return random.Random(seed).randbytes(n)


# -- firmware as the board runs it ---------------------------------------------------------
_fw_cache: dict[str, tuple[Path, str]] = {}


def firmware(tmp_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(folder holding phone/*.mpy, heap). Falls back to the sources with a larger heap when
    .mpy cannot be built here (compiling inside a 96K heap measures the compiler)."""
    if "fw" in _fw_cache:
        return _fw_cache["fw"]
    try:
        _fw_cache["fw"] = (fwbuild.compiled(), HEAP)
    except Exception:  # noqa: BLE001 - no mpy-cross: run the sources
        _fw_cache["fw"] = (FIRMWARE, "256K")
    return _fw_cache["fw"]


@dataclass
class ClientRun:
    result: Event
    events: list[Event]
    output: str
    returncode: int

    def names(self) -> list[str]:
        return [e.ev for e in self.events]

    def first(self, name: str) -> Event:
        for e in self.events:
            if e.ev == name:
                return e
        raise AssertionError(f"no {name!r} event in:\n{self.output}")

    def all(self, name: str) -> list[Event]:
        return [e for e in self.events if e.ev == name]


def run_client(fw: tuple[Path, str], args: dict[str, Any], ns: netns.Namespace | None = None,
               timeout: float = 60) -> ClientRun:
    """netclient.py with `args`, inside `ns` (or here, for loopback runs)."""
    folder, heap = fw
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="netclient-", delete=False) as f:
        json.dump(args, f)
    try:
        return _run_client(folder, heap, f.name, ns, timeout)
    finally:
        os.unlink(f.name)


def _run_client(folder: Path, heap: str, argfile: str, ns: netns.Namespace | None,
                timeout: float) -> ClientRun:
    cmd = micropython.command([str(NETCLIENT), argfile], heap=heap)
    env = fwbuild.environ()
    env["MICROPYPATH"] = ":".join([".frozen", str(folder)])
    if ns is not None:
        cmd = ns.argv(cmd)
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    reader = EventReader()
    reader.feed(p.stdout)
    reader.flush()
    output = p.stdout + p.stderr
    results = [e for e in reader.events if e.ev == "result"]
    if not results:
        raise AssertionError(f"netclient gave no result (exit {p.returncode}):\n{output}")
    return ClientRun(results[-1], reader.events, output, p.returncode)


# -- the namespace pair --------------------------------------------------------------------------
@dataclass
class Pair:
    lab: netns.NamespaceSet
    phone: netns.Namespace
    srv: netns.Namespace
    mac: str
    dev: str = "eth0"


@contextlib.contextmanager
def pair(tag: str, phone_addr: str | None = None, dhcp_client: bool = False) -> Iterator[Pair]:
    """Phone and server namespaces joined by veth (eth0 on both sides). The server has
    192.0.2.1/24 on eth0 plus 192.0.2.3 and 192.0.2.4 on lo (nothing listens there until a
    test starts something). Everything is deleted afterwards, whatever happens."""
    skip_without_netns()
    netns.sweep_stale()
    with netns.NamespaceSet(tag) as lab:
        phone, srv = lab.namespace("phone"), lab.namespace("srv")
        lab.veth(phone, srv, a_addr=phone_addr, b_addr=f"{SRV_IP}/24", a_name="eth0",
                 b_name="eth0")
        srv.add_addr("lo", f"{ALT_IP}/32")
        srv.add_addr("lo", f"{DOWN_IP}/32")
        if dhcp_client:
            phone.prepare_dhcp_client("eth0")
        yield Pair(lab, phone, srv, phone.mac("eth0"))


def mac_hex(mac: str) -> str:
    return mac.replace(":", "").upper()


def no_namespaces_left() -> bool:
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    mine = f"{netns.PREFIX}{os.getpid()}-"
    return not any(line.startswith(mine) for line in r.stdout.splitlines())

def default_signals() -> None:
    """SIGINT and SIGHUP as a terminal gives them: a suite started in the background (`cmd &`,
    nohup) passes them on ignored, and a run rightly leaves an ignored signal ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
