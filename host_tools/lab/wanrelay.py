"""The WAN of the loopback lab: relays in front of the HQ services that can pass, blackhole
or refuse, since without root there are no routes to cut.

    relay = WanRelay(emit=log)
    relay.add_tcp("callmanager", ("127.0.0.41", 2443), ("127.0.0.42", 2443))
    relay.add_udp("tftp", ("127.0.0.41", 6969), ("127.0.0.42", 6970))
    await relay.start(); await relay.set_mode("blackhole"); ...; await relay.stop()

Modes, as the phone sees them:
- pass:      bytes flow both ways.
- blackhole: nothing flows and nothing answers. Established TCP connections stay open but
             every byte is held (as TCP would retransmit it) and flows again after `pass`;
             new TCP connections are accepted by the kernel and held, so a TLS handshake gets
             no answer (a SYN cannot be dropped from user space). UDP datagrams are dropped.
- refuse:    the listeners close: new TCP connections get RST, UDP gets ICMP port
             unreachable; established connections are reset (RST, SO_LINGER 0).
"""
from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from typing import Any, Callable

PASS, BLACKHOLE, REFUSE = "pass", "blackhole", "refuse"
MODES = (PASS, BLACKHOLE, REFUSE)
Addr = tuple[str, int]
Emit = Callable[..., Any]

_UDP_IDLE_S = 30.0          # a TFTP session silent this long is forgotten
_CONNECT_TIMEOUT_S = 5.0


def _rst(writer: asyncio.StreamWriter | None) -> None:
    """Close with RST instead of FIN (SO_LINGER on, zero timeout)."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _TcpConn:
    def __init__(self, relay: "TcpRelay", reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.relay = relay
        self.c_reader, self.c_writer = reader, writer
        self.u_reader: asyncio.StreamReader | None = None
        self.u_writer: asyncio.StreamWriter | None = None
        self.peer = "%s:%d" % writer.get_extra_info("peername")[:2]
        self.held_bytes = 0

    async def run(self) -> None:
        r = self.relay
        try:
            await r.gate.wait()          # a blackholed connection waits here, held
            try:
                self.u_reader, self.u_writer = await asyncio.wait_for(
                    asyncio.open_connection(*r.target), _CONNECT_TIMEOUT_S)
            except (OSError, asyncio.TimeoutError) as e:
                r.emit("relay_upstream_failed", relay=r.name, peer=self.peer, reason=str(e))
                _rst(self.c_writer)
                return
            await asyncio.gather(self._pump(self.c_reader, self.u_writer),
                                 self._pump(self.u_reader, self.c_writer))
        finally:
            for w in (self.c_writer, self.u_writer):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        gate = self.relay.gate
        try:
            while True:
                await gate.wait()
                data = await reader.read(65536)
                if not data:
                    await gate.wait()
                    with contextlib.suppress(OSError, RuntimeError):
                        if writer.can_write_eof():
                            writer.write_eof()
                    return
                if not gate.is_set():
                    self.held_bytes += len(data)
                await gate.wait()        # bytes read during a blackhole wait (TCP would resend)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            _rst(writer)

    def reset(self) -> None:
        _rst(self.c_writer)
        _rst(self.u_writer)


class TcpRelay:
    def __init__(self, name: str, listen: Addr, target: Addr, emit: Emit) -> None:
        self.name, self.listen, self.target, self.emit = name, listen, target, emit
        self.port = listen[1]
        self.gate = asyncio.Event()
        self.gate.set()
        self.server: asyncio.AbstractServer | None = None
        self.conns: dict[_TcpConn, asyncio.Task] = {}
        self.accepted = 0

    async def open(self) -> None:
        if self.server is None:
            self.server = await asyncio.start_server(self._accept, self.listen[0], self.port,
                                                     reuse_address=True)
            self.port = self.server.sockets[0].getsockname()[1]

    async def close_listener(self) -> None:
        srv, self.server = self.server, None
        if srv is not None:
            srv.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 1)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _TcpConn(self, reader, writer)
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self.conns[conn] = task
        try:
            await conn.run()
        except asyncio.CancelledError:
            conn.reset()
        finally:
            self.conns.pop(conn, None)

    async def set_mode(self, mode: str) -> None:
        if mode == PASS:
            await self.open()
            self.gate.set()
        elif mode == BLACKHOLE:
            self.gate.clear()
            await self.open()
        else:
            self.gate.clear()
            await self.close_listener()
            for conn, task in list(self.conns.items()):
                conn.reset()
                task.cancel()

    async def stop(self) -> None:
        await self.close_listener()
        tasks = list(self.conns.values())
        for conn, task in list(self.conns.items()):
            conn.reset()
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)

    def status(self) -> dict:
        return {"name": self.name, "proto": "tcp", "listen": f"{self.listen[0]}:{self.port}",
                "target": "%s:%d" % self.target, "open": self.server is not None,
                "connections": len(self.conns), "accepted": self.accepted,
                "held_bytes": sum(c.held_bytes for c in self.conns)}


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, on_packet: Callable[[bytes, Addr], None]) -> None:
        self.on_packet = on_packet
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.on_packet(data, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP errors: nothing to do
        pass


class _UdpSession:
    """One client transfer: replies reach the client from a port of its own (a TID, as a
    TFTP server's), and the client's packets go to the server's TID once it is known."""

    def __init__(self, client: Addr) -> None:
        self.client = client
        self.server_peer: Addr | None = None
        self.down: _Udp | None = None
        self.up: _Udp | None = None
        self.last = time.monotonic()

    def close(self) -> None:
        for p in (self.down, self.up):
            if p is not None and p.transport is not None:
                p.transport.close()


class UdpRelay:
    """A UDP relay that understands TFTP's transfer IDs (RRQ/WRQ start a new session)."""

    def __init__(self, name: str, listen: Addr, target: Addr, emit: Emit) -> None:
        self.name, self.listen, self.target, self.emit = name, listen, target, emit
        self.port = listen[1]
        self.passing = True
        self.main: _Udp | None = None
        self.sessions: dict[Addr, _UdpSession] = {}
        self.dropped = 0
        self.forwarded = 0
        self._reaper: asyncio.Task | None = None

    async def open(self) -> None:
        if self.main is None:
            loop = asyncio.get_running_loop()
            _, proto = await loop.create_datagram_endpoint(
                lambda: _Udp(self._from_client), local_addr=(self.listen[0], self.port))
            self.main = proto
            self.port = proto.transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    def _close_main(self) -> None:
        m, self.main = self.main, None
        if m is not None and m.transport is not None:
            m.transport.close()
        for s in self.sessions.values():
            s.close()
        self.sessions.clear()

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(5)
            now = time.monotonic()
            for addr, s in list(self.sessions.items()):
                if now - s.last > _UDP_IDLE_S:
                    s.close()
                    self.sessions.pop(addr, None)

    def _from_client(self, data: bytes, client: Addr) -> None:
        if not self.passing:
            self.dropped += 1
            return
        old = self.sessions.pop(client, None)
        if old is not None:
            old.close()
        s = _UdpSession(client)
        self.sessions[client] = s
        asyncio.get_running_loop().create_task(self._open_session(s, data))

    async def _open_session(self, s: _UdpSession, first: bytes) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, s.down = await loop.create_datagram_endpoint(
                lambda: _Udp(lambda d, a: self._down_packet(s, d, a)),
                local_addr=(self.listen[0], 0))
            _, s.up = await loop.create_datagram_endpoint(
                lambda: _Udp(lambda d, a: self._up_packet(s, d, a)),
                local_addr=(_source_for(self.target[0]), 0))
        except OSError as e:
            self.emit("relay_upstream_failed", relay=self.name, peer="%s:%d" % s.client,
                      reason=str(e))
            s.close()
            return
        self._send(s.up, first, self.target)

    def _send(self, proto: _Udp | None, data: bytes, addr: Addr) -> None:
        if proto is not None and proto.transport is not None and not proto.transport.is_closing():
            proto.transport.sendto(data, addr)
            self.forwarded += 1

    def _down_packet(self, s: _UdpSession, data: bytes, addr: Addr) -> None:
        if addr != s.client:
            return
        if not self.passing:
            self.dropped += 1
            return
        s.last = time.monotonic()
        self._send(s.up, data, s.server_peer or self.target)

    def _up_packet(self, s: _UdpSession, data: bytes, addr: Addr) -> None:
        if addr[0] != self.target[0]:
            return
        if not self.passing:
            self.dropped += 1
            return
        s.last = time.monotonic()
        s.server_peer = addr
        self._send(s.down, data, s.client)

    async def set_mode(self, mode: str) -> None:
        self.passing = mode == PASS
        if mode == REFUSE:
            self._close_main()
        else:
            await self.open()

    async def stop(self) -> None:
        self._close_main()
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None

    def status(self) -> dict:
        return {"name": self.name, "proto": "udp", "listen": f"{self.listen[0]}:{self.port}",
                "target": "%s:%d" % self.target, "open": self.main is not None,
                "sessions": len(self.sessions), "forwarded": self.forwarded,
                "dropped": self.dropped}


def _source_for(target_host: str) -> str:
    # Loopback targets are reached from the loopback block; anything else from any address.
    return "127.0.0.1" if target_host.startswith("127.") else "0.0.0.0"


class WanRelay:
    """All relays of one WAN, switched together. Runs on one asyncio loop."""

    def __init__(self, emit: Emit | None = None) -> None:
        self.emit: Emit = emit or (lambda ev, **f: None)
        self.relays: list[TcpRelay | UdpRelay] = []
        self.mode = PASS

    def add_tcp(self, name: str, listen: Addr, target: Addr) -> TcpRelay:
        r = TcpRelay(name, listen, target, self.emit)
        self.relays.append(r)
        return r

    def add_udp(self, name: str, listen: Addr, target: Addr) -> UdpRelay:
        r = UdpRelay(name, listen, target, self.emit)
        self.relays.append(r)
        return r

    def get(self, name: str) -> TcpRelay | UdpRelay:
        for r in self.relays:
            if r.name == name:
                return r
        raise KeyError(name)

    async def start(self) -> "WanRelay":
        for r in self.relays:
            await r.open()
        return self

    async def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"relay mode {mode!r}: one of {', '.join(MODES)}")
        for r in self.relays:
            await r.set_mode(mode)
        self.mode = mode
        self.emit("relay_mode", mode=mode)

    async def stop(self) -> None:
        for r in self.relays:
            await r.stop()

    def status(self) -> dict:
        return {"mode": self.mode, "relays": [r.status() for r in self.relays]}
