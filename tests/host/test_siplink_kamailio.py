"""The firmware's SIP link (phone.siplink over phone.link's TLS, under MicroPython) against
the lab's Kamailio registrars (`Lab(protocol="sip")`, loopback mode): a registration at HQ
on a session opened for it (the REGISTER its first message, digest, mutual TLS, the pinned
call manager certificate), a standby session to the branch pinned to the SRST router's
certificate (RFC 5626 CRLF pings, answered by Kamailio), then a registration over that
standby session (failover without a new handshake) and its unregistration. Skipped without
Kamailio."""
from __future__ import annotations

import subprocess
from pathlib import Path

from mp_support import write_file
from sip_lab_support import skip_without_kamailio

from host_tools import fwbuild, micropython
from host_tools import pki as labpki
from host_tools.lab.lab import Lab

MAC = "001122AABBCC"
SCRIPT = Path(__file__).parent / "mp" / "siplink_check.py"


def test_siplink_registers_at_hq_then_over_the_branch_standby(tmp_path):
    skip_without_kamailio()
    pki = labpki.make_pki(tmp_path / "pki", [MAC])
    with Lab(tmp_path / "lab", mode="loopback", macs=[MAC], pki=pki, protocol="sip") as lab:
        line = lab.sip.lines[MAC]  # type: ignore[union-attr]
        hq_host, hq_port = lab.endpoints["sip_callmanager"]
        br_host, br_port = lab.endpoints["sip_srst"]
        phone = pki.phones[MAC]
        args = [str(SCRIPT), hq_host, str(hq_port),
                write_file(tmp_path, "ccm.der", pki.ccm.cert_der), br_host, str(br_port), write_file(tmp_path, "srst.der", pki.srst.cert_der),
                write_file(tmp_path, "phone.der", phone.cert_der),
                write_file(tmp_path, "phone.key", phone.key_der), MAC, line.user, line.password]
        out = subprocess.run(micropython.command(args, heap="256K"), env=fwbuild.environ(),
                             capture_output=True, text=True, timeout=60)
        text = out.stdout + out.stderr
        assert "RESULT ok" in text, text
        assert "HQ REGISTERED" in text, text
        assert "STANDBY STANDBY True" in text and "STANDBY_KEPT STANDBY" in text, text
        # registered over the standby session: the same stream, no new handshake
        assert "BRANCH REGISTERED" in text and text.split("BRANCH REGISTERED")[1].split()[1] \
            == "True", text
        assert "UNREGISTERED DOWN" in text and "DOWNS []" in text, text
        # Kamailio saw the branch registration from the phone's certificate, then its removal
        log = "\n".join(lab.sip.servers["srst"].log_tail(200))  # type: ignore[union-attr]
        assert f"REGISTER {line.user} from" in log and "saved" in log, log
