"""The call manager simulator over mutual TLS, driven by a scripted phone that uses the
firmware's own phone.sccp."""
from __future__ import annotations

import asyncio
import json
import socket
import ssl
import xml.etree.ElementTree as ET

import pytest

import host_tools.fw  # noqa: F401
from host_tools.lab import cnfxml
from host_tools.lab.callmanager import CallManager
from host_tools.lab.credentials import CredentialsError
from host_tools.lab.srst import SrstRouter
from phone import sccp_lab as sccp  # type: ignore[import-not-found]
from sccp_lab_support import MAC, OTHER, PHONE, STRANGER_MAC, make_lab_pki, phone, run, wait_for


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return make_lab_pki(tmp_path_factory)


def cm_for(lab, **kw) -> CallManager:
    kw.setdefault("devices", [PHONE, OTHER])
    kw.setdefault("port", 0)
    return CallManager(cert=lab.ccm.cert_path, key=lab.ccm.key_path,
                       phone_ca=lab.capf.cert_path, **kw)


def test_register_over_mutual_tls_and_keepalive(lab, tmp_path):
    events: list[dict] = []
    keylog = tmp_path / "keys.log"

    async def main():
        async with cm_for(lab, keepalive=17, secondary_keepalive=41, keylog=keylog,
                          on_event=events.append) as cm:
            c = await phone(lab, cm.ports["tls"])
            ack = await c.register(PHONE, "192.0.2.50", load_name="SCCP11.test")
            assert ack["msg"] == "RegisterAck"
            assert (ack["keepalive"], ack["secondary_keepalive"]) == (17, 41)
            await c.expect(sccp.CAPABILITIES_REQ)
            await c.finish_registration()
            for _ in range(3):
                assert (await c.keepalive())["msg"] == "KeepAliveAck"
            st = cm.status()
            assert st["registered"] == [PHONE]
            (s,) = st["sessions"]
            assert s["tls"] and s["cert_cn"] == PHONE and s["ready"] and s["keepalives"] == 3
            assert s["ip"] == "192.0.2.50" and s["device_type"] == 307
            # Unregister -> UnregisterAck
            await c.send(sccp.unregister())
            assert (await c.expect(sccp.UNREGISTER_ACK))["status"] == 0
            await wait_for(lambda: cm.status()["registered"] == [])
            await c.close()
            await wait_for(lambda: not cm.sessions)

    run(main())
    names = [e["ev"] for e in events]
    for ev in ("server_up", "connected", "registered", "ready", "unregistered", "disconnected"):
        assert ev in names, names
    reg = next(e for e in events if e["ev"] == "registered")
    assert reg["device"] == PHONE and reg["keepalive"] == 17 and reg["src"] == "cucm1"
    json.dumps(events)  # every event is JSON
    assert "CLIENT_RANDOM" in keylog.read_text() or "CLIENT_HANDSHAKE_TRAFFIC_SECRET" in keylog.read_text()


SKIPPABLE = [(sccp.IP_PORT, "IpPort"), (sccp.CAPABILITIES_RES, "CapabilitiesRes"),
             (sccp.BUTTON_TEMPLATE_REQ, "ButtonTemplateReq"),
             (sccp.SOFT_KEY_TEMPLATE_REQ, "SoftKeyTemplateReq"),
             (sccp.SOFT_KEY_SET_REQ, "SoftKeySetReq"), (sccp.CONFIG_STAT_REQ, "ConfigStatReq"),
             (sccp.LINE_STAT_REQ, "LineStatReq 1"), (sccp.TIME_DATE_REQ, "TimeDateReq")]


@pytest.mark.parametrize("skip,missing", SKIPPABLE, ids=[m for _, m in SKIPPABLE])
def test_phone_that_skips_a_step_is_not_registered(lab, skip, missing):
    """RegisterAck alone is not a registration: the call manager counts the phone when
    RegisterAvailableLines ends a complete dialogue, and says which step is missing."""
    events: list[dict] = []

    async def main():
        async with cm_for(lab, on_event=events.append) as cm:
            c = await phone(lab, cm.ports["tls"])
            assert (await c.register(PHONE, "192.0.2.50"))["msg"] == "RegisterAck"
            await c.finish_registration(skip=(skip,))
            await c.keepalive()
            st = cm.status()
            assert st["registered"] == [] and st["registering"] == {PHONE: [missing]}
            (s,) = st["sessions"]
            assert s["state"] == "registering" and s["missing"] == [missing]
            await c.close()

    run(main())
    bad = [e for e in events if e["ev"] == "dialogue_incomplete"]
    assert bad and bad[0]["missing"] == [missing]
    assert not any(e["ev"] == "registered" for e in events)


def test_dialogue_recorded_and_two_lines(lab):
    async def main():
        async with cm_for(lab, lines=2) as cm:
            c = await phone(lab, cm.ports["tls"])
            await c.register(PHONE, "192.0.2.50")
            assert await c.finish_registration() == 2
            await c.keepalive()
            st = cm.status()
            assert st["registered"] == [PHONE]
            names = [x.split(" ", 1)[1] for x in st["sessions"][0]["dialogue"]]
            assert names[:3] == ["<Register", ">RegisterAck", ">CapabilitiesReq"]
            for want in ("<IpPort", "<CapabilitiesRes", ">ButtonTemplate", ">SoftKeyTemplateRes",
                         ">SoftKeySetRes", ">SelectSoftKeys", ">ConfigStat", ">LineStat",
                         ">DefineTimeDate", "<RegisterAvailableLines", ">SetLamp"):
                assert want in names, (want, names)
            assert names.count("<LineStatReq") == 2
            await c.close()

    run(main())


def test_unknown_device_rejected(lab):
    async def main():
        async with cm_for(lab, devices=[OTHER], match_cert=False) as cm:
            c = await phone(lab, cm.ports["tls"])
            ans = await c.register(PHONE, "192.0.2.50")
            assert ans["msg"] == "RegisterReject" and ans["text"] == "Unknown device"
            assert cm.status()["sessions"][0]["state"] == "rejected"
            await c.close()

    run(main())


def test_certificate_must_match_device_name(lab):
    async def main():
        async with cm_for(lab) as cm:
            c = await phone(lab, cm.ports["tls"])          # certificate of PHONE
            ans = await c.register(OTHER, "192.0.2.51")
            assert ans["text"] == "Certificate mismatch"
            await c.close()

    run(main())


def test_client_without_certificate_refused(lab):
    async def main():
        async with cm_for(lab) as cm:
            with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
                c = await phone(lab, cm.ports["tls"], mac=None)
                # TLS 1.3: the refusal may only show on the first read
                await c.keepalive(timeout=3)
                if await c.recv(timeout=3) is None:
                    raise ConnectionError("closed")
            await wait_for(lambda: any(e["ev"] == "tls_failed" for e in cm.events))
            assert not cm.status()["sessions"]

    run(main())


def test_phone_certificate_from_another_ca_refused(lab):
    async def main():
        # trusting only the SRST certificate as phone CA: the CAPF-issued phone cert fails
        cm = CallManager(cert=lab.ccm.cert_path, key=lab.ccm.key_path,
                         phone_ca=lab.srst.cert_der, port=0)
        async with cm:
            with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
                c = await phone(lab, cm.ports["tls"])
                await c.keepalive(timeout=3)
            await wait_for(lambda: any(e["ev"] == "tls_failed" for e in cm.events))
            reason = next(e for e in cm.events if e["ev"] == "tls_failed")["reason"]
            assert "certificate" in reason.lower() or "CERTIFICATE" in reason

    run(main())


def test_hang_drop_and_reset(lab):
    async def main():
        async with cm_for(lab) as cm:
            c = await phone(lab, cm.ports["tls"])
            await c.register(PHONE, "192.0.2.50")
            await c.finish_registration()
            await c.keepalive()
            cm.hang()
            with pytest.raises(asyncio.TimeoutError):
                await c.keepalive(timeout=0.5)
            assert cm.status()["hung"] and cm.status()["registered"] == [PHONE]   # TCP still up
            cm.hang(False)
            await c.keepalive()
            assert await cm.reset_phone(PHONE, sccp.RESET_RESTART)
            assert (await c.expect(sccp.RESET))["kind"] == 2
            assert await cm.drop_connections() == 1
            with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
                if await c.recv(timeout=3) is None:
                    raise ConnectionError("closed")
            await wait_for(lambda: not cm.sessions)
            assert cm.status()["closed"][-1]["close_reason"] == "dropped"
            await c.close()

    run(main())


def test_keepalive_timeout_and_plain_port(lab):
    async def main():
        async with cm_for(lab, port=None, plain_port=0, keepalive=1, idle_factor=0.4) as cm:
            c = await phone(lab, cm.ports["plain"], tls=False)
            ans = await c.register(PHONE, "192.0.2.50")    # no TLS: no certificate to match
            assert ans["msg"] == "RegisterAck"
            await wait_for(lambda: not cm.sessions, timeout=5)
            assert any(e["ev"] == "keepalive_timeout" for e in cm.events)
            await c.close()

    run(main())


def test_firmware_frame_reader_as_cpython_client(lab):
    """The firmware's FrameReader, under CPython, over a blocking TLS socket."""

    def blocking_phone(port: int) -> list[int]:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cadata=lab.ccm.cert_der)
        ctx.load_cert_chain(lab.phones[MAC].cert_path, lab.phones[MAC].key_path)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=lab.ccm.cn) as tls:
                tls.sendall(sccp.register(PHONE, "192.0.2.50"))
                r = sccp.FrameReader(tls.makefile("rb"), accept=sccp.PHONE_RX)
                got = [r.read()]
                assert sccp.parse_register_ack(r.body())[0] == 30
                got.append(r.read())
                tls.sendall(sccp.keepalive())
                got.append(r.read())
                return got

    async def main():
        async with cm_for(lab) as cm:
            return await asyncio.to_thread(blocking_phone, cm.ports["tls"])

    assert run(main()) == [sccp.REGISTER_ACK, sccp.CAPABILITIES_REQ, sccp.KEEPALIVE_ACK]


def _parse_with_firmware(path):
    try:
        from phone import config as fwconfig  # type: ignore[import-not-found]
    except ImportError:
        return None
    parse_file = getattr(fwconfig, "parse_file", None)
    return parse_file(str(path)) if parse_file else None


def test_cnf_xml_carries_router_certificate(lab, tmp_path):
    async def main():
        router = SrstRouter(cert=lab.srst.cert_path, key=lab.srst.key_path,
                            phone_ca=lab.capf.cert_path, ccm_certs=[lab.ccm.cert_der],
                            port=0, credentials_port=0)
        async with router, cm_for(lab, address="203.0.113.10") as cm:
            srst = cnfxml.SrstRef("branch-7", "192.0.2.1", 2000)
            paths = await cm.write_phone_configs(
                tmp_path, [MAC, STRANGER_MAC], srst=srst,
                credentials=("127.0.0.1", router.ports["credentials"]))
            assert router.status()["credentials"]["answered"] == 1
            return paths

    paths = run(main())
    assert [p.name for p in paths] == [f"SEP{MAC}.cnf.xml", f"SEP{STRANGER_MAC}.cnf.xml"]
    text = paths[0].read_text()
    root = ET.fromstring(text)
    assert root.findtext("deviceSecurityMode") == "3"
    member = root.find("./devicePool/callManagerGroup/members/member")
    assert member is not None and member.get("priority") == "0"
    assert member.findtext("callManager/processNodeName") == "203.0.113.10"
    assert root.findtext("./devicePool/srstInfo/ipAddr1") == "192.0.2.1"
    assert cnfxml.read_srst_certificate(text) == lab.srst.cert_der
    cfg = _parse_with_firmware(paths[0])
    if cfg is not None:   # the firmware's own streaming parser, when it exists
        assert cfg.srst["cert"] == lab.srst.cert_der
        assert cfg.security_mode == 3
        assert cfg.call_managers[0]["host"] == "203.0.113.10"


def test_cnf_xml_without_credentials_service_fails_cleanly(lab, tmp_path):
    async def main():
        async with cm_for(lab) as cm:
            with pytest.raises(CredentialsError):
                await cm.write_phone_configs(tmp_path, [MAC], srst=cnfxml.SrstRef("b", "192.0.2.1"),
                                             credentials=("127.0.0.1", 1))
            assert any(e["ev"] == "srst_cert_failed" for e in cm.events)

    run(main())


MPY_PHONE = r"""
import socket, ssl, sys
from phone import sccp_lab as sccp
ca, cert, key, cn, port = sys.argv[1:6]
def rd(p):
    with open(p, 'rb') as f:
        return f.read()
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations(cadata=rd(ca))
ctx.load_cert_chain(rd(cert), rd(key))
s = socket.socket()
s.connect(socket.getaddrinfo('127.0.0.1', int(port))[0][-1])
tls = ctx.wrap_socket(s, server_hostname=cn)
tls.write(sccp.register('SEP001122AABBCC', '192.0.2.50'))
r = sccp.FrameReader(tls, accept=sccp.PHONE_RX)
mid = r.read()
print('ack', sccp.name(mid), sccp.parse_register_ack(r.body())[0])
print('next', sccp.name(r.read()))
tls.write(sccp.keepalive())
print('ka', sccp.name(r.read()))
tls.close()
"""


def test_micropython_phone_registers(lab, tmp_path):
    """The unix port's Mbed TLS client with the phone certificate, pinned CCM certificate,
    and the firmware's FrameReader over its TLS socket."""
    from host_tools import fwbuild, micropython

    try:
        micropython.interpreter()
    except micropython.MicroPythonNotFound as e:
        pytest.skip(str(e))
    script = tmp_path / "mpy_phone.py"
    script.write_text(MPY_PHONE)
    ph = lab.phones[MAC]

    async def main():
        async with cm_for(lab) as cm:
            proc = await asyncio.create_subprocess_exec(
                *micropython.command([str(script), str(tmp_path / "ccm.der"),
                                      str(ph.cert_path.with_suffix(".der")),
                                      str(ph.key_path.with_suffix("").with_suffix(".key.der")),
                                      lab.ccm.cn, str(cm.ports["tls"])]),
                env=fwbuild.environ(), stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT)
            out, _ = await asyncio.wait_for(proc.communicate(), 30)
            return proc.returncode, out.decode()

    (tmp_path / "ccm.der").write_bytes(lab.ccm.cert_der)
    rc, out = run(main(), timeout=60)
    assert rc == 0, out
    assert "ack RegisterAck 30" in out and "next CapabilitiesReq" in out and "ka KeepAliveAck" in out, out


def test_a_failed_handshake_ends_with_the_alert_a_tls_server_sends(lab):
    """No client certificate (TLS 1.3 and 1.2), another CA's certificate, TLS 1.1: the
    client reads the alert (a reason) and not a bare EOF (issue 18)."""
    import warnings

    def client(ctx: ssl.SSLContext, port: int) -> str:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            try:
                with ctx.wrap_socket(s, server_hostname="cucm") as ss:
                    ss.sendall(b"\0" * 12)
                    return repr(ss.recv(100))
            except (ssl.SSLError, OSError) as e:
                return str(e)

    def ctx(**kw: object) -> ssl.SSLContext:
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.check_hostname, c.verify_mode = False, ssl.CERT_NONE
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            if kw.get("tls11"):
                c.set_ciphers("DEFAULT:@SECLEVEL=0")
                c.minimum_version = c.maximum_version = ssl.TLSVersion.TLSv1_1
        if kw.get("tls12"):
            c.maximum_version = ssl.TLSVersion.TLSv1_2
        if kw.get("cert"):
            c.load_cert_chain(lab.srst.cert_path, lab.srst.key_path)
        return c

    cases = [(ctx(), "certificate required"), (ctx(tls12=True), "handshake failure"),
             (ctx(cert=True), "unknown ca")]
    try:
        ctx(tls11=True)
        cases.append((ctx(tls11=True), "protocol version"))
    except ssl.SSLError:
        pass                                 # this OpenSSL has no TLS 1.1 at all

    async def main():
        async with cm_for(lab) as cm:
            loop = asyncio.get_running_loop()
            for c, alert in cases:
                got = await loop.run_in_executor(None, client, c, cm.ports["tls"])
                assert f"alert {alert}" in got, (alert, got)

    run(main())


MP_CLIENT = """
import socket, sys, tls
ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
ctx.verify_mode = tls.CERT_NONE
s = socket.socket()
s.connect(socket.getaddrinfo("127.0.0.1", int(sys.argv[1]))[0][-1])
try:
    ss = ctx.wrap_socket(s, server_hostname="cucm")
    ss.write(bytes(12))
    print("read", ss.read(10))
except OSError as e:
    print("error", e)
"""


def test_a_board_without_its_identity_reads_the_alert(lab, tmp_path):
    """MicroPython's TLS (Mbed TLS, as on a board) without a client certificate: a fatal
    alert, not a connection closed or a broken pipe (issue 18)."""
    import subprocess
    from host_tools import fwbuild, micropython
    try:
        micropython.command(["-c", "pass"])
    except micropython.MicroPythonNotFound as e:
        pytest.skip(str(e))
    script = tmp_path / "client.py"
    script.write_text(MP_CLIENT)

    async def main():
        async with cm_for(lab) as cm:
            proc = await asyncio.create_subprocess_exec(
                *micropython.command([str(script), str(cm.ports["tls"])]), env=fwbuild.environ(),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            out, _ = await asyncio.wait_for(proc.communicate(), 30)
            return out.decode()

    out = run(main())
    assert "FATAL_ALERT" in out, out
