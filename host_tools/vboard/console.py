"""What a virtual board printed, for the host: history with positions, parsed events (see
host_tools/events.py), callbacks and queues. Fed by the board's pump thread; read from any
thread, also while no serial client is attached."""
from __future__ import annotations

import logging
import queue
import re
import threading
import time

from host_tools.events import Event, EventReader, Listener, Listeners

log = logging.getLogger(__name__)

_KEEP = 4 << 20  # bytes of history kept for wait_output()


class ConsoleTaps(Listeners):
    def __init__(self, on_output: Listener | None = None) -> None:
        self._lock = threading.Condition()
        self._console = bytearray()
        self._console_base = 0
        self._reader = EventReader()
        self._listeners: list[Listener] = [on_output] if on_output else []
        self._queues: list[queue.Queue[bytes]] = []

    def _console_feed(self, data: bytes) -> None:
        with self._lock:
            self._console += data
            if len(self._console) > _KEEP:
                drop = len(self._console) - _KEEP
                del self._console[:drop]
                self._console_base += drop
            self._reader.feed(data)
            listeners, queues = list(self._listeners), list(self._queues)
            self._lock.notify_all()
        for fn in listeners:
            try:
                fn(data)
            except Exception:
                log.exception("virtual board console listener failed")
        for q in queues:
            q.put(data)

    def _console_wake(self) -> None:
        with self._lock:
            self._lock.notify_all()

    def subscribe(self) -> queue.Queue[bytes]:
        """A queue that receives every console chunk from now on."""
        q: queue.Queue[bytes] = queue.Queue()
        with self._lock:
            self._queues.append(q)
        return q

    def unsubscribe(self, q: queue.Queue[bytes]) -> None:
        with self._lock:
            if q in self._queues:
                self._queues.remove(q)

    def mark(self) -> int:
        """Console position now; pass it as `since` to look only at what comes after."""
        with self._lock:
            return self._console_base + len(self._console)

    def console(self, since: int = 0) -> bytes:
        """Console output (as a client sees it) from position `since`."""
        with self._lock:
            return bytes(self._console[max(0, since - self._console_base):])

    def wait_output(self, pattern: bytes | re.Pattern[bytes], timeout: float = 10.0,
                    since: int = 0) -> re.Match[bytes]:
        """Wait until the console (from `since`) matches pattern; TimeoutError otherwise."""
        rx = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                start = max(0, since - self._console_base)
                m = rx.search(self._console, start)
                if m:
                    return m
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = bytes(self._console[start:][-400:])
                    raise TimeoutError(f"no {rx.pattern!r} on the board's console within "
                                       f"{timeout} s; last output: {tail!r}")
                self._lock.wait(min(left, 0.5))

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return list(self._reader.events)

    def wait_event(self, name: str, timeout: float = 10.0, since: int = 0,
                   **fields: object) -> Event:
        """Wait for event `name` (index >= since in .events) whose fields match `fields`."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for e in self._reader.events[since:]:
                    if e.ev == name and all(e.get(k) == v for k, v in fields.items()):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no event {name!r} {fields or ''} within {timeout} s")
                self._lock.wait(min(left, 0.5))
