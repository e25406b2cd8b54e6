"""Common machinery of the lab's SCCP servers (call manager and SRST router simulators).

One asyncio server per listener (TLS or plain), one `Session` per TCP connection, the frames
coded by the firmware's own `phone.sccp`. Subclasses decide what a registration means
(`on_register`) and what else to say; this base answers KeepAlive, records every connection's
state, emits JSON-able events and offers the faults the lab needs: hang (TCP up, nothing
answered), drop all connections, stop/start.
"""
from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import contextvars
import hashlib
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import host_tools.fw  # noqa: F401  (firmware/ on sys.path)
from phone import sccp_lab as sccp  # type: ignore[import-not-found]

EventHook = Callable[[dict], None]

# Server quirks for the lab (SccpServer.quirk): the misbehaviour a phone must survive.
QUIRKS = {
    "close_after_ack": "closes the session right after RegisterAck + CapabilitiesReq",
    "big_display_close": "sends a 64 KB DisplayText after RegisterAck, then closes",
    "garbage": "answers KeepAlive with bytes that are no SCCP frame",
    "reject": "rejects every Register (RegisterReject)",
    "reset_unregistered": "sends Reset (restart) to every KeepAlive of a session that "
                          "is not registered (standby, probe)",
}
BIG_DISPLAY = 65536

# The registration dialogue a phone owes after RegisterAck (docs/protocols.md, "The
# registration dialogue"): Wireshark's names of the phone's messages. A session is counted
# registered when RegisterAvailableLines comes after all of them and a LineStatReq for each
# line the server announced; until then its state is "registering".
DIALOGUE = ("IpPort", "CapabilitiesRes", "ButtonTemplateReq", "SoftKeyTemplateReq",
            "SoftKeySetReq", "ConfigStatReq", "LineStatReq", "TimeDateReq")
_DIALOGUE_IDS = {sccp.IP_PORT: "IpPort", sccp.CAPABILITIES_RES: "CapabilitiesRes",
                 sccp.BUTTON_TEMPLATE_REQ: "ButtonTemplateReq",
                 sccp.SOFT_KEY_TEMPLATE_REQ: "SoftKeyTemplateReq",
                 sccp.SOFT_KEY_SET_REQ: "SoftKeySetReq", sccp.CONFIG_STAT_REQ: "ConfigStatReq",
                 sccp.TIME_DATE_REQ: "TimeDateReq"}
_RECORD = 48        # dialogue entries kept per registration (KeepAlives are not recorded)
SECURE_PORT = 2443  # SCCP over TLS
# asyncio gives every TLS connection a read buffer of its own, 256 KiB, allocated zeroed
# (asyncio/sslproto.py, SSLProtocol.max_size): 0.5 MB of RSS per fleet phone (a session to
# each simulator) for frames of tens of bytes. 4 KiB is only the most one recv() takes.
TLS_READ_BUFFER = 4096


def small_tls_reads(size: int = TLS_READ_BUFFER) -> None:
    """Shrink asyncio's per-connection TLS read buffer (process-wide) to `size` bytes; the
    bytes read and the records decoded are the same, a large record takes more recv()s."""
    proto = getattr(asyncio.sslproto, "SSLProtocol", None)
    if proto is not None and getattr(proto, "max_size", 0) > size:
        proto.max_size = size


@dataclass
class Listener:
    port: int
    tls: bool
    host: str | None = None      # None: the server's host


@dataclass
class Session:
    """One phone connection as the server sees it."""
    sid: int
    peer: str
    tls: bool
    port: int
    writer: asyncio.StreamWriter = field(repr=False)
    cert_cn: str | None = None
    cert_sha256: str | None = None
    device: str | None = None           # from Register
    device_type: int | None = None
    ip: str | None = None               # station IP claimed in Register
    # connected standby registering (RegisterAck sent, dialogue under way) registered
    # rejected unregistered closed
    state: str = "connected"
    keepalives: int = 0
    ignored: int = 0                    # messages not answered because the server hung
    connected_at: float = 0.0
    registered_at: float | None = None
    last_rx: float = 0.0
    ready: bool = False                 # TimeDateReq seen
    caps: list = field(default_factory=list)
    close_reason: str | None = None
    lines: int = 1                      # lines announced (ButtonTemplate, ConfigStat)
    steps: set = field(default_factory=set)         # dialogue steps seen since Register
    line_reqs: set = field(default_factory=set)     # lines asked for (LineStatReq)
    dialogue: list = field(default_factory=list)    # [ms since Register, "<" in / ">" out, name]
    dialogue_at: float | None = None                # when Register came
    reg_info: dict = field(default_factory=dict)    # the Register's fields and the mode
    rx: int = 0                          # messages received (KeepAlives included)
    corked: list | None = field(default=None, repr=False)   # answers held for one write

    def missing(self) -> list[str]:
        """Dialogue steps not seen yet, in order (LineStatReq: the lines not asked for)."""
        out = [x for x in DIALOGUE if x != "LineStatReq" and x not in self.steps]
        lines = [n for n in range(1, self.lines + 1) if n not in self.line_reqs]
        if lines:
            out.insert(out.index("TimeDateReq") if "TimeDateReq" in out else len(out),
                       "LineStatReq " + ",".join(map(str, lines)))
        return out

    def record(self, way: str, msg_id: int, now: float) -> None:
        if self.dialogue_at is not None and len(self.dialogue) < _RECORD \
                and msg_id not in (sccp.KEEPALIVE, sccp.KEEPALIVE_ACK):
            self.dialogue.append([int((now - self.dialogue_at) * 1000), way, sccp.name(msg_id)])

    @property
    def key(self) -> str:
        """How the status names this connection: device, else certificate CN, else peer."""
        return self.device or self.cert_cn or self.peer

    def summary(self) -> dict:
        return {
            "sid": self.sid, "key": self.key, "peer": self.peer, "tls": self.tls,
            "port": self.port, "cert_cn": self.cert_cn, "device": self.device,
            "device_type": self.device_type, "ip": self.ip, "state": self.state,
            "keepalives": self.keepalives, "ignored": self.ignored, "ready": self.ready,
            "rx": self.rx, "missing": self.missing() if self.state == "registering" else [],
            "dialogue": [f"{t} {w}{n}" for t, w, n in self.dialogue],
            "connected_at": round(self.connected_at, 3),
            "registered_at": None if self.registered_at is None else round(self.registered_at, 3),
            "close_reason": self.close_reason,
        }

    async def send(self, data: bytes) -> None:
        if self.corked is not None:         # answering what was read: one write (flush)
            self.corked.append(data)
            return
        self.writer.write(data)
        await self.writer.drain()

    async def flush(self) -> None:
        """Write what the answers to the messages read so far hold, in one write: one TLS
        record and one send() instead of one per message (a 2,000-phone failover is ~11
        answers per phone, all at once). Record boundaries mean nothing in SCCP: the phone
        reads frames (tests/firmware/test_sccp_recorded.py)."""
        out, self.corked = self.corked, None
        if out:
            self.writer.write(b"".join(out))
            await self.writer.drain()


def _frame_buffered(reader: asyncio.StreamReader) -> bool:
    """A whole SCCP frame is already in the reader's buffer (StreamReader._buffer: the
    simulator's own asyncio reader): answer it before writing."""
    buf = reader._buffer  # noqa: SLF001
    if len(buf) < sccp.HEADER_SIZE:
        return False
    try:
        n = sccp.body_length(bytes(buf[:sccp.HEADER_SIZE]))
    except sccp.SccpError:
        return False
    return len(buf) >= sccp.HEADER_SIZE + n


def server_context(cert: str | Path, key: str | Path, client_ca: str | Path | bytes | None,
                   keylog: str | Path | None = None,
                   security_level: int | None = None) -> ssl.SSLContext:
    """TLS server context; with `client_ca` (file path, or PEM/DER bytes) the client must
    present a certificate chaining to it. `security_level`: see set_security_level()."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.sslobject_class = AlertingSSLObject
    set_security_level(ctx, security_level)
    ctx.load_cert_chain(str(cert), str(key))
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        load_trust(ctx, client_ca)
    if keylog:
        ctx.keylog_filename = str(keylog)
    return ctx


# the raw socket of the connection whose handshake an Acceptor task runs (see AlertingSSLObject)
_HANDSHAKE_FD: contextvars.ContextVar[int | None] = contextvars.ContextVar("handshake_fd",
                                                                          default=None)


class AlertingSSLObject(ssl.SSLObject):
    """An SSLObject that sends the alert of a failed handshake, as a TLS server does (no
    client certificate: certificate_required; another CA's: unknown_ca; TLS 1.1:
    protocol_version). asyncio's SSL protocol drops the connection on a handshake error
    without writing what OpenSSL put in its outgoing buffer, so the client saw a bare FIN.
    The socket is the one Acceptor._run set in `_HANDSHAKE_FD`: asyncio creates the object
    in a callback scheduled from that task, so it sees the task's context."""

    _alert_out: ssl.MemoryBIO | None = None
    _alert_fd: int | None = None

    @classmethod
    def _create(cls, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,  # type: ignore[override]
                server_side: bool = False, server_hostname: str | None = None,
                session: ssl.SSLSession | None = None,
                context: ssl.SSLContext | None = None) -> "AlertingSSLObject":
        obj = super()._create(incoming, outgoing, server_side, server_hostname,  # type: ignore[misc]
                              session, context)
        obj._alert_out, obj._alert_fd = outgoing, _HANDSHAKE_FD.get()
        return obj

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError:
            self._send_alert()
            raise

    def _send_alert(self) -> None:
        out, fd = self._alert_out, self._alert_fd
        if out is None or fd is None or not out.pending:
            return
        data = out.read()
        try:
            os.write(fd, data)
            s = socket.socket(fileno=os.dup(fd))
        except OSError:
            return
        # then FIN, and the socket held open a moment (asyncio closes its own descriptor)
        # reading what the client still sends: closed on unread data it would answer with a
        # reset, and a client still writing its flight sees EPIPE before it reads the alert
        threading.Thread(target=_linger, args=(s,), name="tls-alert", daemon=True).start()


def _linger(s: socket.socket, seconds: float = 2.0) -> None:
    end = time.monotonic() + seconds
    try:
        s.shutdown(socket.SHUT_WR)
        s.settimeout(0.2)
        while time.monotonic() < end:
            try:
                if not s.recv(65536):
                    break
            except socket.timeout:
                continue
    except OSError:
        pass
    finally:
        s.close()


def set_security_level(ctx: ssl.SSLContext, level: int | None) -> None:
    """OpenSSL's security level for this context (None: Python's default, 2, which refuses
    RSA keys under 2048 bits). Level 1 lets a lab whose PKI has older 1024-bit keys (an old
    cluster's CAPF and the phone certificates it issued) talk TLS (docs/lab.md)."""
    if level is not None:
        ctx.set_ciphers(f"DEFAULT:@SECLEVEL={int(level)}")


def load_trust(ctx: ssl.SSLContext, ca: str | Path | bytes) -> None:
    """Trust `ca` (a file, or PEM/DER bytes) by itself: a pinned server certificate that a CA
    issued (the SRST router's) is an anchor too, not only a self-signed root."""
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if isinstance(ca, (bytes, bytearray)):
        if b"-----BEGIN" in ca:
            ctx.load_verify_locations(cadata=bytes(ca).decode())
        else:
            ctx.load_verify_locations(cadata=bytes(ca))
    else:
        ctx.load_verify_locations(cafile=str(ca))


def peer_identity(writer: asyncio.StreamWriter) -> tuple[str | None, str | None, bytes | None]:
    """(CN, SHA-256 hex, DER) of the verified client certificate, if any."""
    obj = writer.get_extra_info("ssl_object")
    if obj is None:
        return None, None, None
    der = obj.getpeercert(binary_form=True)
    if not der:
        return None, None, None
    cn = None
    for rdn in (obj.getpeercert() or {}).get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                cn = v
    return cn, hashlib.sha256(der).hexdigest(), der


class _PausedProtocol(asyncio.StreamReaderProtocol):
    """Stops reading at once on a TLS listener, so the ClientHello stays in the socket until
    start_tls() takes over (otherwise it could land in the plain StreamReader and be lost)."""

    def __init__(self, *args: Any, pause: bool, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._pause = pause

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._pause:
            transport.pause_reading()  # type: ignore[attr-defined]
        super().connection_made(transport)


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Acceptor:
    """One listening socket. With a TLS context the handshake runs inside our own task
    (start_tls), so a refused client is an event we record, not a log line of asyncio's;
    `handler` runs only for connections whose handshake succeeded."""

    def __init__(self, handler: Handler, ctx: ssl.SSLContext | None = None, *,
                 handshake_timeout: float = 10.0,
                 on_tls_failed: Callable[[str, int, str], None] | None = None,
                 stalled: Callable[[], bool] | None = None) -> None:
        self.handler, self.ctx = handler, ctx
        self.stalled = stalled          # while true, new connections get no TLS handshake
        self.handshake_timeout = handshake_timeout
        self.on_tls_failed = on_tls_failed
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self.tasks: set[asyncio.Task] = set()

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        if self.ctx is not None:
            small_tls_reads()

        def factory() -> asyncio.Protocol:
            return _PausedProtocol(asyncio.StreamReader(), self._spawn, pause=self.ctx is not None)

        self.server = await loop.create_server(factory, host, port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        """Stop listening and cancel the connection tasks still running."""
        srv, self.server = self.server, None
        if srv is not None:
            srv.close()
        tasks = list(self.tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if srv is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 2)

    def _spawn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._run(reader, writer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while self.stalled is not None and self.stalled():
            await asyncio.sleep(0.05)   # a hung server: TCP accepted by the kernel, no answer
        if self.ctx is not None:
            sock = writer.get_extra_info("socket")
            _HANDSHAKE_FD.set(sock.fileno() if sock is not None else None)
            try:
                await writer.start_tls(self.ctx, ssl_handshake_timeout=self.handshake_timeout)
            except (ssl.SSLError, OSError, asyncio.TimeoutError, ConnectionError) as e:
                if self.on_tls_failed:
                    peer = writer.get_extra_info("peername") or ("?", 0)
                    self.on_tls_failed("%s:%d" % tuple(peer[:2]), self.port, _reason(e))
                writer.transport.abort()
                return
        await self.handler(reader, writer)


class SccpServer:
    """Base of the simulators. Subclasses override `on_register` and may override
    `on_message` for ids the base does not handle.

    port/plain_port: the TLS and the plain listener (2443 / none by default); 0 picks a free
                     port, None disables a listener; at least one is needed"""

    role = "sccp"

    def __init__(
        self,
        *,
        name: str,
        host: str = "127.0.0.1",
        port: int | None = SECURE_PORT,
        plain_port: int | None = None,
        cert: str | Path | None = None,
        key: str | Path | None = None,
        client_ca: str | Path | bytes | None = None,
        keylog: str | Path | None = None,
        keepalive: int = 30,
        secondary_keepalive: int = 60,
        date_template: str = "M/D/YA",
        idle_factor: float = 3.0,
        handshake_timeout: float = 10.0,
        on_event: EventHook | None = None,
        tls_security_level: int | None = None,
        lines: int = 1,
    ) -> None:
        self.name = name
        self.lines = lines                      # lines each phone gets (ButtonTemplate)
        self.tls_security_level = tls_security_level
        self.host = host
        self.listeners = [Listener(p, tls=tls) for p, tls in ((port, True), (plain_port, False))
                          if p is not None]
        if not self.listeners:
            raise ValueError(f"{type(self).__name__} needs port and/or plain_port")
        self.cert, self.key, self.client_ca, self.keylog = cert, key, client_ca, keylog
        self.keepalive = keepalive
        self.secondary_keepalive = secondary_keepalive
        self.date_template = date_template
        self.idle_factor = idle_factor
        self.handshake_timeout = handshake_timeout
        self.events: list[dict] = []
        self.hooks: list[EventHook] = [on_event] if on_event else []
        self.sessions: dict[int, Session] = {}
        self.history: list[dict] = []           # summaries of closed sessions
        self.hung = False
        # Answer each batch read in one write (Session.flush): a fleet turns it on (less work
        # per phone). Off, one write per answer, as every other lab figure and test was
        # measured (docs/decisions.md, "Issue 16: 2,000 phones within 10 s")
        self.one_write = False
        self.quirk: str | None = None           # one of QUIRKS, see set_quirk()
        self.ports: dict[str, int] = {}         # "tls" / "plain" -> bound port
        self._acceptors: list[Acceptor] = []
        self._next_sid = 1
        self._t0 = time.monotonic()
        if port is not None and not (cert and key):
            raise ValueError(f"{name}: a TLS listener needs cert and key")
        for what, v in (("keepalive", keepalive), ("secondary_keepalive", secondary_keepalive)):
            # RegisterAck carries them as unsigned 32-bit seconds; 0 would mean "never"
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 0xFFFFFFFF:
                raise ValueError(f"{name}: {what} must be a whole number of seconds >= 1, "
                                 f"not {v!r}")

    # ------------------------------------------------------------------ events and status
    def now(self) -> float:
        return time.monotonic() - self._t0

    def emit(self, ev: str, **fields: Any) -> dict:
        e = {"t": int(self.now() * 1000), "ev": ev, "src": self.name, **fields}
        self.events.append(e)
        for hook in list(self.hooks):
            try:
                hook(e)
            except Exception:  # a broken listener must not take the server down
                pass
        return e

    def status(self) -> dict:
        live = [s for s in self.sessions.values() if s.state != "closed"]
        return {
            "name": self.name, "role": self.role, "host": self.host, "ports": dict(self.ports),
            "running": bool(self._acceptors), "hung": self.hung,
            "registered": sorted(s.device for s in live if s.state == "registered" and s.device),
            "registering": {s.key: s.missing() for s in live if s.state == "registering"},
            "standby": sorted(s.key for s in live if s.state == "standby"),
            "sessions": [s.summary() for s in live],
            "closed": list(self.history[-50:]),
        }

    def session(self, key: str) -> Session | None:
        """The live session of a device name, certificate CN or peer."""
        for s in self.sessions.values():
            if s.state != "closed" and key in (s.device, s.cert_cn, s.peer):
                return s
        return None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> "SccpServer":
        if self._acceptors:
            return self
        ctx = (server_context(self.cert, self.key, self.client_ca,  # type: ignore[arg-type]
                              self.keylog, self.tls_security_level)
               if any(lst.tls for lst in self.listeners) else None)
        for lst in self.listeners:
            acc = Acceptor(lambda r, w, lst=lst: self._serve(r, w, lst),
                           ctx if lst.tls else None, handshake_timeout=self.handshake_timeout,
                           on_tls_failed=self._tls_failed, stalled=lambda: self.hung)
            kind = "tls" if lst.tls else "plain"
            # port 0 binds a free port once; a restart (stop/start) keeps that port
            port = lst.port or self.ports.get(kind, 0)
            self.ports[kind] = await acc.start(lst.host or self.host, port)
            self._acceptors.append(acc)
        self.emit("server_up", role=self.role, ports=dict(self.ports))
        return self

    async def stop(self) -> None:
        """Close the listeners and every connection (FIN); the object can start() again."""
        acceptors, self._acceptors = self._acceptors, []
        for acc in acceptors:
            if acc.server is not None:
                acc.server.close()
        await self.drop_connections(abort=False, reason="server stopped")
        for acc in acceptors:
            await acc.close()
        if acceptors:
            self.emit("server_down")

    def _tls_failed(self, peer: str, port: int, reason: str) -> None:
        self.emit("tls_failed", peer=peer, port=port, reason=reason)

    async def __aenter__(self) -> "SccpServer":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # ------------------------------------------------------------------ faults
    def hang(self, on: bool = True) -> None:
        """A hung server: connections stay up, nothing is answered (keepalives included), and
        new connections get no TLS handshake until the hang ends."""
        self.hung = on
        self.emit("fault", fault="hang", on=on)

    def set_quirk(self, quirk: str | None) -> None:
        """Misbehave from now on (one of QUIRKS), or behave again (None)."""
        if quirk is not None and quirk not in QUIRKS:
            raise ValueError(f"unknown server quirk {quirk!r} (one of {', '.join(QUIRKS)})")
        self.quirk = quirk
        self.emit("fault", fault="quirk", quirk=quirk)

    async def drop_connections(self, abort: bool = True, reason: str = "dropped") -> int:
        """Close every live connection: abort=True sends RST, False a clean FIN."""
        n = 0
        for s in list(self.sessions.values()):
            if s.state == "closed":
                continue
            n += 1
            s.close_reason = reason
            if abort:
                s.writer.transport.abort()
            else:
                s.writer.close()
        if n:
            self.emit("fault", fault="drop", abort=abort, connections=n, reason=reason)
        await asyncio.sleep(0)
        return n

    async def reset_phone(self, device: str, kind: int = sccp.RESET_RESET) -> bool:
        """Send Reset (1 reset, 2 restart, 3 apply config) to a connected device."""
        s = self.session(device)
        if s is None:
            return False
        await s.send(sccp.reset(kind))
        self.emit("reset_sent", device=s.key, kind=kind)
        return True

    # ------------------------------------------------------------------ connections
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     lst: Listener) -> None:
        peer = "%s:%d" % writer.get_extra_info("peername")[:2]
        port = writer.get_extra_info("sockname")[1]
        cn, fp, _ = peer_identity(writer)
        s = Session(sid=self._next_sid, peer=peer, tls=lst.tls, port=port, writer=writer,
                    cert_cn=cn, cert_sha256=fp, connected_at=self.now(), last_rx=self.now())
        self._next_sid += 1
        self.sessions[s.sid] = s
        self.emit("connected", sid=s.sid, peer=peer, port=port, tls=lst.tls, cert_cn=cn)
        try:
            await self._loop(reader, s)
        except sccp.SccpError as e:
            s.close_reason = f"protocol error: {e}"
        except asyncio.CancelledError:
            s.close_reason = s.close_reason or "server stopped"
        except (ConnectionError, OSError, ssl.SSLError) as e:
            s.close_reason = s.close_reason or _reason(e)
        except Exception as e:  # a bug in a handler: this session ends, never the server
            s.close_reason = f"server error: {type(e).__name__}: {e}"
            self.emit("server_error", sid=s.sid, reason=s.close_reason)
        finally:
            with contextlib.suppress(Exception):
                if s.corked:                # answers of a session ending: sent, as before
                    writer.write(b"".join(s.corked))
                writer.close()
            self._closed(s)

    def _closed(self, s: Session) -> None:
        was = s.state
        s.state = "closed"
        self.sessions.pop(s.sid, None)
        # what it was when it ended, and what its dialogue still lacked (host_tools.lab.perphone)
        self.history.append({**s.summary(), "was": was, "closed_at": round(self.now(), 3),
                             "missing": s.missing() if was == "registering" else []})
        self.emit("disconnected", sid=s.sid, device=s.key, was=was, reason=s.close_reason or "eof",
                  keepalives=s.keepalives)

    def _idle_limit(self, s: Session) -> float | None:
        interval = (self.keepalive if s.state in ("registered", "registering")
                    else self.secondary_keepalive)
        return interval * self.idle_factor if self.idle_factor else None

    async def _loop(self, reader: asyncio.StreamReader, s: Session) -> None:
        while True:
            try:
                # a timeout scope, not wait_for: no task per message read
                async with asyncio.timeout(self._idle_limit(s)):
                    header = await reader.readexactly(sccp.HEADER_SIZE)
            except asyncio.IncompleteReadError as e:
                if e.partial:
                    raise sccp.SccpError("truncated frame") from None
                s.close_reason = s.close_reason or "eof"
                return
            except asyncio.TimeoutError:
                s.close_reason = "keepalive timeout"
                self.emit("keepalive_timeout", device=s.key, state=s.state)
                return
            n, _version, msg_id = sccp.parse_header(header)
            try:
                body = await reader.readexactly(n) if n else b""
            except asyncio.IncompleteReadError:
                raise sccp.SccpError("truncated frame") from None
            s.last_rx = self.now()
            s.rx += 1
            if self.hung:
                s.ignored += 1
                continue
            if self.one_write and s.corked is None:
                s.corked = []
            await self._dispatch(s, msg_id, body)
            if s.corked is not None and not _frame_buffered(reader):
                await s.flush()             # nothing more to answer before the phone speaks

    async def _dispatch(self, s: Session, msg_id: int, body: bytes) -> None:
        s.record("<", msg_id, self.now())
        if s.state == "registering" and msg_id in _DIALOGUE_IDS:
            s.steps.add(_DIALOGUE_IDS[msg_id])
        if msg_id == sccp.KEEPALIVE:
            s.keepalives += 1
            if s.state in ("connected", "unregistered"):
                s.state = "standby"
                self.emit("standby", sid=s.sid, device=s.key, peer=s.peer)
            if self.quirk == "garbage":
                await s.send(b"\xff" * 64)
                return
            await s.send(sccp.keepalive_ack())
            if self.quirk == "reset_unregistered" and s.state not in ("registered", "registering"):
                await s.send(sccp.reset(sccp.RESET_RESTART))
                self.emit("reset_sent", device=s.key, kind=sccp.RESET_RESTART, quirk=self.quirk)
        elif msg_id == sccp.REGISTER:
            info = sccp.parse_register(body)
            if self.quirk == "reject":
                await self.reject_registration(s, info, "Quirk: rejected")
                return
            s.dialogue, s.dialogue_at = [], self.now()
            s.record("<", msg_id, s.dialogue_at)
            await self.on_register(s, info)
            if s.state == "registering" and self.quirk in ("close_after_ack", "big_display_close"):
                if self.quirk == "big_display_close":
                    await s.send(sccp.frame(sccp.DISPLAY_TEXT, b"A" * BIG_DISPLAY))
                await s.flush()
                s.close_reason = f"quirk {self.quirk}"
                self.emit("quirk", sid=s.sid, device=s.key, quirk=self.quirk)
                s.writer.close()
                raise ConnectionResetError(f"closed by quirk {self.quirk}")
        elif msg_id == sccp.CAPABILITIES_RES:
            s.caps = sccp.parse_capabilities_res(body)
        elif msg_id == sccp.BUTTON_TEMPLATE_REQ:
            await self.say(s, sccp.button_template(tuple((n, 9) for n in range(1, s.lines + 1))))
        elif msg_id == sccp.SOFT_KEY_TEMPLATE_REQ:
            await self.say(s, sccp.soft_key_template_res())
        elif msg_id == sccp.SOFT_KEY_SET_REQ:
            await self.say(s, sccp.soft_key_set_res())
            await self.say(s, sccp.select_soft_keys())
        elif msg_id == sccp.CONFIG_STAT_REQ:
            await self.say(s, sccp.config_stat(s.device or "", server=self.name, lines=s.lines))
        elif msg_id == sccp.LINE_STAT_REQ:
            line = sccp.parse_u32(body, "LineStatReq")
            if s.state == "registering":
                s.line_reqs.add(line)
            await self.say(s, sccp.line_stat(line, str(1000 + line), f"Line {line}"))
        elif msg_id == sccp.REGISTER_AVAILABLE_LINES:
            await self.dialogue_done(s)
        elif msg_id == sccp.TIME_DATE_REQ:
            await self.say(s, define_time_date_now())
            if s.state in ("registering", "registered") and not s.ready:
                s.ready = True
                self.emit("ready", device=s.key)
        elif msg_id == sccp.UNREGISTER:
            await s.send(sccp.unregister_ack(sccp.UNREG_OK))
            if s.state in ("registering", "registered"):
                s.state = "unregistered"
                s.ready = False
                self.emit("unregistered", device=s.key)
        elif msg_id == sccp.REGISTER_TOKEN_REQ:
            await s.send(sccp.register_token_ack())
        else:
            await self.on_message(s, msg_id, body)

    # ------------------------------------------------------------------ subclass hooks
    async def on_register(self, s: Session, info: dict) -> None:
        await self.accept_registration(s, info)

    async def on_message(self, s: Session, msg_id: int, body: bytes) -> None:
        """Ids the base does not handle (Alarm, IpPort, ...): ignored, as real servers do."""

    async def on_registered(self, s: Session) -> None:
        """The dialogue is complete: what the server shows the phone then."""
        await self.say(s, sccp.set_lamp())

    async def say(self, s: Session, frame: bytes) -> None:
        """Send, recorded in the session's dialogue."""
        for mid, _ in sccp.split(frame):
            s.record(">", mid, self.now())
        await s.send(frame)

    async def dialogue_done(self, s: Session) -> None:
        """RegisterAvailableLines: registered if every step came before it, else the session
        stays "registering" and `dialogue_incomplete` names what is missing."""
        if s.state != "registering":
            return
        missing = s.missing()
        if missing:
            self.emit("dialogue_incomplete", sid=s.sid, device=s.key, missing=missing)
            return
        s.state = "registered"
        self.emit("registered", sid=s.sid, device=s.device, peer=s.peer, tls=s.tls,
                  dialogue_ms=int((self.now() - (s.registered_at or self.now())) * 1000),
                  lines=s.lines, **s.reg_info)
        await self.on_registered(s)

    async def accept_registration(self, s: Session, info: dict, **extra: Any) -> None:
        name = info["name"]
        for old in list(self.sessions.values()):
            if old is not s and old.device == name and old.state in ("registered", "registering"):
                old.close_reason = "replaced by a new registration"
                old.writer.transport.abort()
        s.device, s.device_type, s.ip = name, info["device_type"], info["ip"]
        s.state = "registering"
        s.ready = False
        s.steps, s.line_reqs = set(), set()
        s.lines = self.lines
        s.registered_at = self.now()
        s.reg_info = dict(device_type=info["device_type"], ip=info["ip"],
                          keepalive=self.keepalive,
                          secondary_keepalive=self.secondary_keepalive, **extra)
        await self.say(s, sccp.register_ack(self.keepalive, self.secondary_keepalive,
                                            self.date_template))
        await self.say(s, sccp.capabilities_req())
        self.emit("register_ack", sid=s.sid, device=name, peer=s.peer, tls=s.tls,
                  device_type=info["device_type"], ip=info["ip"], keepalive=self.keepalive,
                  secondary_keepalive=self.secondary_keepalive, **extra)

    async def reject_registration(self, s: Session, info: dict, reason: str) -> None:
        s.device = info["name"]
        s.state = "rejected"
        await self.say(s, sccp.register_reject(reason))
        self.emit("rejected", sid=s.sid, device=info["name"], peer=s.peer, reason=reason)


def define_time_date_now(t: float | None = None) -> bytes:
    t = time.time() if t is None else t
    tm = time.gmtime(t)
    return sccp.define_time_date(tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min,
                                 tm.tm_sec, int((t % 1) * 1000), (tm.tm_wday + 1) % 7, int(t))


def _reason(e: BaseException) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"certificate: {e.verify_message}"
    if isinstance(e, ssl.SSLError):
        return str(e.reason or e)
    if isinstance(e, asyncio.TimeoutError):
        return "timeout"
    return f"{type(e).__name__}: {e}"
