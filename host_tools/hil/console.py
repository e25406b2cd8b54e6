"""A board's console for tests: EventStream (events as they come, waits with timeouts) and
SerialConsole (a pyserial reader thread on a real or pty port, pausable so mpremote can use the
port in between: a serial port has one reader)."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from host_tools.events import Event, EventReader, Listener, Listeners, Text



class EventStream:
    """Events from one board, from the moment the stream was opened.

    wait() returns the first matching event after the previous wait()'s match, so a test reads
    a sequence naturally: wait('state', state='PROVISION'), then wait('state', state='PRIMARY').
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._reader = EventReader()
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self._cursor = 0
        self.closed = False

    def feed(self, data: bytes) -> None:
        with self._cond:
            for item in self._reader.feed(data):
                if isinstance(item, Text):
                    self._lines.append(item.line)
            self._cond.notify_all()

    @property
    def events(self) -> list[Event]:
        with self._cond:
            return list(self._reader.events)

    @property
    def lines(self) -> list[str]:
        """Console lines that were not events (prints, tracebacks, prompts)."""
        with self._cond:
            return list(self._lines)

    def mark(self) -> int:
        with self._cond:
            return len(self._reader.events)

    def skip(self) -> None:
        """Make wait() look only at events from now on (the board handles call this at a
        reset: what came before belongs to the previous boot)."""
        with self._cond:
            self._cursor = len(self._reader.events)

    def wait(self, name: str, timeout: float = 30.0, since: int | None = None,
             **fields: object) -> Event:
        """The first event `name` with these field values at index >= since (default: after
        the last wait()'s match). TimeoutError lists what did come."""
        deadline = time.monotonic() + timeout
        with self._cond:
            start = self._cursor if since is None else since
            while True:
                evs = self._reader.events
                for i in range(start, len(evs)):
                    e = evs[i]
                    if e.ev == name and all(e.get(k) == v for k, v in fields.items()):
                        self._cursor = i + 1
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = ", ".join(f"{e.ev}" for e in evs[start:][-15:]) or "none"
                    tail = " | ".join(self._lines[-5:])
                    raise TimeoutError(f"{self.name}: no event {name!r} {fields or ''} within "
                                       f"{timeout} s (events since: {seen}; last lines: {tail})")
                self._cond.wait(min(left, 0.5))

    def wait_line(self, pattern: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._lines:
                    if pattern in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.name}: no console line with {pattern!r} within {timeout} s")
                self._cond.wait(min(left, 0.5))


class SerialConsole(Listeners):
    """One pyserial connection shared by listeners; pause() frees the port for mpremote."""

    def __init__(self, port: str, baudrate: int = 115200) -> None:
        self.port = port
        self.baudrate = baudrate
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._ser: object | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> SerialConsole:
        import serial
        if self._thread is not None:
            return self
        s = serial.serial_for_url(self.port, do_not_open=True, baudrate=self.baudrate,
                                  timeout=0.05, exclusive=True)
        s.dtr = False  # no edge on an auto-reset circuit: opening the console must not reset
        s.rts = False
        s.open()
        self._ser = s
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"console:{self.port}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        ser = self._ser
        while not self._stop.is_set():
            try:
                data = ser.read(4096)  # type: ignore[attr-defined]
            except Exception:  # the port went away (board unplugged, exporter gone)
                if not self._stop.is_set():
                    time.sleep(0.2)
                continue
            if data:
                with self._lock:
                    listeners = list(self._listeners)
                for fn in listeners:
                    fn(data)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None
        if self._ser is not None:
            try:
                self._ser.close()  # type: ignore[attr-defined]
            except Exception:
                pass
            self._ser = None

    @contextmanager
    def pause(self) -> Iterator[None]:
        running = self._thread is not None
        self.stop()
        try:
            yield
        finally:
            if running:
                self.start()

    def write(self, data: bytes) -> None:
        if self._ser is None:
            raise RuntimeError(f"console on {self.port} is not open")
        self._ser.write(data)  # type: ignore[attr-defined]



class BoardLog:
    """A board's console kept as test artifacts: NAME.serial.log (every byte, as the board
    wrote it) and NAME.events.jsonl (each event line as the agent wrote it, with the host's
    wall-clock time it arrived). A console sink (BoardHandle.attach): feed(), skip(), closed."""

    def __init__(self, folder: Path, name: str) -> None:
        import re
        folder.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "board"
        self.serial_path = folder / f"{stem}.serial.log"
        self.events_path = folder / f"{stem}.events.jsonl"
        self._serial = self.serial_path.open("ab")
        self._events = self.events_path.open("a", encoding="utf-8")
        self._reader = EventReader()
        self._lock = threading.Lock()
        self.closed = False

    def feed(self, data: bytes) -> None:
        import json
        with self._lock:
            if self.closed:
                return
            self._serial.write(data)
            self._serial.flush()
            now = time.time()
            for item in self._reader.feed(data):
                if isinstance(item, Event):
                    ev = {"t": item.t, "ev": item.ev, **item.fields}
                    if item.phone is not None:
                        ev["ph"] = item.phone
                    self._events.write(json.dumps({"host_time": round(now, 3), "event": ev})
                                       + "\n")
            self._events.flush()

    def skip(self) -> None:
        """A reset: the logs go on (the next boot's lines follow in both files)."""

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._serial.close()
            self._events.close()
