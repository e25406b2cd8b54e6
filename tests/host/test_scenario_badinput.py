"""Generated bad input for the scenario format: every shipped scenario, mutated key by key.

Each mutant goes through `phonelab run --check` in-process. Each mutation states what the
rules in host_tools/scenario/spec.py (its docstring) say of it:
  refused  -> exit non-zero, exactly one line on stderr naming the mutant's file, no traceback
              and no "internal error";
  legal    -> exit 0, and the generator says why the mutant is legal (e.g. a bigger number
              still inside the documented range).
A refused mutant that --check accepts is a silent acceptance; a legal one refused is a rule
the spec does not document. Both fail the test; so does any traceback.
"""
from __future__ import annotations

import random
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

import host_tools.fw  # noqa: F401 - firmware/ on sys.path
from host_tools import ROOT, cli
from phone import setcheck as fw_settings  # limits(): the board's checks
from phone.settings import DEFAULTS  # type: ignore[import-not-found]

SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml"))

# The documented ranges (spec.py docstring), restated here as the oracle.
INT_RANGES: dict[tuple[str, str], tuple[int, int]] = {
    ("lab", "keepalive"): (1, 3600), ("lab", "secondary_keepalive"): (1, 3600),
    ("lab", "connection_monitor"): (1, 86400), ("expect", "max_registrations"): (0, 100_000),
    ("timeline", "count"): (1, 1000), ("timeline", "seed"): (0, 2**32 - 1),
}
MS_RANGE = (0, 86_400_000)                       # [expect] max_*_ms
ENUM_INTS = {("lab", "security_mode"), ("lab", "key_size"), ("timeline:send_reset", "kind")}
DURATION_KEYS = {"duration", "timeout", "at", "delay", "period"}
ZERO_DURATION_OK = {"at", "delay"}                # "0s": at the start, no delay
EVENT_KEYS = {"until", "after"}
FREE_TEXT = {"description"}
BAD_DURATIONS = ["5", "5 s", "5h", "-1s", "", "1e3s", "s", "99999999s", "0x10s", "+5s"]
SECTIONS = ("lab", "board", "settings", "expect")


@dataclass
class Mutant:
    what: str
    data: bytes
    legal: str | None = None        # why it is legal; None: it must be refused


@dataclass
class Assign:
    index: int                      # first line
    end: int                        # last line (multi-line strings and arrays)
    section: str                    # "", lab, board, settings, expect, timeline
    entry: int                      # timeline entry index
    key: str
    value: Any


def _assignments(text: str, doc: dict[str, Any]) -> list[Assign]:
    lines = text.splitlines()
    out, section, entry, i = [], "", -1, 0
    while i < len(lines):
        line = lines[i]
        head = re.match(r"^\s*\[(\[)?\s*([A-Za-z_]+)\s*\]", line)
        if head:
            section = head.group(2)
            entry = entry + 1 if head.group(1) and section == "timeline" else entry
            i += 1
            continue
        m = re.match(r"^\s*([A-Za-z_]+)\s*=\s*(.*)$", line)
        if not m:
            i += 1
            continue
        end = i
        if m.group(2).startswith('"""') and m.group(2).count('"""') == 1:
            while end + 1 < len(lines) and '"""' not in lines[end + 1]:
                end += 1
            end += 1
        elif m.group(2).startswith("[") and m.group(2).count("[") > m.group(2).count("]"):
            # an array over several lines: up to the line that closes it
            depth = m.group(2).count("[") - m.group(2).count("]")
            while depth > 0 and end + 1 < len(lines):
                end += 1
                depth += lines[end].count("[") - lines[end].count("]")
        key = m.group(1)
        if section == "timeline":
            value = doc["timeline"][entry][key]
        elif section:
            value = doc[section][key]
        else:
            value = doc[key]
        out.append(Assign(i, end, section, entry, key, value))
        i = end + 1
    return out


def _replace(text: str, a: Assign, new_value: str | None) -> str:
    lines = text.splitlines()
    repl = [] if new_value is None else [f"{a.key} = {new_value}"]
    return "\n".join(lines[:a.index] + repl + lines[a.end + 1:]) + "\n"


def _insert_after(text: str, index: int, line: str) -> str:
    lines = text.splitlines()
    return "\n".join(lines[:index + 1] + [line] + lines[index + 1:]) + "\n"


def _add_to_table(text: str, table: str, line: str) -> str:
    lines = text.splitlines()
    for i, ln in enumerate(lines):
        if re.match(rf"^\s*\[\s*{table}\s*\]", ln):
            return _insert_after(text, i, line)
    return text.rstrip("\n") + f"\n\n[{table}]\n{line}\n"


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return repr(v)


def _ctx(a: Assign, doc: dict[str, Any]) -> str:
    if a.section == "timeline":
        return f"timeline:{doc['timeline'][a.entry].get('action')}"
    return a.section


def _int_range(a: Assign, ctx: str) -> tuple[int, int] | None:
    if a.section == "expect" and a.key.startswith("max_") and a.key.endswith("_ms"):
        return MS_RANGE
    if a.section == "settings":
        return fw_settings.limits(a.key)
    return INT_RANGES.get(("timeline" if ctx.startswith("timeline") else a.section, a.key))


def _value_mutants(a: Assign, doc: dict[str, Any]) -> Iterator[tuple[str, str | None, str | None]]:
    """(label, new TOML value or None to delete the line, why legal or None)."""
    v, key, ctx = a.value, a.key, _ctx(a, doc)
    # wrong types: none of these is a type the key takes
    if isinstance(v, bool):
        yield "wrong type (string)", '"yes"', None
        yield "wrong type (int)", "1", None
    elif isinstance(v, int):
        yield "wrong type (string)", f'"{v}"', None
        yield "wrong type (float)", f"{v}.5", None
        yield "wrong type (bool)", "true", None
    elif isinstance(v, float):
        yield "wrong type (string)", f'"{v}"', None
        yield "wrong type (bool)", "false", None
    elif isinstance(v, str):
        if key not in FREE_TEXT:
            yield "wrong type (int)", "7", None
        yield "wrong type (bool)", "true", None
        yield "wrong type (list)", '["a"]', None
        yield "wrong type (table)", "{ a = 1 }", None
    elif isinstance(v, list):
        yield "wrong type (string)", '"registered"', None
        yield "wrong type (list of int)", "[1, 2]", None
        yield "empty list", "[]", ("an empty events list is legal (nothing to check)"
                                   if key in ("events", "no_events") else None)
    # numbers: negative, zero, huge, not-a-number, bigger but legal
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        yield "negative", repr(-abs(v) - 1), None
        yield "huge", "1000000000000", None
        if isinstance(v, float):
            yield "nan", "nan", None
            yield "inf", "inf", None
            yield "zero", "0.0", "loss 0 is legal (no loss)"
            yield "one", "1.0", "loss 1 is legal (every packet lost)"
        elif (ctx, key) in ENUM_INTS or (a.section, key) in ENUM_INTS:
            yield "zero", "0", None
            yield "unknown enum value", "5", None
        else:
            lo, hi = _int_range(a, ctx) or (None, None)
            assert lo is not None, f"no documented range for {a.section}.{key}"
            yield "zero", "0", f"0 is inside {lo}..{hi}" if lo <= 0 else None
            yield "bigger", repr(v * 2 + 1), (f"{v * 2 + 1} is inside {lo}..{hi}"
                                              if v * 2 + 1 <= hi else None)
            yield "above the range", repr(hi + 1), None
    # strings: enums, durations, events, names
    if isinstance(v, str):
        if key in DURATION_KEYS:
            for d in BAD_DURATIONS:
                legal = None
                if d == "+5s" and key == "at":
                    legal = None if _after_timeout(a, doc, 5.0) else "a relative at is legal"
                yield f"bad duration {d!r}", _toml(d), legal
            yield "zero duration", '"0s"', ("0 s is legal for at and delay"
                                            if key in ZERO_DURATION_OK else None)
        elif key in EVENT_KEYS:
            yield "unknown event", '"no_such_event"', None
            yield "event with an empty value", '"registered:"', None
            yield "event in capitals", '"Registered"', None
        elif key in FREE_TEXT:
            yield "other free text", '"anything at all"', "description is free text"
        elif key == "name":
            yield "name with a path", '"../../tmp/x"', None
            yield "name with a space", '"a b"', None
        elif key == "heap":
            yield "heap not a size", '"lots"', None
            yield "heap too small", '"1K"', None
            yield "heap huge", '"99999M"', None
        else:
            yield "unknown enum value", '"no-such-value"', None
            yield "empty string", '""', None
    if isinstance(v, list) and v and isinstance(v[0], str):
        yield "unknown event in list", _toml([*v, "no_such_event"]), None
        if key == "events":
            yield "event also in no_events", "SKIP", None   # handled in _cross_mutants
    # a required key removed
    if key in ("action", "at", "after", "server", "file", "with") and a.section == "timeline":
        yield "required key removed", None, None


def _after_timeout(a: Assign, doc: dict[str, Any], at: float) -> bool:
    """Would a relative at of `at` seconds put a fixed-time step past the timeout?"""
    from host_tools.scenario.spec import parse_duration
    timeout = parse_duration(doc.get("timeout", "120s"))
    t = 0.0
    for i, st in enumerate(doc["timeline"]):
        if "after" in st:
            return False
        this = at if i == a.entry else parse_duration(st["at"])
        rel = True if i == a.entry else st["at"].startswith("+")
        t = (t if rel else 0.0) + this + parse_duration(st.get("delay", "0s"))
        if t > timeout:
            return True
    return False


def _settings_mutants(text: str) -> Iterator[Mutant]:
    """Every firmware setting: its default (legal), and wrong type, negative, zero, huge."""
    for k, d in DEFAULTS.items():
        def m(what: str, val: str, legal: str | None) -> Mutant:
            return Mutant(f"[settings] {k} {what}",
                          _add_to_table(text, "settings", f"{k} = {val}").encode(), legal)
        if isinstance(d, str):
            yield m("default", _toml(d), "the firmware default")
            yield m("wrong type (int)", "5", None)
            yield m("empty", '""', None)
            continue
        lo, hi = fw_settings.limits(k)
        if d is not None:
            yield m("default", repr(d), "the firmware default")
        yield m("wrong type (string)", '"1000"', None)
        yield m("wrong type (float)", "1000.5", None)
        yield m("wrong type (bool)", "true", None)
        yield m("negative", "-5", None)
        yield m("zero", "0", f"0 is inside the firmware's {lo}..{hi}" if lo <= 0 and (
            k != "retry_max_ms") else None)
        yield m("huge", "1000000000000", None)
        yield m("above the range", repr(hi + 1), None)
    yield Mutant("[settings] unknown key", _add_to_table(text, "settings", "probe_after = 5")
                 .encode())
    yield Mutant("[settings] retry_min_ms above retry_max_ms", _add_to_table(
        _add_to_table(text, "settings", "retry_min_ms = 5000"), "settings",
        "retry_max_ms = 1000").encode())


def _structure_mutants(text: str, doc: dict[str, Any], assigns: list[Assign]) -> Iterator[Mutant]:
    enc = text.encode()
    for sec in SECTIONS:
        yield Mutant(f"[{sec}] unknown key", _add_to_table(text, sec, "bogus_key = 1").encode())
        if sec not in doc:
            yield Mutant(f"{sec} as a number", (f"{sec} = 5\n" + text).encode())
    yield Mutant("unknown top-level key", ("bogus_key = 1\n" + text).encode())
    yield Mutant("unknown section", (text + "\n[bogus]\nx = 1\n").encode())
    yield Mutant("unknown array section", (text + "\n[[bogus]]\nx = 1\n").encode())
    yield Mutant("sub-table of lab", (text + "\n[lab.sub]\nx = 1\n").encode())
    yield Mutant("timeline as a number", (("timeline = 5\n" + text) if "timeline" not in doc
                                          else text.replace("[[timeline]]", "[timeline]", 1)
                                          ).encode())
    for a in assigns:
        lines = text.splitlines()
        if a.index == a.end:
            yield Mutant(f"duplicate key {a.section}.{a.key}",
                         _insert_after(text, a.index, lines[a.index]).encode())
    for i, line in enumerate(text.splitlines()):
        if re.match(r"^\s*\[(lab|board|settings|expect)\]", line):
            yield Mutant(f"duplicate table {line.strip()}", (text + "\n" + line + "\n").encode())
    for a in assigns:
        if a.section == "timeline":
            hdr = [i for i, ln in enumerate(text.splitlines()) if ln.strip() == "[[timeline]]"]
            yield Mutant(f"timeline {a.entry} unknown key",
                         _insert_after(text, hdr[a.entry], "bogus_key = 1").encode())
            break
    if "events" in doc.get("expect", {}) and doc["expect"]["events"]:
        yield Mutant("an event in both events and no_events", _add_to_table(
            text.replace("no_events =", "old_no_events =") if "no_events" in doc["expect"]
            else text, "expect", f"no_events = [{_toml(doc['expect']['events'][0])}]").encode()
            .replace(b"old_no_events =", b"# no_events ="))
    # bytes
    yield Mutant("non-UTF-8 byte after line 1", enc.replace(b"\n", b"\n\xff\xfe\n", 1))
    yield Mutant("non-UTF-8 byte in a string", enc.replace(b'"', b'"\xc3', 1))
    yield Mutant("non-UTF-8 byte in a comment", enc + b"# caf\xe9\n")
    yield Mutant("NUL byte", enc.replace(b"\n", b"\n\x00\n", 1))
    yield Mutant("empty file", b"")
    yield Mutant("whitespace only", b"  \n\n\t\n")
    yield Mutant("comments only", b"# nothing\n# here\n")
    yield Mutant("UTF-16", text.encode("utf-16"))
    rnd = random.Random(f"{doc.get('name')}")
    for n in (1, 7, 64, 512, 4096):
        yield Mutant(f"random bytes ({n})", bytes(rnd.randrange(256) for _ in range(n)))
    yield Mutant("random ASCII junk", "".join(rnd.choice("[]=\"'{}#.,\n abc123") for _ in range(200))
                 .encode())
    yield Mutant("truncated inside a string", enc[: enc.index(b'"') + 3])


def mutants(path: Path) -> Iterator[Mutant]:
    text = path.read_text()
    doc = tomllib.loads(text)
    assigns = _assignments(text, doc)
    for a in assigns:
        for label, new, legal in _value_mutants(a, doc):
            if new == "SKIP":
                continue
            where = f"{a.section or 'top'}{f'[{a.entry}]' if a.section == 'timeline' else ''}"
            yield Mutant(f"{where}.{a.key} {label}", _replace(text, a, new).encode(), legal)
    yield from _settings_mutants(text)
    yield from _structure_mutants(text, doc, assigns)


def _error_lines(err: str) -> list[str]:
    """stderr without argparse's usage block (a "usage:" line and its indented
    continuations), which argument-level refusals print before their one error line."""
    out, in_usage = [], False
    for line in err.strip().splitlines():
        if line.startswith("usage:"):
            in_usage = True
            continue
        if in_usage and line.startswith(" "):
            continue
        in_usage = False
        out.append(line)
    return out


# Every scenario's mutants take seconds each; the rules they probe are the same for every
# file, so `make test` takes one scenario of each kind and `make test-long` all of them.
_MUTATED_IN_MAKE_TEST = {"wan-blackhole", "sip-wan-blackhole", "boot-during-outage",
                         "dhcp-short-lease", "ctl-tampered", "cm-ca-signed"}
_MUTATED = [pytest.param(p, id=p.stem, marks=[] if p.stem in _MUTATED_IN_MAKE_TEST else [
    pytest.mark.long("the same spec rules as the scenarios `make test` mutates")])
    for p in SCENARIOS]


@pytest.mark.parametrize("path", _MUTATED)
def test_every_mutant_is_refused_in_one_line_or_legal(path: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # `phonelab` itself (cli.main), with the parser built once: building it is most of a check
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    cli_main = cli.main
    assert cli_main(["run", "--check", str(path)]) == 0
    capsys.readouterr()
    problems, counts = [], {"refused": 0, "legal": 0}
    for i, m in enumerate(mutants(path)):
        f = tmp_path / f"m{i:04d}.toml"
        f.write_bytes(m.data)
        try:
            rc = cli_main(["run", "--check", str(f)])
        except BaseException as e:  # noqa: BLE001 - the finding itself
            problems.append(f"{m.what}: raised {type(e).__name__}: {e}")
            continue
        out, err = capsys.readouterr()
        if "Traceback" in out + err or "internal error" in err:
            problems.append(f"{m.what}: traceback or internal error: {err.strip()[:200]}")
        elif m.legal is None:
            err_lines = _error_lines(err)
            if rc == 0:
                problems.append(f"{m.what}: silently accepted ({out.strip()})")
            elif len(err_lines) != 1 or str(f) not in err_lines[0]:
                problems.append(f"{m.what}: exit {rc} but not one line naming the file: {err!r}")
            else:
                counts["refused"] += 1
        elif rc != 0:
            problems.append(f"{m.what}: legal ({m.legal}) but refused: {err.strip()}")
        else:
            counts["legal"] += 1
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
    assert counts["refused"] > 100, counts
