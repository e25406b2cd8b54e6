"""`phonelab repl`: mpremote's REPL with the agent's event lines rendered readably.

mpremote's own terminal loop (mpremote.repl.do_repl_main_loop) runs unchanged; only its output
callback is ours: EventLineFilter passes everything through at once except lines that start
like an event (`{"t":`), which are held until their newline and then shown as
`   12.345s state            state=PRIMARY prev=PROVISION`. Prompts, echo and partial lines
are never delayed, so typing feels like plain mpremote. Ctrl-] or Ctrl-X leaves.

Ports that have no file descriptor to wait on (socket://, rfc2217:// URLs, which mpremote's
loop cannot select on) get a small two-thread loop doing the same.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Callable

from host_tools.events import parse_line, render

EVENT_PREFIX = b'{"t":'
MAX_HELD = 8192  # a "line" longer than this is not an event: let it through


class EventLineFilter:
    """Bytes in, bytes out; event lines replaced by their rendering (with `style` around it)."""

    def __init__(self, write: Callable[[bytes], None], style: tuple[bytes, bytes] = (b"", b""),
                 keep_raw: bool = False) -> None:
        self.write = write
        self.style = style
        self.keep_raw = keep_raw   # also pass the JSON line itself through
        self._held = bytearray()   # the current line while it may still be an event
        self._at_start = True      # at the start of a line

    def feed(self, data: bytes) -> None:
        out = bytearray()
        for i in range(len(data)):
            c = data[i:i + 1]
            if self._held:
                self._held += c
                if c == b"\n":
                    out += self._finish()
                elif len(self._held) <= len(EVENT_PREFIX):
                    if not EVENT_PREFIX.startswith(bytes(self._held)):
                        out += self._held
                        self._held.clear()
                        self._at_start = False
                elif len(self._held) > MAX_HELD:
                    out += self._held
                    self._held.clear()
                    self._at_start = False
                continue
            if self._at_start and c == EVENT_PREFIX[:1]:
                self._held += c
                continue
            out += c
            self._at_start = c in (b"\n", b"\r")
        if out:
            self.write(bytes(out))

    def _finish(self) -> bytes:
        line = bytes(self._held)
        self._held.clear()
        self._at_start = True
        event = parse_line(line.decode("utf-8", "replace"))
        if event is None:
            return line
        shown = self.style[0] + render(event).encode() + self.style[1] + b"\r\n"
        return line + shown if self.keep_raw else shown

    def flush(self) -> None:
        if self._held:
            self.write(bytes(self._held))
            self._held.clear()


class _State:
    """The slice of mpremote's State that its REPL loop uses."""

    def __init__(self, transport: object) -> None:
        self.transport = transport


def _url_loop(transport: object, console: object, out: Callable[[bytes], None]) -> None:
    """For URL ports: a reader thread for the board, the console read here."""
    serial = transport.serial  # type: ignore[attr-defined]
    serial.timeout = 0.1
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                data = serial.read(4096)
            except Exception:
                stop.set()
                return
            if data:
                out(data)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        while not stop.is_set():
            c = console.readchar()  # type: ignore[attr-defined]
            if c is None:
                time.sleep(0.01)
                continue
            if c in (b"\x1d", b"\x18"):
                break
            serial.write(c)
    finally:
        stop.set()
        t.join(1)


def repl(port: str, raw_events: bool = False) -> int:
    from mpremote.console import Console
    from mpremote.repl import do_repl_main_loop
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    try:
        transport = SerialTransport(port, baudrate=115200)
    except TransportError as e:
        print(f"error: cannot open {port}: {e} (is it in use by another program?)", file=sys.stderr)
        return 1
    except Exception as e:  # pyserial errors for bad URLs and devices
        print(f"error: cannot open {port}: {e}", file=sys.stderr)
        return 1
    print(f"Connected to {port}; event lines are shown rendered"
          f"{' (and raw)' if raw_events else ''}. Ctrl-] or Ctrl-X leaves.")
    console = Console()
    console.enter()
    tty = sys.stdout.isatty()
    style = (b"\x1b[36m", b"\x1b[0m") if tty else (b"", b"")

    def write(b: bytes) -> None:
        console.write(b)
        if not tty:
            sys.stdout.flush()

    filt = EventLineFilter(write, style, keep_raw=raw_events)
    out = filt.feed
    try:
        if getattr(transport.serial, "fd", None) is not None:
            do_repl_main_loop(_State(transport), console, out, escape_non_printable=False,
                              code_to_inject=None, file_to_inject=None)
        else:
            _url_loop(transport, console, out)
    finally:
        filt.flush()
        console.exit()
        transport.close()
    print()
    return 0
