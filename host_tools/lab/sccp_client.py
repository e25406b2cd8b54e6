"""A small CPython SCCP client (a scripted phone) for tests and lab checks, coded with the
firmware's own `phone.sccp`. Not the agent: no state machine, just connect / send / expect.

    async with await SccpClient.connect("127.0.0.1", 2443, cert=..., key=..., server_ca=...,
                                        server_hostname="cucm1") as c:
        ack = await c.register("SEP001122AABBCC", "192.0.2.50")
"""
from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path
from typing import Any

import host_tools.fw  # noqa: F401
from host_tools.lab.sccp_server import load_trust
from phone import sccp_lab as sccp  # type: ignore[import-not-found]


def client_context(*, cert: str | Path | None = None, key: str | Path | None = None,
                   server_ca: str | Path | bytes | None = None,
                   keylog: str | Path | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if server_ca is not None:
        load_trust(ctx, server_ca)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key else None)
    if keylog:
        ctx.keylog_filename = str(keylog)
    return ctx


class SccpClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.received: list[dict] = []

    @classmethod
    async def connect(cls, host: str, port: int, *, tls: bool = True, timeout: float = 10.0,
                      server_hostname: str | None = None, **ctx_kw: Any) -> "SccpClient":
        ctx = client_context(**ctx_kw) if tls else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ctx,
                                    server_hostname=(server_hostname or host) if tls else None),
            timeout)
        return cls(reader, writer)

    async def __aenter__(self) -> "SccpClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 2)

    async def send(self, frame: bytes) -> None:
        self.writer.write(frame)
        await self.writer.drain()

    async def recv(self, timeout: float = 5.0) -> dict | None:
        """Next message decoded (sccp.decode), or None when the server closed."""
        try:
            hdr = await asyncio.wait_for(self.reader.readexactly(sccp.HEADER_SIZE), timeout)
        except asyncio.IncompleteReadError:
            return None
        n, _, msg_id = sccp.parse_header(hdr)
        body = await asyncio.wait_for(self.reader.readexactly(n), timeout) if n else b""
        msg = sccp.decode(msg_id, body)
        self.received.append(msg)
        return msg

    async def expect(self, msg_id: int, timeout: float = 5.0) -> dict:
        """Read until a message with `msg_id` arrives (others are kept in `received`)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            msg = await self.recv(max(0.01, end - loop.time()))
            if msg is None:
                raise ConnectionError(f"closed while waiting for {sccp.name(msg_id)}")
            if msg["id"] == msg_id:
                return msg

    async def register(self, name: str, ip: str, **kw: Any) -> dict:
        """Register and return the answer (RegisterAck or RegisterReject)."""
        await self.send(sccp.register(name, ip, **kw))
        while True:
            msg = await self.recv()
            if msg is None:
                raise ConnectionError("closed while waiting for RegisterAck")
            if msg["id"] in (sccp.REGISTER_ACK, sccp.REGISTER_REJECT):
                return msg

    async def keepalive(self, timeout: float = 5.0) -> dict:
        await self.send(sccp.keepalive())
        return await self.expect(sccp.KEEPALIVE_ACK, timeout)

    async def finish_registration(self, skip: tuple[int, ...] = ()) -> int:
        """What a phone does after RegisterAck (the agent's dialogue, phone.sccplink): IpPort,
        CapabilitiesRes, ButtonTemplateReq, SoftKeyTemplateReq, SoftKeySetReq, ConfigStatReq,
        LineStatReq per line, TimeDateReq, RegisterAvailableLines. `skip`: message ids left
        out (a phone that skips a step). Returns the number of lines."""
        def out(frame: bytes) -> bytes:
            return b"" if sccp.split(frame)[0][0] in skip else frame
        await self.send(out(sccp.ip_port()) + out(sccp.capabilities_res())
                        + out(sccp.button_template_req())
                        + out(sccp.frame(sccp.SOFT_KEY_TEMPLATE_REQ))
                        + out(sccp.frame(sccp.SOFT_KEY_SET_REQ)))
        lines = 1
        if sccp.CONFIG_STAT_REQ not in skip:
            await self.send(sccp.frame(sccp.CONFIG_STAT_REQ))
            lines = (await self.expect(sccp.CONFIG_STAT))["lines"]
        await self.send(b"".join(out(sccp.line_stat_req(n)) for n in range(1, lines + 1))
                        + out(sccp.time_date_req()))
        if sccp.TIME_DATE_REQ not in skip:
            await self.expect(sccp.DEFINE_TIME_DATE)
        await self.send(sccp.register_available_lines(lines))
        return lines
