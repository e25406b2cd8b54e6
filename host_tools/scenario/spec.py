"""Scenario files (TOML): lab options, a timeline of faults, expectations.

    name = "wan-blackhole"     # letters, digits, . _ - (the report is out/reports/NAME.json)
    description = "Silent WAN cut: the phone fails over to SRST over its standby link."
    until = "rehomed"          # end at this event, after the timeline; or duration = "20s"
    timeout = "60s"            # (not both); timeout: the most the run may take

    [lab]                      # host_tools.lab.Lab options
    mode = "auto"              # auto | netns | loopback
    short_timers = true        # keepalive 5 s, connectionMonitorDuration 10 s
    security_mode = 3

    [board]
    heap = "128K"              # MicroPython heap of the virtual board

    [settings]                 # the agent's settings.json (phone/settings.py)
    probe_after_ms = 1000

    [[timeline]]
    after = "standby_up"       # wait for this agent event (or at = "5s" / "+2s")
    delay = "1s"
    action = "wan_cut"
    kind = "blackhole"

    [expect]
    final_state = "PRIMARY"
    max_failover_ms = 10000
    events = ["registered:srst", "rehomed"]
    no_events = ["ctl_rejected"]

The rules (anything else is refused with one line naming the file and line):

  file          UTF-8 TOML, at most 1 MB, not empty; no duplicate keys (TOML); only the
                tables and keys below.
  durations     strings "500ms", "5s", "1.5m" ("+2s" for a relative `at`); `duration`,
                `timeout` and a flap `period` are > 0, every duration at most 24 h;
                `duration` <= `timeout`; an absolute `at` (+ delay) and every `delay`
                within `timeout` (a run never goes past its timeout).
                Without `duration` and `until` a run lasts 5 s; `timeout` defaults to 120 s.
  events        `after`, `until`, `events`, `no_events` name events the firmware emits
                (an `emit('name'` in firmware/), optionally ":value" (any field's value)
                or ":field=value" (that field's);
                an event may not be in both `events` and `no_events`.
  [lab]         mode auto|netns|loopback; short_timers, dhcp bool; security_mode 1|2|3;
                tftp auto|lab|dnsmasq (dnsmasq needs namespaces); keepalive and
                secondary_keepalive 1..3600 s; connection_monitor 1..86400 s;
                hash_name sha1|sha256|sha512; key_size 1024|2048|3072|4096;
                ccm_ca_signed bool (the call manager certificate issued by a CA, not
                self-signed); protocol sccp|sip (sip: the phone's config is a SIP one and
                the call manager and SRST router are the lab's Kamailio registrars on TLS
                5061; their faults below act on Kamailio; send_reset is refused);
                dhcp_lease: dnsmasq's lease time (120 or more seconds, "2m", "1h", "infinite").
  [board]       heap "96K"/"2M" 8K..512M; profile: a board profile in boards/: a unix-chip
                one runs as is, a hardware one on the ESP32-faithful board virtual:PROFILE
                (its heap, clock, DHCP, TLS budget and CPU speed; `heap` is then ignored).
  [settings]    names, types and ranges of firmware/phone/settings.py's DEFAULTS, checked by
                phone/setcheck.py (the firmware's own check: an unknown or bad setting
                would halt the board); with
                short_timers the lab's settings are merged first and the result checked.
  [[timeline]]  action wan_cut (kind blackhole|unreachable|link_down|cm_reset),
                wan_restore, flap (period > 0.1 s, count 1..1000, kind), reboot_phone,
                kill/restart (server callmanager|srst|tftp|dhcp; dhcp not in loopback mode
                or with dhcp = false), hang (server callmanager|srst, on bool), replace_file
                (file ctl|itl|config, with tampered|unknown_sast|truncated|bad_signature|
                garbage, or plain: the config served unsigned with security mode 1),
                replace_cert (server callmanager|srst: a certificate the phone never
                pinned, the server restarted with it), tftp_fault (loss 0..1, seed
                0..2^32-1 with loss, missing: file names, clear = true alone; needs the lab
                TFTP server), send_reset (kind 1..3; SCCP only), wait. Each entry has exactly one of `at` and `after`; `delay` >= 0.
  [expect]      final_state PRIMARY|FALLBACK|REHOME|TRYING|PROVISION|BOOT; max_*_ms
                0..86400000 and max_registrations 0..100000 (0 is legal: "none");
                events/no_events lists; ctl_rejected, config_rejected,
                registered_over_standby bool. A scenario without [expect] and `until` passes
                when its run ends without an error (a smoke run).
  [expect.limited]  the same keys, for a `limited` board only (each replaces [expect]'s).
  until         the run ends at the first such event after the last timeline step (with no
                timeline, after power-up); a step's `after` waits for an event after the
                previous step. So `until = "standby_up"` after a reboot step waits for the
                reboot's own standby link, at any CPU speed.

Board kinds. A `limited` board profile (no PSRAM: one TLS session, so no standby link; the
firmware says `standby_disabled` at start and connects to the SRST router fresh at failover)
cannot live what a standby-holding board lives; a scenario is read for it as follows
(for_board), and everything else is proven as written:
  after/until   `standby_up` waits for `state:state=PRIMARY` (where a full board would open
                its standby link, a limited one is settled: registered with the call
                manager, and the state line that follows says so);
  events        `standby_up` becomes `standby_disabled` (the board must say why it has none);
  no_events     `standby_disabled` becomes `standby_up` (it must never open one);
  registered_over_standby = true  becomes false (a limited board's failover is never over a
                standby link: proving that is the budget honoured);
  [expect.limited]  then replaces whole keys, for what a scenario means on such a board.
Boards that hold a standby link never see any of this: they prove [expect] as written.
"""
from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from host_tools.lab.names import (MODES, PROTOCOLS, SCCP_SERVERS, SERVERS, TFTP_KINDS,
                                  WAN_KINDS)

REPLACEMENTS = ("tampered", "unknown_sast", "truncated", "bad_signature", "garbage", "plain")
FILES = ("ctl", "itl", "config")
STATES = ("PRIMARY", "FALLBACK", "REHOME", "TRYING", "PROVISION", "BOOT")
HASHES = ("sha1", "sha256", "sha512")
KEY_SIZES = (1024, 2048, 3072, 4096)
MAX_SECONDS = 86400.0                  # every duration: at most a day
MAX_BYTES = 1 << 20                    # a scenario file: at most 1 MB
MAX_HEAP = 512 << 20
DEFAULT_TIMEOUT = 120.0
DEFAULT_DURATION = 5.0
_DURATION = re.compile(r"^\+?(\d+(?:\.\d+)?)(ms|s|m)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_EVENT = re.compile(r"^([a-z][a-z0-9_]*)(?::((?:[a-z][a-z0-9_]*=)?[A-Za-z0-9_.:-]+))?$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

# A value check returns None (fine) or what is wrong.
Check = Callable[[Any], "str | None"]


def _show(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def _typed(typ: type, what: str) -> Check:
    def check(v: Any) -> str | None:
        if typ is float and isinstance(v, int) and not isinstance(v, bool):
            return None
        if not isinstance(v, typ) or (typ is not bool and isinstance(v, bool)):
            return f"must be {what}, not {_show(v)}"
        return None
    return check


def _int(lo: int, hi: int) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, int) or isinstance(v, bool):
            return f"must be an integer {lo}..{hi}, not {_show(v)}"
        if not lo <= v <= hi:
            return f"must be {lo}..{hi}, not {v}"
        return None
    return check


def _one_of(choices: tuple, what: str = "") -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or v not in choices:
            return f"must be one of {', '.join(map(str, choices))}, not {_show(v)}"
        return None
    return check


def _duration(lo: float = 0.0, above: bool = False, relative: bool = False) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, str):
            return f"must be a duration string such as \"5s\", not {_show(v)}"
        if v.strip().startswith("+") and not relative:
            return f"{_show(v)}: '+' is only for a relative at"
        try:
            d = parse_duration(v)
        except ValueError as e:
            return str(e)
        if d > MAX_SECONDS:
            return f"{_show(v)} is over the {MAX_SECONDS / 3600:.0f} h limit"
        if d < lo or (above and d <= lo):
            return f"{_show(v)} must be {'more than' if above else 'at least'} {lo:g} s"
        return None
    return check


def _heap(v: Any) -> str | None:
    if not isinstance(v, str):
        return f"must be a size string such as \"128K\", not {_show(v)}"
    from host_tools.micropython import parse_size
    try:
        n = parse_size(v)
    except ValueError as e:
        return str(e)
    return f"{_show(v)} is over {MAX_HEAP >> 20}M" if n > MAX_HEAP else None


def _profile(v: Any) -> str | None:
    if not isinstance(v, str) or not _NAME.match(v):
        return f"must be a board profile name, not {_show(v)}"
    from host_tools import BOARDS
    known = sorted(p.stem for p in BOARDS.glob("*.json"))
    if v not in known:
        return f"{_show(v)} is not a board profile (boards/: {', '.join(known)})"
    from host_tools import boards as boardlib
    try:
        chip = boardlib.load(v).chip
    except Exception as e:  # noqa: BLE001 - a broken profile file is one line too
        return f"board profile {v}: {e}"
    del chip      # a hardware profile: the run uses the faithful board virtual:PROFILE
    return None


def _event(v: Any) -> str | None:
    if not isinstance(v, str):
        return f"must be an event name, not {_show(v)}"
    m = _EVENT.match(v)
    if not m:
        return f"{_show(v)} is not an event (name, name:value or name:field=value, e.g. registered:srst)"
    known = firmware_events()
    if known and m.group(1) not in known:
        return f"{_show(v)}: the firmware emits no event {m.group(1)!r}"
    return None


def _event_list(v: Any) -> str | None:
    if not isinstance(v, list):
        return f"must be a list of event names, not {_show(v)}"
    for x in v:
        why = _event(x)
        if why:
            return why
    return None


def _file_names(v: Any) -> str | None:
    if not isinstance(v, list) or not v:
        return f"must be a non-empty list of file names, not {_show(v)}"
    for x in v:
        if not isinstance(x, str) or not _FILE_NAME.match(x):
            return f"{_show(x)} is not a file name"
    return None


def _loss(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return f"must be a number 0..1, not {_show(v)}"
    return None if 0.0 <= v <= 1.0 else f"must be 0..1, not {v}"


def _name(v: Any) -> str | None:
    if not isinstance(v, str) or not _NAME.match(v):
        return f"must be 1..64 letters, digits, '.', '_' or '-' (a file name), not {_show(v)}"
    return None


def _dhcp_lease(v: Any) -> str | None:
    from host_tools.lab.dnsmasq import DnsmasqError, lease_seconds
    try:
        lease_seconds(v)
    except DnsmasqError as e:
        return str(e)
    return None


_STR = _typed(str, "a string")
_BOOL = _typed(bool, "true or false")
_MS = _int(0, 86_400_000)

LAB_KEYS: dict[str, Check] = {
    "mode": _one_of(MODES), "short_timers": _BOOL, "security_mode": _one_of((1, 2, 3)),
    "tftp": _one_of(TFTP_KINDS), "dhcp": _BOOL, "keepalive": _int(1, 3600),
    "secondary_keepalive": _int(1, 3600), "connection_monitor": _int(1, 86400),
    "hash_name": _one_of(HASHES), "key_size": _one_of(KEY_SIZES), "dhcp_lease": _dhcp_lease,
    "ccm_ca_signed": _BOOL, "protocol": _one_of(PROTOCOLS)}
BOARD_KEYS: dict[str, Check] = {"heap": _heap, "profile": _profile}
EXPECT_KEYS: dict[str, Check] = {
    "final_state": _one_of(STATES), "max_failover_ms": _MS, "max_rehome_ms": _MS,
    "max_boot_to_registered_ms": _MS, "max_standby_up_ms": _MS, "events": _event_list,
    "no_events": _event_list, "ctl_rejected": _BOOL, "config_rejected": _BOOL,
    "registered_over_standby": _BOOL, "max_registrations": _int(0, 100_000)}
BOARD_KINDS = ("limited",)             # [expect.KIND]: expectations for that kind of board
LIMITED_AFTER = {"standby_up": "state:state=PRIMARY"}
LIMITED_EVENTS = {"standby_up": "standby_disabled"}
LIMITED_NO_EVENTS = {"standby_disabled": "standby_up"}
ACTIONS: dict[str, dict[str, Check]] = {
    # action -> allowed extra keys and their checks
    "wan_cut": {"kind": _one_of(WAN_KINDS)},
    "wan_restore": {},
    "flap": {"period": _duration(0.1, above=False), "count": _int(1, 1000),
             "kind": _one_of(WAN_KINDS)},
    "reboot_phone": {},
    "kill": {"server": _one_of(SERVERS)},
    "restart": {"server": _one_of(SERVERS)},
    "hang": {"server": _one_of(SCCP_SERVERS), "on": _BOOL},
    "replace_file": {"file": _one_of(FILES), "with": _one_of(REPLACEMENTS)},
    "replace_cert": {"server": _one_of(SCCP_SERVERS)},
    "tftp_fault": {"loss": _loss, "seed": _int(0, 2**32 - 1), "missing": _file_names,
                   "clear": _BOOL},
    "send_reset": {"kind": _int(1, 3)},   # the call manager sends Reset (1 reset, 2 restart, 3 apply)
    "wait": {},
}
SIP_NO_RESET = ("send_reset is the SCCP call manager's Reset message; the lab's SIP "
                "registrar (Kamailio) sends no check-sync NOTIFY: not with protocol = \"sip\"")
REQUIRED = {"kill": ("server",), "restart": ("server",), "hang": ("server",),
            "replace_cert": ("server",),
            "replace_file": ("file", "with")}
TOP_KEYS: dict[str, Check] = {
    "name": _name, "description": _STR, "lab": _typed(dict, "a table"),
    "board": _typed(dict, "a table"), "settings": _typed(dict, "a table"),
    "timeline": _typed(list, "an array of tables ([[timeline]])"),
    "expect": _typed(dict, "a table"), "duration": _duration(0.0, above=True),
    "until": _event, "timeout": _duration(0.0, above=True)}


class ScenarioError(ValueError):
    pass


def parse_duration(text: str) -> float:
    """'500ms', '5s', '+2s', '1.5m' -> seconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"{_show(text)} is not a duration (use e.g. 500ms, 5s, +2s, 1m)")
    return float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(2)]


@lru_cache(maxsize=1)
def firmware_events() -> frozenset[str]:
    """Every event name the firmware emits (`emit('name'` in firmware/); empty when the
    firmware sources are not there (then names are checked for their form only)."""
    from host_tools import FIRMWARE
    rx = re.compile(r"""emit\(\s*['"]([a-z][a-z0-9_]*)['"]""")
    names: set[str] = set()
    for f in Path(FIRMWARE).rglob("*.py"):
        try:
            names.update(rx.findall(f.read_text(errors="replace")))
        except OSError:
            continue
    return frozenset(names)


@dataclass
class Step:
    action: str
    at: float | None = None          # seconds since the board started
    relative: bool = False           # at is relative to the previous step
    after: str | None = None         # event spec to wait for
    delay: float = 0.0
    args: dict[str, Any] = field(default_factory=dict)
    line: int = 0


@dataclass
class Scenario:
    name: str
    description: str
    path: Path | None
    lab: dict[str, Any]
    board: dict[str, Any]
    settings: dict[str, Any]
    timeline: list[Step]
    expect: dict[str, Any]
    duration: float | None           # stop after this long (seconds)
    until: str | None                # or when this event arrives (after the timeline)
    timeout: float                   # hard limit
    expect_kinds: dict[str, dict[str, Any]] = field(default_factory=dict)  # [expect.limited]


class _Lines:
    """Line numbers for keys and tables, from the raw text (tomllib gives none)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def of_table(self, name: str, index: int = 0) -> int:
        pat = re.compile(rf"^\s*\[\[?\s*{re.escape(name)}\s*\]\]?\s*(#.*)?$")
        hits = [i + 1 for i, line in enumerate(self.lines) if pat.match(line)]
        return hits[index] if index < len(hits) else 0

    def of_key(self, key: str, start: int = 1) -> int:
        pat = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for i in range(max(0, start - 1), len(self.lines)):
            if pat.match(self.lines[i]):
                return i + 1
            if i >= start and self.lines[i].lstrip().startswith("["):
                break
        return start


def load(path: str | Path) -> Scenario:
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise ScenarioError(f"{p}: cannot read: {e.strerror or e}") from None
    if len(raw) > MAX_BYTES:
        raise ScenarioError(f"{p}: over {MAX_BYTES >> 20} MB: not a scenario file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ScenarioError(f"{p}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x})") from None
    return loads(text, p)


def loads(text: str, path: Path | None = None) -> Scenario:
    where = str(path) if path else "<scenario>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{where}: {' '.join(str(e).split())}") from None
    except RecursionError:
        raise ScenarioError(f"{where}: nested too deeply") from None
    lines = _Lines(text)

    def fail(msg: str, line: int = 0) -> None:
        raise ScenarioError(f"{where}:{line}: {msg}" if line else f"{where}: {msg}")

    if not data:
        fail("empty: a scenario needs at least a name or a description and what to check")

    def check(t: dict[str, Any], allowed: dict[str, Check], label: str,
              at: Callable[[str], int]) -> None:
        """Every key of `t` is known and its value valid, or fail at line at(key)."""
        for k, v in t.items():
            if k not in allowed:
                fail(f"{label}unknown key {k!r} (known: {', '.join(sorted(allowed))})", at(k))
            why = allowed[k](v)
            if why:
                fail(f"{label}{k} {why}", at(k))

    # a key of the top level is a value or a table ([name], [[name]])
    check(data, TOP_KEYS, "", lambda k: lines.of_table(k) or lines.of_key(k))
    name = data.get("name") or (path.stem if path else "scenario")
    if _name(name):
        fail(f"the file name {name!r} is no scenario name: give name = \"...\"")

    def table(key: str, allowed: dict[str, Check]) -> dict[str, Any]:
        t = data.get(key, {})
        start = lines.of_table(key)
        check(t, allowed, f"[{key}] ", lambda k: lines.of_key(k, start))
        return dict(t)

    lab = table("lab", LAB_KEYS)
    if lab.get("tftp") == "dnsmasq" and lab.get("mode") == "loopback":
        fail("[lab] tftp = \"dnsmasq\" needs namespaces, not mode = \"loopback\"",
             lines.of_key("tftp", lines.of_table("lab")))
    board = table("board", BOARD_KEYS)
    settings = _settings(data.get("settings", {}), lab, lines, fail)
    kinds = {k: data.get("expect", {}).get(k) for k in BOARD_KINDS
             if k in data.get("expect", {})}
    expect = table("expect", {**EXPECT_KEYS, **{k: _typed(dict, "a table") for k in BOARD_KINDS}})
    for k in kinds:
        expect.pop(k)
    _both(expect, "expect", lines, fail)
    for kind, t in kinds.items():
        start = lines.of_table(f"expect.{kind}")
        check(t, EXPECT_KEYS, f"[expect.{kind}] ", lambda k: lines.of_key(k, start))
        _both({**expect, **t}, f"expect.{kind}", lines, fail)

    duration = _seconds(data, "duration")
    until = data.get("until")
    if until is not None and duration is not None:
        # one end only: the run stops at the `until` event, so a duration would be ignored
        fail("give duration or until, not both (the run ends at the until event)",
             lines.of_key("duration"))
    timeout = _seconds(data, "timeout") or DEFAULT_TIMEOUT
    if duration is not None and duration > timeout:
        fail(f"duration {data['duration']} is longer than the timeout ({timeout:g} s)",
             lines.of_key("duration"))
    if duration is None and until is None:
        duration = DEFAULT_DURATION

    steps = []
    for i, t in enumerate(data.get("timeline", [])):
        line = lines.of_table("timeline", i)
        steps.append(_step(t, line, fail, lines, lab))
    _check_schedule(steps, timeout, fail)
    return Scenario(name=name, description=data.get("description", ""), path=path, lab=lab,
                    board=board, settings=settings, timeline=steps, expect=expect,
                    duration=duration, until=until, timeout=timeout,
                    expect_kinds={k: dict(v) for k, v in kinds.items()})


def _both(expect: dict[str, Any], where: str, lines: _Lines, fail: Any) -> None:
    both = set(expect.get("events", [])) & set(expect.get("no_events", []))
    if both:
        fail(f"[{where}] {', '.join(sorted(both))} in both events and no_events",
             lines.of_key("no_events", lines.of_table(where)))


def for_board(sc: Scenario, limited: bool) -> Scenario:
    """The scenario as a board of this kind can live it (see "Board kinds" above): itself
    for a board that holds a standby link; for a limited one, its standby anchors and
    expectations translated and [expect.limited] applied. The original is not changed."""
    if not limited:
        return sc

    def event(spec: str, table: dict[str, str]) -> str:
        return table.get(spec, spec)

    steps = [replace(st, after=event(st.after, LIMITED_AFTER) if st.after else None)
             for st in sc.timeline]
    exp = dict(sc.expect)
    if "events" in exp:
        exp["events"] = [event(e, LIMITED_EVENTS) for e in exp["events"]]
    if "no_events" in exp:
        exp["no_events"] = [event(e, LIMITED_NO_EVENTS) for e in exp["no_events"]]
    if exp.get("registered_over_standby") is True:
        exp["registered_over_standby"] = False
    exp.update(sc.expect_kinds.get("limited", {}))
    return replace(sc, timeline=steps, expect=exp,
                   until=event(sc.until, LIMITED_AFTER) if sc.until else None)


def _seconds(data: dict[str, Any], key: str) -> float | None:
    v = data.get(key)
    return None if v is None else parse_duration(v)     # checked by TOP_KEYS


def _settings(t: dict[str, Any], lab: dict[str, Any], lines: _Lines, fail: Any) -> dict[str, Any]:
    """The firmware's own check (phone/setcheck.py), key by key for the line, then the
    whole settings.json the board will get (the lab's short-timer settings merged first)."""
    import host_tools.fw  # noqa: F401 - puts firmware/ on sys.path
    from phone import setcheck  # check(): as the board checks
    from phone.settings import DEFAULTS, Settings

    start = lines.of_table("settings")
    for k, v in t.items():
        try:
            setcheck.check(k, v, DEFAULTS)
        except ValueError as e:
            known = "" if k in DEFAULTS else f" (known: {', '.join(sorted(DEFAULTS))})"
            fail(f"[settings] {e}{known}", lines.of_key(k, start))
    merged: dict[str, Any] = {}
    if lab.get("short_timers"):
        from host_tools.lab.lab import SHORT_BOARD_SETTINGS
        merged.update(SHORT_BOARD_SETTINGS)
    merged.update(t)
    try:
        Settings(merged)
    except ValueError as e:
        extra = " (with the lab's short_timers settings)" if lab.get("short_timers") else ""
        fail(f"[settings] {e}{extra}", start)
    return dict(t)


def _step(t: Any, line: int, fail: Any, lines: _Lines, lab: dict[str, Any]) -> Step:
    if not isinstance(t, dict):
        fail("each [[timeline]] entry must be a table", line)
    action = t.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        fail(f"[[timeline]] action must be one of {', '.join(ACTIONS)}, not {_show(action)}",
             lines.of_key("action", line))
    st = Step(action=action, line=line)
    if ("at" in t) == ("after" in t):
        fail("[[timeline]] needs exactly one of at = \"5s\" / \"+2s\" or after = \"event\"", line)
    for key, check in (("at", _duration(relative=True)), ("after", _event),
                       ("delay", _duration())):
        if key in t:
            why = check(t[key])
            if why:
                fail(f"[[timeline]] {key} {why}", lines.of_key(key, line))
    if "at" in t:
        st.at = parse_duration(t["at"])
        st.relative = t["at"].strip().startswith("+")
    else:
        st.after = t["after"]
    if "delay" in t:
        st.delay = parse_duration(t["delay"])
    allowed = ACTIONS[action]
    for k, v in t.items():
        if k in ("action", "at", "after", "delay"):
            continue
        if k not in allowed:
            fail(f"[[timeline]] {action} takes no {k!r} (takes: {', '.join(allowed) or 'nothing'})",
                 lines.of_key(k, line))
        why = allowed[k](v)
        if why:
            fail(f"[[timeline]] {k} {why}", lines.of_key(k, line))
        st.args[k] = float(v) if k == "loss" else v
    for k in REQUIRED.get(action, ()):
        if k not in t:
            fail(f"[[timeline]] {action} needs {k} =", line)
    a = st.args
    if action == "flap":
        a["period"] = parse_duration(a.get("period", "2s"))
    if action in ("kill", "restart") and a["server"] == "dhcp" and (
            lab.get("mode") == "loopback" or lab.get("dhcp") is False):
        fail(f"[[timeline]] {action} dhcp: this lab runs no DHCP server "
             f"({'loopback mode' if lab.get('mode') == 'loopback' else 'dhcp = false'})",
             lines.of_key("server", line))
    if action == "replace_file" and a["with"] == "plain" and a["file"] != "config":
        fail("[[timeline]] replace_file: with = \"plain\" is for file = \"config\" (an "
             "unsigned non-secure config)", lines.of_key("with", line))
    if action == "send_reset" and lab.get("protocol") == "sip":
        fail(f"[[timeline]] {SIP_NO_RESET}", lines.of_key("action", line))
    if action == "tftp_fault":
        if lab.get("tftp") == "dnsmasq":
            fail("[[timeline]] tftp_fault needs the lab's own TFTP server, not tftp = \"dnsmasq\"",
                 line)
        if "clear" in a and (not a["clear"] or len(a) > 1):
            fail("[[timeline]] tftp_fault: clear = true stands alone", lines.of_key("clear", line))
        if not a:
            fail("[[timeline]] tftp_fault needs loss, missing or clear = true", line)
        if "seed" in a and "loss" not in a:
            fail("[[timeline]] tftp_fault: seed is for loss", lines.of_key("seed", line))
    return st


def _check_schedule(steps: list[Step], timeout: float, fail: Any) -> None:
    """Steps at fixed times (before any `after`) must come within the timeout, and no delay
    may be longer than it (the runner also stops at the timeout, whatever the steps say)."""
    for st in steps:
        if st.delay > timeout:
            fail(f"[[timeline]] {st.action} delay {st.delay:g} s is longer than the timeout "
                 f"({timeout:g} s)", st.line)
    t = 0.0
    for st in steps:
        if st.after is not None:
            return
        assert st.at is not None
        t = (t if st.relative else 0.0) + st.at + st.delay
        if t > timeout and not math.isclose(t, timeout):
            fail(f"[[timeline]] {st.action} at {t:g} s is after the timeout ({timeout:g} s)",
                 st.line)
