"""The branch router's NTP service, as a router with `ntp master` gives it: SNTP answers
(RFC 4330) with the host's clock, for the phones that DHCP option 42 points at it.

    server = await start("192.0.2.1", 123, emit)     # in the branch namespace's loop
    ...
    server.close()
"""
from __future__ import annotations

import asyncio
import struct
import time
from typing import Any, Callable

NTP_1900 = 2208988800          # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)
PORT = 123


def _stamp(t: float) -> bytes:
    return struct.pack(">II", (int(t) + NTP_1900) & 0xFFFFFFFF, int((t % 1) * 2**32))


def answer(request: bytes, now: float | None = None) -> bytes | None:
    """The server's answer to a client request (mode 3), or None for anything else: version
    as asked, stratum 2, the client's transmit time echoed as originate time."""
    if len(request) < 48 or request[0] & 7 != 3:
        return None
    ts = _stamp(time.time() if now is None else now)
    version = (request[0] >> 3) & 7 or 4
    head = bytes(((version << 3) | 4, 2, request[2], 0xEC))      # leap 0, mode 4 (server)
    return head + bytes(8) + b"LAB\x00" + ts + request[40:48] + ts + ts


class SntpServer(asyncio.DatagramProtocol):
    def __init__(self, emit: Callable[..., Any] | None = None) -> None:
        self.emit = emit or (lambda ev, **f: None)
        self.transport: asyncio.DatagramTransport | None = None
        self.answered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        ans = answer(data)
        if ans is not None and self.transport is not None:
            self.transport.sendto(ans, addr)
            self.answered += 1
            self.emit("ntp_answered", peer=addr[0])

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


async def start(host: str, port: int = PORT,
                emit: Callable[..., Any] | None = None) -> SntpServer:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_datagram_endpoint(lambda: SntpServer(emit),
                                                   local_addr=(host, port))
    return proto
