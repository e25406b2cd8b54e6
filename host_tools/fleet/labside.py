"""The lab side of a fleet run: admitting the fleet's devices to the simulators, the phones'
address, the servers they are given (the lab's, or an outside SRST router), the firmware, and
what the simulators see."""
from __future__ import annotations

import socket
import ssl
import tempfile
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from host_tools.fleet import identities, spec
from host_tools.lab import perphone

NETNS_PHONE_IP = "192.0.2.100"


class FleetError(RuntimeError):
    pass


def admit(lab: Any, devices: list[str], n: int) -> None:
    """Every fleet device may register: the call manager's device list, the SRST router's
    allow-list and its phone limit (48 by default, as a small router's max-ephones). Both
    answer what they read in one write (SccpServer.one_write: less work per phone)."""
    names = {d.upper() for d in devices}

    def cm() -> None:
        lab.callmanager.devices = set(names)
        lab.callmanager.one_write = True        # each batch read answered in one write

    def router() -> None:
        lab.srst.max_phones = max(n, lab.srst.max_phones)
        lab.srst.devices = set(names)
        lab.srst.one_write = True

    lab.topology.hq.call(cm)
    lab.topology.branch.call(router)


def phone_ip(lab: Any, outside: tuple[str, int] | None) -> str:
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


def servers(lab: Any, fp: identities.FleetPki, outside: tuple[str, int] | None,
             srst_cert: Path | None, sip: bool = False) -> tuple[spec.Server, spec.Server]:
    """The call manager and the SRST router the phones are given: the simulators' TLS ports,
    or with `sip` the Kamailio registrars' (5061: the call manager's securedSipPort, the
    router's SIP port + 1), which present the same certificates; an outside router's."""
    p = fp.pki
    cm_key, srst_key = ("sip_callmanager", "sip_srst") if sip else ("callmanager", "srst")
    host, port = lab.endpoints[cm_key]
    cm = spec.Server(host, port, p.ccm.cert_der, p.ccm.cn, name=lab.callmanager.name)
    if outside is None:
        host, port = lab.endpoints[srst_key]
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


def install(folder: Path, build: Path) -> None:
    from host_tools.scenario.runner import install_firmware
    install_firmware(folder, build)


def server_view(lab: Any, outside: tuple[str, int] | None, devices: set[str]) -> dict[str, Any]:
    """The fleet's phones as the simulators see them (the phones' claims, checked): sessions
    by state, fleet devices registered and standing by (by certificate CN), the first missing."""
    def view(srv: Any) -> dict[str, Any]:
        states: dict[str, int] = {}
        reg, sby = set(), set()
        for sess in list(srv.sessions.values()):
            states[sess.state] = states.get(sess.state, 0) + 1
            if sess.state == "registered" and sess.device:
                reg.add(sess.device.upper())
            elif sess.state == "standby":
                sby.add(sess.key.upper())
        return {"sessions": states, "registered": len(reg & devices),
                "standby": len(sby & devices),
                "not_registered": sorted(devices - reg)[:10],
                "not_standby": sorted(devices - sby)[:10]}
    out = {"callmanager": lab.topology.hq.call(view, lab.callmanager)}
    if outside is None:
        out["srst"] = lab.topology.branch.call(view, lab.srst)
    return out


def load(lab: Any, outside: tuple[str, int] | None, devices: set[str]) -> dict[str, Any]:
    """Messages per phone per minute each simulator received from the fleet's phones so far
    (host_tools.lab.perphone.load: average, worst, a real phone's rate beside them); no SRST
    figure for an outside router."""
    names = {d.upper() for d in devices}
    out = {"callmanager": perphone.load(lab.topology.hq.call(perphone.view, lab.callmanager),
                                        names)}
    if outside is None:
        out["srst"] = perphone.load(lab.topology.branch.call(perphone.view, lab.srst), names)
    return out
