"""The SRST router's credentials service (TCP 2445) and its client (the call manager).

Cisco's wire protocol is not public, so the lab defines its own (docs/decisions.md):

    TLS 1.2+; the server presents the router certificate; the client must present a
    certificate that chains to the service's trust store AND whose SHA-256 is one of the
    allowed (call manager) certificates.
    request  (8 bytes):  b"SRCR", u8 version = 1, u8 op = 1 (get router certificate), u16 0
    response (12 + n):   b"SRCR", u8 version = 1, u8 status, u16 0, u32 n (big-endian), n bytes
                         status 0 OK: the bytes are the router certificate (DER)
                         status 1 bad request, 2 forbidden: the bytes are a UTF-8 reason
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
import struct
import time
from pathlib import Path
from typing import Any, Callable

from host_tools.lab.sccp_server import (Acceptor, load_trust, peer_identity, server_context,
                                        set_security_level)

MAGIC = b"SRCR"
VERSION = 1
OP_GET_CERT = 1
OK, BAD_REQUEST, FORBIDDEN = 0, 1, 2
DEFAULT_PORT = 2445
MAX_ANSWER = 64 * 1024


class CredentialsError(Exception):
    pass


def request(op: int = OP_GET_CERT) -> bytes:
    return MAGIC + struct.pack(">BBH", VERSION, op, 0)


def response(status: int, payload: bytes) -> bytes:
    return MAGIC + struct.pack(">BBHI", VERSION, status, 0, len(payload)) + payload


def parse_response_header(hdr: bytes) -> tuple[int, int]:
    """-> (status, payload length)"""
    if len(hdr) != 12 or hdr[:4] != MAGIC:
        raise CredentialsError("not a credentials-service answer")
    version, status, _, n = struct.unpack(">BBHI", hdr[4:])
    if version != VERSION:
        raise CredentialsError(f"unsupported version {version}")
    if n > MAX_ANSWER:
        raise CredentialsError(f"answer too long ({n} bytes)")
    return status, n


_BEGIN = b"-----BEGIN CERTIFICATE-----"
_END = b"-----END CERTIFICATE-----"


def _der(cert: bytes | str | Path) -> bytes:
    """DER of a certificate given as DER, PEM, or a PEM file with more in it: a chain file
    (its first certificate: the leaf, as a server's chain file starts) or certutils' files,
    a private key and then the certificate."""
    data = cert if isinstance(cert, bytes) else Path(cert).read_bytes()
    if b"-----BEGIN" in data:
        if _BEGIN not in data:
            raise CredentialsError("no certificate in the PEM data")
        first = data[data.index(_BEGIN):]
        if _END in first:
            first = first[:first.index(_END) + len(_END)]
        return ssl.PEM_cert_to_DER_cert(first.decode())
    return data


def _pin_trust(ctx: ssl.SSLContext) -> None:
    """Certificates loaded as trust anchors are trusted by themselves, CA-issued or not
    (OpenSSL otherwise wants the chain up to a self-signed root)."""
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN


class CredentialsService:
    """Answers the router certificate to the call manager(s), nobody else.

    cert/key:       the router's certificate, PEM files; `cert` may be the chain file the
                    router presents (leaf first): the leaf alone is answered
    allowed:        certificates (DER/PEM bytes or files) of the call managers allowed to ask
    client_ca:      extra trust for client chains (default: the allowed certificates, which
                    in the lab are self-signed)
    security_level: OpenSSL's, for a PKI with keys under 2048 bits (sccp_server.set_security_level)
    """

    def __init__(self, *, cert: str | Path, key: str | Path, allowed: list[bytes | str | Path],
                 host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 client_ca: str | Path | bytes | None = None, keylog: str | Path | None = None,
                 emit: Callable[..., Any] | None = None,
                 security_level: int | None = None) -> None:
        self.cert, self.key, self.host, self.port = cert, key, host, port
        self.security_level = security_level
        self.cert_der = _der(cert)
        self.allowed = {hashlib.sha256(_der(a)).hexdigest() for a in allowed}
        self._allowed_der = [_der(a) for a in allowed]
        self.client_ca, self.keylog = client_ca, keylog
        self._emit = emit or (lambda ev, **f: None)
        self._acceptor: Acceptor | None = None
        self.answered = 0
        self.refused = 0

    async def start(self) -> "CredentialsService":
        if self._acceptor is not None:
            return self
        ctx = server_context(self.cert, self.key, None, self.keylog, self.security_level)
        ctx.verify_mode = ssl.CERT_REQUIRED
        _pin_trust(ctx)                      # a CA-signed call manager certificate, allowed
        for der in self._allowed_der:
            ctx.load_verify_locations(cadata=der)
        if self.client_ca is not None:
            load_trust(ctx, self.client_ca)
        self._acceptor = Acceptor(self._serve, ctx, on_tls_failed=self._tls_failed)
        self.port = await self._acceptor.start(self.host, self.port)
        self._emit("credentials_up", port=self.port)
        return self

    async def stop(self) -> None:
        if self._acceptor is not None:
            await self._acceptor.close()
            self._acceptor = None

    def _tls_failed(self, peer: str, port: int, reason: str) -> None:
        self.refused += 1
        self._emit("credentials_refused", peer=peer, cert_cn=None, reason=reason)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = "%s:%d" % writer.get_extra_info("peername")[:2]
        cn, fp, _ = peer_identity(writer)
        try:
            req = await asyncio.wait_for(reader.readexactly(8), 10)
            if req[:4] != MAGIC or req[4] != VERSION or req[5] != OP_GET_CERT:
                writer.write(response(BAD_REQUEST, b"bad request"))
                self.refused += 1
                self._emit("credentials_refused", peer=peer, cert_cn=cn, reason="bad request")
            elif fp not in self.allowed:
                writer.write(response(FORBIDDEN, b"client certificate not allowed"))
                self.refused += 1
                self._emit("credentials_refused", peer=peer, cert_cn=cn, reason="not allowed")
            else:
                writer.write(response(OK, self.cert_der))
                self.answered += 1
                self._emit("credentials_answered", peer=peer, cert_cn=cn)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
                await writer.wait_closed()


async def fetch_router_certificate(host: str, port: int = DEFAULT_PORT, *,
                                   cert: str | Path, key: str | Path,
                                   server_ca: str | Path | bytes | None = None,
                                   server_hostname: str | None = None,
                                   keylog: str | Path | None = None,
                                   timeout: float = 10.0,
                                   security_level: int | None = None) -> bytes:
    """Ask a credentials service for the router certificate, authenticating with `cert`.

    Without `server_ca` the server is not verified by a CA (the call manager does not know
    the router yet); the answer must then be the very certificate the server presented."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    set_security_level(ctx, security_level)
    ctx.load_cert_chain(str(cert), str(key))
    if server_ca is not None:
        load_trust(ctx, server_ca)
        ctx.check_hostname = server_hostname is not None
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if keylog:
        ctx.keylog_filename = str(keylog)
    t0 = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ctx, server_hostname=server_hostname or host),
            timeout)
    except ssl.SSLError as e:
        raise CredentialsError(f"TLS to {host}:{port} failed: {e}") from e
    except (OSError, asyncio.TimeoutError) as e:
        raise CredentialsError(f"cannot reach {host}:{port}: {e}") from e
    try:
        try:
            presented = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        except ValueError as e:     # the server's alert (our certificate refused) came first
            raise ConnectionError(f"the handshake did not hold ({e})") from None
        writer.write(request())
        await writer.drain()
        left = max(0.1, timeout - (time.monotonic() - t0))
        status, n = parse_response_header(await asyncio.wait_for(reader.readexactly(12), left))
        payload = await asyncio.wait_for(reader.readexactly(n), left)
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError) as e:
        raise CredentialsError(f"{host}:{port} closed the connection: {e}") from e
    except asyncio.TimeoutError as e:
        raise CredentialsError(f"{host}:{port}: no answer") from e
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    if status != OK:
        raise CredentialsError(f"{host}:{port} refused (status {status}): "
                               f"{payload.decode('utf-8', 'replace')}")
    if server_ca is None and presented != payload:
        raise CredentialsError("the answered certificate is not the one the server presented")
    return payload
