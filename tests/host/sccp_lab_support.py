"""Shared helpers of test_callmanager.py and test_srst.py (the lab PKI, one event loop per
test, a scripted phone)."""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, TypeVar

from host_tools import pki as labpki
from host_tools.lab.sccp_client import SccpClient

MAC = "001122AABBCC"
PHONE = f"SEP{MAC}"
OTHER_MAC = "001122AABBCD"
OTHER = f"SEP{OTHER_MAC}"
STRANGER_MAC = "00AABBCCDDEE"

T = TypeVar("T")


def make_lab_pki(tmp_path_factory) -> labpki.Pki:
    # 2048-bit: OpenSSL's default security level refuses 1024-bit keys in TLS
    return labpki.make_pki(tmp_path_factory.mktemp("pki"), phone_macs=[MAC, OTHER_MAC, STRANGER_MAC])


def run(coro: Awaitable[T], timeout: float = 30.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


async def phone(p: labpki.Pki, port: int, mac: str | None = MAC, server: str = "ccm",
                **kw: Any) -> SccpClient:
    """A phone connecting with its own certificate (mac=None: no client certificate),
    trusting exactly the server's certificate."""
    ident = p[server]
    cert = key = None
    if mac is not None:
        ph = p.phones[mac]
        cert, key = ph.cert_path, ph.key_path
    return await SccpClient.connect("127.0.0.1", port, cert=cert, key=key,
                                    server_ca=ident.cert_der, server_hostname=ident.cn, **kw)


async def wait_for(cond, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
