"""The firmware's agent (phone.agent under MicroPython, real TLS with the phone's own
certificate) against the lab's call manager and SRST router simulators in a fault mode
(issue 11, items 5 and 6):

- a call manager that closes the session right after RegisterAck, or sends a 64 KB
  DisplayText and closes: the agent must still be running, and its state must not claim
  PRIMARY on a session that is gone;
- an SRST router presenting a certificate other than the pinned one: the standby tries
  must follow the backoff the events announce (each try at least the previous one's
  retry_ms later), not ~30 tries a second."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from host_tools import fwbuild, micropython, pki as labpki
from host_tools.lab.callmanager import CallManager
from host_tools.lab.srst import SrstRouter
from mp_support import Loop, loop, write_file  # noqa: F401  (loop: a fixture)

MAC = "001122AABBCC"
SCRIPT = Path(__file__).parent / "mp" / "agent_run.py"
SETTINGS = {"probe_after_ms": 1500, "ack_timeout_ms": 1000, "max_missed": 2,
            "connect_timeout_ms": 3000, "register_timeout_ms": 3000,
            "retry_min_ms": 200, "retry_max_ms": 1600, "monitor_s": 60}


@pytest.fixture(scope="module")
def lab_pki(tmp_path_factory) -> labpki.Pki:
    return labpki.make_pki(tmp_path_factory.mktemp("pki"), phone_macs=[MAC])


def run_agent(tmp: Path, p: labpki.Pki, cm: CallManager, srst: SrstRouter | None,
              seconds: float) -> tuple[str, list[dict]]:
    phone = p.phones[MAC]
    args = [str(SCRIPT), str(cm.ports["tls"]), write_file(tmp, "cm.der", p.ccm.cert_der),
            p.ccm.cn, str(srst.ports["tls"]) if srst else "-",
            write_file(tmp, "srst.der", p.srst.cert_der), p.srst.cn,
            write_file(tmp, "phone.der", phone.cert_der),
            write_file(tmp, "phone.key", phone.key_der), str(seconds), json.dumps(SETTINGS)]
    out = subprocess.run(micropython.command(args, heap="512K"), env=fwbuild.environ(),
                         capture_output=True, text=True, timeout=seconds + 60)
    text = out.stdout + out.stderr
    events = []
    for line in out.stdout.splitlines():
        if line.startswith('{"t":'):
            events.append(json.loads(line))
    return text, events


def _cm(loop: Loop, p: labpki.Pki, quirk: str | None = None) -> CallManager:
    cm = CallManager(cert=p.ccm.cert_path, key=p.ccm.key_path, phone_ca=p.capf.cert_der,
                     port=0, devices=[f"SEP{MAC}"], keepalive=5, secondary_keepalive=10)
    loop.run(cm.start())
    if quirk:
        cm.set_quirk(quirk)
    return cm


def _srst(loop: Loop, p: labpki.Pki, ident: labpki.Identity | None = None) -> SrstRouter:
    ident = ident or p.srst
    r = SrstRouter(cert=ident.cert_path, key=ident.key_path, phone_ca=p.capf.cert_der, port=0,
                   keepalive=5, secondary_keepalive=10)
    loop.run(r.start())
    return r


def _run_against(loop: Loop, tmp: Path, p: labpki.Pki, cm: CallManager,
                 srst: SrstRouter | None, seconds: float) -> tuple[str, list[dict]]:
    """run_agent, then stop the servers whatever it did."""
    try:
        return run_agent(tmp, p, cm, srst, seconds)
    finally:
        loop.run(cm.stop())
        if srst is not None:
            loop.run(srst.stop())


def _last_state(events: list[dict]) -> str | None:
    states = [e["state"] for e in events if e["ev"] == "state"]
    return states[-1] if states else None


@pytest.mark.parametrize("quirk", ["close_after_ack", "big_display_close"])
def test_agent_survives_a_server_closing_after_register_ack(loop, lab_pki, tmp_path, quirk):
    cm = _cm(loop, lab_pki, quirk)
    srst = _srst(loop, lab_pki)
    text, events = _run_against(loop, tmp_path, lab_pki, cm, srst, 8)
    assert "Traceback" not in text, text
    assert "ALIVE" in text, text
    assert any(e["ev"] == "quirk" for e in cm.events), "the quirk never fired"
    # The call manager takes the registration and drops it: the phone is with the router,
    # and its last state event says so.
    assert "ALIVE FALLBACK" in text, text
    assert _last_state(events) == "FALLBACK", [e for e in events if e["ev"] == "state"]
    assert [e["device"] for e in srst.events if e["ev"] == "registered"] == [f"SEP{MAC}"]


def test_agent_without_fallback_leaves_primary_and_paces_registrations(loop, lab_pki, tmp_path):
    cm = _cm(loop, lab_pki, "close_after_ack")
    text, events = _run_against(loop, tmp_path, lab_pki, cm, None, 8)
    assert "Traceback" not in text, text
    assert "ALIVE" in text, text
    regs = [e for e in cm.events if e["ev"] == "register_ack"]   # closed before the dialogue
    # Paced by the backoff (200, 400, 800, 1600, 1600 ... ms): about 7 in 8 s; a loop
    # would make one per TLS handshake.
    assert 2 <= len(regs) <= 10, f"{len(regs)} registrations in 8 s"
    assert _last_state(events) in ("TRYING", "PRIMARY")
    retries = [e for e in events if e["ev"] == "retrying"]
    assert retries and all(e["retry_ms"] >= 200 for e in retries), retries


def test_srst_certificate_changed_tries_follow_the_announced_backoff(loop, lab_pki, tmp_path):
    impostor = labpki.make_identity("srst", "SRST", cn=lab_pki.srst.cn).write(tmp_path / "imp")
    cm = _cm(loop, lab_pki)
    srst = _srst(loop, lab_pki, impostor)
    text, events = _run_against(loop, tmp_path, lab_pki, cm, srst, 9)
    assert "Traceback" not in text, text
    assert "ALIVE PRIMARY" in text, text
    fails = [e for e in events if e["ev"] == "standby_failed"]
    # 200+400+800+1600+1600+... ms after the primary registered: 6 to 8 tries in 9 s (the bug
    # made ~30 a second).
    assert 3 <= len(fails) <= 10, f"{len(fails)} standby tries in 9 s"
    assert all("certificate" in (e.get("reason") or "").lower() for e in fails), fails[0]
    want = SETTINGS["retry_min_ms"]
    for e in fails:
        assert e["retry_ms"] == want, [f["retry_ms"] for f in fails]
        want = min(want * 2, SETTINGS["retry_max_ms"])
    for a, b in zip(fails, fails[1:]):
        assert b["t"] - a["t"] >= a["retry_ms"], \
            f"a try {b['t'] - a['t']} ms after one that announced {a['retry_ms']} ms"
    refused = [e for e in srst.events if e["ev"] == "tls_failed"]
    assert len(refused) <= len(fails) + 1, f"{len(refused)} TLS handshakes for {len(fails)} tries"
