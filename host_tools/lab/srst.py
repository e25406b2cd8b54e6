"""SRST router simulator: SCCP over TLS on 2443 with the router certificate, plus the
credentials service (2445) that gives the call manager that certificate.

Phones hold a standby connection (KeepAlive only; counted as "standby") while their primary
is up, and register here on failover ("fallback"): RegisterAck, CapabilitiesReq and the
"CM Fallback Service Operating" notification. Unregister (re-home) is acknowledged and the
connection goes back to standby.

    router = SrstRouter(cert=pki.srst.server_cert, key=pki.srst.key_path,
                        phone_ca=pki.capf.cert_path, ccm_certs=[pki.ccm.cert_der])

As on a real router the certificate is issued by the router's own CA (an IOS CA server):
`cert` is then the chain file (router certificate, then the CA), which TLS clients receive
whole; the credentials service answers the router certificate alone, what phones pin.
    await router.start()        # router.ports == {"tls": 2443, "credentials": 2445}
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import host_tools.fw  # noqa: F401
from host_tools.lab.credentials import DEFAULT_PORT as CREDENTIALS_PORT
from host_tools.lab.credentials import CredentialsService
from host_tools.lab.sccp_server import SECURE_PORT, SccpServer, Session  # noqa: F401
from phone import sccp_lab as sccp  # type: ignore[import-not-found]


class SrstRouter(SccpServer):
    """cert/key:      the router certificate (what phones pin from cnf.xml), or the PEM chain
                      file starting with it (presented whole on 2443 and 2445)
    phone_ca:         CA of the phones' certificates (None: phones are not asked for one)
    ccm_certs:        call manager certificates allowed to use the credentials service;
                      empty disables the service
    credentials_port: 2445 by default (0 = any free port)
    max_phones:       RegisterReject beyond this many fallback registrations
    devices:          optional allow-list of device names (None: any)
    notify:           text of the DisplayNotify sent after a fallback registration
    port/plain_port, host, keepalive, keylog, on_event, ...: SccpServer's"""

    role = "srst"

    def __init__(
        self,
        *,
        cert: str | Path,
        key: str | Path,
        phone_ca: str | Path | bytes | None,
        ccm_certs: Iterable[bytes | str | Path] = (),
        name: str = "srst-branch-7",
        credentials_host: str | None = None,
        credentials_port: int = CREDENTIALS_PORT,
        max_phones: int = 48,
        devices: Iterable[str] | None = None,
        notify: str = sccp.FALLBACK_TEXT,
        **kw: Any,
    ) -> None:
        super().__init__(name=name, cert=cert, key=key, client_ca=phone_ca, **kw)
        self.max_phones = max_phones
        self.devices = None if devices is None else {d.upper() for d in devices}
        self.notify = notify
        ccm = list(ccm_certs)
        self.credentials: CredentialsService | None = None
        if ccm:
            self.credentials = CredentialsService(
                cert=cert, key=key, allowed=ccm, host=credentials_host or self.host,
                port=credentials_port, keylog=self.keylog,
                emit=lambda ev, **f: self.emit(ev, **f),
                security_level=self.tls_security_level)

    async def start(self) -> "SrstRouter":
        await super().start()
        if self.credentials is not None:
            await self.credentials.start()
            self.ports["credentials"] = self.credentials.port
        return self

    async def stop(self) -> None:
        if self.credentials is not None:
            await self.credentials.stop()
        await super().stop()

    def status(self) -> dict:
        st = super().status()
        st["fallback"] = st["registered"]
        if self.credentials is not None:
            st["credentials"] = {"answered": self.credentials.answered,
                                 "refused": self.credentials.refused}
        return st

    async def on_register(self, s: Session, info: dict) -> None:
        name = info["name"].upper()
        fallback = [x for x in self.sessions.values()
                    if x.state in ("registered", "registering") and x is not s]
        if self.devices is not None and name not in self.devices:
            await self.reject_registration(s, info, "Unknown device")
        elif len(fallback) >= self.max_phones:
            await self.reject_registration(s, info, "Max Phones Exceeded")
        elif s.tls and s.cert_cn and s.cert_cn.upper() != name:
            await self.reject_registration(s, info, "Certificate mismatch")
        else:
            await self.accept_registration(s, info, mode="fallback")
            if self.notify:
                await self.say(s, sccp.display_notify(self.notify, 0))
