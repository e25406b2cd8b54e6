"""The lab's two SIP registrars, both Kamailio over TLS 5061 (`kamailio.py`): the call
manager's at HQ and the SRST router's in the branch, beside the SCCP simulators and with
their certificates (the router's is the one its credentials service answers).

    sip = SipServers(workdir, macs, emit_for=lab._emitter)
    sip.start(topology, pki)    # sip.endpoints == {"sip_srst": (...), "sip_callmanager": (...)}
    sip.lines["001122AABBCC"]   # SipLine(user="1001", password=..., device="SEP001122AABBCC")
    sip.status(); sip.where("001122AABBCC"); sip.stop()

Each phone gets one line (directory number from 1001 in the order of the lab's MACs) with a
fresh password per run; `workdir/sip-lines.json` lists them (0600, as the TLS key log).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from host_tools import pki as labpki
from host_tools.lab.kamailio import Kamailio, KamailioError, available, free_port, port_free
from host_tools.lab.kamailio_cfg import (CUCM_REALM, SECURE_PORT, SipLine, SipServerConfig,
                                         connections_for, lab_lines)
from host_tools.lab.topology import Topology

LINES_FILE = "sip-lines.json"


SHM_BASE_MB = 64          # Kamailio's shared memory for a lab's few phones
SHM_PER_LINE_KB = 256     # and per line: its TLS session (OpenSSL's buffers), its contact


def shm_for(lines: int) -> int:
    """Kamailio's shared memory (-m, MB) for a registrar of `lines` phones (a fleet's: every
    phone holds a TLS session there; docs/decisions.md, "Issue 15: the SIP fleet")."""
    return SHM_BASE_MB + (lines * SHM_PER_LINE_KB + 1023) // 1024


class SipServers:
    """workdir: the lab's (each server's run folder is workdir/sip-<role>, 0700)
    macs:       the lab's phones, one line each
    algorithm:  the digest algorithm both servers challenge with ("MD5", "SHA-256")
    security_level: OpenSSL's, for a PKI with keys under 2048 bits
    keylog:     both append their TLS keys to this file (the lab's key log; tlskeylog.py)
    emit_for:   src name -> an event emitter (the lab's)"""

    ROLES = (("srst", "branch"), ("callmanager", "hq"))     # (role, host), in start order

    def __init__(self, workdir: Path, macs: list[str], *, algorithm: str = "MD5",
                 security_level: int | None = None, keylog: Path | None = None,
                 emit_for: Callable[[str], Callable[..., Any]] | None = None) -> None:
        self.workdir = Path(workdir)
        self.macs = list(macs)
        self.algorithm = algorithm
        self.security_level = security_level
        self.keylog = keylog
        self.emit_for = emit_for or (lambda src: lambda ev, **f: None)
        self.lines: dict[str, SipLine] = dict(zip(self.macs, lab_lines(f"SEP{m}" for m in self.macs)))
        self.servers: dict[str, Kamailio] = {}
        self.endpoints: dict[str, tuple[str, int]] = {}

    def start(self, topo: Topology, pki: labpki.Pki) -> "SipServers":
        why = available()
        if why:
            raise KamailioError(why)
        self._write_lines(self.workdir / LINES_FILE)
        a = topo.addr
        for role, host in self.ROLES:
            ident = pki.srst if role == "srst" else pki.ccm
            bind = a.srst if role == "srst" else a.hq_bind
            port = SECURE_PORT
            if topo.mode == "loopback" and not port_free(bind, port):
                port = free_port(bind)        # another lab (or program) has 5061 there
            cfg = SipServerConfig(
                role=role, host=bind, port=port, cert=ident.server_cert,  # type: ignore[arg-type]
                key=ident.key_path, client_ca=pki.capf.cert_path,  # type: ignore[arg-type]
                realm=ident.cn if role == "srst" else CUCM_REALM,
                lines=tuple(self.lines.values()), algorithm=self.algorithm,
                security_level=self.security_level,
                max_connections=connections_for(len(self.lines)))
            k = Kamailio(cfg, self.workdir / f"sip-{role}", prefix=topo.host_prefix(host),
                         shm_mb=shm_for(len(self.lines)), keylog=self.keylog,
                         emit=self.emit_for(f"sip_{role}"))
            self.servers[role] = k           # before start: stop() ends a half-started one
            k.start()
            if role == "srst":
                self.endpoints["sip_srst"] = (bind, port)
            else:
                self.endpoints["sip_callmanager"] = topo.expose("sip_callmanager", "tcp",
                                                                port, SECURE_PORT)
        return self

    def _write_lines(self, path: Path) -> None:
        """The lines and their passwords, readable by this user only."""
        data = {m: {"user": ln.user, "password": ln.password, "device": ln.device}
                for m, ln in self.lines.items()}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(data, indent=2) + "\n")
        os.chmod(path, 0o600)        # an older file of another run kept its mode

    def stop(self) -> None:
        for k in reversed(list(self.servers.values())):
            k.stop()

    def dead(self) -> list[str]:
        """Roles whose Kamailio has stopped (the lab stops them only in stop())."""
        return [r for r, k in self.servers.items() if not k.running]

    def status(self) -> dict[str, dict[str, Any]]:
        return {r: k.status() for r, k in self.servers.items()}

    def where(self, mac: str, status: dict[str, dict[str, Any]] | None = None) -> dict[str, str | None]:
        """{"callmanager": "registered" | None, "srst": ...} for one phone's line."""
        st = self.status() if status is None else status
        dev = f"SEP{labpki.normalize_mac(mac)}"
        return {r: ("registered" if dev in s.get("registered", []) else None)
                for r, s in st.items()}

    def describe(self) -> dict[str, Any]:
        return {"algorithm": self.algorithm,
                "servers": {r: {"listen": f"tls:{k.config.host}:{k.config.port}",
                                "realm": k.config.realm, "run_dir": str(k.run_dir),
                                "log": str(k.log_path)} for r, k in self.servers.items()},
                "lines": {m: {"user": ln.user, "device": ln.device}
                          for m, ln in self.lines.items()}}
