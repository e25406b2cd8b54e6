"""The whole lab as one object: network, PKI, trust lists, per-phone configuration, servers,
faults, status, a merged event log and a recorder. The demo, the scenarios, the tests and
`phonelab lab up` drive this.

    with Lab("out/lab", mode="auto", macs=["001122AABBCC"], short_timers=True) as lab:
        folder = lab.prepare_board_folder("out/board", "001122AABBCC")
        board = VirtualBoard(folder, prefix=lab.phone_prefix(), env=lab.phone_env())
        lab.wan_cut("blackhole"); ...; lab.wan_restore()
        lab.status()["phones"]      # {"001122AABBCC": {"callmanager": "registered", "srst": "standby"}}

What `start()` builds, in order (Cisco's Secure SRST design, docs/lab.md):
  topology (namespaces or loopback) -> PKI -> SRST router sim + credentials service (branch,
  2443/2445) -> call manager sim (HQ, 2443) -> TFTP (HQ; the lab server or dnsmasq) ->
  SEP<MAC>.cnf.xml written by the call manager with the SRST certificate it fetched from the
  credentials service, and its .sgn signed by the TFTP certificate -> CTLFile.tlv and
  ITLFile.tlv signed by the SAST -> DHCP with option 150 (dnsmasq in the branch, namespace
  mode) -> optional recorder.
"""
from __future__ import annotations

import atexit
import time
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import struct
import tempfile
import weakref
from pathlib import Path
from typing import Any, Callable, Iterable

import host_tools.fw  # noqa: F401  (firmware/ on sys.path)
from host_tools import BOARDS
from host_tools import ctlbuild, pkifolder
from host_tools import pki as labpki
from host_tools.lab import cnfxml
from host_tools.lab.callmanager import CallManager
from host_tools.lab.callmanager import SECURE_PORT as CM_PORT
from host_tools.lab.credentials import DEFAULT_PORT as CREDENTIALS_PORT
from host_tools.lab import netns, ntp
from host_tools.lab.eventlog import EventLog
from host_tools.lab.kamailio import Kamailio, KamailioError
from host_tools.lab.kamailio_cfg import ALGORITHMS as SIP_ALGORITHMS
from host_tools.lab.names import SCCP_SERVERS, SERVERS, TFTP_KINDS
from host_tools.lab.recorder import Recorder, RecorderError
from host_tools.lab.runs import OWNER_FILE, RUN_PREFIX, run_folder  # noqa: F401 (theirs)
from host_tools.lab.runs import owner_alive as _owner_alive
from host_tools.lab.runs import pids_using as _pids_using
from host_tools.lab.runs import short_base
from host_tools.lab.runs import start_time as _start_time  # noqa: F401 (tests')
from host_tools.lab.served import TftpFiles
from host_tools.lab.services import LoggedDnsmasq, LoggedTftp, start_with_fallback
from host_tools.lab.sipservers import SipServers
from host_tools.lab.srst import SECURE_PORT as SRST_PORT
from host_tools.lab.srst import SrstRouter
from host_tools.lab.topology import NetnsTopology, Topology, make_topology
from host_tools.signals import exit_on_signals
from phone.store import PHONE_CERT, PHONE_KEY  # type: ignore[import-not-found]

DEFAULT_MAC = "001122AABBCC"
TFTP_PORT = 69

# Demo timers: keepalives and re-home in seconds rather than minutes.
SHORT_TIMERS = {"keepalive": 5, "secondary_keepalive": 10, "connection_monitor": 10}
LONG_TIMERS = {"keepalive": 30, "secondary_keepalive": 60, "connection_monitor": 120}
# ... and the agent's own numbers to match (firmware/phone/settings.py names).
SHORT_BOARD_SETTINGS = {"probe_after_ms": 1500, "ack_timeout_ms": 1000, "max_missed": 2,
                        "standby_keepalive_ms": 10000, "connect_timeout_ms": 3000,
                        "register_timeout_ms": 3000, "retry_min_ms": 500, "retry_max_ms": 4000,
                        "tftp_timeout_ms": 1000, "dhcp_timeout_ms": 15000}

_live: "weakref.WeakSet[Lab]" = weakref.WeakSet()


class LabError(RuntimeError):
    pass


# ------------------------------------------------------------------ the sweep of killed runs
def sweep_stale_runs(base: str | Path | None = None) -> list[str]:
    """Remove what killed runs left: their processes (dnsmasq, virtual boards), their network
    namespaces (netns names carry the owner's pid) and their run folders (keys, key logs).
    Only runs whose owner process is gone are touched; a live run's are never."""
    done: list[str] = []
    bases = {Path(base)} if base else {Path(tempfile.gettempdir()), short_base()}
    for d in sorted(d for b in bases for d in b.glob(f"{RUN_PREFIX}*")):
        if not d.is_dir() or _owner_alive(d) is not False:
            continue
        pids = _pids_using(d)
        if pids:
            netns._kill_pids(pids)
            done.append(f"killed {', '.join(map(str, pids))} (of {d.name})")
        shutil.rmtree(d, ignore_errors=True)
        done.append(f"removed {d}")
    if netns.usable():
        done += [f"namespace {n} deleted" for n in netns.sweep_stale()]
    return done


class Lab:
    """workdir:        everything the lab writes (pki/, tftp/, events.jsonl, lab.json, pcap)
    mode:              'auto' (namespaces when root, else loopback), 'netns', 'loopback'
    macs:              the phones (12 hex digits); each gets a certificate and a config.
                       Default: the phones tftp_files has configs for, else those the pki
                       folder has certificates for, else DEFAULT_MAC
    interface:         a real Ethernet interface bridged to the branch LAN (bench board)
    separate_phones:   one phone namespace per MAC (default: all share one)
    short_timers:      keepalive 5 s, secondary 10 s, connectionMonitorDuration 10 s
    keepalive, secondary_keepalive, connection_monitor: override single timers
    security_mode:     deviceSecurityMode of the configs (3 encrypted, 2 authenticated)
    key_size, hash_name: PKI key size, CTL/ITL/.sgn hash ('sha1', 'sha256', 'sha512')
    dhcp:              dnsmasq DHCP with option 150 in the branch (namespace mode only)
    dhcp_lease:        its lease time (dnsmasq: seconds or "2m", "1h"; at least 2 minutes)
    tftp:              'lab' (host_tools.lab.tftp_server, fault injection), 'dnsmasq'
                       (namespace mode), 'auto' = 'lab'
    keylog:            the simulators write a TLS key log (workdir/tls-keys.log)
    record:            start the recorder with the lab (pcap of the phone's interface)
    pki:               an existing host_tools.pki.Pki to reuse (must hold the phones), or a
                       folder: one `phonelab certs` wrote, or certutils-style files
                       (host_tools.pkifolder); keys under 2048 bits are used with a warning
    tftp_files:        a folder of TFTP files served in place of the lab's (--tftp-root): the
                       lab writes no trust list if it has one, no config for a phone it has
                       one for (host_tools.lab.served); `warnings` says what does not fit
    ccm_ca_signed:     the call manager certificate is issued by the lab's enterprise CA
                       (served with that CA) instead of self-signed (the CUCM default); the
                       SRST router's is always issued by the router's own CA
    sip:               also run the SIP registrars (Kamailio over TLS 5061, mutual TLS, digest)
                       at HQ and in the branch (host_tools.lab.sipservers); refused in one
                       line when Kamailio is not installed
    sip_algorithm:     their digest algorithm, "MD5" (Cisco phones') or "SHA-256" (RFC 8760)
    protocol:          "sccp" (default) or "sip": the phones' SEP<MAC>.cnf.xml are SIP ones
                       (cnfxml, protocol="sip": the line and password of sip-lines.json, the
                       Kamailio registrars' TLS ports); "sip" implies sip=True
    sip_macs:          the phones the SIP registrars give a line (default: macs; a fleet
                       gives each of its phones one, with no config or certificate here)
    """

    def __init__(self, workdir: str | Path, mode: str = "auto",
                 macs: Iterable[str] | None = None, *, interface: str | None = None,
                 separate_phones: bool = False, short_timers: bool = False,
                 keepalive: int | None = None, secondary_keepalive: int | None = None,
                 connection_monitor: int | None = None, security_mode: int = 3,
                 key_size: int = labpki.DEFAULT_KEY_SIZE, hash_name: str = "sha1",
                 dhcp: bool = True, dhcp_lease: int | str = "1h", tftp: str = "auto",
                 keylog: bool = True, record: bool = False,
                 pki: labpki.Pki | str | Path | None = None, ccm_ca_signed: bool = False,
                 tftp_files: str | Path | None = None, sip: bool = False,
                 sip_algorithm: str = "MD5", protocol: str = "sccp",
                 sip_macs: Iterable[str] | None = None) -> None:
        self.workdir = Path(workdir).resolve()
        self.requested_mode = mode
        try:
            self.tftp_files = TftpFiles(tftp_files) if tftp_files is not None else None
        except ValueError as e:
            raise LabError(str(e)) from None
        self.warnings: list[str] = []        # what does not fit (weak keys, served files)
        if macs is None:
            macs = ((self.tftp_files.macs() if self.tftp_files else [])
                    or (pkifolder.macs_in(pki) if isinstance(pki, (str, Path)) else [])
                    or [DEFAULT_MAC])
        self.macs = [labpki.normalize_mac(m) for m in macs]
        if not self.macs:
            raise LabError("a lab needs at least one phone MAC")
        self.interface = interface
        self.separate_phones = separate_phones
        self.short_timers = short_timers
        timers = dict(SHORT_TIMERS if short_timers else LONG_TIMERS)
        for k, v in (("keepalive", keepalive), ("secondary_keepalive", secondary_keepalive),
                     ("connection_monitor", connection_monitor)):
            if v is not None:
                timers[k] = v
        self.timers = timers
        self.security_mode = security_mode
        self.key_size = key_size
        self.hash_name = hash_name
        self.want_dhcp = dhcp
        self.dhcp_lease = dhcp_lease
        if tftp not in TFTP_KINDS:
            raise LabError(f"tftp={tftp!r}: one of {', '.join(TFTP_KINDS)}")
        self.tftp_kind = "lab" if tftp == "auto" else tftp
        self.want_keylog = keylog
        self.want_record = record
        self.pki: labpki.Pki | None = pki if isinstance(pki, labpki.Pki) else None
        self.pki_folder = Path(pki) if isinstance(pki, (str, Path)) else None
        self.tls_security_level: int | None = None     # 1 for a PKI with keys under 2048 bits
        self.ccm_ca_signed = ccm_ca_signed
        if sip_algorithm not in SIP_ALGORITHMS:
            raise LabError(f"sip_algorithm={sip_algorithm!r}: one of {', '.join(SIP_ALGORITHMS)}")
        if protocol not in cnfxml.PROTOCOLS:
            raise LabError(f"protocol={protocol!r}: one of {', '.join(cnfxml.PROTOCOLS)}")
        self.protocol = protocol
        self.want_sip = sip or protocol == "sip"
        self.sip_algorithm = sip_algorithm
        self.sip_macs = ([labpki.normalize_mac(m) for m in sip_macs] if sip_macs is not None
                         else self.macs)
        # filled by start()
        self.mode = "?"
        self.events: EventLog | None = None
        self.topology: Topology | None = None
        self.callmanager: CallManager | None = None
        self.srst: SrstRouter | None = None
        self.tftp: LoggedTftp | LoggedDnsmasq | None = None
        self.dhcp: LoggedDnsmasq | None = None
        self.ntp: ntp.SntpServer | None = None
        self.sip: SipServers | None = None
        self.recorder: Recorder | None = None
        self.endpoints: dict[str, tuple[str, int]] = {}
        self.files: dict[str, Any] = {}
        self._started = False
        self._undo_signals: Callable[[], None] = lambda: None
        self._stopped: set[str] = set()      # servers a fault stopped on purpose
        self._crashes: list[str] = []        # server bugs the simulators reported

    # ------------------------------------------------------------------ life cycle
    def __enter__(self) -> "Lab":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> "Lab":
        if self._started:
            return self
        self._started = True
        _live.add(self)
        self._undo_signals = exit_on_signals()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        swept = sweep_stale_runs()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.events = EventLog(self.workdir / "events.jsonl")
        self.events.subscribe(self._watch)
        self.log("lab_starting", mode=self.requested_mode, macs=self.macs)
        if swept:
            self.log("stale_runs_swept", done=swept)
        if self.want_keylog:
            # the TLS key log decrypts every session: only this user may read it
            os.close(os.open(self.workdir / "tls-keys.log", os.O_WRONLY | os.O_CREAT, 0o600))
            os.chmod(self.workdir / "tls-keys.log", 0o600)
        topo = make_topology(self.requested_mode,
                             phones=len(self.macs) if self.separate_phones else 1,
                             phone_macs=self.macs, interface=self.interface,
                             emit=self._emitter("lab"))
        self.topology = topo
        topo.up()
        self.mode = topo.mode
        for loop in (topo.hq, topo.branch):
            loop.on_crash = lambda name, text: self.log("server_crashed", loop=name, error=text)
        a = topo.addr
        ips = {"srst": a.srst, "ccm": a.hq_front, "tftp": a.hq_front}
        if self.pki_folder is not None:
            try:
                self.pki, notes = pkifolder.load(self.pki_folder, self.macs,
                                                 private_folder(self.workdir / "pki"), ips)
            except (labpki.PkiError, OSError) as e:
                raise LabError(str(e)) from None
            for note in notes:
                self.log("pki_note", note=note)
        elif self.pki is None:
            private_folder(self.workdir / "pki")
            self.pki = labpki.make_pki(self.workdir / "pki", self.macs, self.key_size, ips=ips,
                                       ca_signed=["ccm"] if self.ccm_ca_signed else [])
        self._check_keys()
        missing = [m for m in self.macs if m not in self.pki.phones]
        if missing:
            raise LabError(f"the PKI has no certificate for {', '.join(missing)}")
        if self.ccm_ca_signed and self.pki.ccm.chain_path is None:
            raise LabError("ccm_ca_signed: the given PKI's call manager certificate is "
                           "self-signed (make it with ca_signed=['ccm'])")
        self.tftp_root = self.workdir / "tftp"
        self.tftp_root.mkdir(exist_ok=True)
        if self.tftp_files is not None:
            served = self.tftp_files.copy_to(self.tftp_root)
            self.log("tftp_files_served", folder=str(self.tftp_files.folder), files=served)
        self._start_srst()
        self._start_callmanager()
        if self.want_sip:
            self._start_sip()
        self._start_tftp()
        self.write_configs()
        self.write_trust_lists()
        self._check_served()
        if self.want_dhcp and isinstance(topo, NetnsTopology):
            self._start_dhcp()
        topo.on_cm_reset = self._cm_reset
        if self.want_record:
            try:
                self.record_start()
            except RecorderError as e:     # no capture rights (loopback without root): go on
                self.log("recording_failed", error=str(e))
        (self.workdir / "lab.json").write_text(json.dumps(self.describe(), indent=2) + "\n")
        self.log("lab_ready", mode=self.mode,
                 endpoints={k: f"{h}:{p}" for k, (h, p) in self.endpoints.items()})

    def stop(self) -> None:
        """Stop everything; safe to call twice and after a failed start."""
        if not self._started:
            return
        self._started = False
        topo = self.topology
        steps: list[tuple[str, Callable[[], Any]]] = []
        if topo is not None:
            steps.append(("flap", topo.stop_flap))
        steps += [("recorder", self.record_stop),
                  ("dhcp", lambda: self.dhcp and self.dhcp.stop()),
                  ("tftp", lambda: self.tftp and self.tftp.stop())]
        steps.append(("sip", lambda: self.sip and self.sip.stop()))
        if topo is not None:
            if self.callmanager is not None and topo.hq.running:
                steps.append(("callmanager", lambda: topo.hq.run(self.callmanager.stop(), 10)))  # type: ignore[union-attr]
            if self.ntp is not None and topo.branch.running:
                steps.append(("ntp", lambda: topo.branch.run(self._close_ntp(), 5)))
            if self.srst is not None and topo.branch.running:
                steps.append(("srst", lambda: topo.branch.run(self.srst.stop(), 10)))  # type: ignore[union-attr]
            steps.append(("topology", topo.down))
        for name, fn in steps:
            try:
                fn()
            except Exception as e:  # cleanup goes on
                self.log("stop_error", step=name, error=repr(e))
        self.log("lab_stopped")
        if self.events is not None:
            self.events.close()
        self._undo_signals()
        _live.discard(self)

    @property
    def running(self) -> bool:
        return self._started

    # ------------------------------------------------------------------ events
    def log(self, ev: str, **fields: Any) -> None:
        """A lab action in the merged event log (src "lab")."""
        if self.events is not None:
            self.events.emit("lab", ev, **fields)

    def warn(self, text: str) -> None:
        """Something the run goes on with but the user should know (printed by the CLI)."""
        self.warnings.append(text)
        self.log("lab_warning", warning=text)

    def _check_keys(self) -> None:
        """Keys under 2048 bits (an older cluster's 1024-bit CAPF) are used with a warning:
        the simulators' TLS then allows them (OpenSSL security level 1); under 1024, none."""
        assert self.pki is not None
        refused, weak = pkifolder.key_sizes(self.pki, self.macs)
        if refused:
            raise LabError(f"RSA keys under {pkifolder.MIN_BITS} bits: {', '.join(refused)}")
        if weak:
            self.tls_security_level = 1
            self.warn(f"RSA keys under {pkifolder.WEAK_BITS} bits: {', '.join(weak)}; the "
                      f"simulators accept them (OpenSSL security level 1)")

    def _check_served(self) -> None:
        """One warning per thing in --tftp-root's files that does not fit the lab."""
        if self.tftp_files is None:
            return
        p = self.pki
        assert p is not None
        for mac in self.tftp_files.macs():
            if mac not in self.macs:
                self.warn(f"SEP{mac}.cnf.xml is served but no phone of this lab has that MAC")
        own = [m for m in self.macs if not self.tftp_files.has_config(m)]
        for text in self.tftp_files.check(
                self.tftp_root, self.macs, p.ccm.cert_der, p.tftp.cert_der, p.srst.cert_der,
                self.endpoints["callmanager"], self.endpoints["srst"], writes_configs=bool(own)):
            self.warn(text)

    def _emitter(self, src: str) -> Callable[..., None]:
        def emit(ev: str, **fields: Any) -> None:
            if self.events is not None:
                self.events.emit(src, ev, **fields)
        return emit

    def wait_event(self, pred: Callable[[dict], bool], timeout: float, since: int = 0) -> dict:
        assert self.events is not None
        return self.events.wait_for(pred, timeout, since)

    # ------------------------------------------------------------------ servers
    @property
    def keylog_path(self) -> Path | None:
        return self.workdir / "tls-keys.log" if self.want_keylog else None

    def _sccp_settings(self, role: str) -> dict[str, Any]:
        """What the lab sets alike on both SCCP simulators (SccpServer's arguments)."""
        assert self.events is not None
        return dict(keepalive=self.timers["keepalive"],
                    secondary_keepalive=self.timers["secondary_keepalive"],
                    keylog=self.keylog_path, on_event=self.events.server_hook(role),
                    tls_security_level=self.tls_security_level)

    def _start_srst(self) -> None:
        topo, p, a = self._topo(), self.pki, self._topo().addr
        assert p is not None
        settings = self._sccp_settings("srst")

        def make(port: int | None) -> SrstRouter:
            return SrstRouter(cert=p.srst.server_cert, key=p.srst.key_path,  # type: ignore[arg-type]
                              phone_ca=p.capf.cert_path, ccm_certs=[p.ccm.cert_der],
                              name=p.srst.cn, host=a.srst,
                              port=SRST_PORT if port is None else port,
                              credentials_port=CREDENTIALS_PORT if port is None else port,
                              **settings)

        self.srst = topo.branch.run(start_with_fallback(
            make, lambda s: s.start(), lambda s: s.stop(), topo.mode == "loopback"), 20)
        self.endpoints["srst"] = (a.srst, self.srst.ports["tls"])
        self.endpoints["credentials"] = (a.srst, self.srst.ports["credentials"])

    def _start_callmanager(self) -> None:
        topo, p, a = self._topo(), self.pki, self._topo().addr
        assert p is not None
        settings = self._sccp_settings("callmanager")

        def make(port: int | None) -> CallManager:
            return CallManager(cert=p.ccm.server_cert, key=p.ccm.key_path,  # type: ignore[arg-type]
                               phone_ca=p.capf.cert_path, name=p.ccm.cn, host=a.hq_bind,
                               address=a.hq_front, port=CM_PORT if port is None else port,
                               devices=[f"SEP{m}" for m in self.macs], **settings)

        self.callmanager = topo.hq.run(start_with_fallback(
            make, lambda s: s.start(), lambda s: s.stop(), topo.mode == "loopback"), 20)
        self.endpoints["callmanager"] = topo.expose("callmanager", "tcp",
                                                    self.callmanager.ports["tls"], CM_PORT)

    def _start_sip(self) -> None:
        """Kamailio at both ends, after the SCCP simulators (the same PKI)."""
        assert self.pki is not None
        self.sip = SipServers(self.workdir, self.sip_macs, algorithm=self.sip_algorithm,
                              security_level=self.tls_security_level,
                              keylog=self.keylog_path, emit_for=self._emitter)
        try:
            self.sip.start(self._topo(), self.pki)
        except KamailioError as e:
            raise LabError(f"sip: {e}") from None
        self.endpoints.update(self.sip.endpoints)

    def _start_tftp(self) -> None:
        topo, a = self._topo(), self._topo().addr
        emit = self._emitter("tftp")
        if self.tftp_kind == "dnsmasq":
            if not isinstance(topo, NetnsTopology):
                raise LabError("tftp='dnsmasq' needs namespace mode (it serves on port 69)")
            self.tftp = LoggedDnsmasq(topo.hq_ns, "lo", tftp_root=self.tftp_root,
                                      listen_address=a.hq_bind,
                                      workdir=self.workdir / "dnsmasq-hq", emit=emit).start()
            port = TFTP_PORT
        else:
            ns = topo.hq_ns.name if isinstance(topo, NetnsTopology) and topo.hq_ns else None

            def make(port: int) -> LoggedTftp:
                return LoggedTftp(self.tftp_root, host=a.hq_bind, port=port, netns=ns,
                                  log_path=self.workdir / "tftp.jsonl", emit=emit)
            try:
                srv = make(TFTP_PORT).start()
            except OSError:
                if topo.mode != "loopback":
                    raise
                srv = make(0).start()      # no root, or another lab has 69 on this address
            self.tftp = srv
            port = srv.port
        self.endpoints["tftp"] = topo.expose("tftp", "udp", port, TFTP_PORT)

    def _start_dhcp(self) -> None:
        topo = self._topo()
        assert isinstance(topo, NetnsTopology) and topo.branch_ns is not None
        a = topo.addr
        # The branch router serves NTP (as `ntp master` does) and DHCP names it (option 42):
        # the phone's first clock source after the signed files' floor.
        extra = [f"--dhcp-boot=,,{self.endpoints['tftp'][0]}"]
        try:
            self.ntp = topo.branch.run(ntp.start(a.router, ntp.PORT, self._emitter("ntp")), 5)
            self.endpoints["ntp"] = (a.router, ntp.PORT)
            extra.append(f"--dhcp-option=42,{a.router}")
        except OSError as e:
            self.log("ntp_unavailable", error=str(e))
        self.dhcp = LoggedDnsmasq(topo.branch_ns, topo.LAN_BRIDGE, dhcp_range=a.dhcp_range,
                                  option150=[self.endpoints["tftp"][0]], router=a.router,
                                  lease=self.dhcp_lease,
                                  workdir=self.workdir / "dnsmasq-branch",
                                  # siaddr = the TFTP server too (dnsmasq would put itself)
                                  extra=extra,
                                  emit=self._emitter("dhcp")).start()
        self.endpoints["dhcp"] = (a.router, 67)

    async def _close_ntp(self) -> None:
        if self.ntp is not None:
            self.ntp.close()
            self.ntp = None

    def _topo(self) -> Topology:
        if self.topology is None:
            raise LabError("the lab is not started")
        return self.topology

    # ------------------------------------------------------------------ files
    def write_configs(self) -> list[Path]:
        """SEP<MAC>.cnf.xml for every phone, written by the call manager with the SRST router
        certificate it asks the credentials service for (across the WAN), plus the .sgn
        signed by the TFTP certificate; none for a phone whose config --tftp-root serves."""
        topo, cm, srst, p = self._topo(), self.callmanager, self.srst, self.pki
        assert cm is not None and srst is not None and p is not None
        served = [m for m in self.macs if self.tftp_files and self.tftp_files.has_config(m)]
        own = [m for m in self.macs if m not in served]
        paths: list[Path] = []
        signed: list[Path] = []
        if own:
            if p.tftp.key is None:
                raise LabError(f"the TFTP certificate ({p.tftp.cn}) has no private key: the lab "
                               f"cannot sign the phones' configs (serve them with --tftp-root)")
            s_host, s_port = self.endpoints["srst"]
            c_host, c_port = self.endpoints["callmanager"]
            srst_ref = cnfxml.SrstRef(srst.name, s_host, s_port - cnfxml.SECURE_OFFSET)
            cms = [cnfxml.CallManagerRef(cm.name, c_host, c_port - cnfxml.SECURE_OFFSET)]
            kw: dict[str, Any] = {}
            if self.protocol == "sip":
                srst_ref, cms, kw = self._sip_refs(srst_ref, cms, own)
            paths = topo.hq.run(cm.write_phone_configs(
                self.tftp_root, own, srst=srst_ref, credentials=self.endpoints["credentials"],
                callmanagers=cms, security_mode=self.security_mode,
                connection_monitor=self.timers["connection_monitor"], **kw), 30)
            for path in paths:
                sgn = ctlbuild.build_sgn(p.tftp, path.read_bytes(), filename=path.name,
                                         hash_name=self.hash_name)
                signed.append(ctlbuild.write(path.with_name(path.name + ".sgn"), sgn))
            self.log("configs_ready", count=len(paths), srst_cert_from="credentials service")
        for m in served:
            for name, out in ((f"SEP{m}.cnf.xml", paths), (f"SEP{m}.cnf.xml.sgn", signed)):
                if (self.tftp_root / name).is_file():
                    out.append(self.tftp_root / name)
        default = self.tftp_root / cnfxml.DEFAULT_CNF
        if not default.exists():
            # what CUCM serves a device it does not know (SEP<MAC>.cnf.xml not found): the
            # call managers, no SRST, no certificate
            c_host, c_port = self.endpoints["callmanager"]
            default.write_text(cnfxml.build_default_cnf_xml(
                [cnfxml.CallManagerRef(cm.name, c_host, c_port - cnfxml.SECURE_OFFSET)],
                connection_monitor=self.timers["connection_monitor"]))
            self.files["default_config"] = str(default)
        self.files["configs"] = [str(x) for x in paths]
        self.files["signed_configs"] = [str(x) for x in signed]
        return paths

    def _sip_refs(self, srst_ref: cnfxml.SrstRef, cms: list[cnfxml.CallManagerRef],
                  macs: list[str]) -> tuple[cnfxml.SrstRef, list[cnfxml.CallManagerRef],
                                            dict[str, Any]]:
        """A SIP phone's side of its config: the Kamailio registrars' TLS endpoints (the SRST
        router's SIP port is written as its TLS port - 1: the phone adds 1) and each phone's
        line from sip-lines.json."""
        if self.sip is None:
            raise LabError("protocol='sip' needs the lab's SIP registrars (they are not running)")
        s_host, s_tls = self.endpoints["sip_srst"]
        c_host, c_tls = self.endpoints["sip_callmanager"]
        srst_ref = dataclasses.replace(srst_ref, address=s_host, sip_port=s_tls - 1)
        cms = [dataclasses.replace(c, address=c_host, secured_sip_port=c_tls) for c in cms]
        lines = {m: [cnfxml.SipLineRef(ln.user, ln.user, ln.password)]
                 for m, ln in self.sip.lines.items() if m in macs}
        return srst_ref, cms, {"protocol": "sip", "sip_lines": lines}

    def write_trust_lists(self) -> dict[str, Path]:
        """CTLFile.tlv (SAST x2, CCM, TFTP, CAPF) and ITLFile.tlv (TFTP, CCM, CAPF), both
        signed by the first SAST; none when --tftp-root serves a trust list of its own."""
        p = self.pki
        assert p is not None
        if self.tftp_files is not None and self.tftp_files.has_trust():
            out = {k: self.tftp_root / n
                   for k, n in (("ctl", "CTLFile.tlv"), ("itl", "ITLFile.tlv"))
                   if (self.tftp_root / n).is_file()}
            self.files.update({k: str(v) for k, v in out.items()})
            return out
        if p.sast.key is None:
            raise LabError(f"the SAST certificate ({p.sast.cn}) has no private key: the lab "
                           f"cannot sign CTLFile.tlv (serve the cluster's with --tftp-root)")
        c_host = self.endpoints["callmanager"][0]
        t_host = self.endpoints["tftp"][0]
        R = ctlbuild.Record
        ccm = R("CCM", p.ccm.cert, dns=p.ccm.cn, ip=c_host)
        tftp = R("TFTP", p.tftp.cert, dns=p.tftp.cn, ip=t_host)
        capf = R("CAPF", p.capf.cert)
        sast2 = [R("SAST", p.sast2.cert)] if p.sast2 is not None else []
        ctl = ctlbuild.build_trust_list(p.sast, [*sast2, ccm, tftp, capf],
                                        hash_name=self.hash_name)
        itl = ctlbuild.build_trust_list(p.sast, [tftp, ccm, capf], hash_name=self.hash_name,
                                        itl=True)
        out = {"ctl": ctlbuild.write(self.tftp_root / "CTLFile.tlv", ctl),
               "itl": ctlbuild.write(self.tftp_root / "ITLFile.tlv", itl)}
        self.files.update({k: str(v) for k, v in out.items()})
        return out

    # ------------------------------------------------------------------ the phone side
    def phone_index(self, mac: str | None = None) -> int:
        if mac is None or not self.separate_phones:
            return 0
        return self.macs.index(labpki.normalize_mac(mac))

    def phone_prefix(self, mac: str | None = None) -> list[str]:
        """Command prefix for the phone host, e.g. ["ip", "netns", "exec", NS] ([] in
        loopback mode): VirtualBoard(prefix=...)."""
        return self._topo().phone_prefix(self.phone_index(mac))

    def phone_env(self, mac: str | None = None) -> dict[str, str]:
        """Environment for the phone's interpreter: PHONE_MAC, PHONE_IF (namespace mode)."""
        m = labpki.normalize_mac(mac) if mac else self.macs[0]
        return {"PHONE_MAC": m, **self._topo().phone_env(self.phone_index(mac))}

    def profile_overrides(self) -> dict[str, Any]:
        """Board-profile keys the lab needs. Loopback mode has no DHCP: the phone is given
        its TFTP server (and port) and its own address here."""
        o: dict[str, Any] = {}
        host, port = self.endpoints["tftp"]
        if self.mode == "loopback":
            o.update(dhcp=False, tftp_server=host, ip=self._topo().addr.phone)
        if port != TFTP_PORT:
            o["tftp_port"] = port
        return o

    def board_settings(self) -> dict[str, Any]:
        """settings.json for the agent (phone/settings.py keys): short timers when asked."""
        return dict(SHORT_BOARD_SETTINGS) if self.short_timers else {}

    def prepare_board_folder(self, folder: str | Path, mac: str | None = None,
                             profile: str | Path | None = None) -> Path:
        """Write a phone's identity and lab settings into a board folder (the virtual board's
        filesystem root, or what `phonelab deploy` copies to a real board):

            board.json          the profile (default boards/virtual.json) + profile_overrides()
                                (+ "store": "state" for a unix-port profile)
            settings.json       board_settings(), when there are any
            state/phone.der     the phone certificate (DER)   } phone.store PHONE_CERT/PHONE_KEY,
            state/phone.key     its private key (PKCS#8 DER)  } in the store folder "state"
        """
        m = labpki.normalize_mac(mac) if mac else self.macs[0]
        p = self.pki
        if p is None or m not in p.phones:
            raise LabError(f"no phone certificate for {m}")
        root = Path(folder)
        store = root / "state"
        store.mkdir(parents=True, exist_ok=True)
        prof = json.loads(Path(profile or BOARDS / "virtual.json").read_text())
        prof.update(self.profile_overrides())
        if prof.get("chip") == "unix":
            prof["store"] = "state"      # relative: the virtual board's root is the folder
        prof["mac"] = m
        (root / "board.json").write_text(json.dumps(prof, indent=2) + "\n")
        settings = self.board_settings()
        if settings:
            (root / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
        ident = p.phones[m]
        (store / PHONE_CERT).write_bytes(ident.cert_der)
        (store / PHONE_KEY).write_bytes(ident.key_der)
        self.log("board_folder_prepared", folder=str(root), mac=m)
        return root

    # ------------------------------------------------------------------ faults
    def wan_cut(self, kind: str = "blackhole") -> float:
        """blackhole (silent), unreachable (ICMP / RST in loopback), link_down, cm_reset.
        Returns the time.monotonic() the fault was in force."""
        return self._topo().wan_cut(kind)

    def wan_restore(self) -> float:
        """Returns the time.monotonic() the WAN was back."""
        return self._topo().wan_restore()

    def flap(self, period_s: float, count: int, kind: str = "blackhole", wait: bool = False) -> Any:
        return self._topo().flap(period_s, count, kind, wait)

    def _cm_reset(self, on: bool) -> float:
        if self._sip_server("callmanager") is not None:
            return self._sip_cm_reset(on)
        topo, cm = self._topo(), self.callmanager
        assert cm is not None

        async def reset() -> int:
            for sess in list(cm.sessions.values()):
                # SO_LINGER 0: the abort below then sends RST, not FIN (a reset, not a close)
                sock = sess.writer.get_extra_info("socket")
                with contextlib.suppress(OSError, AttributeError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            n = await cm.drop_connections(abort=True, reason="cm_reset")
            at = time.monotonic()       # in force: a phone may be on SRST before stop() ends
            await cm.stop()                                                # then refuse
            return n, at

        async def start() -> float:
            await cm.start()
            return time.monotonic()

        if on:
            self._stopped.add("callmanager")
            n, at = topo.hq.run(reset(), 10)
            self.log("cm_reset", connections=n)
            return at
        at = topo.hq.run(start(), 10)
        self._stopped.discard("callmanager")
        return at

    def _sip_server(self, name: str) -> Kamailio | None:
        """The Kamailio that plays `name` (callmanager, srst) for SIP phones (protocol "sip"),
        else None: then the SCCP simulator plays it."""
        if self.protocol != "sip" or self.sip is None:
            return None
        return self.sip.servers.get(name)

    def _sip_cm_reset(self, on: bool) -> float:
        """cm_reset for SIP phones: the HQ Kamailio goes (SIGTERM: its connections close,
        its port refuses) and comes back on restore, as the SCCP call manager's reset and
        refusal (docs/decisions.md, issue 15). A hung one (hang: its processes stopped) is
        killed as it stands (SIGKILL): continued for SIGTERM it would first answer what it
        had read, where the SCCP call manager's reset answers nothing (an RST)."""
        k = self._sip_server("callmanager")
        assert k is not None
        if on:
            self._stopped.add("callmanager")
            if k.frozen and k.running:
                for pid in k.freeze(True):      # the main process and its workers
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            k.stop()
            self.log("cm_reset", connections=None, server="sip_callmanager")
            return time.monotonic()
        k.start()
        self._stopped.discard("callmanager")
        return time.monotonic()

    def kill(self, name: str) -> None:
        """Stop one server as if its process died: callmanager, srst, tftp, dhcp (for SIP
        phones the call manager and the SRST router are the Kamailio registrars)."""
        topo = self._topo()
        self._check_server(name)
        self._stopped.add(name)
        self._server_call(topo, name, "stop")
        self.log("server_killed", server=name)

    def restart(self, name: str) -> None:
        """Start a server again (stopping it first if it runs), on the same address/port."""
        topo = self._topo()
        self._check_server(name)
        if self.server_running(name):
            self.kill(name)
        self._server_call(topo, name, "start")
        self._stopped.discard(name)
        self.log("server_restarted", server=name)

    def _server_call(self, topo: Topology, name: str, method: str) -> None:
        """Call a server's start or stop: the simulators' (coroutines) in their namespace's
        loop, the others' directly."""
        k = self._sip_server(name)
        if k is not None:
            getattr(k, method)()
            return
        srv = getattr(self, name)
        if name == "callmanager":
            topo.hq.run(getattr(srv, method)(), 10)
        elif name == "srst":
            topo.branch.run(getattr(srv, method)(), 10)
        else:
            getattr(srv, method)()

    def hang(self, name: str, on: bool = True) -> None:
        """A hung server: TCP stays up, nothing is answered (SIP phones': the Kamailio
        registrar's processes stopped, SIGSTOP, and continued, SIGCONT). Lifting the hang of
        a registrar stopped meanwhile (kill, cm_reset) does nothing: its stop continued it,
        and it starts again unhung, as the SCCP simulator does once its hang is lifted."""
        if name not in SCCP_SERVERS:
            raise LabError(f"hang applies to {' or '.join(SCCP_SERVERS)}")
        k = self._sip_server(name)
        if k is not None:
            if on or k.running:
                k.freeze(on)
            self.log("server_hung", server=f"sip_{name}", on=on)
            return
        srv = self.callmanager if name == "callmanager" else self.srst
        loop = self._topo().hq if name == "callmanager" else self._topo().branch
        loop.call(srv.hang, on)  # type: ignore[union-attr]

    def _check_server(self, name: str) -> None:
        if name not in SERVERS:
            raise LabError(f"unknown server {name!r}: one of {', '.join(SERVERS)}")
        if getattr(self, name) is None:
            raise LabError(f"this lab runs no {name} server")

    # ------------------------------------------------------------------ status
    def server_running(self, name: str) -> bool:
        k = self._sip_server(name)
        if k is not None:
            return k.running
        srv = getattr(self, name, None)
        if srv is None:
            return False
        if isinstance(srv, (CallManager, SrstRouter)):
            return bool(srv._acceptors)
        if isinstance(srv, LoggedTftp):
            return srv.running
        return srv.proc is not None and srv.proc.poll() is None

    def _watch(self, rec: dict) -> None:
        """A simulator that caught a bug of its own (the session or transfer ended, the
        server lives on) has still failed the run."""
        if rec.get("ev") == "server_error":
            self._crashes.append(f"lab server {rec.get('role') or rec.get('src')} crashed: "
                                 f"{rec.get('reason')}")
        elif rec.get("ev") == "tftp_transfer" and rec.get("result") == "server_error":
            self._crashes.append(f"lab server tftp crashed on {rec.get('file')}: "
                                 f"{rec.get('error')}")

    def failures(self) -> list[str]:
        """What broke in the lab by itself, one line each: an exception no server caught (the
        HQ loop runs the call manager, the branch loop the SRST router), or a server that is
        not running though no fault (kill, cm_reset) stopped it. Empty when all is well."""
        out: list[str] = list(self._crashes)
        topo = self.topology
        if topo is not None:
            for loop, server in ((topo.hq, "callmanager"), (topo.branch, "srst")):
                for text in list(loop.crashes):
                    who = "WAN relay" if "wanrelay.py" in text else server
                    out.append(f"lab server {who} crashed: {text}")
        for name in SERVERS:
            if (getattr(self, name, None) is not None and name not in self._stopped
                    and not self.server_running(name)):
                out.append(f"lab server {name} died")
        if self.sip is not None and self._started:
            # (for SIP phones the loop above has named their registrars already)
            out += [f"lab server sip_{role} died" for role in self.sip.dead()
                    if self._sip_server(role) is None]
        return out

    def status(self) -> dict:
        """Servers, WAN state and, per phone, where it is registered / standing by."""
        topo = self._topo()
        cm = topo.hq.call(self.callmanager.status) if self.callmanager else {}  # type: ignore[union-attr]
        sr = topo.branch.call(self.srst.status) if self.srst else {}  # type: ignore[union-attr]
        phones = {}
        for m in self.macs:
            dev = f"SEP{m}"
            phones[m] = {"callmanager": _where(cm, dev, "registered"),
                         "srst": _where(sr, dev, "fallback")}
        servers: dict[str, Any] = {n: {"running": self.server_running(n)} for n in SERVERS
                                   if getattr(self, n) is not None}
        servers["callmanager"].update(registered=cm.get("registered"), standby=cm.get("standby"))
        servers["srst"].update(fallback=sr.get("fallback"), standby=sr.get("standby"),
                               credentials=sr.get("credentials"))
        if self.dhcp is not None:
            servers["dhcp"]["leases"] = self.dhcp.leases()
        if self.sip is not None:
            sip = self.sip.status()
            for role, st in sip.items():
                servers[f"sip_{role}"] = st
            for m in self.macs:
                phones[m].update({f"sip_{r}": w for r, w in self.sip.where(m, sip).items()})
        return {"mode": self.mode, "wan": topo.wan, "servers": servers, "phones": phones}

    def describe(self) -> dict:
        """Where everything is (also written to workdir/lab.json)."""
        topo = self._topo()
        d: dict[str, Any] = {
            "mode": self.mode, "workdir": str(self.workdir), "macs": self.macs,
            "addresses": topo.addr.as_dict(),
            "endpoints": {k: {"host": h, "port": p} for k, (h, p) in self.endpoints.items()},
            "tftp": self.tftp_kind, "dhcp": self.dhcp is not None, "timers": self.timers,
            "security_mode": self.security_mode, "files": self.files,
            "pki": str(self.pki.out_dir) if self.pki else None,
            "events": str(self.events.path) if self.events else None,
            "keylog": str(self.keylog_path) if self.keylog_path else None,
            "phone_prefix": self.phone_prefix(), "phone_env": self.phone_env(),
            "profile_overrides": self.profile_overrides(),
        }
        if self.sip is not None:
            d["sip"] = self.sip.describe()
        if isinstance(topo, NetnsTopology):
            d["namespaces"] = topo.namespaces()
            d["interface"] = topo.interface
        return d

    # ------------------------------------------------------------------ recorder
    def record_start(self, pcap: str | Path | None = None) -> Recorder:
        """Capture the phone's interface into a pcap (the TLS key log is always written
        when keylog=True)."""
        if self.recorder is not None and self.recorder.running:
            return self.recorder
        self.recorder = Recorder(self._topo().capture_point(),
                                 pcap or self.workdir / "phone.pcap", self.keylog_path,
                                 emit=self._emitter("recorder")).start()
        return self.recorder

    def record_stop(self) -> dict:
        """Stop the capture cleanly; returns {"pcap": path, "keylog": path}."""
        rec = self.recorder
        if rec is None:
            return {}
        files = rec.stop()
        self.files.update({"pcap": files.get("pcap"), "keylog": files.get("keylog")})
        return files


def private_folder(path: str | Path) -> Path:
    """A folder only this user can enter (0700), for private keys."""
    p = Path(path)
    p.mkdir(mode=0o700, parents=True, exist_ok=True)
    p.chmod(0o700)
    return p


def _where(st: dict, dev: str, registered: str) -> str | None:
    if dev in (st.get("registered") or []):
        return registered
    if dev in (st.get("standby") or []):
        return "standby"
    return None


@atexit.register
def _stop_all() -> None:
    for lab in list(_live):
        try:
            lab.stop()
        except Exception:
            pass
