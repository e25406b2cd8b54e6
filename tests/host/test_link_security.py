"""The firmware's TLS link (phone.link, running under MicroPython) against real TLS servers
presenting the wrong identity: each is refused with a clear reason, never a plain-text
session. Servers are the lab's call-manager simulator and plain sockets."""
from __future__ import annotations

import hashlib
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from host_tools import fwbuild, micropython, pki as labpki
from host_tools.lab.callmanager import CallManager
from mp_support import Loop, loop, write_file  # noqa: F401  (loop: a fixture)
from net_lab_support import at_clock

MAC = "001122AABBCC"
SCRIPT = Path(__file__).parent / "mp" / "link_check.py"


@pytest.fixture(scope="module")
def lab_pki(tmp_path_factory) -> labpki.Pki:
    return labpki.make_pki(tmp_path_factory.mktemp("pki"), phone_macs=[MAC])


POWER_UP = "2000-01-01 00:00:00"    # an ESP32's clock at every power-up (RTC not set)


def run_link(tmp: Path, port: int, anchor: bytes | None, cn: str, p: labpki.Pki,
             action: str = "register", clock: str | None = None) -> str:
    """Run the link under MicroPython; `clock`: the wall clock the interpreter sees
    (libfaketime), as a board's unset RTC would give it."""
    phone = p.phones[MAC]
    args = [str(SCRIPT), "127.0.0.1", str(port),
            write_file(tmp, "anchor.der", anchor) if anchor is not None else "-", cn,
            write_file(tmp, "phone.der", phone.cert_der),
            write_file(tmp, "phone.key", phone.key_der), action]
    cmd = micropython.command(args, heap="256K")
    env = fwbuild.environ()
    if clock is not None:
        env.update(at_clock(clock))
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    text = out.stdout + out.stderr
    assert "RESULT" in text, text
    if clock is not None:     # the interpreter really saw that clock
        assert f"CLOCK {clock[:4]}" in text, text
    return text


def result_line(out: str) -> str:
    return [ln for ln in out.splitlines() if ln.startswith("RESULT")][0]


def start_cm(loop: Loop, p: labpki.Pki, ident: labpki.Identity,
             chain: Path | None = None) -> CallManager:
    """A call manager presenting `ident` (or the PEM chain file `chain`: leaf first)."""
    cm = CallManager(cert=chain or ident.cert_path, key=ident.key_path, phone_ca=p.capf.cert_der,
                     port=0, devices=[f"SEP{MAC}"])
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


@pytest.mark.parametrize("clock", [None, POWER_UP])
def test_server_with_another_certificate_is_refused(loop, lab_pki, tmp_path, clock):
    # Same CN, different key: exactly what an impostor SRST router would present.
    impostor = labpki.make_identity("srst", "SRST", cn=lab_pki.srst.cn).write(tmp_path / "imp")
    cm = start_cm(loop, lab_pki, impostor)
    try:
        out = run_link(tmp_path, cm.ports["tls"], lab_pki.srst.cert_der, lab_pki.srst.cn, lab_pki,
                       clock=clock)
        line = result_line(out)
        assert line.startswith("RESULT refused") and "REGISTERED" not in out, out
        assert sha(impostor.cert_der) in line and sha(lab_pki.srst.cert_der) in line, line
        assert cm.status()["registered"] == []
    finally:
        loop.run(cm.stop())


def test_the_pin_is_the_certificate_not_its_name(loop, lab_pki, tmp_path):
    """Exact pinning: the bytes decide. A CN given beside the pinned certificate that differs
    from it changes nothing (no host-name check: the same bytes carry the same CN)."""
    cm = start_cm(loop, lab_pki, lab_pki.ccm)
    try:
        out = run_link(tmp_path, cm.ports["tls"], lab_pki.ccm.cert_der, "not-the-cn", lab_pki)
        assert "RESULT ok REGISTERED" in out, out
    finally:
        loop.run(cm.stop())


def test_expired_pinned_certificate_is_accepted(loop, lab_pki, tmp_path):
    """The pin ignores dates (docs/decisions.md): the very certificate the signed trust list
    or config names is trusted until a signed file names another, whatever the clock says."""
    old = labpki.make_identity("ccm", "CCM", cn="cucm-old", expired=True).write(tmp_path / "old")
    cm = start_cm(loop, lab_pki, old)
    try:
        out = run_link(tmp_path, cm.ports["tls"], old.cert_der, old.cn, lab_pki)
        assert "RESULT ok REGISTERED" in out, out
    finally:
        loop.run(cm.stop())


def sha(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()[:12]


def chain_file(tmp: Path, name: str, *idents: labpki.Identity) -> Path:
    p = tmp / name
    p.write_bytes(b"".join(i.cert_pem for i in idents))
    return p


@pytest.fixture(scope="module")
def router_ca(tmp_path_factory):
    """An IOS-CA-like root and two router certificates it issued (same CN, other keys)."""
    d = tmp_path_factory.mktemp("routerca")
    ca = labpki.make_identity("router-ca", "CAPF", cn="srst-branch-7-ca", key_size=2048).write(d)
    leaf = labpki.make_identity("srst", "SRST", cn="srst-branch-7", issuer=ca,
                                key_size=2048).write(d)
    other = labpki.make_identity("srst2", "SRST", cn="srst-branch-7", issuer=ca,
                                 key_size=2048).write(d)
    return ca, leaf, other


def test_self_signed_pin_at_power_up_clock(loop, lab_pki, tmp_path):
    """A board's clock reads 2000-01-01 until something sets it: the pinned (self-signed,
    CUCM-default) certificate is not valid yet by that clock, and the link still comes up."""
    cm = start_cm(loop, lab_pki, lab_pki.ccm)
    try:
        out = run_link(tmp_path, cm.ports["tls"], lab_pki.ccm.cert_der, lab_pki.ccm.cn, lab_pki,
                       clock=POWER_UP)
        assert "RESULT ok REGISTERED" in out, out
    finally:
        loop.run(cm.stop())


def test_define_time_date_sets_the_clock(loop, lab_pki, tmp_path):
    """Registered over the pinned link at a power-up clock: the call manager's DefineTimeDate
    (its answer to TimeDateReq) sets the phone's clock."""
    cm = start_cm(loop, lab_pki, lab_pki.ccm)
    try:
        out = run_link(tmp_path, cm.ports["tls"], lab_pki.ccm.cert_der, lab_pki.ccm.cn, lab_pki,
                       clock=POWER_UP)
        assert "RESULT ok REGISTERED" in out, out
        line = [ln for ln in out.splitlines() if ln.startswith("CLOCKSET")][0]
        year = time.gmtime().tm_year
        assert line.startswith(f"CLOCKSET sccp ({year}, "), out
        assert '"ev":"clock_set"' in out and '"source":"sccp"' in out, out
    finally:
        loop.run(cm.stop())


@pytest.mark.parametrize("clock", [None, POWER_UP])
@pytest.mark.parametrize("send_chain", [True, False])
def test_ca_issued_pin(loop, lab_pki, tmp_path, router_ca, clock, send_chain):
    """A router certificate issued by the router's own CA (as an IOS CA server issues it),
    served with or without its CA, pinned by itself: trusted, at any clock."""
    ca, leaf, _ = router_ca
    chain = chain_file(tmp_path, "chain.pem", leaf, ca) if send_chain else None
    cm = start_cm(loop, lab_pki, leaf, chain)
    try:
        out = run_link(tmp_path, cm.ports["tls"], leaf.cert_der, leaf.cn, lab_pki, clock=clock)
        assert "RESULT ok REGISTERED" in out, out
    finally:
        loop.run(cm.stop())


@pytest.mark.parametrize("clock", [None, POWER_UP])
def test_other_certificate_of_the_same_ca_is_refused(loop, lab_pki, tmp_path, router_ca, clock):
    """Same CA, same CN, another key: refused, and the reason names both certificates."""
    ca, leaf, other = router_ca
    cm = start_cm(loop, lab_pki, other, chain_file(tmp_path, "other.pem", other, ca))
    try:
        out = run_link(tmp_path, cm.ports["tls"], leaf.cert_der, leaf.cn, lab_pki, clock=clock)
        line = result_line(out)
        assert line.startswith("RESULT refused") and "REGISTERED" not in out, out
        assert sha(other.cert_der) in line and sha(leaf.cert_der) in line, line
        assert "CN=srst-branch-7" in line and "pinned" in line, line
        assert cm.status()["registered"] == []
    finally:
        loop.run(cm.stop())


def test_the_ca_itself_is_no_pin(loop, lab_pki, tmp_path, router_ca):
    """Pinning the router's CA does not trust what it issued: only depth 0 counts."""
    ca, leaf, _ = router_ca
    cm = start_cm(loop, lab_pki, leaf, chain_file(tmp_path, "chain2.pem", leaf, ca))
    try:
        out = run_link(tmp_path, cm.ports["tls"], ca.cert_der, ca.cn, lab_pki)
        line = result_line(out)
        assert line.startswith("RESULT refused") and sha(leaf.cert_der) in line, out
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
    """The refusal says, in words, which certificate came and which one is pinned (CN and
    SHA-256 prefix of each), never a bare Mbed TLS code."""
    impostor = labpki.make_identity("srst", "SRST", cn=lab_pki.srst.cn).write(tmp_path / "imp2")
    cm = start_cm(loop, lab_pki, impostor)
    try:
        out = run_link(tmp_path, cm.ports["tls"], lab_pki.srst.cert_der, lab_pki.srst.cn, lab_pki,
                       "connect")
        line = result_line(out)
        assert "certificate CN=%s sha256:%s" % (impostor.cn, sha(impostor.cert_der)) in line, line
        pinned = lab_pki.srst
        assert "pinned CN=%s sha256:%s" % (pinned.cn, sha(pinned.cert_der)) in line, line
        assert "OSError -" not in line, line
    finally:
        loop.run(cm.stop())
