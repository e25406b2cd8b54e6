"""The firmware's TLS link (phone.link, running under MicroPython) against real TLS servers
presenting the wrong identity: each is refused with a clear reason, never a plain-text
session. Servers are the lab's call-manager simulator and plain sockets."""
from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from host_tools import micropython, pki as labpki
from host_tools.lab.callmanager import CallManager

MAC = "001122AABBCC"
SCRIPT = Path(__file__).parent / "mp" / "link_check.py"


@pytest.fixture(scope="module")
def lab_pki(tmp_path_factory) -> labpki.Pki:
    return labpki.make_pki(tmp_path_factory.mktemp("pki"), phone_macs=[MAC])


class Loop:
    """An asyncio loop in a thread, for servers the MicroPython process talks to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 15):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def loop():
    lp = Loop()
    yield lp
    lp.close()


def _der(tmp: Path, name: str, data: bytes) -> str:
    p = tmp / name
    p.write_bytes(data)
    return str(p)


def run_link(tmp: Path, port: int, anchor: bytes | None, cn: str, p: labpki.Pki,
             action: str = "register") -> str:
    phone = p.phones[MAC]
    args = [str(SCRIPT), "127.0.0.1", str(port),
            _der(tmp, "anchor.der", anchor) if anchor is not None else "-", cn,
            _der(tmp, "phone.der", phone.cert_der), _der(tmp, "phone.key", phone.key_der), action]
    out = subprocess.run(micropython.command(args, heap="256K"), env=micropython.environ(),
                         capture_output=True, text=True, timeout=30)
    text = out.stdout + out.stderr
    assert "RESULT" in text, text
    return text


def start_cm(loop: Loop, p: labpki.Pki, ident: labpki.Identity) -> CallManager:
    cm = CallManager(cert=ident.cert_path, key=ident.key_path, phone_ca=p.capf.cert_der, port=0,
                     devices=[f"SEP{MAC}"])
    loop.run(cm.start())
    return cm


def test_pinned_call_manager_registers(loop, lab_pki, tmp_path):
    cm = start_cm(loop, lab_pki, lab_pki.ccm)
    try:
        out = run_link(tmp_path, cm.ports["tls"], lab_pki.ccm.cert_der, lab_pki.ccm.cn, lab_pki)
        assert "RESULT ok REGISTERED" in out
        st = cm.status()
        sessions = st["sessions"] + st["closed"]
        assert any(s["device"] == f"SEP{MAC}" and s["registered_at"] is not None for s in sessions)
    finally:
        loop.run(cm.stop())


def test_server_with_another_certificate_is_refused(loop, lab_pki, tmp_path):
    # Same CN, different key: exactly what an impostor SRST router would present.
    impostor = labpki.make_identity("srst", "SRST", cn=lab_pki.srst.cn).write(tmp_path / "imp")
    cm = start_cm(loop, lab_pki, impostor)
    try:
        out = run_link(tmp_path, cm.ports["tls"], lab_pki.srst.cert_der, lab_pki.srst.cn, lab_pki)
        assert "RESULT refused" in out and "REGISTERED" not in out
        assert "not correctly signed" in out or "verify" in out.lower(), out
        assert cm.status()["registered"] == []
    finally:
        loop.run(cm.stop())


def test_wrong_common_name_is_refused(loop, lab_pki, tmp_path):
    cm = start_cm(loop, lab_pki, lab_pki.ccm)
    try:
        out = run_link(tmp_path, cm.ports["tls"], lab_pki.ccm.cert_der, "not-the-cn", lab_pki)
        assert "RESULT refused" in out and "CN" in out, out
    finally:
        loop.run(cm.stop())


def test_expired_certificate_is_refused(loop, lab_pki, tmp_path):
    old = labpki.make_identity("ccm", "CCM", cn="cucm-old", expired=True).write(tmp_path / "old")
    cm = start_cm(loop, lab_pki, old)
    try:
        out = run_link(tmp_path, cm.ports["tls"], old.cert_der, old.cn, lab_pki)
        assert "RESULT refused" in out and "REGISTERED" not in out
        assert "expired" in out.lower(), out
    finally:
        loop.run(cm.stop())


@pytest.mark.parametrize("behaviour", ["close", "plain-sccp"])
def test_server_refusing_tls_is_refused(lab_pki, tmp_path, behaviour):
    """A server that closes at once, or answers in plain SCCP: no session, clear reason."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def serve() -> None:
        c, _ = srv.accept()
        if behaviour == "plain-sccp":
            c.recv(4096)
            c.sendall(b"\x04\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00")  # KeepAliveAck, plain
        c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        out = run_link(tmp_path, port, lab_pki.ccm.cert_der, lab_pki.ccm.cn, lab_pki, "connect")
        assert "RESULT refused" in out and "RESULT ok" not in out, out
    finally:
        srv.close()
        t.join(5)


def test_reasons_name_the_certificate(loop, lab_pki, tmp_path):
    """The refusal says it is about the certificate, in words, whatever form Mbed TLS used."""
    impostor = labpki.make_identity("srst", "SRST", cn=lab_pki.srst.cn).write(tmp_path / "imp2")
    cm = start_cm(loop, lab_pki, impostor)
    try:
        out = run_link(tmp_path, cm.ports["tls"], lab_pki.srst.cert_der, lab_pki.srst.cn, lab_pki,
                       "connect")
        line = [ln for ln in out.splitlines() if ln.startswith("RESULT")][0]
        assert "certificate" in line.lower() or "signed" in line.lower(), line
        assert "OSError -" not in line, line
    finally:
        loop.run(cm.stop())
