"""`SEP<MAC>.cnf.xml` as the lab's call manager writes it (the elements docs/lab.md and docs/security.md rely on).

The SRST router certificate goes inside `<srstInfo>` as `<certificate>` (base64 DER, one
line) plus `<certHash>` (base64 SHA-256 of the DER): the project's convention, since no public
sample shows Cisco's element.

`protocol="sip"` writes a SIP phone's file (issue 15; docs/protocols.md): `<deviceProtocol>SIP`,
each call manager's `<sipPort>`/`<securedSipPort>`, `<srstInfo>`'s `<sipIpAddr1>`/`<sipPort1>`
(the plain SIP port: the phone adds 1 for TLS, as Cisco Secure SRST), `<sipProfile>` with its
`<sipStack>` register timers and one `<sipLines><line>` (featureID 9) per `SipLineRef`, and
`<transportLayerProtocol>` TLS.
"""
from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import host_tools.fw  # noqa: F401  (firmware/ on sys.path)
from host_tools.lab.names import PROTOCOLS  # noqa: F401  (the lab's one list)
from host_tools.pki import normalize_mac  # noqa: F401  (one MAC parser; PkiError is a ValueError)
from phone.config import DEFAULT_PORT, SECURE_OFFSET  # type: ignore[import-not-found]  # noqa: F401

SIP_PORT = 5060             # plain SIP (RFC 3261)
SIP_TLS_PORT = 5061         # SIP over TLS: a call manager's securedSipPort, an SRST router's
                            # SIP port + 1
# <transportLayerProtocol> for TLS: public files gloss 2 UDP and 4 TCP; 3 is the lab's choice,
# unverified (docs/protocols.md). The phone takes TLS from the security mode, not from this.
TRANSPORT_TLS = 3
REGISTER_EXPIRES = 3600            # <sipStack><timerRegisterExpires>
SIP_STACK = {"timerRegisterDelta": 5, "timerKeepAliveExpires": 120}   # the rest of <sipStack>


@dataclass(frozen=True)
class CallManagerRef:
    name: str
    address: str
    port: int = DEFAULT_PORT  # ethernetPhonePort (plain); phones add SECURE_OFFSET for TLS
    sip_port: int = SIP_PORT
    secured_sip_port: int = SIP_TLS_PORT


@dataclass(frozen=True)
class SrstRef:
    name: str
    address: str
    port: int = DEFAULT_PORT
    certificate: bytes | None = None   # DER
    secure: bool = True
    sip_port: int = SIP_PORT            # <sipPort1>: plain; a SIP phone's TLS port is this + 1


@dataclass(frozen=True)
class SipLineRef:
    """A SIP line of the phone's file: `<name>` (the directory number), the digest user and
    password (`<authName>`, `<authPassword>`), `<displayName>`."""
    name: str
    auth_name: str
    password: str = field(repr=False)
    display_name: str = ""


def _sub(parent: ET.Element, tag: str, text: object | None = None, **attrs: str) -> ET.Element:
    e = ET.SubElement(parent, tag, attrs)
    if text is not None:
        e.text = str(text)
    return e


def build_cnf_xml(mac: str, callmanagers: list[CallManagerRef], srst: SrstRef | None = None, *,
                  security_mode: int = 3, connection_monitor: int = 120,
                  load_name: str | None = None, device_pool: str = "Default",
                  protocol: str = "sccp", sip_lines: list[SipLineRef] | None = None,
                  register_expires: int = REGISTER_EXPIRES) -> str:
    """The configuration file of one phone, as text. protocol="sip" needs `sip_lines`."""
    normalize_mac(mac)
    if security_mode not in (1, 2, 3):
        raise ValueError("deviceSecurityMode is 1, 2 or 3")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol is one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    sip = protocol == "sip"
    if sip and not sip_lines:
        raise ValueError("a SIP phone's configuration needs at least one line")
    if load_name is None:
        load_name = "SIP11.9-4-2SR3-1S" if sip else "SCCP11.9-4-2SR3-1S"
    dev = ET.Element("device")
    _sub(dev, "fullConfig", "true")
    _sub(dev, "deviceProtocol", "SIP" if sip else "SCCP")
    _sub(dev, "sshUserId")
    pool = _sub(dev, "devicePool", name=device_pool)
    members = _sub(_sub(pool, "callManagerGroup"), "members")
    for prio, cm in enumerate(callmanagers):
        m = _sub(members, "member", priority=str(prio))
        c = _sub(m, "callManager")
        _sub(c, "name", cm.name)
        ports = _sub(c, "ports")
        _sub(ports, "ethernetPhonePort", cm.port)
        if sip:
            _sub(ports, "sipPort", cm.sip_port)
            _sub(ports, "securedSipPort", cm.secured_sip_port)
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
        _sub(info, "sipIpAddr1", srst.address if sip else "")
        _sub(info, "sipPort1", srst.sip_port if sip else SIP_PORT)
        _sub(info, "isSecure", "true" if srst.secure else "false")
        if srst.certificate:
            _sub(info, "certificate", base64.b64encode(srst.certificate).decode())
            _sub(info, "certHash", base64.b64encode(hashlib.sha256(srst.certificate).digest()).decode())
    _sub(pool, "connectionMonitorDuration", connection_monitor)
    if sip:
        _sip_profile(dev, sip_lines or [], register_expires)
    _sub(dev, "deviceSecurityMode", security_mode)
    if sip:
        _sub(dev, "transportLayerProtocol", TRANSPORT_TLS)
    _sub(dev, "loadInformation", load_name, model="Cisco 7911")
    _sub(dev, "vendorConfig")
    _sub(dev, "commonProfile")
    ET.indent(dev, "  ")
    body = ET.tostring(dev, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'


DEFAULT_CNF = "XMLDefault.cnf.xml"


def build_default_cnf_xml(callmanagers: list[CallManagerRef], *, connection_monitor: int = 120,
                          load_name: str = "SCCP11.9-4-2SR3-1S") -> str:
    """XMLDefault.cnf.xml, as CUCM serves it to a device it does not know (auto-registration):
    root <Default>, the call manager group, a load per model; no SRST, no certificate."""
    dev = ET.Element("Default")
    members = _sub(_sub(dev, "callManagerGroup"), "members")
    for prio, cm in enumerate(callmanagers):
        m = _sub(members, "member", priority=str(prio))
        c = _sub(m, "callManager")
        _sub(c, "name", cm.name)
        _sub(_sub(c, "ports"), "ethernetPhonePort", cm.port)
        _sub(c, "processNodeName", cm.address)
    _sub(dev, "connectionMonitorDuration", connection_monitor)
    _sub(dev, "loadInformation307", load_name, model="IP Phone 7911")
    ET.indent(dev, "  ")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{ET.tostring(dev, encoding="unicode")}\n'


def _sip_profile(dev: ET.Element, lines: list[SipLineRef], register_expires: int) -> None:
    prof = _sub(dev, "sipProfile")
    stack = _sub(prof, "sipStack")
    _sub(stack, "timerRegisterExpires", register_expires)
    for tag, value in SIP_STACK.items():
        _sub(stack, tag, value)
    sl = _sub(prof, "sipLines")
    for i, ln in enumerate(lines, 1):
        e = _sub(sl, "line", button=str(i), lineIndex=str(i))
        _sub(e, "featureID", 9)
        _sub(e, "featureLabel", ln.name)
        _sub(e, "proxy", "USECALLMANAGER")
        _sub(e, "port", SIP_TLS_PORT)
        _sub(e, "name", ln.name)
        _sub(e, "displayName", ln.display_name or ln.name)
        _sub(e, "authName", ln.auth_name)
        _sub(e, "authPassword", ln.password)
    _sub(prof, "voipControlPort", SIP_PORT)


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
