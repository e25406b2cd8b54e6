"""`phonelab status`: what the agent on a board is doing, from its own event stream.

The agent has no request channel (its console input is the REPL's), so status is read, not
asked for (docs/decisions.md, "phonelab status reads the event stream"):

1. listen to the console for --listen seconds without resetting anything, and fold the events
   seen into AgentStatus (state, and per link: registered / standby / down, peer, reason);
2. nothing heard: send one CR. A REPL prompt answering means the agent is not running; the
   board is then asked over the raw REPL what is on it (profile, MAC, identity files, deploy);
   no prompt means the agent runs but was quiet (a stable agent emits nothing);
3. --reset restarts the agent (Ctrl-C, soft reset) and follows its boot for --listen seconds
   (default 20 then): the full picture, at the price of a re-registration.
AgentStatus is also what the HIL fixtures use to follow a board.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import host_tools.fw  # noqa: F401  (firmware/ on sys.path)
from host_tools.events import Event, EventReader, render
from phone import store  # type: ignore[import-not-found]

PROBLEMS = {"halted", "provision_failed", "no_identity", "profile_error", "stopped",
            "no_fallback", "ctl_rejected", "config_rejected", "cm_untrusted", "dhcp_failed",
            "agent_error", "agent_crashed", "provision_deadline", "dhcp_lost", "srst_unpinned",
            "reset_ignored"}


@dataclass
class LinkStatus:
    mode: str                      # "registered", "standby", "down"
    host: str | None = None
    port: int | None = None
    cm: str | None = None
    reason: str | None = None
    t: int = 0


@dataclass
class AgentStatus:
    state: str | None = None
    device: str | None = None
    board: str | None = None
    links: dict[str, LinkStatus] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    last_t: int | None = None
    events: int = 0

    def update(self, e: Event) -> None:
        self.events += 1
        self.last_t = e.t
        name, f = e.ev, e.fields
        if name == "boot":
            self.links.clear()
            self.problems.clear()
            self.device = f.get("device", self.device)
            self.board = f.get("board", self.board)
        elif name == "state":
            self.state = f.get("state")
        elif name == "registered":
            self.links[f.get("link", "primary")] = LinkStatus("registered", f.get("host"),
                                                              f.get("port"), f.get("cm"), t=e.t)
        elif name == "standby_up":
            self.links["srst"] = LinkStatus("standby", f.get("host"), f.get("port"), t=e.t)
        elif name in ("link_down", "standby_failed", "register_failed"):
            role = f.get("link", "srst")
            self.links[role] = LinkStatus("down", f.get("host"), f.get("port"), f.get("cm"),
                                          str(f.get("reason")), t=e.t)
        elif name == "primary_lost":
            old = self.links.get("primary", LinkStatus("down"))
            self.links["primary"] = LinkStatus("down", old.host, old.port, old.cm,
                                               str(f.get("reason")), e.t)
        elif name == "rehomed":
            if "srst" in self.links and self.links["srst"].mode == "registered":
                self.links["srst"].mode = "standby"
        if name in PROBLEMS:
            self.problems.append(f"{name}: {f.get('reason', f.get('error', ''))}".rstrip(": "))

    def lines(self) -> list[str]:
        out = [f"state: {self.state or 'unknown'}"
               + (f"   ({self.device} on {self.board})" if self.device else "")]
        for role in sorted(self.links):
            ln = self.links[role]
            peer = f" {ln.host}:{ln.port}" if ln.host else ""
            extra = f" cm={ln.cm}" if ln.cm else ""
            why = f" ({ln.reason})" if ln.reason else ""
            out.append(f"  {role:<8} {ln.mode:<10}{peer}{extra}{why}   at {ln.t / 1000:.3f}s")
        out += [f"  problem: {p}" for p in self.problems[-5:]]
        return out


@dataclass
class StatusReport:
    port: str
    running: bool | None          # None: could not tell
    status: AgentStatus
    board: dict | None = None     # what the raw REPL said when the agent was not running
    note: str = ""


# -- reading the board ----------------------------------------------------------------------------
# the store's folder and files, by phone.store's names
_BOARD_FACTS = """\
import os, json
def _st(p):
    try:
        return os.stat(p)[6]
    except OSError:
        return None
try:
    _b = json.load(open('/board.json'))
except Exception:
    _b = {}
_s = _b.get('store', %r)
print(json.dumps({'board': _b.get('name'), 'mac': _b.get('mac'), 'store': _s,
    'files': dict((n, _st(_s + '/' + n)) for n in %r),
    'deployed': _st('/.deploy.json') is not None, 'main': _st('/main.py') is not None}))
del _st, _b, _s
""" % (store.BASE, (store.PHONE_CERT, store.PHONE_KEY, store.SAST_PIN, store.CTL, store.CONFIG,
                    store.SRST_CERT))


def _open(port: str) -> object:
    import serial
    s = serial.serial_for_url(port, do_not_open=True, baudrate=115200, timeout=0.1,
                              exclusive=True)
    s.dtr = False   # both lines released: no reset through an auto-reset circuit
    s.rts = False
    s.open()
    return s


def _listen(ser: object, reader: EventReader, status: AgentStatus, seconds: float,
            echo: bool) -> bytes:
    raw = bytearray()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        data = ser.read(4096)  # type: ignore[attr-defined]
        if not data:
            continue
        raw += data
        for item in reader.feed(data):
            if isinstance(item, Event):
                status.update(item)
                if echo:
                    print(render(item))
    return bytes(raw)


def board_facts(port: str) -> dict:
    from host_tools.deploy import RawRepl
    with RawRepl(port) as b:
        out = b.exec(_BOARD_FACTS).decode().strip().splitlines()[-1]
    return json.loads(out)


def status(port: str, listen: float = 3.0, reset: bool = False, echo: bool = False,
           facts: bool = True) -> StatusReport:
    reader, st = EventReader(), AgentStatus()
    ser = _open(port)
    try:
        if reset:
            ser.write(b"\x03\x03\x02")  # type: ignore[attr-defined]  # stop, friendly REPL
            time.sleep(0.3)
            ser.write(b"\x04")          # type: ignore[attr-defined]  # soft reset: boot, main
        _listen(ser, reader, st, listen, echo)
        if st.events:
            return StatusReport(port, True, st)
        ser.reset_input_buffer()        # type: ignore[attr-defined]
        ser.write(b"\r")                # type: ignore[attr-defined]
        answer = _listen(ser, reader, st, 0.7, echo)
    finally:
        ser.close()                     # type: ignore[attr-defined]
    if b">>>" in answer or answer.rstrip().endswith(b">"):
        report = StatusReport(port, False, st, note="the REPL answered: the agent is not running")
        if facts:
            report.board = board_facts(port)
        return report
    if st.events:
        return StatusReport(port, True, st)
    return StatusReport(port, None, st, note=f"no events and no REPL prompt within {listen:.0f} s: "
                        f"the agent is probably running and quiet (stable); --reset follows a "
                        f"fresh boot")
