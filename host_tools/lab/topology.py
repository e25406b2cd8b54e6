"""The lab's network: three hosts (phone, branch router, HQ) and the WAN between branch and HQ,
with the faults a WAN has. Two modes behind one interface:

Namespace mode (root), as docs/lab.md draws it:

    [phone ns] eth0 --lan-- lanN [branch ns: br-lan 192.0.2.1] wan0 --wan-- wan0 [hq ns]
     DHCP client        DHCP (dnsmasq), SRST router sim,          198.51.100.2, services on
     192.0.2.100+       credentials service, 198.51.100.1         203.0.113.10 (on lo):
                                                                  TFTP, call manager sim

    Faults are cut at the branch router, so the SRST router stays reachable, as in real life.
    With `interface=IF` a real Ethernet interface is moved into the branch namespace and
    bridged to the LAN, for a real board on the bench (`phonelab lab up --interface`).

Loopback mode (no root): the same roles on 127.0.0.x. Branch services listen on one address,
HQ services on a second (hidden) one, and the phone reaches HQ through relays on a third
address (`wanrelay`): that relay is the WAN, and it can blackhole, refuse or pass. There is no
DHCP: the phone is told its TFTP server by its board profile (see docs/lab.md).

The servers themselves are started by `host_tools.lab.lab.Lab`, on the `branch` and `hq`
loops this module provides (`NsLoop`: an asyncio loop in a thread inside the namespace).
"""
from __future__ import annotations

import atexit
import itertools
import json
import os
import threading
import time
import weakref
from dataclasses import asdict, dataclass
from typing import Any, Callable

from host_tools.lab import netns
from host_tools.lab.names import MODES, WAN_KINDS
from host_tools.lab.nsloop import NsLoop
from host_tools.lab.wanrelay import BLACKHOLE, PASS, REFUSE, WanRelay


_counter = itertools.count(1)
_live: "weakref.WeakSet[Topology]" = weakref.WeakSet()
Emit = Callable[..., Any]


class TopologyError(RuntimeError):
    pass


@dataclass(frozen=True)
class Addresses:
    """Who is where. `srst`, `hq_front` and `tftp` are what phones are told; `hq_bind` is
    where the HQ servers listen (the same address in namespace mode, a hidden one behind the
    WAN relay in loopback mode)."""
    mode: str
    lan_net: str
    router: str
    dhcp_range: tuple[str, str] | None
    wan_net: str | None
    branch_wan: str | None
    hq_wan: str | None
    hq_net: str | None
    srst: str
    hq_front: str
    hq_bind: str
    phone: str | None = None        # loopback: the phone's source address; None: DHCP

    def as_dict(self) -> dict:
        return asdict(self)


NETNS_ADDRESSES = Addresses(
    mode="netns", lan_net="192.0.2.0/24", router="192.0.2.1",
    dhcp_range=("192.0.2.100", "192.0.2.199"), wan_net="198.51.100.0/24",
    branch_wan="198.51.100.1", hq_wan="198.51.100.2", hq_net="203.0.113.0/24",
    srst="192.0.2.1", hq_front="203.0.113.10", hq_bind="203.0.113.10")


def loopback_addresses(base: int | None = None) -> Addresses:
    """Three 127.0.0.x addresses from a block chosen by pid and counter, so concurrent labs
    (test workers, colleagues) rarely share one; ports fall back to free ones anyway."""
    if base is None:
        base = 16 + 3 * ((os.getpid() * 31 + next(_counter) * 7) % 76)   # 16 .. 241
    b, front, back = (f"127.0.0.{base + i}" for i in range(3))
    return Addresses(mode="loopback", lan_net="127.0.0.0/8", router=b, dhcp_range=None,
                     wan_net=None, branch_wan=None, hq_wan=None, hq_net=None,
                     srst=b, hq_front=front, hq_bind=back, phone="127.0.0.1")


@dataclass(frozen=True)
class Capture:
    """Where the phone's traffic can be captured: run `prefix + [dumpcap, -i, iface]`."""
    prefix: list[str]
    iface: str
    bpf: str | None = None


class Topology:
    """Common interface of both modes (see the module doc)."""

    mode = "?"

    def __init__(self, addr: Addresses, emit: Emit | None = None) -> None:
        self.addr = addr
        self.emit: Emit = emit or (lambda ev, **f: None)
        self.branch = NsLoop("branch")
        self.hq = NsLoop("hq")
        self.wan = "up"                          # "up" or the kind of the cut in force
        # cm_reset is done by the Lab (its call manager); returns when it was in force
        self.on_cm_reset: Callable[[bool], float] | None = None
        self._flap: threading.Thread | None = None
        self._flap_stop = threading.Event()
        self._lock = threading.RLock()
        self._is_up = False

    # -- life cycle ---------------------------------------------------------------------
    def up(self) -> "Topology":
        raise NotImplementedError

    def down(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "Topology":
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -- the phone side -----------------------------------------------------------------
    def phone_prefix(self, index: int = 0) -> list[str]:
        """Command prefix that runs a process (e.g. the virtual board) on the phone host."""
        return []

    def phone_env(self, index: int = 0) -> dict[str, str]:
        return {}

    def host_prefix(self, role: str) -> list[str]:
        """Command prefix that runs a server process on host `role` (branch, hq), as the
        lab's Kamailio runs."""
        return []

    def capture_point(self) -> Capture:
        raise NotImplementedError

    def run_in(self, role: str, fn: Callable[..., Any], *args: Any, timeout: float = 30) -> Any:
        """Call fn(*args) with the network of host `role` (phone, branch, hq)."""
        return fn(*args)

    def expose(self, name: str, proto: str, port: int, front_port: int | None = None) -> tuple[str, int]:
        """Make an HQ service (listening on addr.hq_bind:port) reachable by phones across the
        WAN; returns the (address, port) phones must use."""
        return self.addr.hq_front, port

    # -- WAN faults ---------------------------------------------------------------------
    def wan_cut(self, kind: str = "blackhole") -> float:
        """Cut the WAN; returns the time.monotonic() the fault was in force (a cm_reset is in
        force once the connections are reset, before the server stops listening)."""
        if kind not in WAN_KINDS:
            raise TopologyError(f"WAN fault {kind!r}: one of {', '.join(WAN_KINDS)}")
        with self._lock:
            if self.wan != "up":
                self._restore()
            if kind == "cm_reset":
                if self.on_cm_reset is None:
                    raise TopologyError("cm_reset needs the call manager (use Lab.wan_cut)")
                at = self.on_cm_reset(True)
            else:
                self._cut(kind)
                at = time.monotonic()
            self.wan = kind
        self.emit("wan_cut", kind=kind)
        return at

    def wan_restore(self) -> float:
        """Restore the WAN; returns the time.monotonic() it was back."""
        with self._lock:
            if self.wan == "up":
                return time.monotonic()
            kind = self.wan
            at = self._restore()
            self.wan = "up"
        self.emit("wan_restored", kind=kind)
        return at

    def _restore(self) -> float:
        if self.wan == "cm_reset":
            if self.on_cm_reset is not None:
                return self.on_cm_reset(False)
        else:
            self._uncut(self.wan)
        return time.monotonic()

    def _cut(self, kind: str) -> None:
        raise NotImplementedError

    def _uncut(self, kind: str) -> None:
        raise NotImplementedError

    def flap(self, period_s: float, count: int, kind: str = "blackhole",
             wait: bool = False) -> threading.Thread:
        """`count` cycles of: cut for period_s/2, restored for period_s/2. Runs in a thread;
        wait=True blocks until it is over."""
        if kind not in WAN_KINDS:
            raise TopologyError(f"WAN fault {kind!r}: one of {', '.join(WAN_KINDS)}")
        self.stop_flap()
        self._flap_stop.clear()
        half = max(0.01, period_s / 2)

        def body() -> None:
            self.emit("wan_flap", period_s=period_s, count=count, kind=kind)
            try:
                for _ in range(count):
                    self.wan_cut(kind)
                    if self._flap_stop.wait(half):
                        break
                    self.wan_restore()
                    if self._flap_stop.wait(half):
                        break
            finally:
                self.wan_restore()
                self.emit("wan_flap_done", kind=kind)

        t = threading.Thread(target=body, name="lab:flap", daemon=True)
        self._flap = t
        t.start()
        if wait:
            t.join(period_s * count + 30)
        return t

    def stop_flap(self, timeout: float = 10) -> None:
        t, self._flap = self._flap, None
        if t is not None and t.is_alive():
            self._flap_stop.set()
            t.join(timeout)

    # -- description --------------------------------------------------------------------
    def state(self) -> dict:
        """What `phonelab lab down` needs to clean up after this process."""
        return {"mode": self.mode, "pid": os.getpid(), "addresses": self.addr.as_dict(),
                "wan": self.wan}

    def _start_loops(self, branch_ns: str | None, hq_ns: str | None) -> None:
        self.branch = NsLoop("branch", branch_ns).start()
        self.hq = NsLoop("hq", hq_ns).start()

    def _stop_loops(self) -> None:
        self.branch.stop()
        self.hq.stop()


# ---------------------------------------------------------------------------------------
# Namespace mode
# ---------------------------------------------------------------------------------------
class NetnsTopology(Topology):
    mode = "netns"
    LAN_BRIDGE = "br-lan"
    WAN_IF = "wan0"
    PHONE_IF = "eth0"
    RULE_PREF = "100"

    def __init__(self, phones: int = 1, phone_macs: list[str] | None = None,
                 interface: str | None = None, emit: Emit | None = None) -> None:
        super().__init__(NETNS_ADDRESSES, emit)
        if phones < 1:
            raise TopologyError("at least one phone namespace")
        self.phones = phones
        self.phone_macs = list(phone_macs or [])
        self.interface = interface
        self._iface_saved: dict | None = None
        self._ns: netns.NamespaceSet | None = None
        self.phone_ns: list[netns.Namespace] = []
        self.branch_ns: netns.Namespace | None = None
        self.hq_ns: netns.Namespace | None = None

    # -- life cycle ---------------------------------------------------------------------
    def up(self) -> "NetnsTopology":
        if self._is_up:
            return self
        netns.sweep_stale()
        self._ns = lab = netns.NamespaceSet("srst")
        _live.add(self)
        self._is_up = True
        try:
            self._build(lab)
            self._start_loops(self.branch_ns.name, self.hq_ns.name)  # type: ignore[union-attr]
        except BaseException:
            self.down()
            raise
        self.emit("topology_up", mode=self.mode, namespaces=self.namespaces(),
                  interface=self.interface)
        return self

    def _build(self, lab: netns.NamespaceSet) -> None:
        a = self.addr
        self.phone_ns = [lab.namespace("phone" if self.phones == 1 else f"phone{i}")
                         for i in range(self.phones)]
        self.branch_ns = br = lab.namespace("branch")
        self.hq_ns = hq = lab.namespace("hq")
        for ns in (*self.phone_ns, br, hq):
            # no IPv6 chatter (router solicitations, DAD) in the pcaps
            ns.run(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1"], check=False)
        br.ip("link", "add", self.LAN_BRIDGE, "type", "bridge", "stp_state", "0")
        br.add_addr(self.LAN_BRIDGE, f"{a.router}/24")
        br.up(self.LAN_BRIDGE)
        for i, ph in enumerate(self.phone_ns):
            lab.veth(ph, br, a_name=self.PHONE_IF, b_name=f"lan{i}")
            br.ip("link", "set", f"lan{i}", "master", self.LAN_BRIDGE)
            # with a real board on the bench interface its MAC is the board's alone: the
            # phone namespace keeps the kernel's random one (a DHCP client there must not
            # take the board's lease)
            if not self.interface and (self.phones > 1 or len(self.phone_macs) == 1):
                mac = self.phone_macs[i] if i < len(self.phone_macs) else None
                if mac:
                    ph.ip("link", "set", self.PHONE_IF, "address", _colon_mac(mac), check=False)
            ph.prepare_dhcp_client(self.PHONE_IF)
        lab.veth(br, hq, a_addr=f"{a.branch_wan}/24", b_addr=f"{a.hq_wan}/24",
                 a_name=self.WAN_IF, b_name=self.WAN_IF)
        hq.add_addr("lo", f"{a.hq_bind}/32")
        # A router, without ICMP rate limiting. The kernel's route-error limit (a burst of 5,
        # then 1/s per host, not settable per namespace) still thins "unreachable" answers.
        br.run(["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.icmp_ratelimit=0"])
        # The cut's policy rule must come before the `local` table, or HQ would still reach
        # the router's own services during an outage.
        br.ip("rule", "add", "pref", "200", "lookup", "local")
        br.ip("rule", "del", "pref", "0")
        self._routes()
        if self.interface:
            self._take_interface(br)

    def _routes(self) -> None:
        a = self.addr
        assert self.branch_ns is not None and self.hq_ns is not None
        self.branch_ns.add_route(a.hq_net, via=a.hq_wan)  # type: ignore[arg-type]
        self.hq_ns.add_route(a.lan_net, via=a.branch_wan)

    def down(self) -> None:
        if not self._is_up:
            return
        self._is_up = False
        self.stop_flap()
        self._stop_loops()
        if self.interface and self.branch_ns is not None:
            self._give_back_interface(self.branch_ns.name)
        lab, self._ns = self._ns, None
        if lab is not None:
            lab.close()
        _live.discard(self)
        self.emit("topology_down", mode=self.mode)

    def namespaces(self) -> dict[str, Any]:
        return {"phone": [n.name for n in self.phone_ns],
                "branch": self.branch_ns.name if self.branch_ns else None,
                "hq": self.hq_ns.name if self.hq_ns else None}

    # -- the bench interface --------------------------------------------------------------
    def _take_interface(self, br: netns.Namespace) -> None:
        dev = self.interface
        assert dev
        self._iface_saved = check_bench_interface(dev)
        netns.ip("link", "set", dev, "netns", br.name)
        br.ip("link", "set", dev, "master", self.LAN_BRIDGE)
        br.up(dev)
        self.emit("interface_taken", interface=dev, saved=self._iface_saved)

    def _give_back_interface(self, branch: str) -> None:
        give_back_interface(self.interface, branch, self._iface_saved)  # type: ignore[arg-type]

    # -- phone side ---------------------------------------------------------------------
    def phone_prefix(self, index: int = 0) -> list[str]:
        return ["ip", "netns", "exec", self.phone_ns[index].name]

    def host_prefix(self, role: str) -> list[str]:
        return self._role_ns(role).argv([])

    def phone_env(self, index: int = 0) -> dict[str, str]:
        # PHONE_IF: the interface the unix-port agent puts its DHCP lease on
        return {"PHONE_IF": self.PHONE_IF}

    def capture_point(self) -> Capture:
        if self.branch_ns is not None and (self.interface or self.phones > 1):
            # the bench board, or every phone namespace: the branch's side of the LAN
            iface = self.interface if self.phones == 1 else self.LAN_BRIDGE
            return Capture(["ip", "netns", "exec", self.branch_ns.name], iface)  # type: ignore[arg-type]
        return Capture(self.phone_prefix(0), self.PHONE_IF)

    def run_in(self, role: str, fn: Callable[..., Any], *args: Any, timeout: float = 30) -> Any:
        return self._role_ns(role).call(fn, *args, timeout=timeout)

    def _role_ns(self, role: str) -> netns.Namespace:
        if role.startswith("phone"):
            return self.phone_ns[int(role[5:] or 0)]
        ns = {"branch": self.branch_ns, "hq": self.hq_ns}.get(role)
        if ns is None:
            raise TopologyError(f"no host {role!r}: phone, phoneN, branch or hq")
        return ns

    def set_phone_address(self, ip: str, index: int = 0) -> None:
        """A static address for the phone host (tests, or a phone without DHCP)."""
        ph = self.phone_ns[index]
        ph.ip("addr", "flush", "dev", self.PHONE_IF)
        ph.add_addr(self.PHONE_IF, f"{ip}/24")
        ph.add_route("default", via=self.addr.router)

    # -- faults -------------------------------------------------------------------------
    def _cut(self, kind: str) -> None:
        br = self.branch_ns
        assert br is not None
        if kind == "link_down":
            br.ip("link", "set", self.WAN_IF, "down")
            return
        # Both directions at the branch router: towards HQ by route, from HQ by policy rule
        # (the LAN route itself must stay, or the phone would lose the SRST router too).
        br.ip("route", "replace", kind, self.addr.hq_net)  # type: ignore[arg-type]
        br.ip("rule", "add", "iif", self.WAN_IF, kind, "pref", self.RULE_PREF)

    def _uncut(self, kind: str) -> None:
        br = self.branch_ns
        assert br is not None
        br.ip("rule", "del", "pref", self.RULE_PREF, check=False)
        br.ip("link", "set", self.WAN_IF, "up")
        self._routes()

    def state(self) -> dict:
        st = super().state()
        st.update(namespaces=self.namespaces(), interface=self.interface,
                  interface_saved=self._iface_saved)
        return st


def _colon_mac(mac: str) -> str:
    h = "".join(c for c in mac if c.isalnum()).upper()
    if h.startswith("SEP"):
        h = h[3:]
    return ":".join(h[i:i + 2] for i in range(0, 12, 2))


def check_bench_interface(dev: str) -> dict:
    """Refuse an interface the host needs; returns what to restore on the way back."""
    r = netns.ip("-j", "link", "show", "dev", dev, check=False)
    if r.returncode != 0:
        raise TopologyError(f"no interface {dev!r} in the host namespace")
    link = json.loads(r.stdout)[0]
    if "LOOPBACK" in link.get("flags", []):
        raise TopologyError(f"{dev} is a loopback interface")
    routes = json.loads(netns.ip("-j", "route", "show", "default").stdout or "[]")
    if any(rt.get("dev") == dev for rt in routes):
        raise TopologyError(f"{dev} carries this machine's default route: refusing to take it")
    addrs = json.loads(netns.ip("-j", "addr", "show", "dev", dev).stdout or "[]")
    saved = [f"{a['local']}/{a['prefixlen']}" for a in (addrs[0].get("addr_info", []) if addrs else [])
             if a.get("family") == "inet"]
    return {"up": "UP" in link.get("flags", []), "addresses": saved,
            "mtu": link.get("mtu")}


def give_back_interface(dev: str, branch: str, saved: dict | None) -> None:
    """Move a bench interface from the branch namespace back to the host, as it was."""
    netns.ip("link", "set", dev, "nomaster", ns=branch, check=False)
    netns.ip("link", "set", dev, "netns", "1", ns=branch, check=False)
    if saved:
        for cidr in saved.get("addresses", []):
            netns.ip("addr", "add", cidr, "dev", dev, check=False)
        netns.ip("link", "set", dev, "up" if saved.get("up") else "down", check=False)


# ---------------------------------------------------------------------------------------
# Loopback mode
# ---------------------------------------------------------------------------------------
class LoopbackTopology(Topology):
    mode = "loopback"
    _RELAY_MODE = {"blackhole": BLACKHOLE, "link_down": BLACKHOLE, "unreachable": REFUSE}

    def __init__(self, base: int | None = None, emit: Emit | None = None) -> None:
        super().__init__(loopback_addresses(base), emit)
        self.relay: WanRelay | None = None

    def up(self) -> "LoopbackTopology":
        if self._is_up:
            return self
        self._is_up = True
        _live.add(self)
        try:
            self._start_loops(None, None)
            self.relay = WanRelay(emit=self.emit)
        except BaseException:
            self.down()
            raise
        self.emit("topology_up", mode=self.mode, addresses=self.addr.as_dict())
        return self

    def down(self) -> None:
        if not self._is_up:
            return
        self._is_up = False
        self.stop_flap()
        if self.relay is not None and self.hq.running:
            try:
                self.hq.run(self.relay.stop(), timeout=10)
            except Exception:
                pass
        self._stop_loops()
        _live.discard(self)
        self.emit("topology_down", mode=self.mode)

    def expose(self, name: str, proto: str, port: int, front_port: int | None = None) -> tuple[str, int]:
        """A relay on addr.hq_front in front of addr.hq_bind:port. The front port is
        `front_port` (default: the same port) when free, else any free port."""
        assert self.relay is not None
        relay = self.relay
        target = (self.addr.hq_bind, port)
        want = port if front_port is None else front_port

        async def make() -> int:
            add = relay.add_tcp if proto == "tcp" else relay.add_udp
            for p in (want, 0):
                r = add(name, (self.addr.hq_front, p), target)
                try:
                    await r.open()
                    if relay.mode != PASS:
                        await r.set_mode(relay.mode)
                    return r.port
                except OSError:
                    relay.relays.remove(r)
                    if p == 0:
                        raise
            raise AssertionError("unreachable")

        return self.addr.hq_front, self.hq.run(make(), timeout=10)

    def capture_point(self) -> Capture:
        a = self.addr
        # the phone's side only: the relay's second leg (to hq_bind) would double every packet
        return Capture([], "lo", f"host {a.srst} or host {a.hq_front}")

    def _cut(self, kind: str) -> None:
        assert self.relay is not None
        self.hq.run(self.relay.set_mode(self._RELAY_MODE[kind]), timeout=10)

    def _uncut(self, kind: str) -> None:
        assert self.relay is not None
        self.hq.run(self.relay.set_mode(PASS), timeout=10)

    def state(self) -> dict:
        st = super().state()
        st["relay"] = self.relay.status() if self.relay else None
        return st


# ---------------------------------------------------------------------------------------
def namespaces_usable() -> str | None:
    """None when namespace mode can run here, else why not."""
    return netns.unusable_reason()


def make_topology(mode: str = "auto", *, phones: int = 1, phone_macs: list[str] | None = None,
                  interface: str | None = None, emit: Emit | None = None) -> Topology:
    """'auto' picks namespaces when they work (root), else loopback."""
    if mode == "auto":
        mode = "netns" if namespaces_usable() is None else "loopback"
    if interface and mode != "netns":
        raise TopologyError("--interface needs namespace mode (root)")
    if mode == "netns":
        why = namespaces_usable()
        if why:
            raise TopologyError(why)
        return NetnsTopology(phones=phones, phone_macs=phone_macs, interface=interface, emit=emit)
    if mode == "loopback":
        return LoopbackTopology(emit=emit)
    raise TopologyError(f"mode {mode!r}: one of {', '.join(MODES)}")


def cleanup_from_state(state: dict) -> list[str]:
    """Undo what a lab process left (it was killed): give the bench interface back, delete
    its namespaces and whatever runs in them. Returns what was done."""
    done = []
    ns = state.get("namespaces") or {}
    branch = ns.get("branch")
    if state.get("interface") and branch:
        give_back_interface(state["interface"], branch, state.get("interface_saved"))
        done.append(f"interface {state['interface']} back to the host")
    names = [*ns.get("phone", []), branch, ns.get("hq")]
    existing = netns.ip("netns", "list").stdout
    for name in names:
        if name and name in existing.split():
            netns._delete_namespace(name)
            done.append(f"namespace {name} deleted")
    return done


# -- cleanup on exit ------------------------------------------------------------------------------

@atexit.register
def _down_all() -> None:
    for topo in list(_live):
        try:
            topo.down()
        except Exception:
            pass
