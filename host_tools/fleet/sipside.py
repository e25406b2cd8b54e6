"""A SIP fleet's lab side (`phonelab fleet --sip`): the lines the phones register with, and
what the lab's Kamailio registrars say, from their own counters rather than the phones'
events.

    lines = sipside.lines(lab)                    # {MAC: (user, password)}
    watch = sipside.Watch(lab, outside).start()   # samples each registrar's statistics
    watch.reached("callmanager", "usrloc:registered_users", 1000, since)   # host time or None
    sipside.view(lab, outside, devices)           # registered AORs (ul.dump), TLS sessions
    watch.stop()

Kamailio counts a registration in usrloc:registered_users when save() stores its contact,
and every REGISTER it takes in core:rcv_requests_register (the digest challenge's one too);
the CRLF keepalives (RFC 5626) of standby sessions and probes never reach its script, so no
counter of its sees them (docs/decisions.md, "Issue 15: the SIP fleet").
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from host_tools.lab.kamrpc import KamRpcError

STATS = ("usrloc:", "registrar:", "tcp:", "shmem:", "core:")
REGISTERED = "usrloc:registered_users"
POLL_S = 0.25


def lines(lab: Any) -> dict[str, tuple[str, str]]:
    """Each phone's line (its digest user) and password, as the registrars know them."""
    return {m: (ln.user, ln.password) for m, ln in lab.sip.lines.items()}


def servers(lab: Any, outside: tuple[str, int] | None) -> dict[str, Any]:
    """The registrars the fleet can ask: both, or the call manager's alone when the SRST
    router is an outside one."""
    return {r: k for r, k in lab.sip.servers.items() if r == "callmanager" or outside is None}


def stats(k: Any) -> dict[str, int]:
    """One registrar's counters of STATS ("group:name" -> value)."""
    out: dict[str, int] = {}
    for item in k.rpc.call("stats.get_statistics", *STATS) or []:
        name, _sep, value = str(item).partition(" = ")
        try:
            out[name.strip()] = int(value)
        except ValueError:
            pass
    return out


class Watch:
    """Every POLL_S, each registrar's STATS with the host time they were read (a thread)."""

    def __init__(self, lab: Any, outside: tuple[str, int] | None) -> None:
        self.servers = servers(lab, outside)
        self.samples: dict[str, list[tuple[float, dict[str, int]]]] = {r: [] for r in self.servers}
        self.errors: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleet:kamailio", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> "Watch":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            for role, k in self.servers.items():
                try:
                    s = stats(k)
                except KamRpcError as e:     # a busy or stopped registrar: say so, go on
                    self.errors[role] = str(e)
                    continue
                with self._lock:
                    self.samples[role].append((time.monotonic(), s))
            self._stop.wait(POLL_S)

    def latest(self, role: str, key: str) -> int | None:
        with self._lock:
            s = self.samples.get(role) or []
            return s[-1][1].get(key) if s else None

    def reached(self, role: str, key: str, n: int, since: float) -> float | None:
        """The host time of the first sample after `since` with `key` at n or more."""
        with self._lock:
            for at, s in self.samples.get(role, []):
                if at >= since and s.get(key, -1) >= n:
                    return at
        return None

    def at(self, role: str, when: float) -> dict[str, int]:
        """The last sample read at or before `when` (the first one if none)."""
        with self._lock:
            s = self.samples.get(role) or []
            best = s[0][1] if s else {}
            for at, v in s:
                if at > when:
                    break
                best = v
            return best

    def phase(self, role: str, since: float, n: int) -> dict[str, Any]:
        """Kamailio's own figures for a phase that began at `since` and ends with `n`
        registered there: seconds until n, the first one, the rate in between, and the
        REGISTERs it took (challenges included) and accepted."""
        first = self.reached(role, REGISTERED, self.at(role, since).get(REGISTERED, 0) + 1, since)
        last = self.reached(role, REGISTERED, n, since)
        now = self.at(role, last if last is not None else time.monotonic())
        before = self.at(role, since)
        out: dict[str, Any] = {
            "registered": now.get(REGISTERED),
            "all_registered_s": round(last - since, 2) if last is not None else None,
            "first_registered_s": round(first - since, 2) if first is not None else None,
            "registers_received": _delta(now, before, "core:rcv_requests_register"),
            "registers_accepted": _delta(now, before, "registrar:accepted_regs"),
            "registers_rejected": _delta(now, before, "registrar:rejected_regs"),
            "tcp_connections": now.get("tcp:current_opened_connections"),
            "shm_used_kb": (now["shmem:real_used_size"] // 1024
                            if "shmem:real_used_size" in now else None),
            "shm_added_kb": (_delta(now, before, "shmem:real_used_size") or 0) // 1024
            if "shmem:real_used_size" in now else None,
            "poll_s": POLL_S,
        }
        if first is not None and last is not None and last > first:
            out["registrations_per_s"] = round((n - 1) / (last - first), 1)
        if role in self.errors:
            out["rpc_error"] = self.errors[role]
        return out


def _delta(a: dict[str, int], b: dict[str, int], key: str) -> int | None:
    return a[key] - b.get(key, 0) if key in a else None


def view(lab: Any, outside: tuple[str, int] | None, devices: set[str]) -> dict[str, Any]:
    """The fleet's phones as each registrar holds them: registered devices (ul.dump: the
    AOR's line belongs to the device), its TLS sessions (core.tcp_info: at the branch, the
    standby sessions), the first devices missing."""
    out: dict[str, Any] = {}
    for role, k in servers(lab, outside).items():
        st = k.status()
        reg = {d.upper() for d in st.get("registered", [])} & devices
        v: dict[str, Any] = {"registered": len(reg),
                             "not_registered": sorted(devices - reg)[:10]}
        try:
            info = k.rpc.call("core.tcp_info") or {}
            v["tls_connections"] = info.get("opened_tls_connections")
            v["max_tls_connections"] = info.get("max_tls_connections")
        except KamRpcError as e:
            v["error"] = str(e)
        if "error" in st:
            v["error"] = st["error"]
        out[role] = v
    return out


def load(watch: Watch, phones: int) -> dict[str, Any]:
    """REGISTERs per phone per minute each registrar received over the run so far (digest
    challenges included; CRLF keepalives are not SIP requests and are not counted)."""
    out: dict[str, Any] = {}
    for role in watch.servers:
        with watch._lock:
            s = list(watch.samples.get(role, []))
        if len(s) < 2 or not phones:
            continue
        (t0, a), (t1, b) = s[0], s[-1]
        n = _delta(b, a, "core:rcv_requests_register")
        minutes = max(t1 - t0, 1e-3) / 60
        out[role] = {"phones": phones, "minutes": round(minutes, 2),
                     "registers_per_phone_per_min": round(n / phones / minutes, 2)
                     if n is not None else None,
                     "note": "REGISTERs only: Kamailio does not count CRLF keepalives"}
    return out


def tree_cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a Kamailio and the workers it forked (its children, one level)."""
    from host_tools.fleet.procs import cpu_seconds
    if pid is None:
        return None
    total = cpu_seconds(pid)
    if total is None:
        return None
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        kids = []
    return total + sum(cpu_seconds(int(k)) or 0.0 for k in kids)


def cpu_probes(lab: Any, outside: tuple[str, int] | None) -> dict[str, Any]:
    """fleet.cpu probes: each registrar's processes together."""
    return {f"Kamailio {role} (all its processes)":
            (lambda k=k: tree_cpu_seconds(k.proc.pid if k.proc is not None else None))
            for role, k in servers(lab, outside).items()}
