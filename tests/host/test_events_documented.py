"""docs/events.md lists every event the firmware emits, with every field, and nothing else.

The firmware side is read with `ast` (nothing is imported): every call `....emit('name',
field=...)` or `emit('name', ...)` under firmware/. A call that forwards `**kw` of its own
function (Agent.set_state -> 'state') takes the keywords of that function's callers. The docs
side is the tables of docs/events.md: a row whose first cell is one backticked event name,
whose second cell names its fields in backticks.
"""
from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
DOC = ROOT / "docs" / "events.md"

_ROW = re.compile(r"^\|\s*`([a-z0-9_]+)`\s*\|([^|]*)\|")
_TICKED = re.compile(r"`([A-Za-z0-9_]+)`")


def _func_name(call: ast.Call) -> str | None:
    f = call.func
    if isinstance(f, ast.Attribute):
        return f.attr
    if isinstance(f, ast.Name):
        return f.id
    return None


def _calls(node: ast.AST, fn):
    """(call, innermost enclosing function or None) for every call under `node`."""
    for child in ast.iter_child_nodes(node):
        inner = child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else fn
        if isinstance(child, ast.Call):
            yield child, fn
        yield from _calls(child, inner)


def emitted() -> tuple[dict[str, set[str]], dict[str, list[str]], list[str]]:
    """({event: fields}, {event: [file:line]}, [problems]) from firmware/**/*.py."""
    fields: dict[str, set[str]] = defaultdict(set)
    where: dict[str, list[str]] = defaultdict(list)
    problems: list[str] = []
    forwarders: dict[str, str] = {}          # function name -> event its **kw goes to
    trees = []
    for path in sorted(FIRMWARE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text(), filename=rel)
        trees.append((rel, tree))
        for call, fn in _calls(tree, None):
            if _func_name(call) != "emit":
                continue
            if fn is not None and fn.name == "emit":    # the sink itself: (ev, **fields)
                continue
            at = f"{rel}:{call.lineno}"
            if not call.args or not (isinstance(call.args[0], ast.Constant)
                                     and isinstance(call.args[0].value, str)):
                problems.append(f"{at}: event name is not a string literal (the docs "
                                "test cannot see it)")
                continue
            ev = call.args[0].value
            where[ev].append(at)
            for kw in call.keywords:
                if kw.arg is not None:
                    fields[ev].add(kw.arg)
                elif (fn is not None and isinstance(kw.value, ast.Name)
                      and fn.args.kwarg is not None and kw.value.id == fn.args.kwarg.arg):
                    forwarders[fn.name] = ev
                else:
                    problems.append(f"{at}: **{ast.unparse(kw.value)} in an emit() call: "
                                    "its fields cannot be checked")
    for rel, tree in trees:
        for call in ast.walk(tree):
            if isinstance(call, ast.Call) and _func_name(call) in forwarders:
                ev = forwarders[_func_name(call)]
                fields[ev].update(kw.arg for kw in call.keywords if kw.arg is not None)
    return fields, where, problems


def documented() -> tuple[dict[str, set[str]], list[str]]:
    docs: dict[str, set[str]] = {}
    problems: list[str] = []
    for n, line in enumerate(DOC.read_text().splitlines(), 1):
        m = _ROW.match(line)
        if not m:
            continue
        ev = m.group(1)
        if ev in docs:
            problems.append(f"docs/events.md:{n}: `{ev}` is listed twice")
        docs[ev] = set(_TICKED.findall(m.group(2)))
    return docs, problems


def test_the_scan_finds_the_firmware_events():
    fields, where, problems = emitted()
    assert not problems, "\n".join(problems)
    # a few the test knows of, so a broken scan cannot pass by finding nothing
    assert {"state", "registered", "dhcp_lease", "tftp_done", "halted"} <= set(fields)
    assert {"reason", "waiting_ms"} <= fields["state"]       # through Agent.set_state(**why)
    assert len(fields) > 50


def _missing(have: dict[str, set[str]], want: dict[str, set[str]], what_event: str,
             what_fields: str, where: dict[str, list[str]] | None = None) -> list[str]:
    """What `have` holds that `want` lacks: whole events, then fields of shared events
    (messages formatted with ev, fields and at: where the event is emitted)."""
    out = []
    for ev in sorted(have):
        gone = have[ev] - want[ev] if ev in want else None
        at = ", ".join((where or {}).get(ev, ()))
        if gone is None:
            out.append(what_event.format(ev=ev, at=at))
        elif gone:
            out.append(what_fields.format(ev=ev, at=at, fields=", ".join(sorted(gone))))
    return out


def test_every_emitted_event_and_field_is_documented():
    fields, where, _ = emitted()
    docs, problems = documented()
    problems += _missing(fields, docs, "`{ev}` (emitted at {at}) is not in docs/events.md",
                         "`{ev}`: field(s) {fields} emitted ({at}) but not documented", where)
    assert not problems, "\n".join(problems)


def test_docs_list_nothing_the_firmware_does_not_emit():
    fields, _, _ = emitted()
    docs, problems = documented()
    problems += _missing(docs, fields, "docs/events.md lists `{ev}`, which the firmware never emits",
                         "docs/events.md: `{ev}` lists field(s) {fields}, which the firmware "
                         "never emits")
    assert not problems, "\n".join(problems)
