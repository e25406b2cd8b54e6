# The SCCP signalling link: phone.link's TLS session (the connectivity half) speaking SCCP,
# the protocol half: framing and messages from phone.sccp, the Register the phone sends, the
# KeepAlive of the dead-peer rule, what the phone answers and shows. The contract it keeps
# with the agent (and a SIP link beside it would keep too): docs/signalling.md.
import sys

from micropython import const

from phone import clock, sccp
from phone.link import Link

_KEEP = const(512)           # body bytes buffered: what a phone reads is < 100 bytes
# What the phone reads and shows as a 'display' event (the ids: phone.sccp's table)
_DISPLAYS = (sccp.DISPLAY_TEXT, sccp.DISPLAY_NOTIFY, sccp.DISPLAY_PRI_NOTIFY,
             sccp.DISPLAY_PROMPT_STATUS)


class SccpLink(Link):
    KA = sccp.keepalive()                # prebuilt: the keepalive loop allocates nothing
    KA_ACK = (sccp.KEEPALIVE_ACK,)
    ACK = 'KeepAliveAck'

    def registration(owner):
        """Called on the class, once per agent run: what the phone registers as, the
        Register frame (long form: device name, address, device type, MAC, load name).
        Its builder, phone.sccpreg, is loaded for this and dropped."""
        from phone import sccpreg
        prov = owner.prov
        plat = owner.platform
        try:
            return sccpreg.register(plat.device_name(), prov.ip or '0.0.0.0',
                                    device_type=plat.profile.get('device_type', sccp.DEVICE_7911),
                                    mac=prov.mac, load_name=owner.cfg.load_name)
        finally:
            sccpreg = None
            sys.modules.pop('phone.sccpreg', None)
            pkg = sys.modules.get('phone')
            if pkg is not None and hasattr(pkg, 'sccpreg'):
                delattr(pkg, 'sccpreg')

    def _reading(self, stream):
        return sccp.FrameReader(stream, accept=sccp.PHONE_RX, keep=_KEEP)

    def _on(self, mid, r):
        """One message read (its body: r.body()); returns what to answer, or None."""
        if mid == sccp.KEEPALIVE_ACK:
            pass
        elif mid == sccp.CAPABILITIES_REQ:
            return sccp.capabilities_res()
        elif mid == sccp.RESET:
            kind = sccp.parse_u32(r.body(), 'Reset')
            self.owner.events.emit('reset_requested', link=self.role, kind=kind)
            self.owner.reset_requested(self, kind)
        elif mid in _DISPLAYS:
            self.owner.events.emit('display', link=self.role,
                                   text=sccp.parse_display(mid, r.body()))
        elif mid == sccp.DEFINE_TIME_DATE:
            # the server's time, over the pinned session: the phone's clock
            clock.define_time_date(r.body(), self.owner.events)
        elif mid == sccp.REGISTER_TOKEN_REJECT:
            self.owner.events.emit('token_reject', link=self.role)
        return None

    async def _register(self, reg, ms):
        """Register -> (keepalive_s, secondary_keepalive_s), or RegisterReject's text."""
        mid, body = await self._request(reg, (sccp.REGISTER_ACK, sccp.REGISTER_REJECT), ms,
                                        'RegisterAck')
        if mid == sccp.REGISTER_REJECT:
            return 'rejected: ' + sccp.parse_register_reject(body)
        ka, _, sec, _, _ = sccp.parse_register_ack(body)
        return ka, sec

    async def _registered(self):
        # The rest of the registration dialogue; CapabilitiesReq is answered by _on().
        await self._send(sccp.button_template_req())
        await self._send(sccp.time_date_req())

    async def _unregister(self, ms):
        await self._request(sccp.unregister(), (sccp.UNREGISTER_ACK,), ms, 'UnregisterAck')
