"""The SIP link against a registrar scripted in SIPp, which nobody here wrote: SIPp
(Debian's sip-tester) answers the phone's REGISTER with 423 Interval Too Brief and a
Min-Expires, checks that the phone asks again with that expiry, then answers 503 Service
Unavailable with a Retry-After. Debian's SIPp has no TLS: it listens on TCP behind a TLS
front that holds the call manager's certificate, the one the phone's trust anchor names.
The phone's side is phone.siplink under MicroPython (tests/host/mp/sip_refusal_check.py)."""
from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from mp_support import write_file
from sip_lab_support import tls_front

from host_tools import ROOT, fwbuild, micropython
from host_tools import pki as labpki

MAC = "001122AABBCC"
SIPP = shutil.which("sipp")
SCRIPT = Path(__file__).parent / "mp" / "sip_refusal_check.py"
SCENARIO = ROOT / "tests/host/sipp/registrar_423_503.xml"


def _listening(port: int) -> bool:
    """Something listens on TCP `port` (from /proc: a probe connection would be a peer to
    SIPp)."""
    want = f":{port:04X} "
    with open("/proc/net/tcp") as f:
        return any(want in line and line.split()[3] == "0A" for line in f)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(SIPP is None, reason="SIPp not installed (Debian: sip-tester)")
def test_a_sipp_registrar_s_423_and_503_are_understood(tmp_path: Path) -> None:
    pki = labpki.make_pki(tmp_path / "pki", [MAC])
    sipp_port, front_port = _free_port(), _free_port()
    sipp = subprocess.Popen([SIPP, "-sf", str(SCENARIO), "-t", "t1", "-i", "127.0.0.1",
                             "-p", str(sipp_port), "-m", "1", "-nostdin", "-timeout", "20",
                             "-timeout_error", "-trace_err", "-trace_msg",
                             "-error_file", str(tmp_path / "sipp-errors.log"),
                             "-message_file", str(tmp_path / "sipp-messages.log")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 10
        while not _listening(sipp_port):
            assert sipp.poll() is None and time.monotonic() < deadline, \
                sipp.stdout.read() if sipp.stdout else "SIPp did not start"
            time.sleep(0.05)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.ccm.cert_path, pki.ccm.key_path)
        ready = threading.Event()
        front = threading.Thread(target=tls_front, args=(("127.0.0.1", front_port),
                                                         ("127.0.0.1", sipp_port), ctx, ready),
                                 daemon=True)
        front.start()
        assert ready.wait(5)
        phone = pki.phones[MAC]
        args = [str(SCRIPT), "127.0.0.1", str(front_port),
                write_file(tmp_path, "ccm.der", pki.ccm.cert_der),
                write_file(tmp_path, "phone.der", phone.cert_der),
                write_file(tmp_path, "phone.key", phone.key_der), MAC, "1001", "secret"]
        out = subprocess.run(micropython.command(args, heap="256K"), env=fwbuild.environ(),
                             capture_output=True, text=True, timeout=60)
        text = out.stdout + out.stderr
        rc = sipp.wait(30)
        front.join(5)
    finally:
        if sipp.poll() is None:
            sipp.kill()
            sipp.wait(5)
    log = sipp.stdout.read() if sipp.stdout else ""
    errors = tmp_path / "sipp-errors.log"
    # SIPp saw the second REGISTER with the Min-Expires it asked for (its check_it)
    assert rc == 0, (text, log[-4000:], errors.read_text() if errors.exists() else "")
    # the phone asked again with the registrar's Min-Expires, then took the 503 as a refusal
    # that says when to come back
    assert "EXPIRES 7200" in text, text
    assert "RESULT refused 503 Service Unavailable (retry after 30 s)" in text, text
