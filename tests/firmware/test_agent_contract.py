# heap: 128K
# The agent against a link that implements the signalling contract (docs/signalling.md) and
# nothing else: no TLS, no socket, no protocol. The agent meets it through its one seam
# (phone.agent.signalling), and must go through its whole story on it: registered with the
# call manager, a standby link to the SRST router, failover over that standby, probes of the
# call manager in FALLBACK, re-home over the probe, standby again; and a Reset obeyed only
# from a server the phone is registered with. phone.sccplink and phone.sccp are never loaded:
# a protocol that keeps the contract (SIP, issue 15) needs nothing more of the agent.
import sys

import asyncio

from fwtest import CaptureOut, eq, events, states, stop_agents, until
from phone import agent as _agent
from phone import link as _link          # the contract's modes and LinkError
from phone.agent import Agent, FALLBACK, PRIMARY
from phone.events import Events
from phone.platform import Platform, parse_mac
from phone.provision import Provisioned
from phone.settings import Settings

CM = '192.0.2.10'
SRST = '198.51.100.1'
SETTINGS = {'retry_min_ms': 100, 'retry_max_ms': 400, 'monitor_s': 1}


class Net:
    """The fake world: which servers answer, and every link made."""
    up = set()
    links = []
    reg = None                 # what registration() made


class FakeLink:
    """A signalling link as the contract has it, over nothing: connect() succeeds when its
    server is up; a server going down fails its links as a dead peer would."""

    @staticmethod
    def registration(owner):
        Net.reg = ('fake', owner.platform.device_name())
        return Net.reg

    def __init__(self, owner, role, host, port, anchor, cm=None):
        self.owner = owner
        self.role = role
        self.host = host
        self.port = port
        self.anchor = anchor
        self.cm = cm
        self.mode = _link.DOWN
        self.reason = None
        self.keepalive_ms = 1000
        self.secondary_keepalive_ms = 1000
        self.probe_after_ms = 0
        self.made_as = role
        self.calls = []
        Net.links.append(self)

    async def connect(self, timeout_ms=None):
        self.calls.append('connect')
        if self.mode != _link.DOWN:
            return None                 # already open: nothing to do
        await asyncio.sleep_ms(1)
        if self.host not in Net.up:
            raise _link.LinkError('no answer from ' + self.host)
        self.mode = _link.STANDBY
        return 1

    async def register(self, reg, timeout_ms=None):
        self.calls.append('register')
        if self.role == 'probe':
            self.role = 'primary'
        assert reg is Net.reg, 'register() given %r, not what registration() made' % (reg,)
        if self.mode == _link.DOWN:     # opened for it: the Register is its first message
            await asyncio.sleep_ms(1)
            if self.host not in Net.up:
                raise _link.LinkError('no answer from ' + self.host)
        elif self.mode != _link.STANDBY:
            raise _link.LinkError('cannot register in mode ' + self.mode)
        await asyncio.sleep_ms(1)
        self.mode = _link.REGISTERED
        self.keepalive_ms = 30000
        self.secondary_keepalive_ms = 45000
        return 30, 45

    async def unregister(self, timeout_ms=None):
        self.calls.append('unregister')
        await self.close('unregistered')

    def standby(self, keepalive_ms):
        self.calls.append('standby')
        self.keepalive_ms = keepalive_ms
        self.probe_after_ms = 0

    async def close(self, reason='closed'):
        self.calls.append('close')
        if self.mode != _link.DOWN:
            self.mode = _link.DOWN
            self.reason = reason

    def fail(self, reason):
        """The peer is gone (what a real link finds out by itself)."""
        if self.mode == _link.DOWN:
            return
        was, self.mode, self.reason = self.mode, _link.DOWN, reason
        self.owner.events.emit('link_down', link=self.role, host=self.host, port=self.port,
                               was=was, reason=reason)
        if was != _link.CONNECTING:
            self.owner.link_down(self, reason)

    def reset(self, kind):
        self.owner.events.emit('reset_requested', link=self.role, kind=kind)
        self.owner.reset_requested(self, kind)


def _down(host):
    Net.up.discard(host)
    for l in Net.links:
        if l.host == host:
            l.fail('closed by peer')


def _live(role):
    return [l for l in Net.links if l.role == role and l.mode != _link.DOWN]


def _make(out):
    p = Provisioned()
    p.ip = '192.0.2.50'
    p.mac = parse_mac('02F1EE0000E5')
    p.call_managers = [('cucm1', CM, 2443, (b'cm-cert', 'cm'))]
    p.srst = (SRST, 2443, (b'srst-cert', 'srst'))
    p.srst_why = None
    p.identity = (b'cert', b'key')
    p.monitor_s = 60
    p.secure = True
    plat = Platform({'name': 'contract', 'chip': 'unix', 'network': {'kind': 'HOST'}},
                    mac=p.mac)
    _agent.signalling = lambda prov: FakeLink       # the seam
    return Agent(plat, p, events=Events(out=out), settings=Settings(SETTINGS))


async def test_agent_on_the_contract_alone():
    Net.up = {CM, SRST}
    Net.links = []
    out = CaptureOut()
    a = _make(out)
    eq(a.link_class, FakeLink, 'the link class the seam chose')
    task = asyncio.create_task(a.run())
    evs = events
    try:
        # Registered with the call manager; the standby link to the SRST router kept at the
        # secondary keepalive the registration gave.
        await until(lambda: a.state == PRIMARY and evs(out, 'standby_up'), 3000, 'standby', out)
        reg = evs(out, 'registered')[0]
        first = [l for l in Net.links if l.made_as == 'primary'][0]
        eq(first.calls[:1], ['register'], 'a link opened to register: Register first')
        eq((reg['link'], reg['cm'], reg['host'], reg['keepalive_s'],
            reg['secondary_keepalive_s']), ('primary', 'cucm1', CM, 30, 45), 'registered')
        sb = a.srst
        eq((sb.role, sb.host, sb.mode), ('srst', SRST, _link.STANDBY), 'standby link')
        eq(sb.calls[:1], ['connect'], 'the standby link: opened with a keepalive')
        eq(sb.keepalive_ms, 45000, 'standby keepalive')
        eq(evs(out, 'standby_up')[0]['keepalive_s'], 45, 'standby_up keepalive_s')
        eq(Net.reg, ('fake', 'SEP02F1EE0000E5'), 'what the phone registers as')
        # A Reset on the standby link is not obeyed.
        sb.reset(2)
        eq(evs(out, 'reset_ignored')[0]['mode'], _link.STANDBY, 'reset_ignored on standby')
        # The call manager dies: failover over the standby link, then probes that fail.
        _down(CM)
        await until(lambda: a.state == FALLBACK, 3000, 'FALLBACK', out)
        srst = evs(out, 'registered')[-1]
        eq((srst['link'], srst['over_standby']), ('srst', True), 'failover over the standby')
        assert a.srst is sb and sb.mode == _link.REGISTERED, sb.mode
        await until(lambda: len(evs(out, 'probe_failed')) >= 2, 3000, 'probes', out)
        # Back: a probe connects and is watched for monitor_s; registered, it is the primary.
        Net.up.add(CM)
        await until(lambda: evs(out, 'rehomed'), 5000, 'rehomed', out)
        eq(evs(out, 'primary_reachable')[0]['cm'], 'cucm1', 'primary_reachable cm')
        p = a.primary
        eq((p.made_as, p.calls[:2]), ('probe', ['connect', 'register']),
           'the probe, re-homed')
        eq(p.cm, 'cucm1', 'the call manager the probe watched')
        eq((p.role, p.mode), ('primary', _link.REGISTERED), 'the primary after re-home')
        eq(sb.calls[-2:], ['unregister', 'close'], 'the SRST link after re-home')
        await until(lambda: len(evs(out, 'standby_up')) >= 2, 3000, 'standby again', out)
        eq(a.srst.mode, _link.STANDBY, 'standby again')
        st = states(out)
        i = st.index(FALLBACK)
        eq(st[i:], [FALLBACK, 'REHOME', PRIMARY], 'states from FALLBACK')
        # A Reset from the server the phone is registered with restarts it.
        restarts = []
        a.platform.reset = lambda: restarts.append(1)
        a.primary.reset(2)
        await asyncio.wait_for_ms(task, 3000)
        eq(len(restarts), 1, 'restarts after a Reset on the registered link')
    finally:
        await stop_agents([a], [task])
    eq([m for m in ('phone.sccp', 'phone.sccplink') if m in sys.modules], [],
       'protocol modules the agent loaded')
