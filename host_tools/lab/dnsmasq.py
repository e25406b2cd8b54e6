"""dnsmasq as the lab's real DHCP (and TFTP) server, inside a network namespace.

    d = Dnsmasq(srv_ns, "eth0", dhcp_range=("192.0.2.100", "192.0.2.150"),
                option150=["192.0.2.1"], tftp_root=tmp / "tftp", workdir=tmp)
    with d:                      # start() waits until it listens; stop() on exit
        ...
    d.log                        # its log lines (--log-dhcp), for asserts and reports

Runs `dnsmasq --no-daemon --port=0` (no DNS), with an empty configuration
(`--conf-file=/dev/null`), bound to one interface (and not to `lo`, which dnsmasq otherwise
always adds: addresses on the namespace's loopback stay free for other lab servers), leases
and pid in `workdir`. Debian's
package is `dnsmasq-base` (scripts/bootstrap.sh installs it).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Sequence

from host_tools.lab import netns as _netns


class DnsmasqError(RuntimeError):
    pass


MIN_LEASE_S = 120       # dnsmasq hands out no shorter lease (it raises shorter ones to this)
_LEASE = re.compile(r"^(\d+)([smhdw]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def lease_seconds(lease: int | str) -> int | None:
    """Seconds of a dnsmasq lease time (120, "2m", "1h", "3d"); None for "infinite".
    Raises DnsmasqError for anything else, and for less than MIN_LEASE_S: dnsmasq would
    quietly give 120 s, and a test of lease timers would measure the wrong lease."""
    if isinstance(lease, str) and lease == "infinite":
        return None
    m = _LEASE.match(lease) if isinstance(lease, str) else None
    if isinstance(lease, bool) or not (isinstance(lease, int) or m):
        raise DnsmasqError(f"lease {lease!r}: seconds, or a number with s, m, h, d or w, "
                           "or 'infinite'")
    n = lease if isinstance(lease, int) else int(m.group(1)) * _UNIT[m.group(2)]
    if n < MIN_LEASE_S:
        raise DnsmasqError(f"lease {lease!r}: dnsmasq gives no lease shorter than "
                           f"{MIN_LEASE_S} s")
    return n


def available() -> str | None:
    """None when dnsmasq is installed, else the reason (for pytest.skip)."""
    if shutil.which("dnsmasq") is None:
        return "dnsmasq is not installed (Debian: dnsmasq-base; `make setup` as root installs it)"
    return None


class Dnsmasq:
    def __init__(self, ns: _netns.Namespace, interface: str,
                 dhcp_range: tuple[str, str] | None = None, netmask: str = "255.255.255.0",
                 lease: int | str = "2m", option150: Sequence[str] = (), option66: str | None = None,
                 router: str | None = None, dns: Sequence[str] | None = None,
                 tftp_root: Path | str | None = None, listen_address: str | None = None,
                 reply_delay_s: int | None = None, extra: Sequence[str] = (),
                 workdir: Path | str | None = None, user: str = "root") -> None:
        self.ns = ns
        self.interface = interface
        self.dhcp_range = dhcp_range
        self.netmask = netmask
        secs = lease_seconds(lease)
        self.lease = "infinite" if secs is None else str(secs)
        self.option150 = list(option150)
        self.option66 = option66
        self.router = router
        self.dns = list(dns) if dns is not None else None
        self.tftp_root = Path(tftp_root) if tftp_root else None
        self.listen_address = listen_address
        self.reply_delay_s = reply_delay_s
        self.extra = list(extra)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="dnsmasq-"))
        self.user = user
        self.log: list[str] = []
        self.proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._cv = threading.Condition()
        for a in [*self.option150, *(dns or []), *([router] if router else [])]:
            _netns.check_doc_address(a)

    @property
    def leasefile(self) -> Path:
        return self.workdir / "dnsmasq.leases"

    @property
    def pidfile(self) -> Path:
        return self.workdir / "dnsmasq.pid"

    def argv(self) -> list[str]:
        a = ["dnsmasq", "--no-daemon", "--port=0", "--conf-file=/dev/null",
             f"--interface={self.interface}", "--except-interface=lo", "--bind-interfaces",
             f"--dhcp-leasefile={self.leasefile}", f"--pid-file={self.pidfile}",
             "--log-dhcp", "--log-facility=-", f"--user={self.user}", "--no-ping"]
        if self.listen_address:
            a.append(f"--listen-address={self.listen_address}")
        if self.dhcp_range:
            lo, hi = self.dhcp_range
            a.append(f"--dhcp-range={lo},{hi},{self.netmask},{self.lease}")
            a.append("--dhcp-authoritative")
        if self.option150:
            a.append("--dhcp-option=150," + ",".join(self.option150))
        if self.option66:
            a.append(f"--dhcp-option=66,{self.option66}")
        if self.router:
            a.append(f"--dhcp-option=3,{self.router}")
        if self.dns is not None:
            a.append("--dhcp-option=6" + "".join("," + d for d in self.dns))
        if self.reply_delay_s:
            a.append(f"--dhcp-reply-delay={self.reply_delay_s}")
        if self.tftp_root:
            a += ["--enable-tftp", f"--tftp-root={self.tftp_root}"]
        return a + self.extra

    # -- life cycle ---------------------------------------------------------------------
    def start(self, timeout: float = 5.0) -> "Dnsmasq":
        if self.proc is not None:
            raise DnsmasqError("already started")
        why = available()
        if why:
            raise DnsmasqError(why)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = self.ns.popen(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.ns.lab.on_close(self.stop)
        self._reader = threading.Thread(target=self._read, name="dnsmasq-log", daemon=True)
        self._reader.start()
        try:
            self._wait_ready(timeout)
        except Exception:
            self.stop()
            raise
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cv:
                self.log.append(line.rstrip("\n"))
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def _wait_ready(self, timeout: float) -> None:
        t_end = time.monotonic() + timeout
        need = []
        if self.dhcp_range:
            need.append(67)
        if self.tftp_root:
            need.append(69)
        while time.monotonic() < t_end:
            if self.proc is None or self.proc.poll() is not None:
                time.sleep(0.05)   # let the reader collect the last lines
                raise DnsmasqError("dnsmasq exited at start:\n" + "\n".join(self.log[-20:]))
            if all(_netns.udp_listening(self.ns, p) for p in need) and self.log:
                return
            time.sleep(0.03)
        raise DnsmasqError(f"dnsmasq not ready within {timeout} s:\n" + "\n".join(self.log[-20:]))

    def wait_log(self, pattern: str, timeout: float = 5.0) -> str:
        """The first log line matching the regex `pattern` (waits for it to appear)."""
        rx = re.compile(pattern)
        t_end = time.monotonic() + timeout
        with self._cv:
            while True:
                for line in self.log:
                    if rx.search(line):
                        return line
                left = t_end - time.monotonic()
                if left <= 0:
                    raise DnsmasqError(f"no log line matching {pattern!r} within {timeout} s")
                self._cv.wait(left)

    def leases(self) -> list[dict[str, str]]:
        out = []
        if self.leasefile.exists():
            for line in self.leasefile.read_text().splitlines():
                f = line.split()
                if len(f) >= 4:
                    out.append({"expires": f[0], "mac": f[1], "ip": f[2], "host": f[3]})
        return out

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=3)
        if self._reader is not None:
            self._reader.join(timeout=2)
            self._reader = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "Dnsmasq":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
