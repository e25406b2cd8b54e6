"""What the host knows about every phone of a fleet, from the event lines of its processes.

Each agent's lines carry its tag ("ph" = MAC, `host_tools.events.Event.phone`), so one
process's console separates into per-phone streams. Times: every line's "t" counts from its
process's tick origin, which the runner announces first (`fleet_clock`, `ticks`). On the unix
port ticks_ms() is CLOCK_MONOTONIC in ms modulo 2**30, the clock of Python's time.monotonic(),
so "t" maps exactly onto host time (`Clock`), with no delay from pipes or a busy host thread.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from host_tools.events import Event

_WRAP = 1 << 30


@dataclass
class Clock:
    """Agent ticks -> host monotonic seconds for one process."""
    origin_ms: int            # host monotonic ms of the process's tick origin (T0)

    @classmethod
    def from_ticks(cls, ticks: int, now: float | None = None) -> "Clock":
        now_ms = int((time.monotonic() if now is None else now) * 1000)
        return cls(now_ms - ((now_ms - ticks) % _WRAP))

    def at(self, t_ms: int) -> float:
        return (self.origin_ms + t_ms) / 1000.0


@dataclass
class Phone:
    mac: str
    proc: int
    events: list[tuple[float, Event]] = field(default_factory=list)
    registered: float | None = None        # first registration with the call manager
    standby: float | None = None           # first standby session to the SRST router
    on_srst: float | None = None           # first SRST registration after the WAN cut
    failover_ms: int | None = None         # the agent's own figure for that registration
    register_ms: int | None = None
    over_standby: bool | None = None
    boot_register_ms: int | None = None    # connect + register, as the agent measured it
    last_reason: str | None = None         # the latest failure the agent reported
    failures: int = 0                      # register_failed, standby_failed, link_down ...
    final: dict | None = None
    state: str | None = None

    def reason(self) -> str:
        return self.last_reason or (f"state {self.state}" if self.state else "no events")


_FAIL_EVENTS = ("register_failed", "standby_failed", "link_down", "agent_crashed", "probe_failed",
                "srst_lost", "primary_lost")


class Tracker:
    """Thread-safe: reader threads `add()`, the orchestrator waits with `wait_until()`."""

    def __init__(self, macs_by_proc: dict[int, list[str]]) -> None:
        self.phones: dict[str, Phone] = {m: Phone(m, p) for p, ms in macs_by_proc.items() for m in ms}
        self.proc_events: dict[int, list[tuple[float, Event]]] = {p: [] for p in macs_by_proc}
        self.clocks: dict[int, Clock] = {}
        self.cut_at: float | None = None
        self.counts = {"registered": 0, "standby": 0, "on_srst": 0}
        self.strays = 0                    # tagged lines for a phone this fleet does not have
        self._cv = threading.Condition()

    # -- feeding -------------------------------------------------------------------------
    def add(self, proc: int, ev: Event) -> None:
        with self._cv:
            clock = self.clocks.get(proc)
            if ev.ev == "fleet_clock" and ev.phone is None:
                clock = self.clocks[proc] = Clock.from_ticks(int(ev["ticks"]))
            at = clock.at(ev.t) if clock is not None else time.monotonic()
            if ev.phone is None:
                self.proc_events[proc].append((at, ev))
            else:
                ph = self.phones.get(ev.phone)
                if ph is None or ph.proc != proc:
                    self.strays += 1
                else:
                    self._phone(ph, at, ev)
            self._cv.notify_all()

    def _phone(self, ph: Phone, at: float, ev: Event) -> None:
        ph.events.append((at, ev))
        name = ev.ev
        if name == "state":
            ph.state = ev.get("state")
        elif name == "registered":
            if ev.get("link") == "primary":
                if ph.registered is None:
                    ph.registered = at
                    ph.boot_register_ms = ev.get("ms")
                    self.counts["registered"] += 1
            elif ev.get("link") == "srst" and self.cut_at is not None and at >= self.cut_at \
                    and ph.on_srst is None:
                ph.on_srst = at
                ph.failover_ms = ev.get("failover_ms")
                ph.register_ms = ev.get("register_ms")
                ph.over_standby = ev.get("over_standby")
                self.counts["on_srst"] += 1
        elif name == "standby_up":
            if ph.standby is None:
                ph.standby = at
                self.counts["standby"] += 1
        elif name == "fleet_final":
            ph.final = dict(ev.fields)
        if name in _FAIL_EVENTS:
            ph.failures += name != "primary_lost"
            why = ev.get("reason")
            ph.last_reason = f"{name}: {why}" if why else name

    def mark_cut(self, at: float) -> None:
        with self._cv:
            self.cut_at = at

    # -- waiting -------------------------------------------------------------------------
    def wait_until(self, pred: Callable[["Tracker"], bool], timeout: float,
                   alive: Callable[[], bool] = lambda: True) -> bool:
        """Until pred(tracker) holds (True), `timeout` passes or `alive()` turns false."""
        end = time.monotonic() + timeout
        with self._cv:
            while not pred(self):
                left = end - time.monotonic()
                if left <= 0 or not alive():
                    return pred(self)
                self._cv.wait(min(left, 0.5))
            return True

    def proc_event(self, proc: int, name: str, **match: object) -> tuple[float, Event] | None:
        with self._cv:
            for at, ev in self.proc_events.get(proc, []):
                if ev.ev == name and all(ev.get(k) == v for k, v in match.items()):
                    return at, ev
        return None

    def proc_events_named(self, name: str) -> list[tuple[int, float, Event]]:
        with self._cv:
            return [(p, at, ev) for p, evs in self.proc_events.items() for at, ev in evs
                    if ev.ev == name]
