"""`phonelab repl`: mpremote's REPL with the agent's event lines rendered readably.

mpremote itself runs the terminal (`mpremote connect PORT repl`, its command line: nothing of
its internals), on a pseudo-terminal of ours; what it prints goes through EventLineFilter,
which passes everything through at once except lines that start like an event (`{"t":`),
held until their newline and then shown as
`   12.345s state            state=PRIMARY prev=PROVISION`. Prompts, echo and partial lines
are never delayed, so typing feels like plain mpremote. Ctrl-] or Ctrl-X leaves.

Ports that have no file descriptor to wait on (socket://, rfc2217:// URLs, which mpremote's
REPL cannot select on) get a small two-thread loop on pyserial doing the same.
"""
from __future__ import annotations

import os
import select
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


LEAVE = (b"\x1d", b"\x18")       # Ctrl-], Ctrl-X: mpremote's keys to leave its REPL


def mpremote_command(*args: str) -> list[str]:
    """mpremote's command line, from the Python that runs the host tools."""
    return [sys.executable, "-m", "mpremote", *args]


class _RawTerminal:
    """Our terminal in raw mode while mpremote's own (on the pty) does the line discipline."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved: list | None = None

    def __enter__(self) -> _RawTerminal:
        import termios
        import tty
        if os.isatty(self.fd):
            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd, termios.TCSANOW)    # keys typed ahead are kept
        return self

    def __exit__(self, *exc: object) -> None:
        import termios
        if self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


def _pty_loop(port: str, out: Callable[[bytes], None]) -> int:
    """`mpremote connect PORT repl` on a pty; its output to `out`, our keys to it."""
    import pty
    pid, fd = pty.fork()
    if pid == 0:                                    # the child: mpremote, nothing else
        try:
            os.execv(sys.executable, mpremote_command("connect", port, "repl"))
        finally:
            os._exit(127)
    stdin = sys.stdin.fileno()
    held = bytearray()      # keys typed before mpremote's terminal is raw (setting it flushes)
    try:
        _copy_window_size(stdin, fd)
        with _RawTerminal(stdin):
            while True:
                ready = select.select([fd, stdin], [], [], 0.1)[0]
                if fd in ready:
                    try:
                        data = os.read(fd, 4096)
                    except OSError:                 # EIO: mpremote has left
                        break
                    if not data:
                        break
                    out(data)
                if stdin in ready:
                    keys = os.read(stdin, 1024)
                    if not keys:
                        break
                    held += keys
                if held and _is_raw(fd):
                    os.write(fd, held)
                    held.clear()
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _is_raw(fd: int) -> bool:
    """mpremote has put its side of the pty in raw mode (its REPL loop is reading keys)."""
    import termios
    try:
        return not termios.tcgetattr(fd)[3] & termios.ICANON
    except termios.error:
        return False


def _copy_window_size(src: int, dst: int) -> None:
    import fcntl
    import termios
    try:
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def _url_loop(port: str, out: Callable[[bytes], None]) -> int:
    """For URL ports: pyserial, a reader thread for the board, our keys read here."""
    import serial
    try:
        conn = serial.serial_for_url(port, baudrate=115200, timeout=0.1)
    except (serial.SerialException, ValueError) as e:
        print(f"error: cannot open {port}: {e}", file=sys.stderr)
        return 1
    print(f"Connected to {port}. Use Ctrl-] or Ctrl-x to exit this shell", flush=True)
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                data = conn.read(4096)
            except Exception:   # noqa: BLE001 (the connection went away)
                stop.set()
                return
            if data:
                out(data)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    stdin = sys.stdin.fileno()
    try:
        with _RawTerminal(stdin):
            while not stop.is_set():
                if not select.select([stdin], [], [], 0.1)[0]:
                    continue
                keys = os.read(stdin, 1024)
                cut = min((keys.index(k) for k in LEAVE if k in keys), default=None)
                conn.write(keys if cut is None else keys[:cut])
                if not keys or cut is not None:
                    break
    finally:
        stop.set()
        t.join(1)
        conn.close()
    return 0


def repl(port: str, raw_events: bool = False) -> int:
    if "://" not in port and not os.path.exists(port):
        print(f"error: cannot open {port}: no such device (plugged in? for a virtual board use "
              f"the pty or socket:// URL `phonelab vboard` printed)", file=sys.stderr)
        return 1
    print(f"Connecting to {port}; event lines are shown rendered"
          f"{' (and raw)' if raw_events else ''}. Ctrl-] or Ctrl-X leaves.", flush=True)
    tty = sys.stdout.isatty()
    style = (b"\x1b[36m", b"\x1b[0m") if tty else (b"", b"")

    def write(b: bytes) -> None:
        sys.stdout.buffer.write(b)
        sys.stdout.flush()

    filt = EventLineFilter(write, style, keep_raw=raw_events)
    try:
        rc = _url_loop(port, filt.feed) if "://" in port else _pty_loop(port, filt.feed)
    finally:
        filt.flush()
    print()
    return rc
