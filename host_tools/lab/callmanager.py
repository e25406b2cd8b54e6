"""Call manager simulator: SCCP over TLS on 2443 (and plain on 2000), mutual TLS, a real
registration flow, faults for the lab, and each phone's `SEP<MAC>.cnf.xml`.

    cm = CallManager(cert=pki.ccm.server_cert, key=pki.ccm.key_path,
                     phone_ca=pki.capf.cert_path, devices=["SEP001122AABBCC"])
    await cm.start()            # cm.ports == {"tls": 2443, "plain": 2000}
    ...
    cm.hang(); await cm.drop_connections(); await cm.reset_phone("SEP001122AABBCC")
    await cm.write_phone_configs(tftp_root, ["001122AABBCC"], srst=SrstRef(...),
                                 credentials=("192.0.2.1", 2445))
    await cm.stop()
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable, Mapping

from host_tools.lab import cnfxml
from host_tools.lab.credentials import DEFAULT_PORT as CREDENTIALS_PORT
from host_tools.lab.credentials import fetch_router_certificate
from host_tools.lab.sccp_server import SECURE_PORT, SccpServer, Session  # noqa: F401

PLAIN_PORT = 2000


class CallManager(SccpServer):
    """Registers known devices (RegisterAck with the configured keepalive intervals, then
    CapabilitiesReq), rejects unknown ones (RegisterReject), answers ButtonTemplateReq,
    TimeDateReq, KeepAlive, Unregister.

    cert/key:       the call manager certificate (self-signed, the CUCM default), or the PEM
                    chain file of a CA-signed one (certificate first, then its CA)
    devices:        device names (SEP<MAC>) allowed to register; None allows any
    phone_ca:       CA that signs phone certificates (the lab's CAPF); TLS clients must chain
                    to it. None turns client verification off (not the secure lab).
    match_cert:     a TLS phone must register with the name of its certificate's CN
    port/plain_port, host, keepalive, keylog, on_event, ...: SccpServer's (2443 and no plain
                    listener by default; 2000 is the usual plain port)
    """

    role = "callmanager"

    def __init__(
        self,
        *,
        cert: str | Path,
        key: str | Path,
        phone_ca: str | Path | bytes | None,
        name: str = "cucm1",
        address: str | None = None,
        devices: Iterable[str] | None = None,
        match_cert: bool = True,
        **kw: Any,
    ) -> None:
        super().__init__(name=name, cert=cert, key=key, client_ca=phone_ca, **kw)
        self.address = address or self.host     # what phones are told (processNodeName)
        self.devices: set[str] | None = None if devices is None else {d.upper() for d in devices}
        self.match_cert = match_cert

    # ------------------------------------------------------------------ registration policy
    def add_device(self, name: str) -> None:
        if self.devices is None:
            self.devices = set()
        self.devices.add(name.upper())

    def remove_device(self, name: str) -> None:
        if self.devices is not None:
            self.devices.discard(name.upper())

    async def on_register(self, s: Session, info: dict) -> None:
        name = info["name"].upper()
        if self.devices is not None and name not in self.devices:
            await self.reject_registration(s, info, "Unknown device")
        elif self.match_cert and s.tls and s.cert_cn and s.cert_cn.upper() != name:
            await self.reject_registration(s, info, "Certificate mismatch")
        else:
            await self.accept_registration(s, info)

    # ------------------------------------------------------------------ configuration files
    def reference(self) -> cnfxml.CallManagerRef:
        """How phones find this call manager (ethernetPhonePort is the plain port; phones in
        secure mode add 443)."""
        tls = self.ports.get("tls")
        plain = tls - cnfxml.SECURE_OFFSET if tls else self.ports.get("plain", PLAIN_PORT)
        return cnfxml.CallManagerRef(self.name, self.address, plain)

    async def fetch_srst_certificate(self, host: str, port: int = CREDENTIALS_PORT,
                                     **kw: Any) -> bytes:
        """Ask the SRST router's credentials service for its certificate, authenticating with
        this call manager's own certificate."""
        try:
            kw.setdefault("security_level", self.tls_security_level)
            der = await fetch_router_certificate(host, port, cert=self.cert, key=self.key,  # type: ignore[arg-type]
                                                 keylog=self.keylog, **kw)
        except Exception as e:
            self.emit("srst_cert_failed", host=host, port=port, reason=str(e))
            raise
        self.emit("srst_cert_fetched", host=host, port=port, bytes=len(der))
        return der

    async def write_phone_configs(
        self,
        out_dir: str | Path,
        macs: Iterable[str],
        *,
        srst: cnfxml.SrstRef | None = None,
        credentials: tuple[str, int] | None = None,
        callmanagers: list[cnfxml.CallManagerRef] | None = None,
        sip_lines: Mapping[str, list[cnfxml.SipLineRef]] | None = None,
        **kw: Any,
    ) -> list[Path]:
        """Write SEP<MAC>.cnf.xml for each phone. With `credentials` (host, port) the SRST
        certificate is fetched from the router's credentials service and embedded. With
        protocol="sip" in `kw`, `sip_lines` gives each MAC its lines."""
        if srst is not None and credentials is not None and srst.certificate is None:
            der = await self.fetch_srst_certificate(*credentials)
            srst = dataclasses.replace(srst, certificate=der)
        cms = callmanagers or [self.reference()]
        paths = [cnfxml.write_cnf_xml(out_dir, mac, cms, srst, **kw,
                                      **({"sip_lines": sip_lines[mac]} if sip_lines else {}))
                 for mac in macs]
        self.emit("configs_written", dir=str(out_dir), count=len(paths),
                  srst_cert=bool(srst and srst.certificate))
        return paths
