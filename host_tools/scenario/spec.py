"""Scenario files (TOML): lab options, a timeline of faults, expectations.

    name = "wan-blackhole"
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

Validation errors name the file and line.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACTIONS: dict[str, dict[str, type | tuple[type, ...]]] = {
    # action -> allowed extra keys and their types
    "wan_cut": {"kind": str},
    "wan_restore": {},
    "flap": {"period": str, "count": int, "kind": str},
    "reboot_phone": {},
    "kill": {"server": str},
    "restart": {"server": str},
    "hang": {"server": str, "on": bool},
    "replace_file": {"file": str, "with": str},
    "tftp_fault": {"loss": float, "seed": int, "missing": list, "clear": bool},
    "send_reset": {"kind": int},       # the call manager sends Reset (1 reset, 2 restart, 3 apply)
    "wait": {},
}
WAN_KINDS = ("blackhole", "unreachable", "link_down", "cm_reset")
SERVERS = ("callmanager", "srst", "tftp", "dhcp")
REPLACEMENTS = ("tampered", "unknown_sast", "truncated", "bad_signature", "garbage")
STATES = ("PRIMARY", "FALLBACK", "REHOME", "TRYING", "PROVISION", "BOOT")
LAB_KEYS: dict[str, type | tuple[type, ...]] = {
    "mode": str, "short_timers": bool, "security_mode": int, "tftp": str, "dhcp": bool,
    "keepalive": int, "secondary_keepalive": int, "connection_monitor": int,
    "hash_name": str, "key_size": int}
BOARD_KEYS: dict[str, type | tuple[type, ...]] = {"heap": str, "profile": str}
EXPECT_KEYS: dict[str, type | tuple[type, ...]] = {
    "final_state": str, "max_failover_ms": int, "max_rehome_ms": int,
    "max_boot_to_registered_ms": int, "max_standby_up_ms": int, "events": list,
    "no_events": list, "ctl_rejected": bool, "config_rejected": bool,
    "registered_over_standby": bool, "max_registrations": int}
TOP_KEYS = {"name", "description", "lab", "board", "settings", "timeline", "expect",
            "duration", "until", "timeout"}
_DURATION = re.compile(r"^\+?(\d+(?:\.\d+)?)(ms|s|m)$")


class ScenarioError(ValueError):
    pass


def parse_duration(text: str) -> float:
    """'500ms', '5s', '+2s', '1.5m' -> seconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a duration (use e.g. 500ms, 5s, +2s, 1m)")
    return float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(2)]


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


class _Lines:
    """Line numbers for keys and tables, from the raw text (tomllib gives none)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def of_table(self, name: str, index: int = 0) -> int:
        pat = re.compile(rf"^\s*\[\[?\s*{re.escape(name)}\s*\]\]?\s*(#.*)?$")
        hits = [i + 1 for i, line in enumerate(self.lines) if pat.match(line)]
        return hits[index] if index < len(hits) else 0

    def of_key(self, key: str, start: int = 1) -> int:
        pat = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
        for i in range(max(0, start - 1), len(self.lines)):
            if pat.match(self.lines[i]):
                return i + 1
            if i >= start and self.lines[i].lstrip().startswith("["):
                break
        return start


def load(path: str | Path) -> Scenario:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ScenarioError(f"{p}: cannot read: {e.strerror}") from e
    return loads(text, p)


def loads(text: str, path: Path | None = None) -> Scenario:
    where = str(path) if path else "<scenario>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{where}: {e}") from e
    lines = _Lines(text)

    def fail(msg: str, line: int = 0) -> None:
        raise ScenarioError(f"{where}:{line}: {msg}" if line else f"{where}: {msg}")

    for k in data:
        if k not in TOP_KEYS:
            fail(f"unknown key {k!r} (known: {', '.join(sorted(TOP_KEYS))})", lines.of_key(k))
    name = data.get("name") or (path.stem if path else "scenario")

    def table(key: str, allowed: dict[str, Any]) -> dict[str, Any]:
        t = data.get(key, {})
        if not isinstance(t, dict):
            fail(f"[{key}] must be a table", lines.of_key(key))
        start = lines.of_table(key)
        for k, v in t.items():
            if k not in allowed:
                fail(f"[{key}] unknown key {k!r} (known: {', '.join(sorted(allowed))})",
                     lines.of_key(k, start))
            if not isinstance(v, allowed[k]) or (allowed[k] is int and isinstance(v, bool)):
                want = allowed[k].__name__ if isinstance(allowed[k], type) else "value"
                fail(f"[{key}] {k} must be {want}, not {v!r}", lines.of_key(k, start))
        return dict(t)

    lab = table("lab", LAB_KEYS)
    if lab.get("mode", "auto") not in ("auto", "netns", "loopback"):
        fail("[lab] mode must be auto, netns or loopback", lines.of_key("mode", lines.of_table("lab")))
    board = table("board", BOARD_KEYS)
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        fail("[settings] must be a table", lines.of_key("settings"))
    expect = table("expect", EXPECT_KEYS)
    if "final_state" in expect and expect["final_state"] not in STATES:
        fail(f"[expect] final_state must be one of {', '.join(STATES)}",
             lines.of_key("final_state", lines.of_table("expect")))
    for k in ("events", "no_events"):
        if k in expect and not all(isinstance(x, str) for x in expect[k]):
            fail(f"[expect] {k} must be a list of event names",
                 lines.of_key(k, lines.of_table("expect")))

    raw = data.get("timeline", [])
    if not isinstance(raw, list):
        fail("timeline must be an array of tables ([[timeline]])", lines.of_key("timeline"))
    steps = []
    for i, t in enumerate(raw):
        line = lines.of_table("timeline", i)
        steps.append(_step(t, line, fail, lines))

    def dur(key: str, default: float | None) -> float | None:
        v = data.get(key)
        if v is None:
            return default
        try:
            return parse_duration(str(v))
        except ValueError as e:
            fail(str(e), lines.of_key(key))
            raise

    duration = dur("duration", None)
    until = data.get("until")
    if until is not None and not isinstance(until, str):
        fail("until must be an event name", lines.of_key("until"))
    if until is not None and duration is not None:
        # one end only: the run stops at the `until` event, so a duration would be ignored
        fail("give duration or until, not both (the run ends at the until event)",
             lines.of_key("duration"))
    timeout = dur("timeout", 120.0)
    if duration is None and until is None:
        duration = 5.0
    return Scenario(name=name, description=data.get("description", ""), path=path, lab=lab,
                    board=board, settings=settings, timeline=steps, expect=expect,
                    duration=duration, until=until, timeout=timeout or 120.0)


def _step(t: Any, line: int, fail, lines: _Lines) -> Step:
    if not isinstance(t, dict):
        fail("each [[timeline]] entry must be a table", line)
    action = t.get("action")
    if action not in ACTIONS:
        fail(f"[[timeline]] action must be one of {', '.join(ACTIONS)}, not {action!r}",
             lines.of_key("action", line))
    st = Step(action=action, line=line)
    if ("at" in t) == ("after" in t):
        fail("[[timeline]] needs exactly one of at = \"5s\" / \"+2s\" or after = \"event\"", line)
    try:
        if "at" in t:
            st.at = parse_duration(str(t["at"]))
            st.relative = str(t["at"]).startswith("+")
        else:
            st.after = str(t["after"])
        if "delay" in t:
            st.delay = parse_duration(str(t["delay"]))
    except ValueError as e:
        fail(str(e), lines.of_key("at" if "at" in t else "delay", line))
    allowed = ACTIONS[action]
    for k, v in t.items():
        if k in ("action", "at", "after", "delay"):
            continue
        if k not in allowed:
            fail(f"[[timeline]] {action} takes no {k!r} (takes: {', '.join(allowed) or 'nothing'})",
                 lines.of_key(k, line))
        typ = allowed[k]
        if typ is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, typ):
            fail(f"[[timeline]] {k} must be {typ.__name__ if isinstance(typ, type) else typ}",
                 lines.of_key(k, line))
        st.args[k] = v
    if action in ("wan_cut", "flap") and st.args.get("kind", "blackhole") not in WAN_KINDS:
        fail(f"kind must be one of {', '.join(WAN_KINDS)}", lines.of_key("kind", line))
    if action in ("kill", "restart", "hang") and st.args.get("server") not in SERVERS:
        fail(f"server must be one of {', '.join(SERVERS)}", lines.of_key("server", line))
    if action == "flap":
        try:
            st.args["period"] = parse_duration(st.args.get("period", "2s"))
        except ValueError as e:
            fail(str(e), lines.of_key("period", line))
    if action == "replace_file":
        if st.args.get("with") not in REPLACEMENTS:
            fail(f"with must be one of {', '.join(REPLACEMENTS)}", lines.of_key("with", line))
        if st.args.get("file") not in ("ctl", "itl", "config"):
            fail("file must be ctl, itl or config", lines.of_key("file", line))
    return st
