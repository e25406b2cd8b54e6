"""Network namespaces for the lab and the tests: unique names, veth pairs, addresses from the
documentation ranges, commands (and Python threads) inside a namespace, and cleanup that always
runs (context manager, atexit, and a sweep of namespaces left by dead processes).

    with netns.NamespaceSet("dhcp") as nset:
        phone, srv = nset.namespace("phone"), nset.namespace("srv")
        link = nset.veth(phone, srv, b_addr="192.0.2.1/24", a_name="eth0", b_name="eth0")
        phone.run(["ip", "addr"])

Names: namespaces are `pl<pid>-<n>-<role>`; interfaces are created as `v<pid>x<n>a|b` (the
kernel allows 15 characters) and may be renamed once inside their namespace, where names no
longer collide with the host's. Nothing here routes to the outside: namespaces only reach
each other through the veth pairs the caller makes.
"""
from __future__ import annotations

import atexit
import ctypes
import ipaddress
import itertools
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from host_tools.signals import pid_alive

PREFIX = "pl"
NETNS_DIR = Path("/run/netns")
ETC_NETNS = Path("/etc/netns")
CLONE_NEWNET = 0x40000000
# Only these ranges are handed out (RFC 5737 documentation networks).
DOC_NETS = tuple(ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))

_counter = itertools.count(1)
_labs: "weakref.WeakSet[NamespaceSet]" = weakref.WeakSet()
_usable: str | None | bool = False  # False: not checked yet; None: usable; str: why not
T = TypeVar("T")


class NetnsError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------
# Can we?
# ---------------------------------------------------------------------------------------
def unusable_reason() -> str | None:
    """None when namespaces work here, else a sentence for pytest.skip()."""
    global _usable
    if _usable is not False:
        return _usable  # type: ignore[return-value]
    reason: str | None = None
    if os.geteuid() != 0:
        reason = "network namespaces need root (run the tests as root, or skip -m 'not netns')"
    elif shutil.which("ip") is None:
        reason = "the `ip` command (iproute2) is not installed: run `make setup` as root"
    else:
        probe = f"{PREFIX}{os.getpid()}-probe"
        r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
        if r.returncode != 0:
            reason = f"`ip netns add` failed: {r.stderr.strip() or r.returncode}"
        else:
            v = subprocess.run(["ip", "-n", probe, "link", "add", "pvtest0", "type", "veth",
                                "peer", "name", "pvtest1"], capture_output=True, text=True)
            if v.returncode != 0:
                reason = f"veth pairs are not available: {v.stderr.strip()}"
            subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    _usable = reason
    return reason


def usable() -> bool:
    return unusable_reason() is None


# ---------------------------------------------------------------------------------------
# Low level
# ---------------------------------------------------------------------------------------
def ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["ip"] + (["-n", ns] if ns else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise NetnsError(f"{' '.join(cmd)}: {r.stderr.strip() or r.returncode}")
    return r


def check_doc_address(cidr: str) -> ipaddress.IPv4Interface:
    """Refuse anything outside the documentation ranges (and loopback)."""
    itf = ipaddress.ip_interface(cidr)
    if not isinstance(itf, ipaddress.IPv4Interface):
        raise NetnsError(f"IPv4 only: {cidr}")
    if itf.ip.is_loopback or any(itf.ip in n for n in DOC_NETS):
        return itf
    raise NetnsError(f"{cidr} is not in a documentation range {[str(n) for n in DOC_NETS]}")


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def enter_current_thread(name: str) -> None:
    """Move the calling thread (never the main thread) into namespace `name`. Sockets it
    creates afterwards, and threads it starts, live in that namespace."""
    if threading.current_thread() is threading.main_thread():
        raise NetnsError("refusing to move the main thread into a namespace")
    fd = os.open(NETNS_DIR / name, os.O_RDONLY)
    try:
        if _libc().setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise NetnsError(f"setns({name}): {os.strerror(e)}")
    finally:
        os.close(fd)


def _kill_pids(pids: Sequence[int], grace: float = 2.0) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    t_end = time.monotonic() + grace
    left = list(pids)
    while left and time.monotonic() < t_end:
        left = [p for p in left if pid_alive(p)]
        time.sleep(0.02)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _delete_namespace(name: str) -> None:
    r = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    pids = [int(p) for p in r.stdout.split() if p.isdigit() and int(p) != os.getpid()]
    if pids:
        # Only our own namespaces get here (unique names): whatever runs in them we started.
        _kill_pids(pids)
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    shutil.rmtree(ETC_NETNS / name, ignore_errors=True)


_NAME_RE = re.compile(rf"^{PREFIX}(\d+)-\d+-")


def sweep_stale() -> list[str]:
    """Delete namespaces this module made in processes that no longer run (a test run killed
    with SIGKILL leaves them behind). Namespaces of live processes are never touched."""
    removed = []
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = _NAME_RE.match(name)
        if m and not pid_alive(int(m.group(1))):
            _delete_namespace(name)
            removed.append(name)
    return removed


# ---------------------------------------------------------------------------------------
# Namespaces and links
# ---------------------------------------------------------------------------------------
class Namespace:
    def __init__(self, lab: "NamespaceSet", name: str, role: str) -> None:
        self.lab = lab
        self.name = name
        self.role = role

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"

    # -- commands -------------------------------------------------------------------
    def argv(self, cmd: Sequence[str]) -> list[str]:
        """`cmd` as run inside this namespace (/etc/netns/<name>/ files are bind-mounted)."""
        return ["ip", "netns", "exec", self.name, *map(str, cmd)]

    def run(self, cmd: Sequence[str], check: bool = True, timeout: float = 30,
            **kw: Any) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        r = subprocess.run(self.argv(cmd), timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise NetnsError(f"[{self.name}] {' '.join(map(str, cmd))}: "
                             f"{(r.stderr or '').strip() or r.returncode}")
        return r

    def popen(self, cmd: Sequence[str], **kw: Any) -> subprocess.Popen:
        """Start a process inside the namespace; the lab stops it on close."""
        p = subprocess.Popen(self.argv(cmd), **kw)
        self.lab._procs.append(p)
        return p

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return ip(*args, ns=self.name, check=check)

    # -- configuration ------------------------------------------------------------------
    def add_addr(self, dev: str, cidr: str) -> None:
        check_doc_address(cidr)
        self.ip("addr", "add", cidr, "dev", dev)

    def add_route(self, dest: str, via: str | None = None, dev: str | None = None) -> None:
        args = ["route", "replace", dest]
        if via:
            args += ["via", via]
        if dev:
            args += ["dev", dev]
        self.ip(*args)

    def up(self, dev: str) -> None:
        self.ip("link", "set", dev, "up")

    def prepare_dhcp_client(self, dev: str) -> None:
        """What a unix-port DHCP client needs to see the broadcast OFFER: some IPv4 state on
        the interface and a default route through it (real clients use raw sockets)."""
        self.ip("addr", "add", "0.0.0.0/0", "dev", dev)
        self.ip("route", "replace", "default", "dev", dev)

    def mac(self, dev: str) -> str:
        m = re.search(r"link/ether (\S+)", self.ip("-o", "link", "show", "dev", dev).stdout)
        if not m:
            raise NetnsError(f"{dev} in {self.name} has no Ethernet address")
        return m.group(1)

    def addresses(self, dev: str) -> list[str]:
        out = self.ip("-4", "-o", "addr", "show", "dev", dev).stdout
        return re.findall(r"inet (\S+)", out)

    def set_hosts(self, hosts: dict[str, str]) -> None:
        """Name resolution inside the namespace: /etc/hosts entries, and a resolv.conf that
        points at the namespace's own loopback (nothing listens: lookups of other names fail
        at once instead of leaving the machine). Applies to processes started afterwards."""
        d = ETC_NETNS / self.name
        d.mkdir(parents=True, exist_ok=True)
        lines = ["127.0.0.1 localhost"] + [f"{addr} {name}" for name, addr in hosts.items()]
        (d / "hosts").write_text("\n".join(lines) + "\n")
        (d / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")

    # -- Python inside ------------------------------------------------------------------
    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 30, **kw: Any) -> T:
        """Run fn(*args, **kw) in a new thread inside this namespace and return its result
        (sockets it creates stay in the namespace)."""
        box: dict[str, Any] = {}

        def body() -> None:
            try:
                enter_current_thread(self.name)
                box["v"] = fn(*args, **kw)
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                box["e"] = e

        t = threading.Thread(target=body, name=f"netns-{self.name}", daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            raise NetnsError(f"call in {self.name} did not finish within {timeout} s")
        if "e" in box:
            raise box["e"]
        return box["v"]

    def thread(self, target: Callable[..., Any], *args: Any, name: str | None = None,
               **kw: Any) -> threading.Thread:
        """A started daemon thread running target(*args, **kw) inside this namespace."""
        def body() -> None:
            enter_current_thread(self.name)
            target(*args, **kw)

        t = threading.Thread(target=body, name=name or f"netns-{self.name}", daemon=True)
        t.start()
        return t


@dataclass
class Veth:
    a: Namespace
    a_if: str
    b: Namespace
    b_if: str


class NamespaceSet:
    """A set of namespaces and links that disappears on close() (or at exit)."""

    def __init__(self, tag: str = "lab") -> None:
        reason = unusable_reason()
        if reason:
            raise NetnsError(reason)
        self.tag = re.sub(r"[^a-z0-9]", "", tag.lower())[:8] or "lab"
        self.namespaces: list[Namespace] = []
        self._procs: list[subprocess.Popen] = []
        self._closers: list[Callable[[], None]] = []
        self._closed = False
        _labs.add(self)

    def __enter__(self) -> "NamespaceSet":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def namespace(self, role: str) -> Namespace:
        role = re.sub(r"[^A-Za-z0-9_]", "", role) or "ns"
        name = f"{PREFIX}{os.getpid()}-{next(_counter)}-{self.tag}-{role}"
        ip("netns", "add", name)
        ns = Namespace(self, name, role)
        self.namespaces.append(ns)
        ns.ip("link", "set", "lo", "up")
        return ns

    def veth(self, a: Namespace, b: Namespace, a_addr: str | None = None,
             b_addr: str | None = None, a_name: str | None = None,
             b_name: str | None = None) -> Veth:
        """A veth pair between a and b, both ends up, optional addresses and names."""
        n = next(_counter)
        ta, tb = f"v{os.getpid()}x{n}a", f"v{os.getpid()}x{n}b"
        if len(ta) > 15:
            ta, tb = f"v{os.getpid() % 10**6}x{n % 10**5}a", f"v{os.getpid() % 10**6}x{n % 10**5}b"
        for cidr in (a_addr, b_addr):
            if cidr:
                check_doc_address(cidr)
        # Create it inside `a` directly: the names never appear in the host namespace.
        ip("link", "add", ta, "netns", a.name, "type", "veth", "peer", "name", tb,
           "netns", b.name)
        ia, ib = ta, tb
        if a_name:
            a.ip("link", "set", ta, "name", a_name)
            ia = a_name
        if b_name:
            b.ip("link", "set", tb, "name", b_name)
            ib = b_name
        for ns, dev, cidr in ((a, ia, a_addr), (b, ib, b_addr)):
            if cidr:
                ns.add_addr(dev, cidr)
            ns.up(dev)
        return Veth(a, ia, b, ib)

    def on_close(self, fn: Callable[[], None]) -> None:
        """Run fn when the lab closes (before the namespaces go), e.g. stop a server."""
        self._closers.append(fn)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fn in reversed(self._closers):
            try:
                fn()
            except Exception:  # noqa: BLE001 - cleanup must go on
                pass
        for p in self._procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self._procs:
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=3)
        for ns in reversed(self.namespaces):
            _delete_namespace(ns.name)
        self.namespaces.clear()


@atexit.register
def _close_all() -> None:
    for lab in list(_labs):
        try:
            lab.close()
        except Exception:  # noqa: BLE001
            pass


def wait_for(pred: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def udp_listening(ns: Namespace, port: int, addr: str | None = None) -> bool:
    """Whether something in `ns` listens on UDP `port` (optionally on `addr`)."""
    r = ns.run(["ss", "-Hlun"], check=False)
    for line in r.stdout.splitlines():
        cols = line.split()
        if len(cols) >= 4:
            local = cols[3]
            host, _, p = local.rpartition(":")
            if p == str(port) and (addr is None or host.strip("[]").split("%")[0] in (addr, "*", "0.0.0.0")):
                return True
    return False


__all__ = ["NamespaceSet", "Namespace", "Veth", "NetnsError", "unusable_reason", "usable",
           "sweep_stale", "enter_current_thread", "check_doc_address", "wait_for", "udp_listening", "DOC_NETS"]
