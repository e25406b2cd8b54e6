"""A small SIP-over-TLS user agent for the lab's SIP server tests: REGISTER with digest
authentication (RFC 3261 22, RFC 2617 3.2.2; RFC 8760 for SHA-256), computed here with
hashlib so the test does not trust the server's own code, over a TLS connection made with
the phone's lab certificate (and a key log for tshark)."""
from __future__ import annotations

import hashlib
import re
import secrets
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from host_tools.lab import kamailio

HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    raw: bytes = b""

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def parse_response(data: bytes) -> Response:
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    lines = head.split("\r\n")
    m = re.match(r"SIP/2\.0 (\d{3}) ?(.*)", lines[0])
    assert m, f"not a SIP response: {lines[0]!r}"
    headers = []
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers.append((k.strip(), v.strip()))
    return Response(int(m.group(1)), m.group(2), headers, data)


def challenge_params(value: str) -> dict[str, str]:
    """WWW-Authenticate: Digest k="v", k=v, ... -> {k: v}"""
    assert value.lower().startswith("digest "), value
    out = {}
    for m in re.finditer(r'(\w+)=("([^"]*)"|[^,\s]+)', value[7:]):
        out[m.group(1).lower()] = m.group(3) if m.group(3) is not None else m.group(2)
    return out


def digest_authorization(ch: dict[str, str], user: str, password: str, method: str,
                         uri: str, cnonce: str | None = None, nc: int = 1) -> str:
    """The Authorization header value answering challenge `ch` (RFC 2617 3.2.2)."""
    alg = ch.get("algorithm", "MD5")
    H = lambda s: HASHES[alg](s.encode()).hexdigest()  # noqa: E731
    ha1 = H(f"{user}:{ch['realm']}:{password}")
    ha2 = H(f"{method}:{uri}")
    parts = [f'username="{user}"', f'realm="{ch["realm"]}"', f'nonce="{ch["nonce"]}"',
             f'uri="{uri}"']
    if "qop" in ch:
        assert "auth" in ch["qop"].split(","), ch
        cnonce = cnonce or secrets.token_hex(8)
        ncv = f"{nc:08x}"
        resp = H(f"{ha1}:{ch['nonce']}:{ncv}:{cnonce}:auth:{ha2}")
        parts += ["qop=auth", f'cnonce="{cnonce}"', f"nc={ncv}"]
    else:
        resp = H(f"{ha1}:{ch['nonce']}:{ha2}")
    parts.append(f'response="{resp}"')
    if "algorithm" in ch:
        parts.append(f"algorithm={alg}")
    if "opaque" in ch:
        parts.append(f'opaque="{ch["opaque"]}"')
    return "Digest " + ", ".join(parts)


def client_context(cert: Path | None, key: Path | None, keylog: Path | None = None,
                   max_version: ssl.TLSVersion | None = None,
                   security_level: int | None = None) -> ssl.SSLContext:
    """A phone's TLS: its certificate when given; the server is not verified here (the tests
    are about what the server accepts; the agent's pinning is tested elsewhere)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if max_version is not None:
        ctx.maximum_version = max_version
    if security_level is not None:      # a PKI with 1024-bit keys
        ctx.set_ciphers(f"DEFAULT:@SECLEVEL={security_level}")
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    if keylog is not None:
        ctx.keylog_filename = str(keylog)
    return ctx


class SipTlsClient:
    """One TLS connection to a SIP server, REGISTERs on it."""

    def __init__(self, host: str, port: int, ctx: ssl.SSLContext, timeout: float = 5.0) -> None:
        self.host, self.port = host, port
        raw = socket.create_connection((host, port), timeout=timeout)
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname=None)
            # TLS 1.3: a refused client certificate is only told after the handshake
            self.sock.settimeout(timeout)
        except BaseException:
            raw.close()
            raise
        self.local = self.sock.getsockname()
        self.call_id = secrets.token_hex(8)
        self.cseq = 0
        self.tag = secrets.token_hex(4)
        self._buf = b""

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "SipTlsClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def register(self, user: str, expires: int | None = 600,
                 authorization: str | None = None, device: str = "SEP001122AABBCC",
                 method: str = "REGISTER") -> Response:
        """A REGISTER (or, with `method`, another request of the same form) for `user`."""
        self.cseq += 1
        lh, lp = self.local[:2]
        uri = f"sip:{self.host}"
        hdrs = [f"{method} {uri} SIP/2.0",
                f"Via: SIP/2.0/TLS {lh}:{lp};branch=z9hG4bK{secrets.token_hex(8)};rport",
                "Max-Forwards: 70",
                f"From: <sip:{user}@{self.host}>;tag={self.tag}",
                f"To: <sip:{user}@{self.host}>",
                f"Call-ID: {self.call_id}@{lh}",
                f"CSeq: {self.cseq} {method}",
                f'Contact: <sip:{user}@{lh}:{lp};transport=tls>;+sip.instance='
                f'"<urn:uuid:00000000-0000-0000-0000-{device[3:].lower()}>"',
                f"User-Agent: Cisco-CP8865/lab-test"]
        if expires is not None:
            hdrs.append(f"Expires: {expires}")
        if authorization:
            hdrs.append(f"Authorization: {authorization}")
        hdrs.append("Content-Length: 0")
        self.sock.sendall(("\r\n".join(hdrs) + "\r\n\r\n").encode())
        return self.read_response()

    def read_response(self) -> Response:
        while b"\r\n\r\n" not in self._buf:
            d = self.sock.recv(65536)
            if not d:
                raise ConnectionError("server closed the connection")
            self._buf += d
        head, _, rest = self._buf.partition(b"\r\n\r\n")
        r = parse_response(head + b"\r\n\r\n")
        n = int(r.header("Content-Length") or r.header("l") or 0)
        while len(rest) < n:
            rest += self.sock.recv(65536)
        self._buf = rest[n:]
        return r

    def register_with_digest(self, user: str, password: str, expires: int | None = 600,
                             device: str = "SEP001122AABBCC") -> tuple[Response, Response]:
        """(the 401, the answer to the credentials)"""
        first = self.register(user, expires, device=device)
        assert first.status == 401, (first.status, first.reason)
        ch = challenge_params(first.header("WWW-Authenticate") or "")
        auth = digest_authorization(ch, user, password, "REGISTER", f"sip:{self.host}")
        return first, self.register(user, expires, auth, device=device)


def skip_without_kamailio() -> None:
    """Skip with the reason when Kamailio or a module the lab loads (tls.so) is missing."""
    why = kamailio.available()
    if why:
        pytest.skip(why)


def tls_relay(listen: tuple[str, int], target: tuple[str, int], ctx: ssl.SSLContext,
              ready: threading.Event, timeout: float = 15.0) -> None:
    """Accept one plain TCP connection on `listen` and carry it over TLS (made with `ctx`, the
    phone's certificate) to `target`, both ways, until either side closes: a SIPp without
    TLS becomes a phone with a certificate."""
    plain = _accept_one(listen, ready, timeout)
    _carry(plain, ctx.wrap_socket(socket.create_connection(target, timeout=5)), timeout)


def tls_front(listen: tuple[str, int], target: tuple[str, int], ctx: ssl.SSLContext,
              ready: threading.Event, timeout: float = 15.0) -> None:
    """The other way round: accept one TLS connection on `listen` (a server context: the
    registrar's certificate) and carry it as plain TCP to `target`: a SIPp without TLS
    becomes a registrar on 5061."""
    conn = _accept_one(listen, ready, timeout)
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
    except (OSError, ssl.SSLError):
        conn.close()
        return
    _carry(socket.create_connection(target, timeout=5), tls, timeout)


def _accept_one(listen: tuple[str, int], ready: threading.Event, timeout: float) -> socket.socket:
    srv = socket.create_server(listen)
    srv.settimeout(timeout)
    ready.set()
    try:
        return srv.accept()[0]
    finally:
        srv.close()


def _carry(plain: socket.socket, tls: ssl.SSLSocket, timeout: float) -> None:
    """Bytes both ways between a plain and a TLS socket until either side closes."""
    tls.setblocking(False)     # readable can be a TLS record without data (a session ticket)
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            for s in select.select([plain, tls], [], [], 0.2)[0]:
                try:
                    data = s.recv(65536)
                    while s is tls and tls.pending():      # decrypted bytes select cannot see
                        data += tls.recv(tls.pending())
                except ssl.SSLWantReadError:
                    continue
                if not data:
                    return
                if s is plain:
                    tls.setblocking(True)
                    tls.sendall(data)
                    tls.setblocking(False)
                else:
                    plain.sendall(data)
    except OSError:
        pass
    finally:
        plain.close()
        tls.close()