"""`SEP<MAC>.cnf.xml` as the lab's call manager writes it (the elements docs/lab.md and docs/security.md rely on).

The SRST router certificate goes inside `<srstInfo>` as `<certificate>` (base64 DER, one
line) plus `<certHash>` (base64 SHA-256 of the DER): the project's convention, since no public
sample shows Cisco's element.
"""
from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import host_tools.fw  # noqa: F401  (firmware/ on sys.path)
from host_tools.pki import normalize_mac  # noqa: F401  (one MAC parser; PkiError is a ValueError)
from phone.config import DEFAULT_PORT, SECURE_OFFSET  # type: ignore[import-not-found]  # noqa: F401


@dataclass(frozen=True)
class CallManagerRef:
    name: str
    address: str
    port: int = DEFAULT_PORT  # ethernetPhonePort (plain); phones add SECURE_OFFSET for TLS


@dataclass(frozen=True)
class SrstRef:
    name: str
    address: str
    port: int = DEFAULT_PORT
    certificate: bytes | None = None   # DER
    secure: bool = True


def _sub(parent: ET.Element, tag: str, text: object | None = None, **attrs: str) -> ET.Element:
    e = ET.SubElement(parent, tag, attrs)
    if text is not None:
        e.text = str(text)
    return e


def build_cnf_xml(mac: str, callmanagers: list[CallManagerRef], srst: SrstRef | None = None, *,
                  security_mode: int = 3, connection_monitor: int = 120,
                  load_name: str = "SCCP11.9-4-2SR3-1S", device_pool: str = "Default") -> str:
    """The configuration file of one phone, as text."""
    normalize_mac(mac)
    if security_mode not in (1, 2, 3):
        raise ValueError("deviceSecurityMode is 1, 2 or 3")
    dev = ET.Element("device")
    _sub(dev, "fullConfig", "true")
    _sub(dev, "deviceProtocol", "SCCP")
    _sub(dev, "sshUserId")
    pool = _sub(dev, "devicePool", name=device_pool)
    members = _sub(_sub(pool, "callManagerGroup"), "members")
    for prio, cm in enumerate(callmanagers):
        m = _sub(members, "member", priority=str(prio))
        c = _sub(m, "callManager")
        _sub(c, "name", cm.name)
        _sub(_sub(c, "ports"), "ethernetPhonePort", cm.port)
        _sub(c, "processNodeName", cm.address)
    if srst is not None:
        info = _sub(pool, "srstInfo")
        _sub(info, "name", srst.name)
        _sub(info, "srstOption", "Enable")
        _sub(info, "userModifiable", "false")
        _sub(info, "ipAddr1", srst.address)
        _sub(info, "port1", srst.port)
        for i in (2, 3):
            _sub(info, f"ipAddr{i}", "")
            _sub(info, f"port{i}", DEFAULT_PORT)
        _sub(info, "sipIpAddr1", "")
        _sub(info, "sipPort1", 5060)
        _sub(info, "isSecure", "true" if srst.secure else "false")
        if srst.certificate:
            _sub(info, "certificate", base64.b64encode(srst.certificate).decode())
            _sub(info, "certHash", base64.b64encode(hashlib.sha256(srst.certificate).digest()).decode())
    _sub(pool, "connectionMonitorDuration", connection_monitor)
    _sub(dev, "deviceSecurityMode", security_mode)
    _sub(dev, "loadInformation", load_name, model="Cisco 7911")
    _sub(dev, "vendorConfig")
    _sub(dev, "commonProfile")
    ET.indent(dev, "  ")
    body = ET.tostring(dev, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'


def cnf_filename(mac: str) -> str:
    return f"SEP{normalize_mac(mac)}.cnf.xml"


def write_cnf_xml(out_dir: str | Path, mac: str, callmanagers: list[CallManagerRef],
                  srst: SrstRef | None = None, **kw: object) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / cnf_filename(mac)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(build_cnf_xml(mac, callmanagers, srst, **kw))  # type: ignore[arg-type]
    tmp.replace(path)
    return path


def read_srst_certificate(xml_text: str) -> bytes | None:
    """The DER certificate inside <srstInfo>, checked against <certHash> when present."""
    root = ET.fromstring(xml_text)
    info = root.find("./devicePool/srstInfo")
    if info is None:
        return None
    cert = info.findtext("certificate")
    if not cert or not cert.strip():
        return None
    if "-----BEGIN" in cert:            # a PEM block, which the phone reads too
        cert = cert.split("-----", 2)[2].split("-----END", 1)[0]
    der = base64.b64decode("".join(cert.split()))
    h = info.findtext("certHash")
    if h and base64.b64decode(h.strip()) != hashlib.sha256(der).digest():
        raise ValueError("certHash does not match the certificate")
    return der
