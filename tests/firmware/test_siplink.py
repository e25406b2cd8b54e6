# heap: 256K
# timeout: 60
# phone.siplink, the SIP protocol half of a signalling link, against a small SIP registrar
# written here (phone.sip's Reader on the server side too) on loopback, with fakes' TLS
# stand-in (plain underneath: the faults are the server's; real TLS and a registrar we did not
# write: tests/host/test_siplink_kamailio.py). Register on a session opened for it (the
# REGISTER its first message), the digest challenge answered once, 403/404/423/503 and a
# refused password, the refresh as the registered keepalive and a refused refresh as a dead
# peer, the standby session's CRLF pings and a register() over it (no new session), a silent
# peer, the server's OPTIONS and NOTIFY check-sync, and the unregistration. Then the agent,
# unchanged, over SIP links: registered at HQ, a standby session to the branch, failover over
# it, probes of HQ and the re-home over the probe, the branch back to standby.
import asyncio
import time

import fakes
from fwtest import CaptureOut, eq, events, until
from phone import link as _link
from phone import sip, sipreg
from phone.events import Events
from phone.platform import parse_mac
from phone.settings import Settings
from phone.siplink import SipLink

REALM = 'lab'
NONCE = 'n0nce'


def _head(data):
    i = data.find(b'\r\n\r\n')
    return data[:i + 2].decode()


class Registrar:
    """A SIP registrar on loopback. mode: ok (401 then 200 with `granted`), forbidden (403),
    notfound (404), short (423 Min-Expires 120 below 120 s), busy (503 Retry-After 30),
    silent (no pong, no answer), refuse_refresh (the second 200 is the last: 403 after).
    Records: accepted, first (each session's first bytes: PING or REGISTER), regs (Expires of
    each authorised REGISTER), uris (their Request-URIs), pings."""

    def __init__(self, mode='ok', granted=3600, password='secret'):
        self.mode = mode
        self.granted = granted
        self.password = password
        self.accepted = 0
        self.first = []
        self.regs = []
        self.uris = []
        self.pings = 0
        self.ping_at = []
        self.answers = []
        self.writers = []

    async def start(self, port=0, host='127.0.0.1'):
        return await fakes.listen(self, port, host)

    async def stop(self):
        self.server.close()
        for w in self.writers:
            await fakes.close_writer(w)

    def _answer(self, m, head, code, reason, extra=''):
        out = sip.reply(m, code, reason, tag='srv1')
        self.answers.append(code)
        return out[:-len('Content-Length: 0\r\n\r\n')] + extra.encode() + \
            b'Content-Length: 0\r\n\r\n'

    def _authorised(self, m, head):
        k = head.find('response="')
        if k < 0:
            return False
        got = head[k + 10:head.find('"', k + 10)]
        ch = {'algorithm': 'MD5', 'realm': REALM, 'nonce': NONCE, 'qop': None}
        user = m.to[m.to.find(':') + 1:m.to.find('@')]
        return got == sipreg.digest(ch, user, self.password, 'REGISTER', m.uri)

    def _on_register(self, m, head):
        if self.mode == 'silent':
            return None
        if self.mode == 'forbidden':
            return self._answer(m, head, 403, 'Forbidden')
        if self.mode == 'notfound':
            return self._answer(m, head, 404, 'Not Found')
        if self.mode == 'busy':
            return self._answer(m, head, 503, 'Service Unavailable', 'Retry-After: 30\r\n')
        if not self._authorised(m, head):
            return self._answer(m, head, 401, 'Unauthorized',
                                'WWW-Authenticate: Digest realm="%s", nonce="%s"\r\n'
                                % (REALM, NONCE))
        if self.mode == 'short' and m.expires and m.expires < 120:
            return self._answer(m, head, 423, 'Interval Too Brief', 'Min-Expires: 120\r\n')
        if self.mode == 'refuse_refresh' and len(self.regs) >= 2:
            return self._answer(m, head, 403, 'Forbidden')
        self.regs.append(m.expires)
        self.uris.append(m.uri)
        g = min(m.expires, self.granted)
        k = head.find('\r\nContact: ') + 11          # the phone's Contact, as registrars echo it
        return self._answer(m, head, 200, 'OK', 'Contact: %s;expires=%d\r\n' % (
            head[k:head.find('\r\n', k)], g) if g else '')

    async def serve(self, r, w):
        self.accepted += 1
        self.writers.append(w)
        rd = sip.Reader(r)
        first = True
        try:
            while True:
                mid = await rd.aread()
                if mid < 0:
                    break
                if mid == sip.PONG:          # the client's CRLF ping
                    if first:
                        self.first.append('PING')
                    self.pings += 1
                    self.ping_at.append(time.ticks_ms())
                    if self.mode != 'silent':
                        w.write(b'\r\n')
                elif mid == sip.REQUEST and rd.msg.method == 'REGISTER':
                    if first:
                        self.first.append('REGISTER')
                    out = self._on_register(rd.msg, _head(bytes(rd.body()) + b'\r\n'))
                    if out:
                        w.write(out)
                first = False
                await w.drain()
        except OSError:
            pass                             # the session closed under the read
        finally:
            await fakes.close_writer(w)

    async def send(self, data):
        w = self.writers[-1]
        w.write(data)
        await w.drain()


class Plat:
    profile = {}

    def device_name(self):
        return 'SEP001122AABBCC'


class Owner(fakes.Owner):
    def __init__(self, out, lines=None, **cfg):
        s = {'probe_after_ms': 400, 'ack_timeout_ms': 300, 'max_missed': 2,
             'connect_timeout_ms': 1000, 'register_timeout_ms': 1000}
        s.update(cfg)
        fakes.Owner.__init__(self, Events(out=out), Settings(s), (b'cert', b'key'))
        p = self.prov
        p.ip = '127.0.0.1'
        p.mac = parse_mac('00:11:22:aa:bb:cc')
        p.sip = {'lines': lines or [{'name': '1001', 'authName': '1001',
                                     'authPassword': 'secret'}],
                 'timerRegisterExpires': 3600, 'timerRegisterDelta': 5,
                 'timerKeepAliveExpires': 120}
        self.platform = Plat()


def _link_to(srv, out, role='primary', **cfg):
    owner = Owner(out, **cfg)
    return owner, SipLink(owner, role, '127.0.0.1', srv.port, (b'cm-cert', 'cm'), 'cm1')


async def _with(mode, body, **kw):
    fakes.install()
    srv = await Registrar(mode, **kw).start()
    out = CaptureOut()
    try:
        await body(srv, out)
    finally:
        await srv.stop()


def run(mode, body, **kw):
    asyncio.run(_with(mode, body, **kw))


# -- registration ---------------------------------------------------------------------------
async def _register_opened(srv, out):
    owner, lk = _link_to(srv, out)
    reg = SipLink.registration(owner)
    got = await lk.register(reg)
    eq(lk.mode, _link.REGISTERED)
    eq(srv.first, ['REGISTER'])                  # the REGISTER is the session's first message
    eq(srv.answers, [401, 200])                  # the challenge answered once
    eq(srv.regs, [3600])
    # 3600 granted, timerRegisterDelta 5 below the dead-peer window (0.4 + 2 * 0.3 s, + 1):
    # the refresh 5 s before expiry; the backup keepalive: timerKeepAliveExpires
    eq(got, (3595, 120))
    eq(lk.keepalive_ms, 3595000)
    eq(lk.secondary_keepalive_ms, 120000)
    await lk.unregister()
    eq(lk.mode, _link.DOWN)
    eq(srv.regs, [3600, 0])                      # Expires: 0
    eq(events(out, 'unregister_failed'), [])
    eq(owner.downs, [])


def test_register_with_digest_on_a_session_opened_for_it():
    run('ok', _register_opened)


async def _granted_half(srv, out):
    owner, lk = _link_to(srv, out)
    got = await lk.register(SipLink.registration(owner))
    eq(got[0], 55)                               # 60 granted, timerRegisterDelta 5
    await lk.close()
    owner, lk = _link_to(srv, out)
    owner.prov.sip['timerRegisterDelta'] = None  # no delta in the cnf: half the expiry
    got = await lk.register(SipLink.registration(owner))
    eq(got[0], 30)
    await lk.close()
    owner, lk = _link_to(srv, out, probe_after_ms=20000)
    got = await lk.register(SipLink.registration(owner))
    eq(got[0], 39)               # the dead-peer window (20.6 s, whole seconds, + 1) before
    await lk.close()


def test_the_refresh_time_of_a_granted_expiry():
    run('ok', _granted_half, granted=60)


def _refused(mode, want, **kw):
    async def body(srv, out):
        owner, lk = _link_to(srv, out)
        try:
            await lk.register(SipLink.registration(owner))
            raise AssertionError('registered with a %s registrar' % mode)
        except _link.LinkError as e:
            assert want in str(e), str(e)
        eq(lk.mode, _link.STANDBY)             # a refusal leaves the session
        eq(owner.downs, [])
        await lk.close()
    run(mode, body, **kw)


def test_403_refused_with_the_reason():
    _refused('forbidden', '403 Forbidden')


def test_404_refused_with_the_reason():
    _refused('notfound', '404 Not Found')


def test_503_refused_with_its_retry_after():
    _refused('busy', '503 Service Unavailable (retry after 30 s)')


def test_a_wrong_password_is_refused_once_not_looped():
    _refused('ok', 'credentials for 1001 refused', password='other')


async def _short(srv, out):
    owner, lk = _link_to(srv, out)
    reg = SipLink.registration(owner)
    reg.expires = 60
    await lk.register(reg)
    eq(srv.answers, [401, 423, 200])
    eq(srv.regs, [120])                          # again with Min-Expires
    await lk.close()


def test_423_retried_with_min_expires():
    run('short', _short)


async def _silent(srv, out):
    owner, lk = _link_to(srv, out)
    try:
        await lk.connect(timeout_ms=500)
        raise AssertionError('connected to a registrar that never answers a ping')
    except _link.LinkError as e:
        assert 'no pong' in str(e), str(e)
    eq(lk.mode, _link.DOWN)
    try:
        await lk.register(SipLink.registration(owner))
        raise AssertionError('registered with a registrar that never answers')
    except _link.LinkError as e:
        assert 'no answer to REGISTER' in str(e), str(e)
    eq(lk.mode, _link.DOWN)
    eq(owner.downs, [])                        # a link being made fails by its LinkError


def test_a_silent_registrar():
    run('silent', _silent)


# -- refresh: the registered keepalive --------------------------------------------------------
async def _refresh(srv, out):
    owner, lk = _link_to(srv, out)
    got = await lk.register(SipLink.registration(owner))
    eq(got[0], 1)                                # 2 s granted: refreshed after 1 s
    await until(lambda: len(srv.regs) >= 3, 4000, 'two refreshes', out)
    eq(lk.mode, _link.REGISTERED)
    eq(srv.accepted, 1)
    eq(owner.downs, [])
    await lk.close()


def test_the_refresh_is_the_registered_keepalive():
    run('ok', _refresh, granted=2)


async def _refresh_refused(srv, out):
    owner, lk = _link_to(srv, out)
    await lk.register(SipLink.registration(owner))
    await until(lambda: lk.mode == _link.DOWN, 4000, 'the refused refresh', out)
    eq(owner.downs, [('primary', 'refresh: 403 Forbidden')])
    ev = events(out, 'link_down')
    eq(len(ev), 1)
    eq(ev[0]['reason'], 'refresh: 403 Forbidden')
    await lk.close()


def test_a_refused_refresh_is_a_dead_peer():
    run('refuse_refresh', _refresh_refused, granted=2)


# -- standby and failover over it -------------------------------------------------------------
async def _standby(srv, out):
    owner, lk = _link_to(srv, out, role='srst')
    await lk.connect()
    eq(lk.mode, _link.STANDBY)
    eq(srv.first, ['PING'])                      # a standby session opens with a CRLF ping
    lk.standby(200)
    await until(lambda: srv.pings >= 4, 3000, 'CRLF pings', out)
    eq(srv.regs, [])
    got = await lk.register(SipLink.registration(owner))
    eq(lk.mode, _link.REGISTERED)
    eq(srv.accepted, 1)                          # over the standby session: no new one
    eq(got, (3595, 120))
    await lk.unregister()
    eq(srv.regs, [3600, 0])


def test_standby_pings_then_register_over_the_standby_session():
    run('ok', _standby)


async def _probe_rule(srv, out):
    # a probe session (FALLBACK, the call manager back) is watched with the registered
    # probe rule: a ping after probe_after_ms of silence, not one every retry_min_ms (the
    # call manager's load in FALLBACK, issue 16), and never before it is due
    owner, lk = _link_to(srv, out, role='probe', probe_after_ms=300, retry_min_ms=100,
                         standby_keepalive_ms=30000)
    await lk.connect()
    await asyncio.sleep_ms(1650)
    await lk.close()
    n = len(srv.ping_at)                         # the opening ping, then one per 300 ms
    assert 4 <= n <= 7, (n, srv.ping_at)
    gaps = [time.ticks_diff(b, a) for a, b in zip(srv.ping_at, srv.ping_at[1:])]
    assert min(gaps) >= 290, gaps


def test_a_probe_session_pings_at_the_probe_rule():
    run('ok', _probe_rule)


async def _server_requests(srv, out):
    owner, lk = _link_to(srv, out)
    await lk.register(SipLink.registration(owner))
    opt = ('OPTIONS sip:1001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1;branch=z9hG4bKo\r\n'
           'From: <sip:lab>;tag=a\r\nTo: <sip:1001@127.0.0.1>\r\nCall-ID: o1\r\n'
           'CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n')
    await srv.send(opt.encode())
    await srv.send(opt.replace('OPTIONS', 'NOTIFY').replace('Content-Length',
                   'Event: check-sync\r\nContent-Length').encode())
    await until(lambda: owner.resets, 2000, 'the restart', out)
    eq(owner.resets, [('primary', 2)])
    eq(events(out, 'reset_requested')[0]['kind'], 2)
    eq(lk.mode, _link.REGISTERED)
    await lk.close()


def test_the_servers_options_and_check_sync():
    run('ok', _server_requests)


# -- the seam -------------------------------------------------------------------------------
def test_the_agent_picks_the_sip_link_from_prov_sip_and_loads_no_sccp():
    import sys
    from phone import agent
    p = Owner(CaptureOut()).prov
    eq(agent.signalling(p), SipLink)
    for name in ('phone.sccplink',):   # (phone.sccp, sccpreg: this test's fakes load them)
        assert name not in sys.modules, name + ' loaded by a SIP phone'
    p.sip = None
    eq(agent.signalling(p).__name__, 'SccpLink')


# -- the agent, unchanged, over SIP links -------------------------------------------------------
async def _agent_story():
    from fwtest import states, stop_agents
    from phone.agent import Agent, FALLBACK, PRIMARY
    from phone.platform import Platform
    fakes.install()
    cm = await Registrar('ok').start()
    br = await Registrar('ok').start(host='127.0.0.2')     # the branch: another host
    out = CaptureOut()
    anchor = (b'server-cert', 'lab-server')
    p = fakes.provisioned('001122AABBCC', ('cm', '127.0.0.1', cm.port, anchor),
                          ('127.0.0.2', br.port, anchor))
    p.sip = Owner(out).prov.sip
    p.sip['timerKeepAliveExpires'] = 1            # the standby session's pings: every second
    plat = Platform({'name': 'sip', 'chip': 'unix', 'network': {'kind': 'HOST'}}, mac=p.mac)
    agent = Agent(plat, p, events=Events(out=out), settings=Settings(
        # ack_timeout_ms leaves a loaded CI machine room: a ping answered late is a missed one
        {'probe_after_ms': 1000, 'ack_timeout_ms': 1500, 'max_missed': 2,
         'connect_timeout_ms': 1000, 'register_timeout_ms': 1000, 'retry_min_ms': 100,
         'retry_max_ms': 400, 'monitor_s': 1}))
    eq(agent.link_class, SipLink)
    task = asyncio.create_task(agent.run())
    try:
        await until(lambda: events(out, 'standby_up'), 5000, 'standby to the branch', out)
        eq(agent.state, PRIMARY)
        eq(cm.first, ['REGISTER'])                 # the call manager: registered at once
        eq(br.first, ['PING'])                     # the branch: a standby session
        eq(br.regs, [])
        await until(lambda: br.pings >= 3, 4000, 'standby pings', out)
        await cm.stop()                            # HQ gone: failover over the standby
        await until(lambda: agent.state == FALLBACK, 10000, 'FALLBACK', out)
        eq(br.regs, [3600])
        eq(br.accepted, 1)                         # no new session to the branch
        reg = [e for e in events(out, 'registered') if e['link'] == 'srst']
        eq(len(reg), 1)
        assert PRIMARY in states(out) and states(out)[-1] == FALLBACK, states(out)
        cm.first = []
        await cm.start(cm.port)                    # HQ back: a probe, then the re-home over it
        await until(lambda: agent.state == PRIMARY, 10000, 'the re-home', out)
        eq(cm.first[0], 'PING')                    # the probe's session, proved by a ping
        await until(lambda: len(cm.regs) >= 2, 3000, 'the registration at HQ', out)
        eq(cm.accepted - cm.first.count('PING'), 1)    # the re-home opened no session of its own
        # the branch: unregistered (Expires: 0), then a standby session again
        # the new session's first message is read after its accept: wait for both
        await until(lambda: br.regs[-1:] == [0] and br.accepted == 2 and len(br.first) == 2,
                    3000, 'standby again', out)
        eq(br.first, ['PING', 'PING'])
        # each registrar in its own terms: the branch's un-REGISTER (after the re-home at HQ)
        # names the branch, and the registration is aimed at HQ again after it
        eq(br.uris, ['sip:127.0.0.2', 'sip:127.0.0.2'])
        eq(cm.uris[-1], 'sip:127.0.0.1')
        eq((agent._reg.uri, agent._reg.host), ('sip:127.0.0.1', '127.0.0.1'))
    finally:
        await stop_agents([agent], [task])
        await br.stop()
        await cm.stop()


def test_the_agent_fails_over_to_the_branch_over_its_sip_standby_session():
    asyncio.run(_agent_story())
