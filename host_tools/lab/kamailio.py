"""Kamailio as the lab's SIP registrar over TLS 5061: the call manager's at HQ and the SRST
router's in the branch, inside the lab's network namespaces (as dnsmasq is).

    k = Kamailio(SipServerConfig(...), run_dir, prefix=["ip", "netns", "exec", NS])
    k.start()                   # writes kamailio.cfg + tls.cfg, waits until RPC answers
    k.status()                  # {"registered": {"1001": [{"contact": ..., "expires": 598}]}, ...}
    k.stop()

Kamailio runs in the foreground (`-DD`), logging to stderr (`-E`, log_stderror) into
`run_dir/kamailio.log`; `run_dir/kamailio.pid` holds its main process. It needs no privilege
of its own (port 5061, files in run_dir): in a namespace it runs as the lab does, in loopback
mode as the user. It is started with a parent-death signal (`nsloop.spawn`), stops its
workers on SIGTERM, and a killed lab's Kamailio is swept with its run folder (its command
line names run_dir: `lab.sweep_stale_runs`). The configuration is kamailio_cfg.py's; status
is JSON-RPC over a FIFO (kamrpc.py). Kamailio 5.6 limits two kinds of path (kamailio_cfg:
RPC_PATH_MAX, TLS_PATH_MAX; a long RPC one corrupts its memory), so the FIFO and links to
the TLS certificate, key and CA are in a private folder of its own with a short path,
/tmp/phonelab-kam-XXXXXXXX (`short_dir`): run_dir's own length never matters. It is made at
each start and removed at stop, on every path (a killed lab's by the sweep: it is a marked
run folder); `run_dir/rpc.fifo` links to the FIFO. Debian: kamailio, kamailio-tls-modules.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from host_tools.lab import tlskeylog
from host_tools.lab.kamailio_cfg import (CFG_NAME, MODULES, RPC_FIFO, TLS_FILES,
                                         SipServerConfig, write_config)
from host_tools.lab.kamrpc import KamRpc, KamRpcError
from host_tools.lab.nsloop import spawn, stop_process
from host_tools.lab.runs import run_folder, short_base

INSTALL = "Debian: kamailio, kamailio-tls-modules; `make setup` as root installs them"
LOG_NAME = "kamailio.log"
PID_NAME = "kamailio.pid"


class KamailioError(RuntimeError):
    pass


def binary() -> str | None:
    """The kamailio executable (Debian puts it in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("kamailio")
    if found:
        return found
    return "/usr/sbin/kamailio" if Path("/usr/sbin/kamailio").is_file() else None


@functools.lru_cache(maxsize=4)
def _probe(exe: str) -> tuple[str, Path | None]:
    """(version, module folder) from `kamailio -v` and `kamailio -I`."""
    try:
        v = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=10).stdout
        info = subprocess.run([exe, "-I"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "", None
    m = re.search(r"version: kamailio (\S+)", v)
    d = re.search(r"Default paths to modules: (\S+)", info)
    return (m.group(1) if m else ""), (Path(d.group(1)) if d else None)


def version() -> str | None:
    """Kamailio's version ("5.6.3"), None when it is not installed."""
    exe = binary()
    return (_probe(exe)[0] or None) if exe else None


def available() -> str | None:
    """None when Kamailio and every module the lab's configuration loads are installed, else
    the reason (for pytest.skip and the lab's one-line error)."""
    exe = binary()
    if exe is None:
        return f"Kamailio is not installed ({INSTALL})"
    _, mdir = _probe(exe)
    if mdir is None:
        return f"{exe} -I names no module folder: is Kamailio installed whole? ({INSTALL})"
    if not (mdir / "tls.so").is_file():
        return f"Kamailio's TLS module is not installed ({mdir}/tls.so; {INSTALL})"
    missing = [m for m in MODULES if not (mdir / f"{m}.so").is_file()]
    if missing:
        return f"Kamailio modules missing in {mdir}: {', '.join(missing)}"
    return None


def port_free(host: str, port: int) -> bool:
    """Whether a TCP listener could take host:port here (loopback mode: another lab, another
    program on 5061)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Kamailio:
    """config:   what to serve (kamailio_cfg.SipServerConfig)
    run_dir:     its own folder (configuration, log, pid, a link to the RPC FIFO); made
                 0700; any length (what Kamailio limits is in short_dir while it runs)
    prefix:      command prefix that puts it in a network namespace (`ip netns exec NS`)
    shm_mb, pkg_mb: Kamailio's shared and per-process memory (-m, -M)
    keylog:      append its TLS session keys to this file (tlskeylog.py; None: none)
    emit:        lab events (sip_server_up, sip_server_stopped, sip_keylog_unavailable)"""

    def __init__(self, config: SipServerConfig, run_dir: str | Path,
                 prefix: Sequence[str] = (), shm_mb: int = 64, pkg_mb: int = 8,
                 keylog: Path | None = None,
                 emit: Callable[..., Any] | None = None) -> None:
        self.config = config
        self.run_dir = Path(run_dir).resolve()
        self.prefix = list(prefix)
        self.shm_mb, self.pkg_mb = shm_mb, pkg_mb
        self.keylog = keylog
        self.emit = emit or (lambda ev, **f: None)
        self.proc: subprocess.Popen | None = None
        self.frozen = False                # freeze(): its processes stopped (SIGSTOP)
        self.short_dir: Path | None = None  # while started: RPC FIFO, links to the TLS files
        self.rpc = KamRpc(self.run_dir / RPC_FIFO)  # start() points it at short_dir's

    @property
    def role(self) -> str:
        return self.config.role

    @property
    def endpoint(self) -> tuple[str, int]:
        return self.config.host, self.config.port

    @property
    def log_path(self) -> Path:
        return self.run_dir / LOG_NAME

    @property
    def pid_path(self) -> Path:
        return self.run_dir / PID_NAME

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def argv(self) -> list[str]:
        exe = binary()
        if exe is None:
            raise KamailioError(available() or "kamailio not found")
        return [*self.prefix, exe, "-DD", "-E", "-f", str(self.run_dir / CFG_NAME),
                "-m", str(self.shm_mb), "-M", str(self.pkg_mb)]

    # -- life cycle ---------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> "Kamailio":
        if self.running:
            return self
        why = available()
        if why:
            raise KamailioError(why)
        self.short_dir = run_folder("kam", short_base())
        try:
            self._spawn()
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self.emit("sip_server_up", role=self.role, listen=f"tls:{self.config.host}:"
                  f"{self.config.port}", version=version(), pid=self.proc.pid)
        return self

    def _spawn(self) -> None:
        short = self.short_dir
        assert short is not None
        tls = {}
        for name in TLS_FILES:                  # Kamailio reads them through short links
            (short / f"{name}.pem").symlink_to(Path(getattr(self.config, name)).resolve())
            tls[name] = short / f"{name}.pem"
        files = write_config(dataclasses.replace(self.config, **tls), self.run_dir, short)
        link = self.run_dir / RPC_FIFO          # for a person (docs/lab.md), or a killed run's
        link.unlink(missing_ok=True)
        link.symlink_to(short / RPC_FIFO)
        self.rpc = KamRpc(short / RPC_FIFO)
        env = dict(os.environ)
        if "openssl" in files:                                # keys under 2048 bits
            env["OPENSSL_CONF"] = str(files["openssl"])
        if self.keylog is not None:
            try:
                env.update(tlskeylog.environ(self.keylog))
            except tlskeylog.KeylogUnavailable as e:          # runs on, undecryptable
                self.emit("sip_keylog_unavailable", role=self.role, reason=str(e))
        with open(self.log_path, "ab") as log:
            self.proc = spawn(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                              stderr=subprocess.STDOUT, cwd=self.run_dir, env=env)
        # -DD writes no pid file of its own (only a daemonizing Kamailio does)
        self.pid_path.write_text(f"{self.proc.pid}\n")

    def _wait_ready(self, timeout: float) -> None:
        """Ready when the RPC process answers: Kamailio forks it after every module is up
        and the listeners are bound."""
        end = time.monotonic() + timeout
        fifo = self.rpc.fifo
        while time.monotonic() < end:
            if not self.running:
                raise KamailioError(f"Kamailio ({self.role}) exited at start:\n"
                                    + "\n".join(self.log_tail(15)))
            if fifo.exists():
                try:
                    self.rpc.call("core.version", timeout=1.0)
                    return
                except KamRpcError:
                    pass
            time.sleep(0.05)
        raise KamailioError(f"Kamailio ({self.role}) not ready within {timeout} s:\n"
                            + "\n".join(self.log_tail(15)))

    def stop(self) -> None:
        """SIGTERM (Kamailio stops its workers), SIGKILL after 5 s; the RPC folder removed;
        safe to call twice."""
        if self.frozen and self.running:
            self.freeze(False)             # a stopped process would not see SIGTERM
        proc, self.proc = self.proc, None
        try:
            if proc is not None:
                workers = _children(proc.pid) if proc.poll() is None else []
                code = stop_process(proc, signal.SIGTERM, 5.0)
                # A main process killed after the timeout leaves its workers to init (seen:
                # two Kamailio workers alive after a loaded CI run): they go too.
                for pid in workers:
                    _kill_worker(pid)
                self.pid_path.unlink(missing_ok=True)
                self.emit("sip_server_stopped", role=self.role, exit=code)
        finally:
            short, self.short_dir = self.short_dir, None
            if short is not None:
                shutil.rmtree(short, ignore_errors=True)
                (self.run_dir / RPC_FIFO).unlink(missing_ok=True)

    def freeze(self, on: bool = True) -> list[int]:
        """A hung registrar (the lab's `hang` fault): SIGSTOP to the main process and its
        workers, SIGCONT with on=False. The kernel keeps the TCP connections (and completes
        new handshakes into the listen backlog) but nothing is read or answered. Returns the
        processes signalled."""
        if not self.running:
            raise KamailioError(f"Kamailio ({self.role}) is not running")
        assert self.proc is not None
        pids = [self.proc.pid, *_children(self.proc.pid)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP if on else signal.SIGCONT)
        self.frozen = on
        return pids

    def __enter__(self) -> "Kamailio":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, n: int = 20) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            return []

    # -- status -------------------------------------------------------------------------
    def registrations(self) -> dict[str, list[dict[str, Any]]]:
        """AOR -> its contacts: contact URI, seconds left, instance, user agent, socket."""
        if not self.running:
            return {}
        out: dict[str, list[dict[str, Any]]] = {}
        for dom in (self.rpc.call("ul.dump") or {}).get("Domains", []):
            for rec in dom.get("Domain", {}).get("AoRs", []):
                info = rec.get("Info", {})
                out[info.get("AoR", "")] = [_contact(c.get("Contact", {}))
                                            for c in info.get("Contacts", [])]
        return out

    def status(self) -> dict[str, Any]:
        """Like the SCCP simulators' status(): who is registered here (by AOR, the line), and
        by device (the certificate CN the line belongs to)."""
        st: dict[str, Any] = {"role": self.role, "running": self.running,
                              "listen": f"tls:{self.config.host}:{self.config.port}"}
        try:
            regs = self.registrations()
        except KamRpcError as e:           # running but not answering: say so, go on
            regs, st["error"] = {}, str(e)
        by_user = {ln.user: ln.device for ln in self.config.lines}
        st.update(registrations=regs,
                  registered=sorted({by_user[a] for a in regs if a in by_user}))
        return st


def _kill_worker(pid: int, wait_s: float = 2.0) -> None:
    """SIGKILL a Kamailio worker still alive after its main process stopped (checked by
    name: the pid may have been reused), and wait up to wait_s for it to be gone: SIGKILL is
    delivered, not done, when kill() returns, and on a loaded machine the worker still ran
    when stop() had returned (seen in CI)."""
    try:
        if b"kamailio" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return
        os.kill(pid, signal.SIGKILL)
    except (OSError, ProcessLookupError):
        return
    end = time.monotonic() + wait_s
    while time.monotonic() < end and not _gone(pid):
        time.sleep(0.01)


def _stat(pid: int | str) -> list[str] | None:
    """/proc/PID/stat's fields after the name (STATE, PPID, ...), or None when it is gone.
    "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _gone(pid: int) -> bool:
    """True once `pid` has exited (no such process, or a zombie waiting for its parent)."""
    st = _stat(pid)
    return st is None or st[0] in ("Z", "X")


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Kamailio's workers), from /proc."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            st = _stat(d.name)
            if st is not None and int(st[1]) == pid:
                out.append(int(d.name))
    return out


def _contact(c: dict[str, Any]) -> dict[str, Any]:
    return {"contact": c.get("Address"), "expires": c.get("Expires"),
            "instance": _unset(c.get("Instance")), "user_agent": c.get("User-Agent"),
            "socket": c.get("Socket"), "received": _unset(c.get("Received")),
            "call_id": c.get("Call-ID"), "cseq": c.get("CSeq")}


def _unset(v: Any) -> Any:
    return None if v == "[not set]" else v
