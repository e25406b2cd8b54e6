"""Register over the open standby session (issue 16): the agent's SCCP link (phone.link's TLS
under phone.sccplink, running under MicroPython) against the lab's SRST router simulator,
the whole registration dialogue (docs/decisions.md, "Issue 16: register over standby")."""
from __future__ import annotations

import asyncio

from host_tools.lab.srst import Session, SrstRouter
from mp_support import loop  # noqa: F401  (a fixture)
from phone import sccp_lab as sccp  # type: ignore[import-not-found]
from test_link_security import MAC, lab_pki, result_line, run_link  # noqa: F401  (a fixture)


class LateCapabilities(SrstRouter):
    """Sends CapabilitiesReq 50 ms after RegisterAck: it reaches the phone after the
    dialogue's opening (which carries CapabilitiesRes) is out."""

    async def accept_registration(self, s: Session, info: dict, **extra) -> None:
        real, self.say = self.say, self._late
        try:
            await super().accept_registration(s, info, **extra)
        finally:
            self.say = real

    async def _late(self, s: Session, frame: bytes) -> None:
        if sccp.split(frame)[0][0] == sccp.CAPABILITIES_REQ:
            await asyncio.sleep(0.05)
        await SrstRouter.say(self, s, frame)


def _router(loop, p, cls=SrstRouter) -> SrstRouter:
    r = cls(cert=p.srst.cert_path, key=p.srst.key_path, phone_ca=p.capf.cert_der, port=0,
            name=p.srst.cn)
    loop.run(r.start())
    return r


def _registered(r: SrstRouter) -> bool:
    """The router counted the phone registered (the whole dialogue came)."""
    return any(e["ev"] == "registered" and e["device"] == f"SEP{MAC}" for e in r.events)


def _dialogue(r: SrstRouter, times: bool = False) -> list[str]:
    """The phone's last session as the router saw it: "<In"/">Out" (times: "MS <In")."""
    st = r.status()
    s = [x for x in st["sessions"] + st["closed"] if x["device"] == f"SEP{MAC}"][-1]
    return s["dialogue"] if times else [x.split(" ", 1)[1] for x in s["dialogue"]]


def test_the_reader_waits_on_the_tcp_socket_not_the_tls_one(loop, lab_pki, tmp_path):
    """A TLS socket waited on in asyncio's poller makes the unix port poll by ioctl, a 1 ms
    tick at every pass of the scheduler (~25 ms per dialogue before): the link reads what TLS
    holds at once and waits on the TCP socket under it."""
    r = _router(loop, lab_pki)
    try:
        out = run_link(tmp_path, r.ports["tls"], lab_pki.srst.cert_der, lab_pki.srst.cn,
                       lab_pki, action="standby")
        assert "RESULT ok REGISTERED" in out, out
        polled = [ln for ln in out.splitlines() if ln.startswith("POLLED")][0].split()[1:]
        assert "socket" in polled and "SSLSocket" not in polled, out
        assert _registered(r), _dialogue(r)
        assert _dialogue(r)[-2:] == ["<RegisterAvailableLines", ">SetLamp"], _dialogue(r)
    finally:
        loop.run(r.stop())


def test_capabilities_req_during_the_dialogue_is_answered_once(loop, lab_pki, tmp_path):
    """The opening answers the CapabilitiesReq that comes with RegisterAck; one read after the
    opening went out (the reader is fast enough for that now) gets no second answer."""
    r = _router(loop, lab_pki, LateCapabilities)
    try:
        out = run_link(tmp_path, r.ports["tls"], lab_pki.srst.cert_der, lab_pki.srst.cn,
                       lab_pki, action="standby")
        assert "RESULT ok REGISTERED" in out, out
        d = _dialogue(r)
        late = [t for t in _dialogue(r, times=True) if t.endswith(">CapabilitiesReq")]
        assert int(late[0].split()[0]) >= 50, d         # it came after the opening went out
        assert d.count("<CapabilitiesRes") == 1, d
        assert _registered(r), d
    finally:
        loop.run(r.stop())
