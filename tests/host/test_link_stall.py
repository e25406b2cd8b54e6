"""A peer that accepts TCP and then says nothing (a middlebox, a hung server, the loopback
lab's blackhole) must not hold the link: the deferred TLS handshake is bounded too."""
from __future__ import annotations

import socket
import subprocess
import threading
from pathlib import Path

from host_tools import fwbuild, micropython, pki as labpki

SCRIPT = Path(__file__).parent / "mp" / "link_check.py"


def test_silent_peer_times_out(tmp_path: Path) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])   # accept, then never answer
            except OSError:
                pass

    th = threading.Thread(target=accept, daemon=True)
    th.start()
    ident = labpki.make_identity("ccm", "CCM", cn="cucm1", key_size=1024)
    (tmp_path / "a.der").write_bytes(ident.cert_der)
    try:
        out = subprocess.run(
            micropython.command([str(SCRIPT), "127.0.0.1", str(srv.getsockname()[1]),
                                 str(tmp_path / "a.der"), "cucm1", "-", "-", "connect"], heap="128K"),
            env=fwbuild.environ(), capture_output=True, text=True, timeout=30)
    finally:
        stop.set()
        th.join(2)
        srv.close()
        for c in held:
            c.close()
    text = out.stdout + out.stderr
    assert "RESULT refused" in text, text
    assert "within" in text, text
