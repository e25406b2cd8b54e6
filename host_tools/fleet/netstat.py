"""Kernel TCP counters per lab host (namespace), before and after a phase: listen-queue
overflows (connections the simulators did not accept in time: the SYN is dropped and the phone
retries after 1 s, 3 s, ...), SYN retransmissions, timeouts. Loopback mode has one host."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

COUNTERS = ("ListenOverflows", "ListenDrops", "TCPSynRetrans", "TCPTimeouts", "TCPAbortOnData",
            "TCPAbortOnClose", "RetransSegs", "AttemptFails", "EstabResets")


def read_counters() -> dict[str, int]:
    """TcpExt and Tcp counters of the calling thread's network namespace."""
    out: dict[str, int] = {}
    for name in ("netstat", "snmp"):
        try:
            lines = Path(f"/proc/thread-self/net/{name}").read_text().splitlines()
        except OSError:
            continue
        for head, vals in zip(lines[::2], lines[1::2]):
            keys, nums = head.split()[1:], vals.split()[1:]
            for k, v in zip(keys, nums):
                if k in COUNTERS and v.lstrip("-").isdigit():
                    out[k] = int(v)
    return out


def hosts(lab: Any) -> dict[str, Callable[[], dict[str, int]]]:
    """A counter reader per host of the lab (run inside its namespace)."""
    topo = lab.topology
    if lab.mode != "netns":
        return {"host": read_counters}
    return {role: (lambda role=role: topo.run_in(role, read_counters, timeout=10))
            for role in ("phone", "branch", "hq")}


class Delta:
    def __init__(self, readers: dict[str, Callable[[], dict[str, int]]]) -> None:
        self.readers = readers
        self.before: dict[str, dict[str, int]] = {}

    def start(self) -> "Delta":
        self.before = {k: _safe(f) for k, f in self.readers.items()}
        return self

    def stop(self) -> dict[str, dict[str, int]]:
        out = {}
        for k, f in self.readers.items():
            now, was = _safe(f), self.before.get(k, {})
            d = {c: now[c] - was.get(c, 0) for c in now if now[c] - was.get(c, 0)}
            if d:
                out[k] = d
        return out


def _safe(f: Callable[[], dict[str, int]]) -> dict[str, int]:
    try:
        return f()
    except Exception:  # a counter we cannot read must not end the run
        return {}
