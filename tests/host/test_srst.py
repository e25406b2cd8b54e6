"""The SRST router simulator (standby, fallback registration, re-home) and its credentials
service."""
from __future__ import annotations

import asyncio
import json

import pytest

import host_tools.fw  # noqa: F401
from host_tools.lab import credentials
from host_tools.lab.credentials import CredentialsError, CredentialsService, fetch_router_certificate
from host_tools.lab.srst import SrstRouter
from phone import sccp_lab as sccp  # type: ignore[import-not-found]
from sccp_lab_support import MAC, OTHER, OTHER_MAC, PHONE, make_lab_pki, phone, run, wait_for


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return make_lab_pki(tmp_path_factory)


def router_for(lab, **kw) -> SrstRouter:
    kw.setdefault("ccm_certs", [lab.ccm.cert_der])
    kw.setdefault("credentials_port", 0)
    # as the lab runs it: the router certificate issued by the router's CA, served with it
    return SrstRouter(cert=lab.srst.server_cert, key=lab.srst.key_path,
                      phone_ca=lab.capf.cert_path, port=0, **kw)


def test_standby_then_fallback_then_rehome(lab, tmp_path):
    keylog = tmp_path / "srst.keys"

    async def main():
        async with router_for(lab, keepalive=20, secondary_keepalive=45, keylog=keylog) as r:
            port = r.ports["tls"]
            c = await phone(lab, port, server="srst")
            # standby: KeepAlive only
            for _ in range(2):
                await c.keepalive()
            st = r.status()
            assert st["standby"] == [PHONE] and st["fallback"] == []
            assert st["sessions"][0]["keepalives"] == 2
            # WAN down: the phone registers over the connection it already holds
            ack = await c.register(PHONE, "192.0.2.50")
            assert ack["msg"] == "RegisterAck" and ack["keepalive"] == 20
            await c.expect(sccp.CAPABILITIES_REQ)
            note = await c.expect(sccp.DISPLAY_NOTIFY)
            assert note["text"] == "CM Fallback Service Operating"
            await c.finish_registration()
            await c.keepalive()
            st = r.status()
            assert st["fallback"] == [PHONE] and st["standby"] == []
            reg = next(e for e in r.events if e["ev"] == "registered")
            assert reg["mode"] == "fallback" and reg["src"] == "srst-branch-7"
            # re-home: Unregister, then back to standby keepalives
            await c.send(sccp.unregister())
            assert (await c.expect(sccp.UNREGISTER_ACK))["status"] == sccp.UNREG_OK
            await c.keepalive()
            st = r.status()
            assert st["standby"] == [PHONE] and st["fallback"] == []
            await c.close()
            json.dumps(r.events)

    run(main())
    assert keylog.stat().st_size > 0


def test_two_phones_and_max_phones(lab):
    async def main():
        async with router_for(lab, max_phones=1) as r:
            a = await phone(lab, r.ports["tls"], server="srst")
            b = await phone(lab, r.ports["tls"], mac=OTHER_MAC, server="srst")
            assert (await a.register(PHONE, "192.0.2.50"))["msg"] == "RegisterAck"
            ans = await b.register(OTHER, "192.0.2.51")
            assert ans["msg"] == "RegisterReject" and ans["text"] == "Max Phones Exceeded"
            await a.close()
            await b.close()

    run(main())


def test_phone_must_present_certificate(lab):
    async def main():
        async with router_for(lab) as r:
            with pytest.raises((ConnectionError, asyncio.IncompleteReadError, OSError)):
                c = await phone(lab, r.ports["tls"], mac=None, server="srst")
                await c.keepalive(timeout=3)
            await wait_for(lambda: any(e["ev"] == "tls_failed" for e in r.events))

    run(main())


def test_hang_keeps_tcp_up(lab):
    async def main():
        async with router_for(lab) as r:
            c = await phone(lab, r.ports["tls"], server="srst")
            await c.keepalive()
            r.hang()
            with pytest.raises(asyncio.TimeoutError):
                await c.keepalive(timeout=0.4)
            assert r.status()["standby"] == [PHONE]
            assert r.status()["sessions"][0]["ignored"] == 1
            r.hang(False)
            await c.keepalive()
            await c.close()

    run(main())


def test_credentials_service_answers_the_call_manager(lab):
    async def main():
        async with router_for(lab) as r:
            der = await fetch_router_certificate("127.0.0.1", r.ports["credentials"],
                                                 cert=lab.ccm.cert_path, key=lab.ccm.key_path)
            assert der == lab.srst.cert_der
            # strict mode: verify the server against a known CA and name
            der = await fetch_router_certificate("127.0.0.1", r.ports["credentials"],
                                                 cert=lab.ccm.cert_path, key=lab.ccm.key_path,
                                                 server_ca=lab.srst.cert_der,
                                                 server_hostname=lab.srst.cn)
            assert der == lab.srst.cert_der
            assert r.status()["credentials"] == {"answered": 2, "refused": 0}

    run(main())


def test_credentials_service_refuses_others(lab):
    async def main():
        async with router_for(lab) as r:
            port = r.ports["credentials"]
            # a phone certificate (its CA is not trusted by the service)
            ph = lab.phones[MAC]
            with pytest.raises(CredentialsError):
                await fetch_router_certificate("127.0.0.1", port, cert=ph.cert_path, key=ph.key_path)
            # another self-signed server certificate (the TFTP one)
            with pytest.raises(CredentialsError):
                await fetch_router_certificate("127.0.0.1", port, cert=lab.tftp.cert_path,
                                               key=lab.tftp.key_path)
            # no certificate at all
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=_no_verify_context(), server_hostname="x")
            writer.write(credentials.request())
            with pytest.raises((asyncio.IncompleteReadError, ConnectionError, OSError)):
                await asyncio.wait_for(reader.readexactly(12), 3)
            writer.close()
            await wait_for(lambda: r.status()["credentials"]["refused"] == 3)
            assert r.status()["credentials"]["answered"] == 0

    run(main())


def test_credentials_forbidden_for_trusted_but_not_pinned(lab):
    """A client whose chain verifies (phone CA trusted) but who is not a call manager."""
    async def main():
        svc = CredentialsService(cert=lab.srst.cert_path, key=lab.srst.key_path,
                                 allowed=[lab.ccm.cert_der], port=0,
                                 client_ca=lab.capf.cert_der)
        await svc.start()
        try:
            ph = lab.phones[MAC]
            with pytest.raises(CredentialsError, match="status 2"):
                await fetch_router_certificate("127.0.0.1", svc.port, cert=ph.cert_path,
                                               key=ph.key_path)
            der = await fetch_router_certificate("127.0.0.1", svc.port, cert=lab.ccm.cert_path,
                                                 key=lab.ccm.key_path)
            assert der == lab.srst.cert_der
            assert (svc.answered, svc.refused) == (1, 1)
        finally:
            await svc.stop()

    run(main())


def test_wire_format():
    assert credentials.request() == b"SRCR\x01\x01\x00\x00"
    frame = credentials.response(0, b"\x30\x82")
    assert frame[:12] == b"SRCR\x01\x00\x00\x00\x00\x00\x00\x02"
    assert credentials.parse_response_header(frame[:12]) == (0, 2)
    with pytest.raises(CredentialsError):
        credentials.parse_response_header(b"HTTP/1.1 200")


def test_stop_and_start_again(lab):
    async def main():
        r = router_for(lab)
        await r.start()
        c = await phone(lab, r.ports["tls"], server="srst")
        await c.keepalive()
        await r.stop()
        assert await c.recv(timeout=3) is None          # FIN from the stopped server
        assert not r.status()["running"]
        port = r.ports["tls"]
        await r.start()
        assert r.ports["tls"] == port                    # a restart keeps its port
        c2 = await phone(lab, r.ports["tls"], server="srst")
        await c2.keepalive()
        await c2.close()
        await r.stop()

    run(main())


def _no_verify_context():
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_hung_server_does_not_handshake_new_connections(lab):
    async def main():
        async with router_for(lab) as r:
            r.hang()
            with pytest.raises(asyncio.TimeoutError):
                await phone(lab, r.ports["tls"], server="srst", timeout=0.5)
            r.hang(False)
            c = await phone(lab, r.ports["tls"], server="srst")
            await c.keepalive()
            await c.close()

    run(main())


def test_credentials_service_answers_the_leaf_of_a_ca_issued_router(lab, tmp_path):
    """The router presents its certificate and the router CA; the service answers the router
    certificate alone (what phones pin), also to a call manager whose certificate a CA signed."""
    from host_tools import pki as labpki
    assert lab.srst.chain_path is not None and lab.srst.cert.issuer == lab.srst_ca.cert.subject
    signed = labpki.make_pki(tmp_path, ca_signed=["ccm"])
    assert signed.ccm.cert.issuer == signed.ccm_ca.cert.subject

    async def main():
        async with router_for(lab, ccm_certs=[signed.ccm.cert_der]) as r:
            der = await fetch_router_certificate("127.0.0.1", r.ports["credentials"],
                                                 cert=signed.ccm.server_cert,
                                                 key=signed.ccm.key_path,
                                                 server_ca=lab.srst.cert_der,
                                                 server_hostname=lab.srst.cn)
            assert der == lab.srst.cert_der
            assert r.status()["credentials"] == {"answered": 1, "refused": 0}

    run(main())
