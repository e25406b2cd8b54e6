"""A fleet run: the lab (or an outside SRST router), N phones in P MicroPython processes booting
at once, optionally a WAN cut, and the figures.

    res = run(FleetOptions(phones=100, procs=2, fail_over=True))
    res["boot"]["registrations_per_s"], res["failover"]["all_on_srst_s"], res["failures"]

protocol="sip": SIP phones (phone.siplink) against the lab's Kamailio registrars at both ends
(`Lab(sip=True)`, a line for every fleet phone); the run also counts what Kamailio itself
holds (host_tools.fleet.sipside: its statistics, ul.dump) and is ok only when they agree.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from host_tools.fleet import backlog, cpu, identities, labside, metrics, netstat, sipside, spec
from host_tools.fleet.labside import FleetError
from host_tools.fleet.procs import FleetProc, open_files_needed, raise_open_files, status_kb
from host_tools.fleet.track import Tracker
from host_tools.lab.lab import run_folder

__all__ = ["FleetError", "FleetOptions", "parse_target", "run"]
TIMERS = ("short", "long")
PROTOCOLS = ("sccp", "sip")
KAMAILIO_SETTLE_S = 10.0              # Kamailio's count after the phones' own events


# At most this many phones per MicroPython process by default. The unix port's allocator
# looks for free blocks from the first hole up (py/gc.c gc_alloc), so in a process holding
# N phones' live state every allocation of two blocks or more walks holes in proportion to
# N: at 1,000 phones a process spent 37% of its time in gc_alloc during the failover, at
# 500 phones 20% (perf), and 2,000 phones in 2 processes took 9.3-16.4 s to fail over
# against 6.6-9.8 s in 4 to 6 (docs/fleet.md, "2,000 phones").
PHONES_PER_PROC = 500
# The phones' processes run at this niceness by default. N phones stand for N devices, each
# with its CPU; the router under test has its own. On one 2-core machine the simulator's
# loop (one thread) shares the cores with the phones' processes, and Linux gives every
# runnable one the same share: with 4 phone processes the router got 0.4 core at the cut,
# answered Registers 3 s late, and the phones' timeouts then re-opened ~500-900 sessions
# (TLS handshakes: more load). Niced, the phones take what the servers leave.
NICE = 10


@dataclass
class FleetOptions:
    phones: int = 10
    procs: int = 0                        # 0: procs_count() chooses
    target: str = "lab"                   # "lab" or HOST:PORT of an SRST router's TLS port
    protocol: str = "sccp"                # "sip": SIP phones against the lab's Kamailio
    fail_over: bool = False
    cut: str = "blackhole"                # WAN fault kind for fail_over
    mode: str = "auto"                    # lab topology: auto, netns, loopback
    timers: str = "short"                 # the lab's short timers (keepalive 5 s) or long (30 s)
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
    fast_poll: bool = True                # fleet_tune.fast_poll in each process
    gc_every_ms: int = 1000               # fleet_tune.ThrottledGc (0: the agent's own gc calls)
    max_connecting: int = 16              # fleet_tune.limit_connects per process (0: no limit)
    backlog: int = 4096                   # simulators' listen backlog (0: asyncio's 100)
    nice: int = NICE                      # the phones' processes' niceness (0: as this one)
    progress: Callable[[str], None] | None = None
    on_done: Callable[[Tracker], None] | None = None   # sees every phone's events at the end

    def procs_count(self) -> int:
        """`procs`, or by default one per core and at least one per PHONES_PER_PROC phones."""
        auto = max(os.cpu_count() or 1, -(-self.phones // PHONES_PER_PROC))
        return max(1, min(self.procs or auto, self.phones))


def parse_target(text: str) -> tuple[str, int] | None:
    """None for the lab's SRST router simulator, else (host, port)."""
    if text == "lab":
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise FleetError(f"--target {text!r}: 'lab' or HOST:PORT (the router's TLS port, e.g. 2443)")
    return host.strip("[]"), int(port)


def run(opts: FleetOptions) -> dict[str, Any]:
    """The whole run; returns the figures (JSON-able). Cleans up even when interrupted."""
    if opts.phones < 1:
        raise FleetError("a fleet needs at least one phone")
    if opts.timers not in TIMERS:
        raise FleetError(f"timers {opts.timers!r}: one of {', '.join(TIMERS)}")
    if opts.protocol not in PROTOCOLS:
        raise FleetError(f"protocol {opts.protocol!r}: one of {', '.join(PROTOCOLS)}")
    t0 = time.monotonic()
    say = opts.progress or (lambda msg: None)
    outside = parse_target(opts.target)
    fp = identities.ensure(opts.phones, opts.cache, progress=say)
    own_tmp = opts.workdir is None
    # a marked private run folder: a killed fleet run's is swept by the next lab
    work = Path(opts.workdir) if opts.workdir else run_folder("fleet")
    work.mkdir(parents=True, exist_ok=True)
    fr = _Run(opts, fp, outside, work, say)
    try:
        fr.setup()
        fr.boot()
        if opts.fail_over:
            fr.fail_over()
        fr.finish()
    finally:
        fr.close()
        if own_tmp and not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
    res = fr.res
    res["workdir"] = str(work) if (opts.keep or not own_tmp) else None
    res["seconds"] = round(time.monotonic() - t0, 1)
    return res


class _Run:
    def __init__(self, opts: FleetOptions, fp: identities.FleetPki,
                 outside: tuple[str, int] | None, work: Path, say: Callable[[str], None]) -> None:
        from host_tools.lab.lab import Lab
        self.opts, self.fp, self.outside, self.work, self.say = opts, fp, outside, work, say
        # An outside router is reached from the host's own network: a loopback lab (call
        # manager behind the WAN relay), phones in the host namespace.
        self.mode = "loopback" if outside else opts.mode
        self.sip = opts.protocol == "sip"
        # SIP: the registrars give every fleet phone a line (the lab's own phone is the first)
        self.lab = Lab(work / "lab", mode=self.mode, macs=fp.macs[:1],
                       short_timers=opts.timers == "short", dhcp=False, keylog=False, pki=fp.pki,
                       sip=self.sip, sip_macs=fp.macs if self.sip else None)
        self.watch: sipside.Watch | None = None
        self.devices = {p.device for p in fp.phones}
        self.procs: list[FleetProc] = []
        self.tracker = Tracker({})
        self.probes: dict[str, cpu.Probe] = {}
        self.with_standby = True
        self.host_rss0: int | None = None
        self.res: dict[str, Any] = {"phones": opts.phones, "procs": opts.procs_count(),
                                    "target": opts.target, "fail_over": opts.fail_over,
                                    "protocol": opts.protocol,
                                    "timers": opts.timers,
                                    "loadavg_before": [round(x, 2) for x in os.getloadavg()]}

    def alive(self) -> bool:
        return any(p.alive for p in self.procs)

    # -- phases ----------------------------------------------------------------------------
    def setup(self) -> None:
        o, lab, res = self.opts, self.lab, self.res
        files = res["open_files"] = raise_open_files(open_files_needed(o.phones))
        if files["after"] < files["needed"]:
            self.say(f"open-files limit {files['after']} (hard limit) is under the "
                     f"{files['needed']} a {o.phones}-phone fleet may need (ulimit -Hn)")
        self.say(f"starting the lab ({self.mode})")
        lab.start()
        res["mode"] = lab.mode
        labside.admit(lab, sorted(self.devices), o.phones)
        if o.backlog:
            res["listen_backlog"] = {"backlog": o.backlog,
                                     "sockets": backlog.raise_backlog(lab, o.backlog)}
        ip = labside.phone_ip(lab, self.outside)
        cm, srst = labside.servers(lab, self.fp, self.outside, o.srst_cert, sip=self.sip)
        sip = None
        if self.sip:
            sip = spec.SipSpec(spec.sip_stack(), sipside.lines(lab))
            self.watch = sipside.Watch(lab, self.outside).start()
            res["kamailio"] = {r: {"max_connections": k.config.max_connections,
                                   "shm_mb": k.shm_mb, "tcp_workers": k.config.tcp_workers}
                               for r, k in sipside.servers(lab, self.outside).items()}
        self.with_standby = srst is not None
        firmware = self.work / "firmware"
        labside.install(firmware, self.work / "build")
        chunks = spec.split(self.fp.phones, o.procs_count())
        self.boot_to = o.boot_timeout or 30 + 0.1 * o.phones
        self.fo_to = o.failover_timeout or 30 + 0.05 * o.phones
        ramp_ms = int(1000 * len(chunks) / o.ramp) if o.ramp > 0 else 0
        settings = {**lab.board_settings(), **o.settings}
        res["agent_settings"] = settings
        specs = [spec.write(self.work / f"proc{i}", i, c, ip=ip, cm=cm, srst=srst,
                            settings=settings, monitor_s=lab.timers["connection_monitor"],
                            ramp_ms=ramp_ms, max_s=self.boot_to + self.fo_to + 120,
                            fast_poll=o.fast_poll, max_connecting=o.max_connecting,
                            gc_every_ms=o.gc_every_ms, sip=sip)
                 for i, c in enumerate(chunks)]
        self.tracker = Tracker({s.index: s.macs for s in specs})
        heap_kb = [o.heap_base_kb + o.heap_per_phone_kb * len(s.phones) for s in specs]
        res["heap_kb_per_proc"] = heap_kb
        self.procs = [FleetProc(s, firmware=firmware, heap=h * 1024, prefix=lab.phone_prefix(),
                                tracker=self.tracker, nice=o.nice) for s, h in zip(specs, heap_kb)]
        res["phones_nice"] = o.nice
        self.probes = cpu.lab_probes()
        if self.sip:
            self.probes.update(sipside.cpu_probes(lab, self.outside))
        for p in self.procs:
            self.probes[f"fleet process {p.index} (MicroPython)"] = p.cpu_seconds

    def boot(self) -> None:
        o, res, tr = self.opts, self.res, self.tracker
        self.say(f"{o.phones} phones in {len(self.procs)} MicroPython processes, boot "
                 f"(timeout {self.boot_to:.0f} s)")
        self.host_rss0 = status_kb(os.getpid()).get("VmRSS")
        tcp = netstat.Delta(netstat.hosts(self.lab)).start()
        win = cpu.Window(self.probes).start()
        t_spawn = time.monotonic()
        for p in self.procs:
            p.start()
        tr.wait_until(lambda t: t.counts["registered"] >= o.phones and
                      (not self.with_standby or t.counts["standby"] >= o.phones),
                      self.boot_to, self.alive)
        res["cpu_boot"] = win.stop()
        res["tcp_boot"] = tcp.stop()
        starts = [at for _p, at, _e in tr.proc_events_named("fleet_start")]
        start = min(starts) if starts else None
        res["startup_s"] = round(start - t_spawn, 2) if start else None
        res["boot"] = metrics.boot(tr, start, self.with_standby)
        self.say(_boot_line(res["boot"]))
        self._wait_heap("links_up", 10)
        res["rss_kb"] = {str(p.index): p.rss_kb() for p in self.procs}
        rss = status_kb(os.getpid()).get("VmRSS")
        if rss and self.host_rss0:
            res["host_rss_kb"] = {"before": self.host_rss0, "links_up": rss,
                                  "per_phone": round((rss - self.host_rss0) / o.phones, 1)}
        if self.watch is not None:
            res["kamailio_boot"] = self._kamailio("callmanager", t_spawn)
            res["servers_boot"] = sipside.view(self.lab, self.outside, self.devices)
        else:
            res["servers_boot"] = labside.server_view(self.lab, self.outside, self.devices)

    def fail_over(self) -> None:
        o, res, tr = self.opts, self.res, self.tracker
        self.say(f"WAN cut ({o.cut}): waiting for all phones on the SRST router "
                 f"(timeout {self.fo_to:.0f} s)")
        tcp = netstat.Delta(netstat.hosts(self.lab)).start()
        win = cpu.Window(self.probes).start()
        t_cut = time.monotonic()
        tr.mark_cut(t_cut)
        self.lab.wan_cut(o.cut)
        res["cut_ms"] = round((time.monotonic() - t_cut) * 1000, 1)
        tr.wait_until(lambda t: t.counts["on_srst"] >= o.phones, self.fo_to, self.alive)
        res["cpu_failover"] = win.stop()
        res["tcp_failover"] = tcp.stop()
        res["failover"] = metrics.failover(tr)
        self.say(_failover_line(res["failover"]))
        self._wait_heap("fallback", 10)
        if self.watch is not None:
            if self.outside is None:
                res["kamailio_failover"] = self._kamailio("srst", t_cut)
            res["servers_failover"] = sipside.view(self.lab, self.outside, self.devices)
        else:
            res["servers_failover"] = labside.server_view(self.lab, self.outside, self.devices)

    def finish(self) -> None:
        o, res, tr = self.opts, self.res, self.tracker
        try:        # over the whole run, with every phone still up
            res["messages_per_min"] = (sipside.load(self.watch, o.phones) if self.watch else
                                       labside.load(self.lab, self.outside, self.devices))
        except Exception as e:  # noqa: BLE001 - a figure that cannot be had hides no other
            res["messages_per_min"] = {"error": str(e)}
        self._stop()
        res["memory"] = metrics.memory(tr)
        res["loop"] = metrics.loop(tr)
        res["exit_codes"] = {str(p.index): p.proc.returncode if p.proc else None
                             for p in self.procs}
        res["console_tail"] = {str(p.index): list(p.text)[-10:] for p in self.procs if p.text}
        fails = metrics.failures(tr, o.fail_over, self.with_standby)
        res["failure_count"] = len(fails)
        res["failure_reasons"] = metrics.reasons(fails)
        res["failures"] = fails[:50]
        res["stray_lines"] = tr.strays
        res["server_mismatch"] = self._mismatch()
        res["ok"] = not fails and not tr.strays and not res["server_mismatch"]
        if o.on_done is not None:
            o.on_done(tr)

    def close(self) -> None:
        if self.watch is not None:
            self.watch.stop()
        for p in self.procs:
            if p.alive:
                p.request_stop()
        for p in self.procs:
            p.stop(5)
        self.lab.stop()

    # -- helpers ---------------------------------------------------------------------------
    def _kamailio(self, role: str, since: float) -> dict[str, Any]:
        """Kamailio's own figures for the phase since `since`, once its count has caught up
        with the phones' events (or KAMAILIO_SETTLE_S has passed)."""
        assert self.watch is not None
        end = time.monotonic() + KAMAILIO_SETTLE_S
        while time.monotonic() < end and (self.watch.latest(role, sipside.REGISTERED) or 0) \
                < self.opts.phones:
            time.sleep(sipside.POLL_S)
        return self.watch.phase(role, since, self.opts.phones)

    def _mismatch(self) -> list[str]:
        """SIP: where Kamailio's registrations differ from what the run asked (every phone
        registered at HQ after boot, at the branch after the cut); [] for SCCP."""
        if self.watch is None:
            return []
        n, out = self.opts.phones, []
        checks = [("servers_boot", "callmanager")]
        if self.opts.fail_over and self.outside is None:
            checks.append(("servers_failover", "srst"))
        for key, role in checks:
            got = self.res.get(key, {}).get(role, {}).get("registered")
            if got != n:
                out.append(f"Kamailio {role} holds {got} of {n} registrations ({key})")
        return out

    def _wait_heap(self, phase: str, timeout: float) -> None:
        self.tracker.wait_until(
            lambda t: all(t.proc_event(p.index, "fleet_heap", phase=phase) for p in self.procs),
            timeout, self.alive)

    def _stop(self) -> None:
        """Each runner reports every phone's final state (fleet_final) and exits; SIGINT, then
        SIGKILL, for one that does not."""
        for p in self.procs:
            p.request_stop()
        self.tracker.wait_until(
            lambda t: all(t.proc_event(p.index, "fleet_done") or not p.alive for p in self.procs),
            20)
        for p in self.procs:
            p.wait(5)
            p.stop(5)


def _boot_line(b: dict[str, Any]) -> str:
    return (f"boot: {b['registered']}/{b['phones']} registered, {b['standby']} standby; "
            f"{b.get('registrations_per_s')} registrations/s, all registered in "
            f"{b.get('all_registered_s')} s, all standby in {b.get('all_standby_s')} s")


def _failover_line(f: dict[str, Any]) -> str:
    return (f"failover: {f['on_srst']}/{f['phones']} on the SRST router, all in "
            f"{f.get('all_on_srst_s')} s (median {f.get('median_on_srst_s')} s)")
