# The SIP signalling link (issue 15): phone.link's TLS session (the connectivity half) speaking
# SIP over TLS, the protocol half: messages from phone.sip, the REGISTER and its digest from
# phone.sipreg (resident: every refresh is built and answered with it). The same contract as
# phone.sccplink (docs/signalling.md); its choices: docs/decisions.md, "Issue 15: the SIP link".
#
# The keepalive of the dead-peer rule is RFC 5626's CRLF ping, prebuilt and answered by a pong
# (standby sessions, probes, and the registered session's probes after silence). A registered
# session's own keepalive is the REGISTER refresh, sent when it falls due; an unanswered or
# refused refresh is a dead peer.
import time

import asyncio

from phone import sip
from phone.link import REGISTERED, Link, LinkError


def _mac(m):
    return m if isinstance(m, str) else ''.join('%02x' % b for b in m)


class SipLink(Link):
    KA = sip.PING                        # RFC 5626 3.5.1: CRLF CRLF, answered by CRLF
    KA_ACK = (sip.PONG,)
    ACK = 'pong'

    def registration(owner):
        """Called on the class, once per agent run: the first line's phone.sipreg.Reg (its
        Call-ID, tag and CSeq are kept from one REGISTER to the next), with the refresh
        delta and the backup keepalive interval of the cnf's sipStack."""
        from phone import sipreg
        prov = owner.prov
        s = prov.sip
        ln = s['lines'][0]
        plat = owner.platform
        reg = sipreg.Reg(ln['name'], '', prov.ip or '0.0.0.0', 5061, _mac(prov.mac),
                         password=ln.get('authPassword') or '', auth=ln.get('authName'),
                         device=plat.device_name(),
                         expires=s.get('timerRegisterExpires') or 3600)
        reg.host = None                  # the registrar its challenge came from
        reg.delta = s.get('timerRegisterDelta') or 0
        reg.backup = s.get('timerKeepAliveExpires') or 0
        return reg

    def _reading(self, stream):
        self._reg = self._ans = None
        self._asking = False
        self._due = 0                    # ticks when the next refresh is due
        return sip.Reader(stream)

    def _on(self, mid, r):
        """One message read: a request answered (OPTIONS, NOTIFY check-sync: a restart),
        a final answer to our REGISTER kept for _ask(), or a refresh's answer handled here."""
        m = r.msg
        if mid == sip.REQUEST:
            if m.method == 'ACK':
                return None
            if m.method == 'NOTIFY' and m.event == 'check-sync':
                self.owner.events.emit('reset_requested', link=self.role, kind=2)
                self.owner.reset_requested(self, 2)
            elif m.method != 'OPTIONS' and m.method != 'NOTIFY':
                return sip.reply(m, 501, 'Not Implemented')
            return sip.reply(m, 200, 'OK')
        reg = self._reg
        if (mid < 200 or reg is None or m.cseq_method != 'REGISTER' or m.cseq != reg.cseq
                or m.call_id != reg.call_id):
            return None
        if self._asking:
            self._ans = (mid, m.reason, m.granted, m.min_expires, m.retry_after,
                         reg.answer(m) if mid == 401 or mid == 407 else None)
            self._got.set()
        elif self.mode == REGISTERED:    # a refresh's answer
            if mid < 300:
                self._refreshed(m.granted)
            elif mid == 401 or mid == 407 or (mid == 423 and m.min_expires):
                w = reg.answer(m) if mid != 423 else None
                if w is None:
                    if mid == 423:
                        reg.expires = m.min_expires
                    return reg.register()
                self._fail('refresh: ' + w)
            else:
                self._fail('refresh: %d %s' % (mid, m.reason))
        return None

    def _refreshed(self, granted):
        """The refresh time of a granted expiry (seconds): timerRegisterDelta before it
        (Cisco), widened to the dead-peer rule's window so that a refresh's misses fit before
        the binding expires; half the expiry when the cnf has no delta or the expiry is short.
        Returns the interval in seconds."""
        reg = self._reg
        g = granted if granted is not None else reg.expires
        c = self.cfg
        w = (c.probe_after_ms + c.max_missed * c.ack_timeout_ms) // 1000 + 1
        s = g - (reg.delta if reg.delta > w else w) if reg.delta else 0
        if s < g // 2:
            s = g // 2
        if s < 1:
            s = 1
        self._due = time.ticks_add(time.ticks_ms(), s * 1000)
        return s

    async def _ask(self, data, ms):
        """Send a REGISTER, wait for its final answer: (status, reason, granted, min_expires,
        retry_after, the digest's verdict on a 401/407)."""
        self._ans = None
        self._got.clear()
        self._asking = True
        t0 = time.ticks_ms()
        try:
            await self._send(data, ms)
            left = ms - time.ticks_diff(time.ticks_ms(), t0)
            await asyncio.wait_for_ms(self._got.wait(), left if left > 0 else 1)
        except asyncio.TimeoutError:
            raise LinkError('no answer to REGISTER within %d ms' % ms)
        finally:
            self._asking = False
            self._got.clear()                 # taken (or given up): the reader goes on
        if self._ans is None:
            raise LinkError(self.reason or 'connection lost')
        return self._ans

    async def _register(self, reg, ms):
        """REGISTER (answering one digest challenge, and a 423 with its Min-Expires) ->
        (refresh interval s, backup keepalive s), or the refusal as text."""
        self._reg = reg
        self._reader.reg = reg
        if reg.host != self.host:        # another registrar: its own URI and challenge
            self._aim(reg)
        t0 = time.ticks_ms()
        auth = min_exp = 0
        while True:
            left = ms - time.ticks_diff(time.ticks_ms(), t0)
            st, why, granted, mx, retry, verdict = await self._ask(reg.register(),
                                                                   left if left > 0 else 1)
            if (st == 401 or st == 407) and auth < 2 and verdict is None:
                auth += 1
                continue
            if st == 423 and mx and not min_exp:
                min_exp = reg.expires = mx
                continue
            if 200 <= st < 300:
                if granted == 0:
                    return '%d %s, but no expiry granted' % (st, why)
                return (self._refreshed(granted),
                        reg.backup or self.cfg.standby_keepalive_ms // 1000)
            if verdict is not None:
                return verdict
            why = '%d %s' % (st, why)
            if retry is not None:       # no backoff hint in the contract: in the reason
                why += ' (retry after %d s)' % retry
            return why

    async def _registered(self, reg):
        pass                             # SIP: the 200 OK ends the registration

    async def _keepalive(self, now):
        """A registered session's due refresh is its keepalive (answered by a 200 OK, which
        the read loop takes as the peer alive); a probe, and a standby session's keepalive,
        the CRLF ping."""
        if self.mode == REGISTERED and time.ticks_diff(now, self._due) >= 0:
            self._ka_out = True
            self._ka_sent = now
            await self._send(self._reg.register(), self.cfg.ack_timeout_ms)
            return
        await super()._keepalive(now)

    def _aim(self, reg):
        reg.host = self.host
        reg.uri = 'sip:' + self.host
        reg.aor = '<sip:%s@%s>' % (reg.line, self.host)
        reg.challenge = None

    async def _unregister(self, ms):
        # The agent's one Reg is aimed at the registrar it last registered with: after a
        # re-home, the call manager. The router's un-REGISTER goes in the router's terms
        # (its URI, its own challenge), and the Reg is aimed back after it.
        reg = self._reg
        was = None
        if reg.host != self.host:
            was = (reg.host, reg.uri, reg.aor, reg.challenge, reg.nc)
            self._aim(reg)
        t0 = time.ticks_ms()
        try:
            for _ in range(3):
                left = ms - time.ticks_diff(time.ticks_ms(), t0)
                st, why, _, _, _, verdict = await self._ask(reg.register(0),
                                                            left if left > 0 else 1)
                if st < 300:
                    return
                if (st != 401 and st != 407) or verdict is not None:
                    break
            raise LinkError(verdict or '%d %s' % (st, why))
        finally:
            if was:
                reg.host, reg.uri, reg.aor, reg.challenge, reg.nc = was
