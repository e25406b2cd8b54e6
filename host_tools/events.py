"""Reading the agent's event stream: JSON lines mixed with ordinary REPL output.

A line is an event when it is a JSON object whose first keys are "t" (int, ms) and "ev" (str);
anything else (REPL prompts, prints, tracebacks) is passed through as text.
Which events there are, their fields and when they come: docs/events.md.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Union


@dataclass(frozen=True)
class Event:
    t: int                      # ms since the agent's clock origin (boot)
    ev: str                     # event name, e.g. "state", "registered"
    fields: dict = field(default_factory=dict)
    phone: str | None = None    # "ph" tag when several agents share one console
    raw: str = ""

    def __getitem__(self, key: str):
        return self.fields[key]

    def get(self, key: str, default=None):
        return self.fields.get(key, default)


@dataclass(frozen=True)
class Text:
    line: str


Item = Union[Event, Text]


def parse_line(line: str) -> Event | None:
    s = line.strip().lstrip("\x00")
    # Raw-REPL framing ("OK", "\x04") may precede the JSON on the same line.
    start = s.find('{"t":')
    if start < 0:
        return None
    s = s[start:]
    try:
        obj = json.loads(s)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    t, ev = obj.pop("t", None), obj.pop("ev", None)
    if not isinstance(t, int) or isinstance(t, bool) or not isinstance(ev, str):
        return None
    phone = obj.pop("ph", None)
    return Event(t=t, ev=ev, fields=obj, phone=phone, raw=s)


class EventReader:
    """Incremental: feed bytes or str as they arrive from a serial port or a process."""

    def __init__(self) -> None:
        self._buf = ""
        self.events: list[Event] = []

    def feed(self, data: bytes | str) -> list[Item]:
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        self._buf += data.replace("\r\n", "\n").replace("\r", "\n")
        *lines, self._buf = self._buf.split("\n")
        out: list[Item] = []
        for line in lines:
            e = parse_line(line)
            if e is not None:
                self.events.append(e)
                out.append(e)
            elif line.strip():
                out.append(Text(line))
        return out

    def flush(self) -> list[Item]:
        rest, self._buf = self._buf, ""
        return self.feed(rest + "\n") if rest else []


def parse_stream(chunks: Iterable[bytes | str]) -> Iterator[Item]:
    r = EventReader()
    for c in chunks:
        yield from r.feed(c)
    yield from r.flush()


def events_only(items: Iterable[Item]) -> list[Event]:
    return [i for i in items if isinstance(i, Event)]


def render(e: Event) -> str:
    """Human-readable line for a terminal."""
    who = f"[{e.phone}] " if e.phone else ""
    rest = " ".join(f"{k}={v}" for k, v in e.fields.items())
    return f"{e.t / 1000:9.3f}s {who}{e.ev:<16} {rest}".rstrip()


Listener = Callable[[bytes], None]


class Listeners:
    """For a console read by a thread: fn(bytes) callbacks added and removed from any thread,
    under the class's `_lock`, in its list `_listeners`."""
    _lock: Any
    _listeners: list[Listener]

    def add_listener(self, fn: Listener) -> None:
        """fn(bytes) gets every console chunk, on the reading thread: keep it quick."""
        with self._lock:
            self._listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        with self._lock:
            if fn in self._listeners:
                self._listeners.remove(fn)
