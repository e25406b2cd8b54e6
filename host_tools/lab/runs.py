"""Run folders: private temporary folders marked with the process they belong to, so that
the next lab started on this machine removes what a killed run left (lab.sweep_stale_runs).

    d = run_folder("fleet")                 # /tmp/phonelab-fleet-XXXXXXXX, 0700, marked
    owner_alive(d)                          # True while this process lives
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

RUN_PREFIX = "phonelab-"
OWNER_FILE = ".phonelab-owner"      # "PID STARTTIME" of the process a run folder belongs to


def start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22): with the
    pid it names one process, never a later one that reuses the pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def run_folder(tag: str, base: str | Path | None = None) -> Path:
    """A temporary folder for one run: private (0700, it will hold the lab PKI's keys and the
    TLS key log) and marked with this process, so that the next lab started on this machine
    removes it if this process is killed before it can (sweep_stale_runs)."""
    d = Path(tempfile.mkdtemp(prefix=f"{RUN_PREFIX}{tag}-", dir=base)).resolve()
    d.chmod(0o700)
    (d / OWNER_FILE).write_text(f"{os.getpid()} {start_time(os.getpid())}\n")
    return d


def owner_alive(folder: Path) -> bool | None:
    """True/False for a marked run folder, None for one that is not (not ours, or a run
    still creating it)."""
    try:
        pid_s, start = (folder / OWNER_FILE).read_text().split()
        pid = int(pid_s)
    except (OSError, ValueError):
        return None
    return start_time(pid) == start


def pids_using(folder: Path) -> list[int]:
    """Processes whose command line names a path in `folder` (dnsmasq's lease and pid files,
    a virtual board's folder), never this one."""
    root = str(folder)
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            args = (p / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(a == root or root + "/" in a for a in args):
            pids.append(int(p.name))
    return pids


SHORT_BASE_MAX = 64


def short_base() -> Path:
    """Where a run folder whose paths must stay short goes (Kamailio's RPC FIFOs, kamailio.py):
    the temporary folder, or /tmp when $TMPDIR is a long path. sweep_stale_runs looks in both."""
    t = tempfile.gettempdir()
    return Path(t) if len(t) <= SHORT_BASE_MAX else Path("/tmp")
