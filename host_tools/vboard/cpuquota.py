"""An ESP32's CPU speed for the virtual board's interpreter: a cgroup CFS bandwidth quota.

A process in a group with `quota` microseconds of CPU per `period` runs, when it is busy, at
quota/period of one host core: period/quota is the slowdown factor. The kernel refuses a
quota (and a period) under 1 ms, so a slowdown of N needs a period of N ms: the process runs
1 ms, then waits up to (N - 1) ms. Code that is mostly idle (waiting on a socket) keeps its
latency; a busy stretch is cut in 1 ms slices (docs/vboard.md, "CPU speed").

Both kernels' interfaces are used: cgroup v2 `cpu.max` where the v2 hierarchy has the cpu
controller, else cgroup v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`. Groups are named
phonelab-cpu-HOSTPID-HOSTSTART-N, removed when the process exits (a watcher on its pidfd),
on close(), at exit of this process, and, for a host that was killed, by sweep() at the
next start of any host.

    h = limit(pid, "esp32@160")     # a profile of cpu_profiles.json, a chip, or a factor
    ...
    h.close()                       # idempotent; the process keeps running, unthrottled
"""
from __future__ import annotations

import atexit
import errno
import itertools
import json
import logging
import os
import re
import select
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterator

log = logging.getLogger(__name__)

V1_ROOT = Path("/sys/fs/cgroup/cpu")
V2_ROOTS = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))
PREFIX = "phonelab-cpu-"
MIN_US = 1000            # the kernel's smallest quota and period (min_cfs_quota_period)
MAX_PERIOD_US = 1_000_000
PROFILES = Path(__file__).with_name("cpu_profiles.json")
DEFAULT_MHZ = 160        # the ESP32 port's default clock (ports/esp32 sdkconfig)
_NAME = re.compile(re.escape(PREFIX) + r"(\d+)-(\d+)-\d+$")


class CpuQuotaError(RuntimeError):
    """A quota that cannot be had, with a one-line reason meant for the user."""


@dataclass(frozen=True)
class Quota:
    quota_us: int
    period_us: int

    @property
    def factor(self) -> float:
        return self.period_us / self.quota_us

    @classmethod
    def for_factor(cls, factor: float) -> Quota:
        """The smallest period that gives `factor` with a quota the kernel accepts."""
        if not factor >= 1.0:
            raise CpuQuotaError(f"slowdown factor {factor!r} must be at least 1")
        # The smallest quota gives the shortest period, hence the shortest stall; the
        # period in whole microseconds still sets the factor to 0.1 %.
        period = round(factor * MIN_US)
        if period > MAX_PERIOD_US:
            raise CpuQuotaError(f"slowdown factor {factor:g} needs a period over 1 s")
        return cls(MIN_US, period)


@dataclass(frozen=True)
class Backend:
    kind: str      # "v1" or "v2"
    root: Path     # where groups are made

    def write_quota(self, group: Path, q: Quota) -> None:
        if self.kind == "v2":
            (group / "cpu.max").write_text(f"{q.quota_us} {q.period_us}\n")
        else:  # the period first: a quota is checked against the period in force
            (group / "cpu.cfs_period_us").write_text(f"{q.period_us}\n")
            (group / "cpu.cfs_quota_us").write_text(f"{q.quota_us}\n")

    def read_quota(self, group: Path) -> Quota | None:
        if self.kind == "v2":
            quota, period = (group / "cpu.max").read_text().split()
        else:
            quota = (group / "cpu.cfs_quota_us").read_text().strip()
            period = (group / "cpu.cfs_period_us").read_text().strip()
        if quota in ("max", "-1"):
            return None
        return Quota(int(quota), int(period))


def _v1_reason(root: Path) -> str | None:
    if not (root / "cpu.cfs_quota_us").exists():
        return f"no cgroup v1 cpu controller at {root}"
    if not os.access(root, os.W_OK):
        return f"{root} is not writable" + ("" if os.geteuid() == 0 else " (not root)")
    return None


def _v2_reason(root: Path) -> str | None:
    controllers = root / "cgroup.controllers"
    if not controllers.exists():
        return f"no cgroup v2 hierarchy at {root}"
    if "cpu" not in controllers.read_text().split():
        return f"the cgroup v2 hierarchy at {root} has no cpu controller (it is bound to v1)"
    if not os.access(root, os.W_OK):
        return f"{root} is not writable" + ("" if os.geteuid() == 0 else " (not root)")
    subtree = root / "cgroup.subtree_control"
    if "cpu" not in subtree.read_text().split():
        try:
            subtree.write_text("+cpu\n")
        except OSError as e:
            return f"cannot enable the cpu controller in {subtree}: {e.strerror}"
    return None


def detect(v1_root: Path = V1_ROOT, v2_roots: tuple[Path, ...] = V2_ROOTS) -> Backend:
    """The usable interface, cgroup v2 first; CpuQuotaError naming why neither is."""
    reasons = []
    for root in v2_roots:
        why = _v2_reason(root)
        if why is None:
            return Backend("v2", root)
        reasons.append(why)
    why = _v1_reason(v1_root)
    if why is None:
        return Backend("v1", v1_root)
    reasons.append(why)
    # The v2 mount points overlap (/sys/fs/cgroup is tmpfs when v1 is mounted): say only the
    # reasons that name something that exists, else all.
    real = [r for r in reasons if not r.startswith("no cgroup")] or reasons
    raise CpuQuotaError("no usable CPU quota: " + "; ".join(real))


def _start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b") ", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


_seq = itertools.count(1)
_live: set[Handle] = set()
_live_lock = threading.Lock()
_swept = False


def _remove(group: Path, parent: Path, wait: float = 2.0) -> bool:
    """Move what is left in `group` to `parent`, then remove it. False if it stays."""
    deadline = time.monotonic() + wait
    while True:
        try:
            pids = (group / "cgroup.procs").read_text().split()
        except FileNotFoundError:
            return True
        except OSError:
            pids = []
        for pid in pids:
            try:
                (parent / "cgroup.procs").write_text(pid + "\n")
            except OSError:
                pass  # gone meanwhile
        try:
            group.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                log.warning("cannot remove cgroup %s: %s", group, e.strerror)
                return False
            time.sleep(0.02)  # a task still on its way out


def sweep(backend: Backend | None = None) -> list[Path]:
    """Remove the groups of hosts that are gone (killed before they could); those still
    holding a live process stay. Returns the groups removed."""
    try:
        backend = backend or detect()
    except CpuQuotaError:
        return []
    removed = []
    for group in backend.root.glob(PREFIX + "*"):
        m = _NAME.match(group.name)
        if not m or not group.is_dir():
            continue
        host, start = int(m.group(1)), int(m.group(2))
        if _start_time(host) == start:
            continue  # its host is alive and cleans up itself
        try:
            group.rmdir()  # fails (EBUSY) while a process is in it
        except OSError as e:
            log.debug("leftover cgroup %s kept: %s", group, e.strerror)
        else:
            removed.append(group)
            log.info("removed the leftover cgroup %s", group)
    return removed


class Handle:
    """One group holding one process (and its children). close() removes it."""

    active = True

    def __init__(self, backend: Backend, pid: int, quota: Quota, watch: bool = True) -> None:
        self.backend = backend
        self.pid = pid
        self.quota = quota
        name = f"{PREFIX}{os.getpid()}-{_start_time(os.getpid()) or 0}-{next(_seq)}"
        self.path = backend.root / name
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.path.mkdir()
        except OSError as e:
            raise CpuQuotaError(f"cannot create cgroup {self.path}: {e.strerror}") from e
        try:
            backend.write_quota(self.path, quota)
            (self.path / "cgroup.procs").write_text(f"{pid}\n")
        except OSError as e:
            _remove(self.path, backend.root, wait=0.5)
            if e.errno == errno.ESRCH:
                raise CpuQuotaError(f"process {pid} is gone") from e
            raise CpuQuotaError(f"cannot set the CPU quota in {self.path}: {e.strerror}") from e
        with _live_lock:
            _live.add(self)
        if watch:
            threading.Thread(target=self._watch, name=f"cpuquota-{pid}", daemon=True).start()

    def _watch(self) -> None:
        """Remove the group as soon as the process has exited (reaped or not)."""
        try:
            fd = os.pidfd_open(self.pid)
        except OSError:
            self.close()
            return
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            while not self._closed:
                if poller.poll(500):
                    break
        finally:
            os.close(fd)
        self.close()

    def add(self, pid: int) -> None:
        """Put another process in the group (e.g. the board's next interpreter run)."""
        (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        _remove(self.path, self.backend.root)
        with _live_lock:
            _live.discard(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<cpu quota {self.quota.quota_us}/{self.quota.period_us} us "
                f"({self.quota.factor:g}x) pid {self.pid} {self.backend.kind} {self.path}>")


class Unlimited:
    """What limit() gives when no quota can be had and none is required: runs at host speed."""

    active = False
    closed = True
    path = None

    def __init__(self, pid: int, reason: str) -> None:
        self.pid = pid
        self.reason = reason
        self.quota: Quota | None = None

    def add(self, pid: int) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> Unlimited:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@atexit.register
def _close_all() -> None:
    with _live_lock:
        handles = list(_live)
    for h in handles:
        h.close()


# -- profiles ------------------------------------------------------------------------------
def load_profiles(path: Path = PROFILES) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {"profiles": {}}
    except (OSError, ValueError) as e:
        raise CpuQuotaError(f"cannot read {path}: {e}") from e


def profile_name(chip: str, mhz: int | None = None) -> str:
    return f"{chip}@{mhz or DEFAULT_MHZ}"


def profile_for_board(board: dict) -> str:
    """The CPU profile of a board profile (boards/*.json): its chip at `cpu_mhz` (default
    160 MHz, the ESP32 port's default clock)."""
    return profile_name(str(board.get("chip", "esp32")), board.get("cpu_mhz"))


def quota_for(profile: str, path: Path = PROFILES) -> Quota:
    """The calibrated quota of `profile` ('esp32@160', or a chip alone for its default
    clock); a chip calibrated only by stand-in is named in cpu_profiles.json `aliases`."""
    data = load_profiles(path)
    name = profile if "@" in profile else profile_name(profile)
    name = data.get("aliases", {}).get(name, name)
    entry = data.get("profiles", {}).get(name)
    if not entry or "period_us" not in entry:
        known = ", ".join(sorted(data.get("profiles", {}))) or "none"
        raise CpuQuotaError(f"no calibrated CPU profile {profile!r} (calibrated: {known}; "
                            f"run `python -m host_tools.vboard.cpuquota --calibrate`)")
    return Quota(int(entry["quota_us"]), int(entry["period_us"]))


def limit(pid: int, speed: float | str | Quota, *, required: bool = False,
          backend: Backend | None = None, watch: bool = True) -> Handle | Unlimited:
    """Put `pid` under the quota for `speed`: a slowdown factor, a profile name
    ('esp32@160', 'esp32') or a Quota. Without a usable cgroup interface: CpuQuotaError if
    `required`, else a warning and an Unlimited handle (the process runs at host speed)."""
    global _swept
    quota = speed if isinstance(speed, Quota) else (
        quota_for(speed) if isinstance(speed, str) else Quota.for_factor(float(speed)))
    try:
        backend = backend or detect()
    except CpuQuotaError as e:
        if required:
            raise
        log.warning("%s: the board runs at host speed, not the profile's", e)
        return Unlimited(pid, str(e))
    if not _swept:
        _swept = True
        sweep(backend)
    return Handle(backend, pid, quota, watch=watch)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m host_tools.vboard.cpuquota",
                                description="CPU quota of the virtual board's interpreter")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--calibrate", action="store_true",
                   help="measure this host, find the quota per profile "
                        "(bench/cpu_calibration.py; --help there)")
    g.add_argument("--sweep", action="store_true", help="remove groups left by killed hosts")
    args, rest = p.parse_known_args(argv)
    if args.calibrate:
        # a benchmark program of the repository (bench/ is not part of host_tools): run it
        import subprocess

        from host_tools import INSTALLED, ROOT
        if INSTALLED:
            print("error: --calibrate runs bench/cpu_calibration.py of the repository; "
                  "run it from a checkout", file=sys.stderr)
            return 2
        path = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
        return subprocess.call([sys.executable, "-m", "bench.cpu_calibration", *rest],
                               env={**os.environ, "PYTHONPATH": path})
    if rest:
        p.error("unrecognized arguments: " + " ".join(rest))
    try:
        backend = detect()
    except CpuQuotaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.sweep:
        for g_ in sweep(backend):
            print(f"removed {g_}")
        return 0
    print(f"cgroup {backend.kind} at {backend.root}")
    for name, entry in sorted(load_profiles().get("profiles", {}).items()):
        if "period_us" in entry:
            print(f"  {name}: quota {entry['quota_us']} us / period {entry['period_us']} us "
                  f"({entry['period_us'] / entry['quota_us']:.1f}x)")
    for group in sorted(backend.root.glob(PREFIX + "*")):
        print(f"  group {group.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


@contextmanager
def ready_go(cmd: list[str], quota: float | str | Quota | None, fail: Callable[[str], Exception],
             env: dict[str, str] | None = None) -> Iterator[IO[str]]:
    """Run a script that prints "ready" once loaded, then waits for "go" on stdin: under
    `quota` (when given) from "go" on, so that its start-up is not slowed down to ESP32
    speed. Yields its stdout, text by lines; on leaving, the process is killed if it still
    runs and the quota released. fail(what it said) is raised when it says anything but
    "ready" first."""
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, bufsize=1)
    handle = None
    try:
        assert proc.stdout is not None and proc.stdin is not None
        first = proc.stdout.readline().strip()
        if first != "ready":
            raise fail(first or proc.stdout.read())
        if quota is not None:
            handle = limit(proc.pid, quota, required=True)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        yield proc.stdout
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if handle is not None:
            handle.close()
