# The SCCP signalling link: phone.link's TLS session (the connectivity half) speaking SCCP,
# the protocol half: framing and messages from phone.sccp, the Register the phone sends, the
# KeepAlive of the dead-peer rule, what the phone answers and shows. The contract it keeps
# with the agent (and a SIP link beside it would keep too): docs/signalling.md.
import struct
import sys

from micropython import const

from phone import clock, sccp
from phone.link import CONNECTING, DOWN, REGISTERING, Link, LinkError

_KEEP = const(256)           # body bytes buffered: what a phone reads is <= 112 bytes (ConfigStat)
# The registration dialogue's ids that steady state needs (phone.sccp_lab names them all)
_LINE_STAT_REQ = const(0x000B)
_REGISTER_AVAILABLE_LINES = const(0x002D)
_CONFIG_STAT = const(0x0093)
_MAX_LINES = const(8)
# What the phone reads and shows as a 'display' event (the ids: phone.sccp's table)
_DISPLAYS = (sccp.DISPLAY_TEXT, sccp.DISPLAY_NOTIFY, sccp.DISPLAY_PRI_NOTIFY,
             sccp.DISPLAY_PROMPT_STATUS)


def _drop(name):
    """Unload phone.<name>: a board keeps what it built, not the code that built it."""
    sys.modules.pop('phone.' + name, None)
    pkg = sys.modules.get('phone')
    if pkg is not None and hasattr(pkg, name):
        delattr(pkg, name)


class SccpLink(Link):
    KA = sccp.keepalive()                # prebuilt: the keepalive loop allocates nothing
    KA_ACK = (sccp.KEEPALIVE_ACK,)
    ACK = 'KeepAliveAck'
    _opening = False             # the dialogue's opening (CapabilitiesRes with it) is out

    def registration(owner):
        """Called on the class, once per agent run: what the phone registers as, the
        Register frame (long form: device name, address, device type, MAC, load name) and the
        dialogue's opening (phone.sccpreg.opening()). Their builder, phone.sccpreg, is
        loaded for this and dropped."""
        from phone import sccpreg
        prov = owner.prov
        plat = owner.platform
        try:
            return (sccpreg.register(plat.device_name(), prov.ip or '0.0.0.0',
                                     device_type=plat.profile.get('device_type', sccp.DEVICE_7911),
                                     mac=prov.mac, load_name=owner.cfg.load_name),
                    sccpreg.opening())
        finally:
            sccpreg = None
            _drop('sccpreg')

    def _reading(self, stream):
        return sccp.FrameReader(stream, accept=sccp.PHONE_RX, keep=_KEEP)

    def _on(self, mid, r):
        """One message read (its body: r.body()); returns what to answer, or None."""
        if mid == sccp.KEEPALIVE_ACK:
            pass
        elif mid == sccp.CAPABILITIES_REQ:
            # During a registration the dialogue's opening carries the answer (_registered);
            # a link opened to register is CONNECTING until RegisterAck
            if self.mode != REGISTERING and self.mode != CONNECTING and not self._opening:
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
        mid, body = await self._request(reg[0], (sccp.REGISTER_ACK, sccp.REGISTER_REJECT), ms,
                                        'RegisterAck')
        if mid == sccp.REGISTER_REJECT:
            return 'rejected: ' + sccp.parse_register_reject(body)
        ka, _, sec, _, _ = sccp.parse_register_ack(body)
        return ka, sec

    async def _registered(self, reg):
        """The rest of the registration dialogue (docs/protocols.md, "The registration
        dialogue"): IpPort, CapabilitiesRes (the answer to the CapabilitiesReq that came with
        RegisterAck: _on() leaves it to this write), ButtonTemplateReq, SoftKeyTemplateReq,
        SoftKeySetReq and ConfigStatReq in one write (the opening, built once per run);
        once ConfigStat says how many lines (the server answers in order, so ButtonTemplate
        is in by then), a LineStatReq per line, TimeDateReq and RegisterAvailableLines.
        Two writes, one round trip: a second small write before the server's answer would
        wait for its delayed ACK (Nagle, 40 ms on Linux). A server that does not answer
        ConfigStatReq within ack_timeout_ms: one line."""
        n = 1
        self._opening = True
        try:
            try:
                _, body = await self._request(reg[1], (_CONFIG_STAT,), self.cfg.ack_timeout_ms,
                                              'ConfigStat')
                if len(body) >= 108:
                    n = min(sccp._u32(body, 104), _MAX_LINES)   # numberLines
            except LinkError:
                if self.mode == DOWN:
                    raise
            out = b''
            for i in range(1, n + 1):
                out += sccp.frame(_LINE_STAT_REQ, struct.pack('<I', i))
            await self._send(out + sccp.time_date_req()
                             + sccp.frame(_REGISTER_AVAILABLE_LINES, struct.pack('<I', n)))
        finally:
            self._opening = False

    async def _unregister(self, ms):
        await self._request(sccp.unregister(), (sccp.UNREGISTER_ACK,), ms, 'UnregisterAck')
