# heap: 256K
# timeout: 120
# A `limited` board (profile "limited": true, no PSRAM: one Mbed TLS session of ~20 KB fits in
# the IDF heap beside the MicroPython heap) never holds two TLS sessions, through boot,
# failover, FALLBACK and re-home. The agent runs against small SCCP servers on loopback; TLS is
# replaced by a stand-in whose contexts wrap nothing but count the sessions: at every
# wrap_socket the sessions wrapped before and not yet closed (their socket's fileno() is -1
# once closed) must be none, and a sampler task checks the same every few milliseconds.
# Before the fix the agent opened the standby session to the SRST router beside the primary.
import time

import asyncio

import fakes
from fakes import FakeContext, Owner, Server
from fwtest import CaptureOut, eq, stop_agents
from fwtest import events as _events
from fwtest import states as _states
from fwtest import until as _until
from phone import link as _link
from phone.agent import Agent, FALLBACK, PRIMARY
from phone.events import Events
from phone.platform import Platform
from phone.settings import Settings
from phone.sccplink import SccpLink

MAC = '02F1EE0000D4'
SETTINGS = {'probe_after_ms': 300, 'ack_timeout_ms': 1000, 'max_missed': 2,
            'connect_timeout_ms': 2000, 'register_timeout_ms': 2000, 'retry_min_ms': 100,
            'retry_max_ms': 400, 'monitor_s': 1}
CM_CERT = (b'cm-cert', 'cm')
SRST_CERT = (b'srst-cert', 'srst')


class Sessions:
    most = 0                   # most sessions open at once, seen at a wrap or by the sampler
    over = []                  # how many were open when a second session was wrapped

    @classmethod
    def open(cls):
        return [s for s, _ in FakeContext.wrapped if s.fileno() != -1]

    @classmethod
    def reset(cls):
        cls.most, cls.over = 0, []

    @staticmethod
    def wrapping(sock):
        before = len(Sessions.open())
        if before:
            Sessions.over.append(before)
        Sessions.most = max(Sessions.most, before + 1)


def _agent(cm, srst, out):
    p = fakes.provisioned(MAC, ('cm', '127.0.0.1', cm.port, CM_CERT),
                          ('127.0.0.1', srst.port, SRST_CERT))
    plat = Platform({'name': 'wt32-eth01', 'chip': 'unix', 'network': {'kind': 'HOST'},
                     'limited': True}, mac=p.mac)
    return Agent(plat, p, events=Events(out=out), settings=Settings(SETTINGS))


async def _sampler(stop):
    while not stop:
        Sessions.most = max(Sessions.most, len(Sessions.open()))
        await asyncio.sleep_ms(5)


async def _run(body):
    fakes.install()
    FakeContext.on_wrap = Sessions.wrapping
    Sessions.reset()
    stop = []
    sampler = asyncio.create_task(_sampler(stop))
    try:
        await body()
    finally:
        stop.append(1)
        await asyncio.sleep_ms(10)
        sampler.cancel()
    eq(Sessions.over, [], 'sessions open when another was wrapped')
    eq(Sessions.most, 1, 'most TLS sessions open at once')


async def _with_agent(cm, story):
    """Run `story(agent, cm, srst, out)` with a limited board's agent against the call manager
    `cm` (a fakes.Server not yet started) and an SRST router, counting TLS sessions (_run);
    then stop the agent and both servers."""
    async def body():
        await cm.start()
        srst = await Server().start()
        out = CaptureOut()
        a = _agent(cm, srst, out)
        task = asyncio.create_task(a.run())
        try:
            await story(a, cm, srst, out)
        finally:
            await stop_agents([a], [task])
            await cm.stop()
            await srst.stop()
    await _run(body)


async def test_limited_board_holds_one_session_boot_failover_rehome():
    async def story(a, cm, srst, out):
        # Boot: registered with the call manager, and no standby session beside it.
        await _until(lambda: a.state == PRIMARY, 5000, 'PRIMARY', out)
        await asyncio.sleep_ms(800)         # time enough for a standby keeper to try
        eq(_events(out, 'standby_up'), [], 'standby sessions')
        dis = _events(out, 'standby_disabled')
        eq([e['reason'] for e in dis], ['limited board: one TLS session'], 'standby_disabled')
        eq(a.srst, None, 'SRST link while primary')
        # The call manager goes away: the primary is closed, then the SRST router pinned.
        await cm.stop()
        await _until(lambda: a.state == FALLBACK and a.srst is not None and
                     a.srst.mode == _link.REGISTERED, 8000, 'FALLBACK', out)
        lost = _events(out, 'primary_lost')
        assert 'one TLS session' in lost[0].get('then', ''), lost
        reg = [e for e in _events(out, 'registered') if e['link'] == 'srst']
        eq(len(reg), 1, 'SRST registrations')
        eq(reg[0]['over_standby'], False, 'over_standby')
        assert a.srst.anchor is SRST_CERT, 'the SRST link trusts %r' % (a.srst.anchor,)
        # In FALLBACK the primary is watched without a TLS session: TCP probes fail.
        await _until(lambda: len(_events(out, 'probe_failed')) >= 2, 5000, 'probes', out)
        eq(set(e['how'] for e in _events(out, 'probe_failed')), {'tcp'}, 'probe kind')
        n_wrapped = len(FakeContext.wrapped)
        # Back: reachable for monitor_s (1 s), then SRST unregistered and closed, then the
        # call manager registered.
        await cm.start(cm.port)
        await _until(lambda: _events(out, 'rehomed'), 8000, 'rehomed', out)
        eq(a.state, PRIMARY, 'state after re-home')
        eq(srst.unregisters, 1, 'Unregister sent to the SRST router')
        eq(len(FakeContext.wrapped), n_wrapped + 1, 'sessions opened to re-home')
        r = _events(out, 'primary_reachable')
        eq(r[-1]['how'], 'tcp', 'primary_reachable how')
        st = _states(out)
        i = st.index(FALLBACK)
        eq(st[i:i + 3], [FALLBACK, 'REHOME', PRIMARY], 'states from FALLBACK')
        await asyncio.sleep_ms(500)
        eq(_events(out, 'standby_up'), [], 'standby sessions after re-home')
    await _with_agent(Server(), story)


async def test_limited_rehome_refused_goes_back_to_srst():
    # The call manager answers TCP but rejects the registration: the agent has given up its
    # SRST session for the attempt and must go straight back to the SRST router, with one
    # session at a time, and wait longer before the next attempt.
    async def story(a, cm, srst, out):
        await _until(lambda: a.state == FALLBACK, 5000, 'FALLBACK at boot', out)
        await _until(lambda: _events(out, 'rehome_failed'), 8000, 'rehome_failed', out)
        await _until(lambda: a.state == FALLBACK and a.srst.mode == _link.REGISTERED,
                     5000, 'back in FALLBACK', out)
        eq(len([e for e in _events(out, 'registered') if e['link'] == 'srst']), 2,
           'SRST registrations')
        eq(_events(out, 'rehome_failed')[0]['next_wait_x'], 2, 'next wait factor')
        await _until(lambda: len(_events(out, 'primary_reachable')) >= 2, 3000,
                     'watching again', out)
        eq(_events(out, 'primary_reachable')[1]['monitor_s'], 2,
           'monitor period after a failed re-home')
    await _with_agent(Server('reject'), story)


async def test_close_after_a_failure_returns_with_the_socket_closed():
    # The agent closes the primary and then opens the SRST session; when the primary has
    # already failed (a reset, a missed KeepAliveAck), its socket is closed by a teardown the
    # failure started in the background. close() must wait for it, or the next session is
    # wrapped while the old one is still open.
    async def body():
        srv = await Server().start()
        out = CaptureOut()
        owner = Owner(Events(out=out), Settings(SETTINGS), (b'cert', b'key'))
        link = SccpLink(owner, 'primary', '127.0.0.1', srv.port, CM_CERT)
        try:
            await link.connect()
            sock = FakeContext.wrapped[-1][0]
            link._fail('simulated: no KeepAliveAck')
            await link.close('lost')
            eq(sock.fileno(), -1, 'socket of the failed link after close()')
        finally:
            await link.close('end')
            await srv.stop()
    await _run(body)
