"""CPU use over a phase: each fleet process, each lab thread, and the whole machine.

The simulators run in this process, one asyncio loop thread each (`lab:hq` = call manager and,
in loopback mode, the WAN relay; `lab:branch` = SRST router and credentials service), so
per-thread figures from /proc/self/task/<tid>/stat show which one is busy. The machine's
busy time (/proc/stat) minus ours is what other programs took: on a shared machine that is
part of the answer to "where is the bottleneck"."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from host_tools.fleet.procs import cpu_seconds

Probe = Callable[[], float | None]
HOST = "host process (simulators + fleet host)"
_TICK = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float | None:
    """CPU seconds all cores spent outside idle/iowait since boot."""
    try:
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    return (sum(f[:8]) - idle) / _TICK


def lab_probes() -> dict[str, Probe]:
    me = os.getpid()
    probes: dict[str, Probe] = {HOST: lambda: cpu_seconds(me)}
    names = {"lab:hq": "call manager loop (lab:hq thread)",
             "lab:branch": "SRST router loop (lab:branch thread)"}
    for t in threading.enumerate():
        if t.name in names and t.native_id is not None:
            probes[names[t.name]] = lambda tid=t.native_id: cpu_seconds(me, tid)
    return probes


class Window:
    """CPU seconds of each probe between start() and stop(), as a share of one core."""

    def __init__(self, probes: dict[str, Probe]) -> None:
        self.probes = probes
        self.t0 = 0.0
        self.c0: dict[str, float | None] = {}
        self.m0: float | None = None

    def start(self) -> "Window":
        self.t0 = time.monotonic()
        self.c0 = {k: f() for k, f in self.probes.items()}
        self.m0 = machine_busy_seconds()
        return self

    def stop(self) -> dict[str, Any]:
        wall = max(time.monotonic() - self.t0, 1e-6)
        m1 = machine_busy_seconds()
        use: dict[str, float] = {}
        for k, f in self.probes.items():
            a, b = self.c0.get(k), f()
            if a is not None and b is not None:
                use[k] = round((b - a) / wall, 2)
        ours = sum(v for k, v in use.items() if "thread" not in k)   # threads are in HOST
        out: dict[str, Any] = {"seconds": round(wall, 2), "cores_used": use,
                               "fleet_cores": round(ours, 2), "machine_cores": os.cpu_count()}
        if self.m0 is not None and m1 is not None:
            busy = (m1 - self.m0) / wall
            out["machine_busy_cores"] = round(busy, 2)
            out["other_programs_cores"] = round(max(0.0, busy - ours), 2)
        singles = {k: v for k, v in use.items() if k != HOST}
        out["busiest"] = max(singles, key=lambda k: singles[k]) if singles else None
        return out
