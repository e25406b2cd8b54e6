"""One replay run: a namespace pair (phone | servers), the replay DHCP responder and TFTP
servers on the server side, a recorder on the phone's interface, and a fresh virtual board
running the agent, until its first provisioning pass ends.

    run = session.run(plan, ReplayOptions(workdir=Path("out/replay-work")))
    run.events, run.ended, run.dhcp_log, run.tftp_log, run.replay_capture
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import host_tools.fw  # noqa: F401  (firmware/ on sys.path)
from host_tools import pki as labpki
from host_tools.lab import netns
from host_tools.lab.lab import run_folder
from host_tools.lab.recorder import Recorder, RecorderError, capture_tool
from host_tools.lab.topology import Capture
from host_tools.replay import capture as caplib
from host_tools.replay.plan import Plan
from host_tools.replay.servers import DhcpResponder, ReplayTftp
from host_tools.scenario.metrics import Stamped
from host_tools.scenario.runner import DEFAULT_HEAP, Tap, install_firmware
from host_tools.signals import exit_on_signals
from phone.store import PHONE_CERT, PHONE_KEY  # type: ignore[import-not-found]

PHONE_IF = "eth0"
END_EVENTS = ("provisioned", "provision_retry", "provision_failed")


class ReplayError(RuntimeError):
    pass


@dataclass
class ReplayOptions:
    workdir: Path | None = None          # default: a temporary folder, removed afterwards
    heap: str | None = None
    timeout_s: float = 90.0
    until: tuple[str, ...] = END_EVENTS  # the run ends at the first of these board events
    # after the board stopped: let the last packets reach the capture file (dumpcap,
    # through libpcap's TPACKET_V3 ring, only sees packets of a block the kernel has
    # retired, after up to 250 ms; a capture stopped sooner loses them)
    settle_s: float = 1.0
    short_timers: bool = False           # the lab's short agent timers (settings.json)
    identity: Path | None = None         # folder with phone.der + phone.key (or state/...)
    record: Path | None = None           # where the replay's own capture goes
    on_event: Callable[[Stamped], None] | None = None
    keep: bool = False


@dataclass
class ReplayRun:
    plan: Plan
    events: list[Stamped] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    ended: str = "?"                     # the end event, or "timeout"
    started: float = 0.0
    dhcp_log: list[dict[str, Any]] = field(default_factory=list)
    tftp_log: list[dict[str, Any]] = field(default_factory=list)
    unanswered: list[dict[str, Any]] = field(default_factory=list)
    replay_capture: caplib.Analysis | None = None
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def run(plan: Plan, opts: ReplayOptions | None = None) -> ReplayRun:
    opts = opts or ReplayOptions()
    why = netns.unusable_reason()
    if why:
        raise ReplayError(f"a replay needs network namespaces: {why}")
    own = opts.workdir is None
    # a marked private run folder: a killed replay's is swept by the next lab
    work = Path(opts.workdir).resolve() if opts.workdir else run_folder("replay")
    work.mkdir(parents=True, exist_ok=True)
    (work / "plan.json").write_text(json.dumps(plan.to_dict(), indent=2, default=str) + "\n")
    res = ReplayRun(plan)
    undo = exit_on_signals()
    try:
        with netns.NamespaceSet("replay") as nl:
            _session(nl, plan, opts, work, res)
    finally:
        undo()
        if own and not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
    if opts.record is not None and opts.record.exists():
        try:
            res.replay_capture = caplib.analyse(opts.record, mac=plan.mac)
        except (caplib.CaptureError, ValueError) as e:
            res.notes.append(f"the replay's capture could not be read: {e}")
    return res


def _session(nl: netns.NamespaceSet, plan: Plan, opts: ReplayOptions, work: Path, res: ReplayRun) -> None:
    from host_tools.vboard import VirtualBoard

    phone, net = nl.namespace("phone"), nl.namespace("net")
    _network(nl, phone, net, plan)
    dhcp = DhcpResponder(plan.dhcp, net.name, PHONE_IF).start()
    nl.on_close(dhcp.stop)
    tftps = []
    for tp in plan.tftp:
        srv = ReplayTftp(tp, work / "tftp" / tp.address, netns=net.name,
                         log_path=work / f"tftp-{tp.address}.jsonl").start()
        nl.on_close(srv.stop)
        tftps.append(srv)
    rec = _recorder(phone, opts, res)
    folder = work / "board"
    prepare_board(folder, plan, work, opts.identity, opts.short_timers)
    install_firmware(folder, work / "build")
    tap = Tap(opts.on_event)
    res.events, res.console = tap.events, tap.text
    board = VirtualBoard(folder, heap=opts.heap or DEFAULT_HEAP, pty=True,
                         prefix=["ip", "netns", "exec", phone.name],
                         env={"PHONE_MAC": plan.mac, "PHONE_IF": PHONE_IF}, on_output=tap.feed)
    try:
        res.started = time.monotonic()
        board.start()
        res.ended = _wait_end(tap, opts.until, res.started + opts.timeout_s)
    finally:
        board.stop()                  # at once: a second provisioning pass is not compared
        _wait_transfers(tftps, 2.0)
        if rec is not None:
            time.sleep(opts.settle_s)
            try:
                rec.stop()
            except Exception as e:  # noqa: BLE001 - the run's results count more
                res.notes.append(f"recorder: {e}")
        dhcp.stop()
        for srv in tftps:
            srv.stop()
            res.tftp_log += [{"server": srv.host, **e} for e in srv.log]
            res.unanswered += [{"server": srv.host, **e} for e in srv.unanswered]
        res.dhcp_log = list(dhcp.log)
    res.tftp_log.sort(key=lambda e: e.get("time", 0))
    res.unanswered.sort(key=lambda e: e.get("time", 0))


def _network(nl: netns.NamespaceSet, phone: netns.Namespace, net: netns.Namespace, plan: Plan) -> None:
    for ns in (phone, net):
        ns.run(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1"], check=False)
    nl.veth(phone, net, a_name=PHONE_IF, b_name=PHONE_IF)
    phone.ip("link", "set", PHONE_IF, "address", _colon(plan.mac))
    phone.prepare_dhcp_client(PHONE_IF)
    for a in plan.lan_addresses:
        net.add_addr(PHONE_IF, f"{a}/{plan.amap.prefixlen}")
    for a in plan.host_addresses:
        net.add_addr("lo", f"{a}/32")
    if plan.hosts:
        phone.set_hosts(plan.hosts)


def _recorder(phone: netns.Namespace, opts: ReplayOptions, res: ReplayRun) -> Recorder | None:
    if opts.record is None:
        return None
    if capture_tool() is None:
        res.notes.append("no dumpcap/tshark: the replay is not recorded (files from the server log)")
        return None
    try:
        rec = Recorder(Capture(["ip", "netns", "exec", phone.name], PHONE_IF), opts.record).start()
    except RecorderError as e:
        res.notes.append(f"the replay is not recorded: {e}")
        return None
    res.files["replay_pcap"] = str(opts.record)
    return rec


def _wait_end(tap: Tap, names: tuple[str, ...], deadline: float) -> str:
    with tap.cv:
        while True:
            for s in tap.events:
                if s.event.ev in names:
                    return s.event.ev
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            tap.cv.wait(min(left, 0.5))


def _wait_transfers(servers: list[ReplayTftp], timeout: float) -> None:
    """Transfers still running (the board stopped mid-way) end by the servers' own timeouts;
    finished ones are in the log within moments."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and any(s._active for s in servers):
        time.sleep(0.05)


# -- the board's folder ---------------------------------------------------------------------
def prepare_board(folder: Path, plan: Plan, work: Path, identity: Path | None,
                  short_timers: bool) -> Path:
    """The board folder as the lab writes it (host_tools.lab.lab.Lab.prepare_board_folder:
    profile, settings, the phone's identity in the store), for a lab that is never started:
    only its phone identity and TFTP endpoint are filled in."""
    from host_tools.lab.lab import Lab

    lab = Lab(work / "lab", mode="netns", macs=[plan.mac], short_timers=short_timers)
    lab.pki = SimpleNamespace(phones={plan.mac: _identity(plan.mac, identity)})  # type: ignore[assignment]
    lab.mode = "netns"
    first = plan.tftp[0].address if plan.tftp else plan.dhcp.server
    lab.endpoints["tftp"] = (first, 69)
    return lab.prepare_board_folder(folder, plan.mac)


def _identity(mac: str, folder: Path | None) -> Any:
    """phone.der/phone.key from `folder` (or its state/), else a new self-signed phone
    certificate: provisioning does not use it, only the TLS links after it."""
    if folder is not None:
        for d in (folder, folder / "state"):
            if (d / PHONE_CERT).exists() and (d / PHONE_KEY).exists():
                return SimpleNamespace(cert_der=(d / PHONE_CERT).read_bytes(),
                                       key_der=(d / PHONE_KEY).read_bytes())
        raise ReplayError(f"{folder}: no phone.der and phone.key (nor in state/)")
    return labpki.make_identity(f"SEP{mac}", "PHONE", cn=f"SEP{mac}")


def _colon(mac: str) -> str:
    return ":".join(mac[i:i + 2] for i in range(0, 12, 2))
