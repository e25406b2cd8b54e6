"""Runs a scenario: the lab, a board running the agent, the timeline of faults; returns a
report (pinned JSON shape, see report.py)."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from host_tools import deploy
from host_tools import boards as boardlib
from host_tools.events import Event, EventReader
from host_tools.lab import perphone, sipview
from host_tools.scenario import faults
from host_tools.scenario.metrics import Action, Stamped, compute, matches, verdicts
from host_tools.scenario.spec import SIP_NO_RESET, Scenario, Step, for_board

DEFAULT_HEAP = "192K"   # the whole story on the 64-bit unix port, with room (docs/decisions.md)


class RunError(RuntimeError):
    pass


class Tap:
    """Board console -> events stamped with host time; waiters wake on each event."""

    closed = False                        # board handles drop closed sinks

    def __init__(self, on_event: Callable[[Stamped], None] | None = None) -> None:
        self.reader = EventReader()
        self.events: list[Stamped] = []
        self.text: list[str] = []
        self.cv = threading.Condition()
        self.on_event = on_event

    def feed(self, data: bytes) -> None:
        now = time.monotonic()
        items = self.reader.feed(data)
        with self.cv:
            for it in items:
                if isinstance(it, Event):
                    s = Stamped(now, it)
                    self.events.append(s)
                    if self.on_event:
                        self.on_event(s)
                else:
                    self.text.append(it.line)
            self.cv.notify_all()

    def skip(self) -> None:
        """A board handle's reset: the tap keeps every boot (the report spans them)."""

    def wait(self, spec: str, since: float, timeout: float) -> Stamped | None:
        end = time.monotonic() + timeout
        with self.cv:
            while True:
                for s in self.events:
                    if s.host >= since and matches(spec, s.event):
                        return s
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cv.wait(min(left, 0.5))


def install_firmware(folder: Path, workdir: Path) -> None:
    """The firmware as `phonelab deploy` puts it on a board (.mpy for the unix port's format,
    main.py/boot.py as source), written straight into a virtual board's folder."""
    from host_tools import fwbuild
    for item in deploy.build_items(deploy.FIRMWARE, boardlib.load("virtual"), fwbuild.unix_format(),
                                   workdir):
        if item.target == "/board.json":
            continue                      # the lab writes the profile with its overrides
        dest = folder / item.target.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(item.data)


@dataclass
class RunOptions:
    board: str = "virtual"
    workdir: Path | None = None
    tftp_root: Path | None = None         # served in place of the lab's files (Lab tftp_files)
    pki: Path | None = None               # the lab's PKI from this folder (host_tools.pkifolder)
    pcap: Path | None = None
    keylog: Path | None = None
    heap: str | None = None
    mode: str | None = None               # overrides the scenario's [lab] mode
    on_event: Callable[[Stamped], None] | None = None
    on_action: Callable[[Action], None] | None = None
    on_lab: Callable[[Any], None] | None = None   # called with the started Lab
    keep: bool = False                    # keep the workdir
    handle: Any = None                    # a host_tools.hil board handle (HIL runs)
    interface: str | None = None          # bench interface of a real board's lab


@dataclass
class Result:
    scenario: Scenario
    board: str
    mode: str
    events: list[Stamped]
    actions: list[Action]
    metrics: dict[str, Any]
    expectations: list[dict]
    files: dict[str, str] = field(default_factory=dict)
    lab_events: list[dict] = field(default_factory=list)
    servers: dict[str, Any] = field(default_factory=dict)   # host_tools.lab.perphone views
    error: str | None = None
    started: float = 0.0
    ended: float = 0.0
    console: list[str] = field(default_factory=list)   # board output that is not an event

    @property
    def passed(self) -> bool:
        return self.error is None and all(e["passed"] for e in self.expectations)


def run(sc: Scenario, opts: RunOptions | None = None) -> Result:
    """SIGTERM and SIGHUP end the run as an exception would (SIGINT already does): the lab
    stops and the run folder goes. A run killed outright (SIGKILL) is swept by the next lab
    (host_tools.lab.lab.sweep_stale_runs)."""
    from host_tools.signals import exit_on_signals
    undo = exit_on_signals()
    try:
        return _run(sc, opts or RunOptions())
    finally:
        undo()


def _run(sc: Scenario, opts: RunOptions) -> Result:
    from host_tools.vboard import faithful
    if opts.board != "virtual" and not faithful.is_faithful(opts.board) and opts.handle is None:
        from host_tools.hil import handles, specs
        spec_ = specs.parse_all([opts.board])[0]
        h = handles.SerialHandle(spec_, spec_.text, str(spec_.target))
        h.start()
        try:
            h.deploy()
            return run(sc, RunOptions(**{**opts.__dict__, "handle": h}))
        finally:
            h.close()
    if opts.handle is not None:
        return _run_handle(sc, opts)
    from host_tools import BOARDS
    from host_tools.lab.lab import Lab
    from host_tools.vboard import VirtualBoard

    work, own_tmp, mode, lab_kw = _prologue(sc, opts)
    tap = Tap(opts.on_event)
    res = Result(sc, opts.board, "?", tap.events, [], {}, [], console=tap.text)
    actions = res.actions
    board = None
    lab = None
    try:
        with _lab_errors("the lab did not start"):
            lab = Lab(work / "lab", mode=mode, **lab_kw)
            lab.start()
            res.mode = lab.mode
        if opts.on_lab:
            opts.on_lab(lab)
        folder = work / "board"
        vboard_kind = _board_kind(opts.board, sc.board.get("profile"))
        profile = faithful.profile_name(vboard_kind) if vboard_kind else sc.board.get("profile")
        res.scenario = sc = for_board(sc, _limited(profile))
        if vboard_kind:
            res.board = vboard_kind
            if lab.mode != "netns":
                raise RunError(f"{vboard_kind}: the faithful board's network stack needs the "
                               f"namespace lab (run as root); loopback mode has no DHCP")
        lab.prepare_board_folder(folder, profile=BOARDS / f"{profile}.json" if profile else None)
        _merge_settings(folder, sc.settings)
        install_firmware(folder, work / "build")
        heap = opts.heap or sc.board.get("heap") or DEFAULT_HEAP
        board = VirtualBoard(folder, heap=heap, pty=True, prefix=lab.phone_prefix(),
                             env=lab.phone_env(), on_output=tap.feed, board=vboard_kind)
        res.started = t0 = time.monotonic()
        board.start()
        last = _timeline(sc, lab, board, tap, actions, t0, opts.on_action)
        _finish(sc, tap, t0, lab, last)
    except RunError as e:
        res.error = str(e)
    finally:
        res.ended = time.monotonic()
        if board is not None:
            board.stop()
        _lab_failed(res, lab)
        _epilogue(res, lab, opts, work, own_tmp)
    return _conclude(res)


def _limited(profile: str | None) -> bool:
    """A `limited` board profile (one TLS session, no standby link): the scenario is read
    for that kind of board (spec.for_board)."""
    if not profile or profile == "virtual":
        return False
    try:
        return boardlib.load(profile).limited
    except Exception:  # noqa: BLE001 - an unknown profile fails where the board is made
        return False


def _board_kind(board: str, profile: str | None) -> str | None:
    """'virtual:PROFILE' when the run's virtual board is the faithful one: named by --board,
    or by a scenario's [board] profile that is a hardware profile."""
    from host_tools import boards as boardlib
    from host_tools.vboard import faithful
    if faithful.is_faithful(board):
        return board
    if profile and boardlib.load(profile).chip != "unix":
        return f"{faithful.PREFIX}{profile}"
    return None


@contextlib.contextmanager
def _lab_errors(what: str) -> Iterator[None]:
    """Lab, topology, fault and OS errors as a RunError (one line, the run fails)."""
    try:
        yield
    except RunError:
        raise
    except (Exception, TimeoutError) as e:  # noqa: BLE001 - LabError, NetnsError, OSError...
        raise RunError(f"{what}: {e}") from e


def _lab_failed(res: Result, lab: Any) -> None:
    """A lab server that crashed or died by itself fails the run, named first."""
    failures = getattr(lab, "failures", None)
    bad = failures() if callable(failures) else []
    if bad:
        res.error = "; ".join(bad + ([res.error] if res.error else []))


def _run_handle(sc: Scenario, opts: RunOptions) -> Result:
    """The same run on a board handle (real board, labgrid place, or a virtual board the HIL
    plugin made): the lab is built for it and the board provisioned into it."""
    from host_tools.hil import labboard
    h = opts.handle
    work, own_tmp, mode, lab_kw = _prologue(sc, opts)
    mac = labboard.worker_mac(0)
    # One PKI for every scenario on this board: its trust list pins the first SAST it saw, so
    # a new PKI per lab would (rightly) be refused from the second scenario on.
    if "pki" not in lab_kw:
        lab_kw["pki"] = _board_pki(mac)
    tap = Tap(opts.on_event)
    res = Result(sc, h.name, "?", tap.events, [], {}, [], console=tap.text)
    actions = res.actions
    h.attach(tap)
    lab = None
    res.scenario = sc = for_board(sc, _limited(getattr(h, "profile", None)))
    try:
        res.started = t0 = time.monotonic()
        try:
            lab = labboard.start_lab(h, work / "lab", mac, mode,
                                     opts.interface, **lab_kw)
        except labboard.LabSetupError as e:
            raise RunError(str(e)) from e
        res.mode = lab.mode
        if opts.on_lab:
            opts.on_lab(lab)
        last = _timeline(sc, lab, h, tap, actions, t0, opts.on_action)
        _finish(sc, tap, t0, lab, last)
    except RunError as e:
        res.error = str(e)
    finally:
        res.ended = time.monotonic()
        h.close_events(tap)
        _lab_failed(res, lab)
        _epilogue(res, lab, opts, work, own_tmp)
    return _conclude(res)


def _prologue(sc: Scenario, opts: RunOptions) -> tuple[Path, bool, str, dict[str, Any]]:
    """Work folder (a temporary one unless given), lab mode and the Lab options."""
    from host_tools.lab.lab import run_folder
    own_tmp = opts.workdir is None
    work = Path(opts.workdir) if opts.workdir else run_folder(sc.name)
    work.mkdir(parents=True, exist_ok=True)
    lab_kw = dict(sc.lab)
    mode = opts.mode or lab_kw.pop("mode", "auto")
    lab_kw.pop("mode", None)
    if opts.pcap is not None:
        lab_kw["record"] = True
    if opts.pki is not None:
        lab_kw["pki"] = opts.pki
    if opts.tftp_root is not None:
        lab_kw["tftp_files"] = opts.tftp_root
    return work, own_tmp, mode, lab_kw


def _epilogue(res: Result, lab: Any, opts: RunOptions, work: Path, own_tmp: bool) -> None:
    try:
        if lab is not None:
            try:
                res.files.update(_collect(lab, opts, work))
                res.lab_events = _lab_events(lab)
                res.servers = _server_views(lab, res.started)
            finally:
                lab.stop()
    finally:
        if own_tmp and not opts.keep:
            shutil.rmtree(work, ignore_errors=True)


def _conclude(res: Result) -> Result:
    sc = res.scenario
    res.metrics = compute(res.events, res.actions)
    res.metrics["messages_per_min"] = {name: None if v.get("protocol") == "sip"
                                       else perphone.load(v) for name, v in res.servers.items()}
    if any(v.get("protocol") == "sip" for v in res.servers.values()):
        res.metrics["messages_per_min"]["not_applicable"] = sipview.NOT_MEASURED
    res.expectations = verdicts(sc.expect, res.events, res.metrics)
    since = res.actions[-1].host if res.actions else float("-inf")
    if sc.until and res.error is None and not any(
            s.host >= since and matches(sc.until, s.event) for s in res.events):
        res.error = f"the run ended ({sc.timeout:.0f} s timeout) before {sc.until!r}"
    return res


_PKIS: dict[str, Any] = {}


def _board_pki(mac: str) -> Any:
    """The bench's lasting PKI for this phone (out/hil/pki-MAC): a real board keeps its trust
    list across runs, as a phone keeps its cluster's."""
    from host_tools import WORK
    from host_tools import pki as labpki
    if mac not in _PKIS:
        from host_tools.lab.lab import private_folder
        d = private_folder(WORK / "out" / "hil" / f"pki-{mac}")
        try:
            _PKIS[mac] = labpki.load_pki(d)
        except labpki.PkiError:
            _PKIS[mac] = labpki.make_pki(d, phone_macs=[mac])
    return _PKIS[mac]


def _merge_settings(folder: Path, extra: dict[str, Any]) -> None:
    path = folder / "settings.json"
    cur = json.loads(path.read_text()) if path.exists() else {}
    cur.update(extra)
    if cur:
        path.write_text(json.dumps(cur, indent=2) + "\n")


def _timeline(sc: Scenario, lab: Any, board: Any, tap: Tap, actions: list[Action], t0: float,
              on_action: Callable[[Action], None] | None) -> float:
    """The steps in order; returns when the last one was done (t0 without steps)."""
    prev = t0
    for step in sc.timeline:
        if step.after is not None:
            hit = tap.wait(step.after, prev, max(1.0, sc.timeout - (time.monotonic() - t0)))
            if hit is None:
                raise RunError(f"line {step.line}: {step.action} waited for {step.after!r}, "
                               f"which never came")
            due = hit.host + step.delay
        else:
            assert step.at is not None
            due = (prev if step.relative else t0) + step.at + step.delay
        if due > t0 + sc.timeout:
            raise RunError(f"line {step.line}: {step.action} would come after the "
                           f"{sc.timeout:g} s timeout")
        _sleep_until(due)
        act = Action(time.monotonic(), step.action, dict(step.args))
        with _lab_errors(f"line {step.line}: {step.action}"):
            _perform(step, lab, board)
        actions.append(act)
        lab.log("scenario_action", action=step.action, **step.args)
        if on_action:
            on_action(act)
        prev = act.host
    return prev


def _sleep_until(t: float) -> None:
    while True:
        left = t - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.2))


def _perform(step: Step, lab: Any, board: Any) -> None:
    a = step.args
    if step.action == "wan_cut":
        lab.wan_cut(a.get("kind", "blackhole"))
    elif step.action == "wan_restore":
        lab.wan_restore()
    elif step.action == "flap":
        lab.flap(a["period"], a.get("count", 3), a.get("kind", "blackhole"))
    elif step.action == "reboot_phone":
        board.reset()
    elif step.action == "kill":
        lab.kill(a["server"])
    elif step.action == "restart":
        lab.restart(a["server"])
    elif step.action == "hang":
        lab.hang(a["server"], a.get("on", True))
    elif step.action == "replace_file":
        faults.replace_file(lab, a["file"], a["with"])
    elif step.action == "replace_cert":
        faults.replace_cert(lab, a["server"], Path(lab.workdir))
    elif step.action == "tftp_fault":
        faults.tftp_fault(lab, a)
    elif step.action == "send_reset":
        if getattr(lab, "protocol", "sccp") == "sip":    # spec.py refuses it; a HIL lab too
            raise RunError(f"line {step.line}: {SIP_NO_RESET}")
        mac = lab.macs[0]
        sent = lab.topology.hq.run(lab.callmanager.reset_phone(f"SEP{mac}", a.get("kind", 2)), 10)
        if not sent:
            raise RunError(f"line {step.line}: the call manager has no session with SEP{mac}")
    elif step.action == "wait":
        pass
    else:  # spec.py validates actions; this is a programming error
        raise RunError(f"unknown action {step.action}")


def _finish(sc: Scenario, tap: Tap, t0: float, lab: Any = None, last: float | None = None) -> None:
    """The run ends at the `until` event after the last step (`last`; or the timeout), so
    a reboot's own event ends it, not the one before; without one, after `duration`; at once
    when a lab server crashes (the run has failed)."""
    since = t0 if last is None else last
    end = t0 + (sc.timeout if sc.until else min(sc.timeout, sc.duration or 0.0))
    failures = getattr(lab, "failures", None)
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        if sc.until and tap.wait(sc.until, since, min(left, 1.0)) is not None:
            return
        if not sc.until:
            _sleep_until(time.monotonic() + min(left, 1.0))
        if callable(failures) and failures():
            return


def _collect(lab: Any, opts: RunOptions, work: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    try:
        rec = lab.record_stop() if opts.pcap is not None else {}
    except Exception as e:  # a capture that failed must not hide the run's results
        rec = {"error": str(e)}
    pcap = rec.get("pcap") if isinstance(rec, dict) else None
    if opts.pcap is not None and pcap and Path(pcap).exists():
        opts.pcap.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pcap, opts.pcap)
        files["pcap"] = str(opts.pcap)
    kl = lab.keylog_path
    if opts.keylog is not None and kl is not None and Path(kl).exists():
        opts.keylog.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kl, opts.keylog)
        files["keylog"] = str(opts.keylog)
    return files


def _server_views(lab: Any, origin: float) -> dict[str, Any]:
    """What the call manager and the SRST router saw of each phone (host_tools.lab.perphone),
    session times in the report's host_ms; for SIP phones what the Kamailio registrars saw
    (host_tools.lab.sipview); {} for a lab that has no simulators, and a view that could not
    be had is left out (it must not hide the run's results)."""
    topo = getattr(lab, "topology", None)
    out: dict[str, Any] = {}
    sip = getattr(lab, "sip", None)
    if getattr(lab, "protocol", "sccp") == "sip" and sip is not None:
        for name, k in sip.servers.items():      # the phones' servers are the Kamailios
            try:
                out[name] = sipview.view(k)
            except Exception:  # noqa: BLE001 - as below: never hide the run's results
                pass
        return out
    for name, loop in (("callmanager", "hq"), ("srst", "branch")):   # the loop it runs on
        srv = getattr(lab, name, None)
        if srv is None or topo is None:
            continue
        try:
            out[name] = getattr(topo, loop).call(perphone.view, srv, origin)
        except Exception:  # noqa: BLE001 - a stopped loop, a lab torn down meanwhile
            pass
    return out


def _lab_events(lab: Any) -> list[dict]:
    """The lab's own event log (host_tools.lab.eventlog: servers, faults), for the report."""
    snapshot = getattr(getattr(lab, "events", None), "snapshot", None)
    return list(snapshot()) if callable(snapshot) else []


@contextlib.contextmanager
def report_lock(path: Path) -> Iterator[Path]:
    """Hold the report path for one run: a second run of the same scenario (or any run given
    the same --report) is refused at once with RunError instead of overwriting the first's
    report and picture. The lock is an flock on a hidden PATH's-name.lock beside it, removed
    when the run ends (a lock file that was replaced while waiting is locked again)."""
    path = Path(path)
    lock = path.with_name(f".{path.name}.lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunError(f"{path}: cannot create its folder: {e.strerror or e}") from None
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise RunError(f"{path}: cannot lock the report: {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise RunError(f"{path}: cannot lock the report: {e.strerror or e}") from None
            raise RunError(f"{path}: another run{f' (pid {holder})' if holder else ''} is "
                           f"writing this report: wait for it, or give --report") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)                  # the holder removed it as we opened it: again
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)
