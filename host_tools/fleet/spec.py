"""What one fleet process is told: the files `host_tools/mpscripts/fleet_run.py` reads.

A fleet skips DHCP and TFTP: instead of provisioning, each process gets a folder with the call
manager and SRST router (address, TLS port, pinned certificate and its CN, as a signed
SEP<MAC>.cnf.xml and the CTL would give them), the agent settings, and its phones'
certificates and keys; the runner builds each agent's `provision.Provisioned` from them.
A SIP fleet's processes also get sip.json (0600): the `<sipStack>` timers of the lab's SIP
cnf.xml and each phone's line with its digest password, as `Provisioned.sip` carries them.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_tools.fleet.identities import PhoneId


@dataclass(frozen=True)
class Server:
    host: str
    port: int                 # the TLS port (2443 on real servers)
    cert_der: bytes = field(repr=False)
    cn: str
    name: str = ""            # call manager name (its processNodeName)


@dataclass(frozen=True)
class SipSpec:
    """A SIP fleet: the lab cnf.xml's `<sipStack>` (as phone.config reads it) and each
    phone's line: MAC -> (line name = digest user, password)."""
    stack: dict[str, int]
    lines: dict[str, tuple[str, str]] = field(repr=False)


def sip_stack() -> dict[str, int]:
    """The `<sipStack>` of the lab's SIP cnf.xml (host_tools.lab.cnfxml), as phone.config
    reads it."""
    from host_tools.lab import cnfxml
    return {"timerRegisterExpires": cnfxml.REGISTER_EXPIRES, **cnfxml.SIP_STACK,
            "transportLayerProtocol": cnfxml.TRANSPORT_TLS}


@dataclass
class ProcSpec:
    """One MicroPython process of the fleet."""
    index: int
    phones: list[PhoneId]
    folder: Path

    @property
    def macs(self) -> list[str]:
        return [p.mac for p in self.phones]


def split(phones: list[PhoneId], procs: int) -> list[list[PhoneId]]:
    """Contiguous shares as even as possible (procs > phones gives fewer processes)."""
    procs = max(1, min(procs, len(phones)))
    q, r = divmod(len(phones), procs)
    out, i = [], 0
    for k in range(procs):
        n = q + (1 if k < r else 0)
        out.append(phones[i:i + n])
        i += n
    return out


def write(folder: Path, index: int, phones: list[PhoneId], *, ip: str, cm: Server,
          srst: Server | None, settings: dict[str, Any], monitor_s: int,
          ramp_ms: int = 0, max_s: float = 600, device_type: int = 307,
          fast_poll: bool = True, max_connecting: int = 0, gc_every_ms: int = 1000,
          sip: SipSpec | None = None) -> ProcSpec:
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "cm.der").write_bytes(cm.cert_der)
    doc: dict[str, Any] = {
        "ip": ip, "cm": [cm.name or cm.cn, cm.host, cm.port, cm.cn], "srst": None,
        "monitor_s": monitor_s, "settings": settings, "phones": [p.mac for p in phones],
        "device_type": device_type, "ramp_ms": ramp_ms, "max_s": max_s, "fast_poll": fast_poll,
        "max_connecting": max_connecting, "gc_every_ms": gc_every_ms, "sip": sip is not None,
    }
    if sip is not None:
        _private(folder / "sip.json", {"stack": sip.stack,
                                       "lines": {p.mac: list(sip.lines[p.mac]) for p in phones}})
    if srst is not None:
        (folder / "srst.der").write_bytes(srst.cert_der)
        doc["srst"] = [srst.host, srst.port, srst.cn]
    for p in phones:
        shutil.copyfile(p.cert_path, folder / f"{p.mac}.der")
        shutil.copyfile(p.key_path, folder / f"{p.mac}.key")
    (folder / "fleet.json").write_text(json.dumps(doc, indent=1) + "\n")
    return ProcSpec(index, phones, folder)


def _private(path: Path, doc: dict[str, Any]) -> None:
    """A file only this user may read (it holds the lines' passwords)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(doc) + "\n")
