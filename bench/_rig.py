"""One lab and one virtual board running the agent, driven step by step by the benchmarks
(failover, rehome, fault_matrix, soak), plus the few helpers they share: running workers in
parallel processes, statistics, and the stamps of events.

    with Rig(workdir, RigSpec(keepalive=30, settings={"monitor_s": 1})) as rig:
        rig.settled(rig.booted, 60)
        t_cut = rig.cut("blackhole")
        reg = rig.wait("registered:srst", t_cut, 40)      # runner.Stamped: .host, .event
        rig.restore()

Times are host `time.monotonic()` stamps taken when a board line arrived (runner.Tap), so a
figure "from the WAN cut" is measured from the moment the fault was in force (the lab call
returned) to the moment the board said so on its console.
"""
from __future__ import annotations

import bisect
import hashlib
import json
import math
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from host_tools.scenario import runner
from host_tools.scenario.metrics import Stamped, matches

BENCH_TMP = Path(os.environ.get("BENCH_TMP", tempfile.gettempdir()))   # BENCH_KEEP=1 keeps them


class RigError(RuntimeError):
    """A wait that timed out, or a board that stopped answering: the run is not counted."""


@dataclass
class RigSpec:
    keepalive: int | None = None            # call manager keepalive (RegisterAck), seconds
    secondary_keepalive: int | None = None  # the standby link's, seconds
    connection_monitor: int | None = None   # connectionMonitorDuration in the config, seconds
    short_timers: bool = False              # the lab's demo timers (and their agent settings)
    settings: dict[str, Any] = field(default_factory=dict)   # settings.json overrides
    heap: str = runner.DEFAULT_HEAP
    tftp: str = "auto"
    mode: str = "auto"
    board: str = "virtual"                  # or "virtual:PROFILE": the ESP32-faithful board
    protocol: str = "sccp"                  # or "sip": a SIP phone against the lab's Kamailio

    @property
    def faithful(self) -> str | None:
        from host_tools.vboard import faithful
        return self.board if faithful.is_faithful(self.board) else None

    @property
    def limited(self) -> bool:
        """A board with room for one TLS session (profile `limited`): no standby link."""
        if not self.faithful:
            return False
        from host_tools import BOARDS
        from host_tools.vboard import faithful
        prof = json.loads((BOARDS / f"{faithful.profile_name(self.faithful)}.json").read_text())
        return bool(prof.get("limited"))


class Rig:
    def __init__(self, workdir: Path, spec: RigSpec, cleanup: bool = True) -> None:
        self.workdir = Path(workdir)
        self.spec = spec
        self.cleanup = cleanup and not os.environ.get("BENCH_KEEP")
        self.tap = runner.Tap(on_event=self._on_event)
        self.cpu_marks: dict[str, tuple[float, int]] = {}  # event -> (host time, cpu_ns)
        self.lab: Any = None
        self.board: Any = None
        self.folder = self.workdir / "board"
        self.booted = 0.0                   # host time the board was started
        self.idle_cpu: float | None = None  # the board's CPU at rest, ns/s (measure_idle_cpu)
        self.restore_began = 0.0            # host time the last restore() began
        self.cut_began = 0.0                # host time the last cut() began

    # -- life cycle ------------------------------------------------------------------------
    def __enter__(self) -> "Rig":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, boot: bool = True) -> "Rig":
        from host_tools.lab.lab import Lab
        s = self.spec
        self.workdir.mkdir(parents=True, exist_ok=True)
        kw: dict[str, Any] = {"short_timers": s.short_timers, "tftp": s.tftp,
                              "protocol": s.protocol}
        for k in ("keepalive", "secondary_keepalive", "connection_monitor"):
            if getattr(s, k) is not None:
                kw[k] = getattr(s, k)
        self.lab = Lab(self.workdir / "lab", mode=s.mode, **kw)
        try:
            self.lab.start()
            profile = None
            if s.faithful:
                from host_tools import BOARDS
                from host_tools.vboard import faithful
                profile = BOARDS / f"{faithful.profile_name(s.faithful)}.json"
            self.lab.prepare_board_folder(self.folder, profile=profile)
            path = self.folder / "settings.json"
            cur = json.loads(path.read_text()) if path.exists() else {}
            cur.update(s.settings)
            path.write_text(json.dumps(cur, indent=2) + "\n")
            runner.install_firmware(self.folder, self.workdir / "build")
            if boot:
                self.boot()
        except BaseException:
            self.stop()
            raise
        return self

    def boot(self) -> float:
        from host_tools.vboard import VirtualBoard
        self.board = VirtualBoard(self.folder, heap=self.spec.heap, pty=True,
                                  prefix=self.lab.phone_prefix(), env=self.lab.phone_env(),
                                  on_output=self.tap.feed, board=self.spec.faithful)
        self.booted = time.monotonic()
        self.board.start()
        return self.booted

    def stop(self) -> None:
        if self.board is not None:
            try:
                self.board.stop()
            finally:
                self.board = None
        if self.lab is not None:
            try:
                self.lab.stop()
            finally:
                self.lab = None
                if self.cleanup:
                    shutil.rmtree(self.workdir, ignore_errors=True)

    # -- events ----------------------------------------------------------------------------
    def _on_event(self, s: Stamped) -> None:
        """The interpreter's CPU as the loss is noticed and as it registers with the SRST
        router (faithful boards, once idle_cpu is known): the register step's CPU
        (failover_cycle), read as its events arrive rather than after a wait returns."""
        if self.idle_cpu is None:
            return
        ev = s.event.ev
        if ev == "primary_lost" or (ev == "registered" and s.event.get("link") == "srst"):
            cpu = self.cpu_ns()
            if cpu is not None:
                self.cpu_marks[ev] = (s.host, cpu)

    def wait(self, spec: str, since: float, timeout: float) -> Stamped:
        return self.wait_for(lambda e: matches(spec, e), since, timeout, repr(spec))

    def settled(self, since: float, timeout: float) -> Stamped:
        """Serving the call manager and ready for the next fault: the standby link up beside
        it, or on a limited board (one TLS session, no standby) registered with it."""
        if not self.spec.limited:
            # after a boot from the store the standby opens beside the first registration
            # (phone.bootrace) and may be up before it: look from that boot on, as long as
            # no failover or re-home has come since (a standby reopened after them counts)
            start = since
            boots = [b for b in self.since(0.0, "boot") if b.host <= since]
            if boots and not any(self.since(boots[-1].host, x)
                                 for x in ("primary_lost", "rehomed", "link_down:srst")):
                start = boots[-1].host
            return self.wait("standby_up", start, timeout)
        reg = self.wait_for(lambda e: e.ev == "rehomed" or (
            e.ev == "registered" and e.get("link") == "primary"), since, timeout,
            "registered with the call manager")
        if reg.event.ev == "registered":          # PRIMARY is said right after it
            self.wait_state("PRIMARY", reg.host, 10)
        return reg

    def wait_any(self, specs: Sequence[str], since: float, timeout: float) -> Stamped:
        return self.wait_for(lambda e: any(matches(x, e) for x in specs), since, timeout,
                             f"any of {list(specs)}")

    def wait_state(self, state: str, since: float, timeout: float) -> Stamped:
        return self.wait_for(lambda e: e.ev == "state" and e.get("state") == state, since,
                             timeout, f"state {state}")

    def wait_for(self, pred: Callable[[Any], bool], since: float, timeout: float,
                 what: str = "event") -> Stamped:
        end = time.monotonic() + timeout
        with self.tap.cv:
            while True:
                evs = self.tap.events      # in arrival order: start at the first >= since
                for s in evs[bisect.bisect_left(evs, since, key=lambda x: x.host):]:
                    if pred(s.event):
                        return s
                left = end - time.monotonic()
                if left <= 0:
                    raise RigError(f"no {what} within {timeout:.0f} s (last events: {self.tail()})")
                self.tap.cv.wait(min(left, 0.5))

    def since(self, t: float, spec: str | None = None) -> list[Stamped]:
        with self.tap.cv:
            evs = self.tap.events
            return [s for s in evs[bisect.bisect_left(evs, t, key=lambda x: x.host):]
                    if spec is None or matches(spec, s.event)]

    def state(self) -> str | None:
        with self.tap.cv:
            for s in reversed(self.tap.events):
                if s.event.ev == "state":
                    return s.event.get("state")
        return None

    def save_events(self, path: Path) -> None:
        """The board's events so far, one JSON line each with the host time it arrived."""
        with self.tap.cv:
            evs = list(self.tap.events)
        with open(path, "w") as f:
            for s in evs:
                f.write(json.dumps({"host": round(s.host, 3), "ev": s.event.ev,
                                    **s.event.fields}) + "\n")

    def tail(self, n: int = 6) -> str:
        with self.tap.cv:
            evs = self.tap.events[-n:]
        return ", ".join(f"{s.event.ev}{_brief(s.event.fields)}" for s in evs) or "none"

    # -- faults ----------------------------------------------------------------------------
    def cut(self, kind: str) -> float:
        """Cut the WAN; returns the host time the fault was in force. `cut_began` keeps the
        time the call began: a fault that takes a while to put in place (a Kamailio stopped)
        is seen by the phone before the call returns, so waits for its effects look from
        there."""
        self.cut_began = time.monotonic()
        return self.lab.wan_cut(kind)

    def restore(self) -> float:
        """Restore the WAN; returns the host time it was back. `restore_began` keeps the time
        the call began: a phone retrying fast may reach the call manager while the lab is
        still lifting the fault, so a wait for what the restore causes looks from there."""
        self.restore_began = time.monotonic()
        return self.lab.wan_restore()

    def reboot(self) -> float:
        t = time.monotonic()
        self.board.reset()
        return t

    def cpu_ns(self) -> int | None:
        """CPU time the board's interpreter has used so far (every thread, /proc schedstat,
        ns), or None without one."""
        pid = self.board.pid if self.board is not None else None
        if pid is None:
            return None
        total = 0
        for f in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            try:
                total += int(f.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass
        return total

    def measure_idle_cpu(self, seconds: float = 5.0) -> float | None:
        """The board's CPU use at rest (ns per second) over `seconds`, kept as idle_cpu."""
        c0, t0 = self.cpu_ns(), time.monotonic()
        time.sleep(seconds)
        c1 = self.cpu_ns()
        self.idle_cpu = None if c0 is None or c1 is None else (c1 - c0) / (time.monotonic() - t0)
        return self.idle_cpu

    def speed_factor(self) -> float | None:
        """An ESP32-faithful board's slowdown (its CPU quota's period / quota), else None."""
        if not self.spec.faithful:
            return None
        from host_tools import BOARDS
        from host_tools.vboard import cpuquota, faithful
        prof = json.loads((BOARDS / f"{faithful.profile_name(self.spec.faithful)}.json").read_text())
        return cpuquota.quota_for(cpuquota.profile_for_board(prof)).factor

    def store_hashes(self) -> dict[str, str]:
        """SHA-256 of every file in the board's store folder (state/)."""
        root = self.folder / "state"
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}


def _brief(fields: dict) -> str:
    keys = ("state", "link", "reason")
    got = [f"{k}={fields[k]}" for k in keys if k in fields]
    return f"({', '.join(got)})" if got else ""


def sleep_until(t: float) -> None:
    while (left := t - time.monotonic()) > 0:
        time.sleep(min(left, 0.2))


def sleep_until_wall(t: float) -> None:
    """Until time.time() reaches t: workers in other processes agree on it."""
    while (left := t - time.time()) > 0:
        time.sleep(min(left, 0.2))


# The longest a lab of parallel_in_step() waits for the others' boots beyond start_at: an
# ESP32-faithful board boots at the board's speed (~1 min; the series allow it 180 s)
STEP_WAIT_S = 240.0


def arrive(task: Any) -> None:
    """Count `task` as arrived at its parallel_in_step() barrier (once booted, or failed)."""
    barrier = getattr(task, "barrier", None)
    if barrier and not getattr(task, "arrived", False):
        task.arrived = True
        (Path(barrier[0]) / f"{os.getpid()}-{id(task)}").touch()


def wait_in_step(task: Any) -> None:
    """A lab of parallel_in_step() is booted: wait until every lab has booted (each arrives
    in the shared folder), and not before start_at. start_at alone is a guess at how long
    the labs take to set up and boot (46 labs: ~40 s of both cores here; the ESP32-faithful
    boards boot at the board's speed); a lab measuring while others still set up measures
    their load. A lab that never boots is waited for up to STEP_WAIT_S."""
    barrier = getattr(task, "barrier", None)
    if barrier:
        folder, n = Path(barrier[0]), barrier[1]
        arrive(task)
        end = task.start_at + STEP_WAIT_S
        while len(list(folder.iterdir())) < n and time.time() < end:
            time.sleep(0.2)
    sleep_until_wall(task.start_at)



def script_records(cmd: Sequence[str], quota: Any, what: str) -> list[dict]:
    """Run a MicroPython bench script that prints "ready", waits for "go" on stdin, then
    prints one JSON record per line until one with "done": the records. With `quota` (a
    host_tools.vboard.cpuquota.Quota) the process runs under it from "go" on, so its
    start-up is not measured at ESP32 speed."""
    from host_tools import fwbuild
    from host_tools.vboard import cpuquota
    with cpuquota.ready_go(list(cmd), quota, lambda said: RuntimeError(f"{what} script: {said}"),
                           env=fwbuild.environ()) as stdout:
        out = []
        for line in stdout:
            rec = json.loads(line)
            if rec.get("done"):
                break
            out.append(rec)
        return out

def workdir(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"bench-{name}-", dir=BENCH_TMP))


# -- parallel workers ------------------------------------------------------------------------

def jobs_default(n: int) -> int:
    """How many labs run at once: BENCH_JOBS, else all of them (they mostly wait on timers)."""
    env = os.environ.get("BENCH_JOBS")
    return max(1, int(env)) if env else max(1, n)


def parallel(fn: Callable[[Any], dict], tasks: Iterable[Any],
             jobs: int | None = None) -> list[dict]:
    """fn(task) for every task, each in its own process (its own namespaces, its own GIL),
    results in task order. A worker that raises gives {"error": ...} instead of a result."""
    tasks = list(tasks)
    if not tasks:
        return []
    n = jobs or jobs_default(len(tasks))
    if n == 1:
        return [_guard(fn, t) for t in tasks]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(n, len(tasks)), mp_context=ctx) as pool:
        futs = [pool.submit(_guard, fn, t) for t in tasks]
        out = []
        for t, f in zip(tasks, futs):
            try:
                out.append(f.result())
            except Exception as e:  # the worker process died (BrokenProcessPool)
                out.append({"error": f"worker died: {type(e).__name__}: {e}", "task": repr(t)})
        return out


def parallel_in_step(fn: Callable[[Any], dict], tasks: list[Any], lead_s: float) -> list[dict]:
    """parallel() for tasks with a `start_at`: all set to one wall time, lead_s plus 0.7 s per
    lab from now, and a shared folder where each arrives once booted (wait_in_step): their
    measurements begin together, once every lab has booted."""
    start_at = time.time() + lead_s + 0.7 * len(tasks)
    at_once = min(jobs_default(len(tasks)), len(tasks))     # BENCH_JOBS: the first wave
    with tempfile.TemporaryDirectory(prefix="bench-step-") as folder:
        for t in tasks:
            t.start_at = start_at
            t.barrier = (folder, at_once)
        return parallel(fn, tasks)


def _guard(fn: Callable[[Any], dict], task: Any) -> dict:
    try:
        return fn(task)
    except Exception as e:  # a broken worker must not lose the others' figures
        arrive(task)        # nor keep them waiting for its boot
        return {"error": f"{type(e).__name__}: {e}", "task": repr(task)}


def revision() -> str:
    """The commit the figures were measured at, '+dirty' when firmware/ had local changes."""
    import subprocess
    from host_tools import ROOT
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                             capture_output=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "firmware"], cwd=ROOT,
                               text=True, capture_output=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev or "unknown") + ("+dirty" if dirty else "")


def boards(env: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """The faithful boards a benchmark runs on: `default`, or those named (comma-separated)
    in the environment variable `env`; "none" there skips them."""
    names = os.environ.get(env)
    if names is None:
        return default
    return tuple(b.strip() for b in names.split(",") if b.strip() and b.strip() != "none")


def board_label(board: str) -> str:
    """A board as a result row names it: the profile of a virtual board, else host speed."""
    return board.split(":", 1)[1] if ":" in board else "host speed"

# -- a series of cut/failover/re-home cycles (bench/failover.py, bench/limited.py) -----------

def cycles(rig: Rig, s: Any, one: Callable[[Rig, Any], dict],
           back: Callable[[float], object]) -> tuple[list[dict], list[str], list[float]]:
    """The measured part of a series `s`: wait for s.start_at, then s.runs cycles of
    one(rig, s), each after a random pause in s.spacing (seeded by s.seed), or with s.phases
    at its fraction of the phone's probe cycle (after_keepalive()). A cycle that fails
    is an error: the WAN is restored, and back(t) must see the phone back since the restore
    at t (or raise RigError, which ends the series). Returns the runs, the errors and the
    load average before and after."""
    rng = random.Random(s.seed)
    runs: list[dict] = []
    errors: list[str] = []
    wait_in_step(s)
    load0 = os.getloadavg()[0]
    phases = getattr(s, "phases", None)
    for i in range(s.runs):
        if phases:
            try:
                if getattr(s, "protocol", "sccp") == "sip":
                    after_registered(rig, phases[i], s.cycle_s)
                else:
                    after_keepalive(rig, phases[i], s.cycle_s)
            except RigError as e:
                errors.append(str(e))
                continue
        else:
            time.sleep(rng.uniform(*s.spacing))
        try:
            runs.append(one(rig, s))
        except RigError as e:
            errors.append(str(e))
            try:
                back(rig.restore())
            except RigError:
                break
    return runs, errors, [round(load0, 2), round(os.getloadavg()[0], 2)]


def step_cpu(rig: Rig) -> dict:
    """The CPU of the register step of the last cut (the loss noticed -> registered: closing
    the lost session and the register dialogue) beyond the board's rest, and what it makes
    at the board's speed: on an ESP32-faithful board a step shorter than one quota slice
    (1 ms of host CPU) runs at host speed, so its wall time understates an ESP32
    (docs/vboard.md). Empty without both marks of this cut or the board's rest."""
    a, b = rig.cpu_marks.get("primary_lost"), rig.cpu_marks.get("registered")
    if not (a and b and rig.idle_cpu is not None and rig.cut_began <= a[0] <= b[0]):
        return {}
    cpu_ms = max(0.0, (b[1] - a[1]) - rig.idle_cpu * (b[0] - a[0])) / 1e6
    out = {"register_cpu_ms": round(cpu_ms, 3)}
    factor = rig.speed_factor()
    if factor:
        out["register_at_speed_ms"] = round(cpu_ms * factor)
    return out


def failover_cycle(rig: Rig, kind: str, keepalive: int, standby: bool,
                   board: str) -> tuple[dict, list]:
    """Cut the call manager's WAN (`kind`), time the failover to the SRST router, restore the
    WAN and time the re-home; with `standby`, wait for the standby link again. Returns the
    figures and the primary_lost events of the cut."""
    t_cut = rig.cut(kind)
    reg = rig.wait("registered:srst", rig.cut_began, keepalive + 30.0)
    lost = rig.since(rig.cut_began, "primary_lost")
    r = {"failover_ms": max(0, round((reg.host - t_cut) * 1000)),
         "detect_ms": max(0, round((lost[0].host - t_cut) * 1000)) if lost else None,
         "step_ms": reg.event.get("failover_ms"),          # loss noticed -> registered
         # Register -> registered: the whole dialogue (SCCP: through RegisterAvailableLines;
         # SIP: REGISTER, 401, REGISTER, 200 OK), timed by the board
         "register_ms": reg.event.get("register_ms"),
         "over_standby": bool(reg.event.get("over_standby"))}
    r.update(step_cpu(rig))
    time.sleep(0.3)
    t_back = rig.restore()
    rh = rig.wait("rehomed", t_back, 60)
    r["rehome_ms"] = round((rh.host - t_back) * 1000)
    if standby:
        rig.wait("standby_up", rh.host, 60 if board != "virtual" else 30)
    return r, lost

# -- cuts at chosen points of the probe cycle (bench/probe_curve.py, failover, limited) -------

def cm_counts(rig: Rig, since: float | None = None) -> tuple[int, int]:
    """(messages, KeepAlives) the lab's call manager has received from the phone (the
    simulator's own count, host_tools.lab.perphone; SCCP labs): over the sessions the phone
    opened from host time `since` on, else over its newest open session. Older sessions are left
    out: a session the phone gave up on during a cut still receives what TCP retransmits
    once the path is back, a KeepAlive that is not the probe rule's."""
    from host_tools.lab import perphone
    origin = since if since is not None else time.monotonic()
    view = rig.lab.topology.hq.call(perphone.view, rig.lab.callmanager, origin)
    sessions = [x for k, p in view["phones"].items() if k.startswith("SEP")
                for x in p["sessions"]]
    if since is not None:
        sessions = [x for x in sessions if x["at"] >= 0]
    elif sessions:
        live = [x for x in sessions if not x["closed"]] or sessions
        sessions = [max(live, key=lambda x: x["sid"])]
    return (sum(x["messages"] for x in sessions), sum(x["keepalives"] for x in sessions))


def next_keepalive(rig: Rig, timeout: float, since: float | None = None) -> float:
    """The host time the call manager's KeepAlive count (cm_counts) next went up, polled
    every 20 ms."""
    n0 = cm_counts(rig, since)[1]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        time.sleep(0.02)
        if cm_counts(rig, since)[1] > n0:
            return time.monotonic()
    raise RigError(f"no KeepAlive reached the call manager within {timeout:.0f} s")


def after_keepalive(rig: Rig, fraction: float, cycle_s: float) -> None:
    """Return `fraction` of the phone's probe cycle after a KeepAlive reached the call
    manager: a cut then waits (1 - fraction) of the cycle for the next probe."""
    t = next_keepalive(rig, cycle_s + 10)
    sleep_until(t + fraction * cycle_s)


def after_registered(rig: Rig, fraction: float, cycle_s: float) -> None:
    """For a SIP phone (Kamailio keeps no count of CRLF pings): its probe cycle starts at its
    last registration with the call manager (the 200 OK is the last thing it heard), and
    repeats every cycle; return at `fraction` of the next cycle start still ahead."""
    regs = rig.since(0.0, "registered:primary")
    if not regs:
        raise RigError("no registration with the call manager to anchor the cut on")
    t = regs[-1].host + fraction * cycle_s
    now = time.monotonic()
    if t < now + 0.05:
        t += math.ceil((now + 0.05 - t) / cycle_s) * cycle_s
    sleep_until(t)


def probe_cycle_s(keepalive_s: int, settings: dict[str, Any], board: str) -> float:
    """The KeepAlive period of a registered, silent phone: the probe rule's probe_after_ms
    (settings.json, else the board profile's settings, else the firmware default) or the
    keepalive, whichever is shorter."""
    p = settings.get("probe_after_ms")
    if p is None and ":" in board:
        from host_tools import BOARDS
        from host_tools.vboard import faithful
        prof = json.loads((BOARDS / f"{faithful.profile_name(board)}.json").read_text())
        p = prof.get("settings", {}).get("probe_after_ms")
    if p is None:
        import host_tools.fw  # noqa: F401 - puts firmware/ on sys.path
        from phone.settings import DEFAULTS  # type: ignore[import-not-found]
        p = DEFAULTS["probe_after_ms"]
    return min(float(keepalive_s), p / 1000) if p else float(keepalive_s)


def spread_phases(series: Sequence[Any], seed: int = 16) -> None:
    """Give the series of one group (same label: one row of figures) stratified fractions
    of the probe cycle, one per cut, spread evenly over [0, 1) across the group's labs
    (s.phases, s.cycle_s): the group's median is then the cycle's, not a draw of random
    moments. Series with short_timers keep their random spacing."""
    rng = random.Random(seed)
    groups: dict[Any, list[Any]] = {}
    for s in series:
        if getattr(s, "short_timers", False):
            continue
        groups.setdefault((s.label, getattr(s, "keepalive", 30)), []).append(s)
    for group in groups.values():
        n = sum(s.runs for s in group)
        strata = [(k + rng.random()) / n for k in range(n)]
        rng.shuffle(strata)
        at = 0
        for s in group:
            s.phases = strata[at:at + s.runs]
            s.cycle_s = probe_cycle_s(getattr(s, "keepalive", 30), s.settings, s.board)
            at += s.runs

# -- statistics ------------------------------------------------------------------------------

def split(n: int, parts: int) -> list[int]:
    """n runs over `parts` labs, as evenly as can be (no empty lab)."""
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts) if n // parts or i < n]


def stats(values: Sequence[float]) -> dict[str, Any]:
    v = sorted(x for x in values if x is not None)
    if not v:
        return {"n": 0, "median": None, "worst": None, "best": None, "p90": None}
    p90 = v[min(len(v) - 1, int(round(0.9 * (len(v) - 1))))]
    return {"n": len(v), "median": round(statistics.median(v)), "worst": round(v[-1]),
            "best": round(v[0]), "p90": round(p90)}


def load_note(table: list[dict]) -> str:
    """The host's 1-min load average over a benchmark's labs (each series records it at its
    start and end): figures taken on a busy machine say so."""
    loads = [x for t in table for x in t.get("load", []) if x is not None]
    if not loads:
        return "Host load average: not recorded."
    return (f"Host load average (1 min) at the labs' start and end: {min(loads)}-{max(loads)} "
            f"on {os.cpu_count()} cores (every lab of the benchmark, the others of its PLACE "
            f"group and anything else on the machine).")


def sec(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.2f} s"


def ratio(ours_ms: float | None, theirs_ms: float) -> str:
    if not ours_ms:
        return "-"
    return f"{theirs_ms / ours_ms:.1f}x faster"
