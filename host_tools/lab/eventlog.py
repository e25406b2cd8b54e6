"""The lab's merged event log: lab actions (faults, restarts), server events (simulators,
dnsmasq) and anything the caller adds (board events), one JSON object per line.

Every record carries host timestamps from one clock origin, so records from different threads
and processes line up:

    {"t": 1234, "mono": 81234.567, "wall": "2026-11-20T10:11:12.345Z", "src": "lab",
     "ev": "wan_cut", "kind": "blackhole"}

`t` is ms since the log started (time.monotonic based), `mono` the raw monotonic seconds,
`wall` UTC wall-clock time. A server's own timestamp, when it had one, is kept as `src_t`.
"""
from __future__ import annotations

import datetime as dt
import json
import threading
import time
from pathlib import Path
from typing import Any, Callable

Record = dict[str, Any]


def _wall(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class EventLog:
    def __init__(self, path: str | Path | None = None, keep: int = 100_000,
                 append: bool = False) -> None:
        self.path = Path(path) if path else None
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self.records: list[Record] = []
        self.keep = keep
        self._cond = threading.Condition()
        self._file = None
        self._hooks: list[Callable[[Record], None]] = []
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a" if append else "w", encoding="utf-8")

    def emit(self, src: str, ev: str, **fields: Any) -> Record:
        """Add one record; thread-safe."""
        mono = time.monotonic()
        rec: Record = {"t": int((mono - self.t0) * 1000), "mono": round(mono, 4),
                       "wall": _wall(self.wall0 + (mono - self.t0)), "src": src, "ev": ev}
        for k, v in fields.items():
            rec["src_" + k if k in rec else k] = v
        line = json.dumps(rec, default=str)
        with self._cond:
            self.records.append(rec)
            if len(self.records) > self.keep:
                del self.records[: len(self.records) - self.keep]
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()
            self._cond.notify_all()
            hooks = list(self._hooks)
        for hook in hooks:
            try:
                hook(rec)
            except Exception:  # an observer must not break the lab
                pass
        return rec

    def server_hook(self, default_src: str) -> Callable[[dict], None]:
        """An `on_event` callback for the simulators: their dict events become records."""
        def hook(e: dict) -> None:
            e = dict(e)
            ev = str(e.pop("ev", "event"))
            src = str(e.pop("src", default_src))
            if "t" in e:
                e["src_t"] = e.pop("t")
            e.setdefault("role", default_src)
            self.emit(src, ev, **e)
        return hook

    def subscribe(self, hook: Callable[[Record], None]) -> None:
        with self._cond:
            self._hooks.append(hook)

    def snapshot(self, since: int = 0) -> list[Record]:
        with self._cond:
            return list(self.records[since:])

    def __len__(self) -> int:
        with self._cond:
            return len(self.records)

    def wait_for(self, pred: Callable[[Record], bool], timeout: float, since: int = 0) -> Record:
        """The first record (from index `since`) matching `pred`; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        i = since
        with self._cond:
            while True:
                while i < len(self.records):
                    if pred(self.records[i]):
                        return self.records[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching lab event within {timeout} s")
                self._cond.wait(left)

    def close(self) -> None:
        with self._cond:
            if self._file is not None:
                self._file.close()
                self._file = None
