"""A fleet run: the lab (or an outside SRST router), N phones in P MicroPython processes booting
at once, optionally a WAN cut, and the figures.

    res = run(FleetOptions(phones=100, procs=2, fail_over=True))
    res["boot"]["registrations_per_s"], res["failover"]["all_on_srst_s"], res["failures"]
"""
from __future__ import annotations

import os
import shutil
import socket
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from host_tools.fleet import backlog, cpu, identities, metrics, netstat, spec
from host_tools.fleet.procs import FleetProc, status_kb
from host_tools.fleet.track import Tracker

NETNS_PHONE_IP = "192.0.2.100"


class FleetError(RuntimeError):
    pass


@dataclass
class FleetOptions:
    phones: int = 10
    procs: int = 0                        # 0: one per core
    target: str = "lab"                   # "lab" or HOST:PORT of an SRST router's TLS port
    fail_over: bool = False
    cut: str = "blackhole"                # WAN fault kind for --fail-over
    mode: str = "auto"                    # lab topology: auto, netns, loopback
    workdir: Path | None = None
    keep: bool = False
    cache: Path = identities.DEFAULT_CACHE
    heap_base_kb: int = 256               # MicroPython heap per process: base + per phone
    heap_per_phone_kb: int = 40
    ramp: float = 0.0                     # phones started per second (whole fleet); 0: at once
    boot_timeout: float | None = None     # default 30 s + 0.1 s per phone
    failover_timeout: float | None = None  # default 30 s + 0.05 s per phone
    settings: dict[str, Any] = field(default_factory=dict)   # agent settings over the lab's
    srst_cert: Path | None = None         # outside target: the router certificate to pin
    fast_poll: bool = True                # the runner's asyncio poll fix (fleet_run.fast_poll)
    backlog: int = 4096                   # simulators' listen backlog (0: asyncio's 100)
    max_connecting: int = 16              # links in connect() at once per process (0: no limit)
    progress: Callable[[str], None] | None = None

    def procs_count(self) -> int:
        return max(1, min(self.procs or os.cpu_count() or 1, self.phones))


def parse_target(text: str) -> tuple[str, int] | None:
    """None for the lab's SRST router simulator, else (host, port)."""
    if text == "lab":
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise FleetError(f"--target {text!r}: 'lab' or HOST:PORT (the router's TLS port, e.g. 2443)")
    return host.strip("[]"), int(port)


def run(opts: FleetOptions) -> dict[str, Any]:
    if opts.phones < 1:
        raise FleetError("a fleet needs at least one phone")
    say = opts.progress or (lambda msg: None)
    t_begin = time.monotonic()
    outside = parse_target(opts.target)
    fp = identities.ensure(opts.phones, opts.cache, progress=say)
    own_tmp = opts.workdir is None
    work = Path(opts.workdir or tempfile.mkdtemp(prefix="phonelab-fleet-"))
    work.mkdir(parents=True, exist_ok=True)
    from host_tools.lab.lab import Lab
    # An outside router is reached from the host's own network: loopback lab (call manager
    # behind the WAN relay), phones in the host namespace.
    mode = "loopback" if outside else opts.mode
    lab = Lab(work / "lab", mode=mode, macs=fp.macs[:1], short_timers=True, dhcp=False,
              keylog=False, pki=fp.pki)
    procs: list[FleetProc] = []
    res: dict[str, Any] = {"phones": opts.phones, "procs": opts.procs_count(),
                           "target": opts.target, "fail_over": opts.fail_over,
                           "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    try:
        say(f"starting the lab ({mode})")
        lab.start()
        res["mode"] = lab.mode
        _admit(lab, [p.device for p in fp.phones], opts.phones)
        if opts.backlog:
            res["listen_backlog"] = {"backlog": opts.backlog,
                                     "sockets": backlog.raise_backlog(lab, opts.backlog)}
        ip = _phone_ip(lab, outside)
        cm, srst = _servers(lab, fp, outside, opts.srst_cert)
        firmware = work / "firmware"
        _install(firmware, work / "build")
        chunks = spec.split(fp.phones, opts.procs_count())
        boot_to = opts.boot_timeout or 30 + 0.1 * opts.phones
        fo_to = opts.failover_timeout or 30 + 0.05 * opts.phones
        ramp_ms = int(1000 * len(chunks) / opts.ramp) if opts.ramp > 0 else 0
        settings = {**lab.board_settings(), **opts.settings}
        specs = [spec.write(work / f"proc{i}", i, c, ip=ip, cm=cm, srst=srst, settings=settings,
                            monitor_s=lab.timers["connection_monitor"], ramp_ms=ramp_ms,
                            max_s=boot_to + fo_to + 120, fast_poll=opts.fast_poll,
                            max_connecting=opts.max_connecting)
                 for i, c in enumerate(chunks)]
        tracker = Tracker({s.index: s.macs for s in specs})
        probes = cpu.lab_probes()
        host_rss0 = status_kb(os.getpid()).get("VmRSS")
        say(f"{opts.phones} phones in {len(specs)} MicroPython processes, boot (timeout {boot_to:.0f} s)")
        heap_kb = [opts.heap_base_kb + opts.heap_per_phone_kb * len(s.phones) for s in specs]
        for s, h in zip(specs, heap_kb):
            procs.append(FleetProc(s, firmware=firmware, heap=h * 1024, prefix=lab.phone_prefix(),
                                   tracker=tracker))
        for p in procs:
            probes[f"fleet process {p.index} (MicroPython)"] = p.cpu_seconds
        res["heap_kb_per_proc"] = heap_kb
        tcp = netstat.Delta(netstat.hosts(lab)).start()
        win = cpu.Window(probes).start()
        t_spawn = time.monotonic()
        for p in procs:
            p.start()

        def alive() -> bool:
            return any(p.alive for p in procs)

        want_standby = srst is not None
        tracker.wait_until(lambda t: t.counts["registered"] >= opts.phones and
                           (not want_standby or t.counts["standby"] >= opts.phones), boot_to, alive)
        res["cpu_boot"] = win.stop()
        res["tcp_boot"] = tcp.stop()
        starts = [at for _p, at, _e in tracker.proc_events_named("fleet_start")]
        start = min(starts) if starts else None
        res["startup_s"] = round(start - t_spawn, 2) if start else None
        res["boot"] = metrics.boot(tracker, start, want_standby)
        say(_boot_line(res["boot"]))
        _wait_heap(tracker, procs, "links_up", 10, alive)
        res["rss_kb"] = {str(p.index): p.rss_kb() for p in procs}
        host_rss = status_kb(os.getpid()).get("VmRSS")
        if host_rss and host_rss0:
            res["host_rss_kb"] = {"before": host_rss0, "links_up": host_rss,
                                  "per_phone": round((host_rss - host_rss0) / opts.phones, 1)}
        res["servers_boot"] = _server_view(lab, outside)
        if opts.fail_over:
            say(f"WAN cut ({opts.cut}): waiting for all phones on the SRST router "
                f"(timeout {fo_to:.0f} s)")
            tcp = netstat.Delta(netstat.hosts(lab)).start()
            win = cpu.Window(probes).start()
            t_cut = time.monotonic()
            tracker.mark_cut(t_cut)
            lab.wan_cut(opts.cut)
            res["cut_ms"] = round((time.monotonic() - t_cut) * 1000, 1)
            tracker.wait_until(lambda t: t.counts["on_srst"] >= opts.phones, fo_to, alive)
            res["cpu_failover"] = win.stop()
            res["tcp_failover"] = tcp.stop()
            res["failover"] = metrics.failover(tracker)
            say(_failover_line(res["failover"]))
            _wait_heap(tracker, procs, "fallback", 10, alive)
            res["servers_failover"] = _server_view(lab, outside)
        _stop(procs, tracker)
        res["memory"] = metrics.memory(tracker)
        res["loop"] = metrics.loop(tracker)
        res["exit_codes"] = {str(p.index): p.proc.returncode if p.proc else None for p in procs}
        res["console_tail"] = {str(p.index): list(p.text)[-10:] for p in procs if p.text}
        fails = metrics.failures(tracker, opts.fail_over, want_standby)
        res["failure_count"] = len(fails)
        res["failure_reasons"] = metrics.reasons(fails)
        res["failures"] = fails[:50]
        res["stray_lines"] = tracker.strays
        res["ok"] = not fails and not tracker.strays
    finally:
        _stop(procs, None)
        lab.stop()
        if own_tmp and not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
    res["workdir"] = str(work) if (opts.keep or not own_tmp) else None
    res["seconds"] = round(time.monotonic() - t_begin, 1)
    return res


# -- the lab side ---------------------------------------------------------------------------
def _admit(lab: Any, devices: list[str], n: int) -> None:
    """Every fleet device may register: the call manager's device list, the SRST router's
    allow-list and its phone limit (48 by default, as a small router's max-ephones)."""
    names = {d.upper() for d in devices}

    def cm() -> None:
        lab.callmanager.devices = set(names)

    def router() -> None:
        lab.srst.max_phones = max(n, lab.srst.max_phones)
        lab.srst.devices = set(names)

    lab.topology.hq.call(cm)
    lab.topology.branch.call(router)


def _phone_ip(lab: Any, outside: tuple[str, int] | None) -> str:
    if outside is not None:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.connect(outside)          # no packet: only picks the source address
            return s.getsockname()[0]
        finally:
            s.close()
    if lab.mode == "netns":
        # no DHCP in a fleet: one static address for the phone namespace, all phones share it
        lab.topology.set_phone_address(NETNS_PHONE_IP)
        return NETNS_PHONE_IP
    return lab.topology.addr.phone


def _servers(lab: Any, fp: identities.FleetPki, outside: tuple[str, int] | None,
             srst_cert: Path | None) -> tuple[spec.Server, spec.Server]:
    p = fp.pki
    host, port = lab.endpoints["callmanager"]
    cm = spec.Server(host, port, p.ccm.cert_der, p.ccm.cn, name=lab.callmanager.name)
    if outside is None:
        host, port = lab.endpoints["srst"]
        return cm, spec.Server(host, port, p.srst.cert_der, p.srst.cn)
    if srst_cert is not None:
        der = _load_cert(srst_cert)
    else:
        first = fp.phones[0]
        der = fetch_certificate(outside, first.cert_path, first.key_path)
    return cm, spec.Server(outside[0], outside[1], der, cert_cn(der))


def _load_cert(path: Path) -> bytes:
    data = Path(path).read_bytes()
    cert = (x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data
            else x509.load_der_x509_certificate(data))
    return cert.public_bytes(serialization.Encoding.DER)


def cert_cn(der: bytes) -> str:
    attrs = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        raise FleetError("the SRST router certificate has no CN (the phones check it)")
    return str(attrs[0].value)


def fetch_certificate(addr: tuple[str, int], cert: Path, key: Path, timeout: float = 10) -> bytes:
    """The certificate a TLS server presents (trust on first use, as the credentials service
    would hand it over), offering a phone certificate in case the server asks for one."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    key_pem = serialization.load_der_private_key(Path(key).read_bytes(), None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with tempfile.TemporaryDirectory() as d:
        c = Path(d) / "c.pem"
        k = Path(d) / "k.pem"
        c.write_bytes(x509.load_der_x509_certificate(Path(cert).read_bytes()).public_bytes(
            serialization.Encoding.PEM))
        k.write_bytes(key_pem)
        ctx.load_cert_chain(str(c), str(k))
    try:
        with socket.create_connection(addr, timeout) as raw, ctx.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
    except OSError as e:
        raise FleetError(f"cannot fetch the SRST router certificate from {addr[0]}:{addr[1]}: {e}")
    if not der:
        raise FleetError(f"{addr[0]}:{addr[1]} presented no certificate")
    return der


def _install(folder: Path, build: Path) -> None:
    from host_tools.scenario.runner import install_firmware
    install_firmware(folder, build)


def _server_view(lab: Any, outside: tuple[str, int] | None) -> dict[str, Any]:
    """Sessions by state as the simulators see them (the phones' claims, checked)."""
    def count(srv: Any) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in list(srv.sessions.values()):
            out[s.state] = out.get(s.state, 0) + 1
        return out
    view = {"callmanager": lab.topology.hq.call(count, lab.callmanager)}
    if outside is None:
        view["srst"] = lab.topology.branch.call(count, lab.srst)
    return view


# -- processes ------------------------------------------------------------------------------
def _wait_heap(tr: Tracker, procs: list[FleetProc], phase: str, timeout: float,
               alive: Callable[[], bool]) -> None:
    tr.wait_until(lambda t: all(t.proc_event(p.index, "fleet_heap", phase=phase) for p in procs),
                  timeout, alive)


def _stop(procs: list[FleetProc], tr: Tracker | None) -> None:
    """Each runner reports every phone's final state (fleet_final) and exits; SIGINT, then
    SIGKILL, for one that does not."""
    for p in procs:
        p.request_stop()
    if tr is not None:
        tr.wait_until(lambda t: all(t.proc_event(p.index, "fleet_done") or not p.alive
                                    for p in procs), 20)
    for p in procs:
        p.wait(5)
        p.stop(5)


def _boot_line(b: dict[str, Any]) -> str:
    return (f"boot: {b['registered']}/{b['phones']} registered, {b['standby']} standby; "
            f"{b.get('registrations_per_s')} registrations/s, all registered in "
            f"{b.get('all_registered_s')} s, all standby in {b.get('all_standby_s')} s")


def _failover_line(f: dict[str, Any]) -> str:
    return (f"failover: {f['on_srst']}/{f['phones']} on the SRST router, all in "
            f"{f.get('all_on_srst_s')} s (median {f.get('median_on_srst_s')} s)")
