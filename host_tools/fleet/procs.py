"""The fleet's MicroPython processes: start (in the phone's namespace when there is one), read
their consoles into a Tracker, measure CPU and memory from /proc, stop."""
from __future__ import annotations

import collections
import os
import resource
import signal
import subprocess
import threading
from pathlib import Path

from host_tools import MPSCRIPTS, fwbuild, micropython
from host_tools.events import Event, EventReader
from host_tools.fleet.spec import ProcSpec
from host_tools.fleet.track import Tracker
from host_tools.lab import nsloop

RUNNER = MPSCRIPTS / "fleet_run.py"
_TICK = os.sysconf("SC_CLK_TCK")


class FleetProc:
    def __init__(self, spec: ProcSpec, *, firmware: Path, heap: int, prefix: list[str],
                 tracker: Tracker, nice: int = 0) -> None:
        self.spec = spec
        self.firmware = firmware
        self.heap = heap
        self.prefix = prefix
        self.tracker = tracker
        self.nice = nice
        self.proc: subprocess.Popen | None = None
        self.text: collections.deque[str] = collections.deque(maxlen=40)
        self._reader: threading.Thread | None = None
        self._cpu = 0.0

    @property
    def index(self) -> int:
        return self.spec.index

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> "FleetProc":
        cmd = self.prefix + micropython.command([str(RUNNER), str(self.spec.folder)], heap=self.heap)
        env = fwbuild.environ()
        env["MICROPYPATH"] = f".frozen:{self.firmware}"
        # spawn: the process gets SIGTERM if this one dies (ip netns exec execs, same pid)
        self.proc = nsloop.spawn(cmd, cwd=str(self.firmware), env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if self.nice:       # before its agents start: it reads its spec first
            try:
                os.setpriority(os.PRIO_PROCESS, self.proc.pid, self.nice)
            except OSError:
                pass        # not allowed (a negative value without root): as this process
        self._reader = threading.Thread(target=self._read, name=f"fleet:p{self.index}", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        reader = EventReader()
        fd = self.proc.stdout.fileno()
        # the console as it came, beside the spec: `--keep DIR` keeps it (each phone's events)
        with open(self.spec.folder / "console.jsonl", "wb") as log:
            while True:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                log.write(data)
                self._feed(reader.feed(data))
        self._feed(reader.flush())

    def _feed(self, items: list) -> None:
        for it in items:
            if isinstance(it, Event):
                self.tracker.add(self.index, it)
            else:
                self.text.append(it.line)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def request_stop(self) -> None:
        """The runner polls for this file: it reports every phone's state and exits."""
        (self.spec.folder / "stop").touch()

    def wait(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 10) -> int | None:
        rc = nsloop.stop_process(self.proc, signal.SIGINT, timeout)
        if self._reader is not None:
            self._reader.join(5)
        return rc

    # -- /proc ---------------------------------------------------------------------------
    def cpu_seconds(self) -> float | None:
        """0 before the start, the last figure read once it has ended."""
        if self.proc is None:
            return 0.0
        if self.alive:
            self._cpu = cpu_seconds(self.pid) or self._cpu
        return self._cpu

    def rss_kb(self) -> dict[str, int]:
        return status_kb(self.pid) if self.alive and self.pid else {}


def cpu_seconds(pid: int | None, tid: int | None = None) -> float | None:
    """utime + stime of a process (or one of its threads), in seconds."""
    if pid is None:
        return None
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def status_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KB."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return out


def open_files_needed(phones: int) -> int:
    """Descriptors one process of a fleet run may hold: the lab's (the simulators' end of
    every phone's sessions, a standby and a registration or probe each, plus the lab's own)
    and each MicroPython process's (its share, fewer)."""
    return 3 * phones + 512


def raise_open_files(need: int) -> dict[str, int]:
    """The soft RLIMIT_NOFILE raised to `need` (at most the hard limit) for this process and
    the fleet processes it starts: 1,024, a common default, ends a fleet near 300 phones.
    Returns the limits before and after; `after` < `need` when the hard limit is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    after = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return {"before": soft, "after": after, "hard": hard, "needed": need}
