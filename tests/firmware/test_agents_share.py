# heap: 256K
# Two Agent objects in one interpreter keep separate state: the premise of a fleet
# (phone/agent.py: "All state lives in the Agent object"; host_tools/fleet runs hundreds per
# process). Both agents run in one asyncio loop against two small SCCP servers on loopback
# (call manager and SRST router: support/fakes.py). TLS is replaced by a
# stand-in SSL module that records which phone identity each context was made with and which
# sockets it wrapped, so the test sees the certificate each connection would present: a
# context shared between phones (a module-level cache keyed without the identity) gives the
# second phone the first one's certificate. One phone then loses its call manager: it fails
# over to the SRST router while the other stays registered, and each event line names its
# phone ("ph").
import json
import time

import asyncio

import fakes
from fakes import Server
from fwtest import CaptureOut, eq, stop_agents
from fwtest import until as _until
from phone import link as _link
from phone import sccp_lab as sccp
from phone.agent import Agent, FALLBACK, PRIMARY
from phone.events import Events
from phone.platform import Platform
from phone.settings import Settings

MAC_A = '02F1EE0000A1'
MAC_B = '02F1EE0000B2'
SETTINGS = {'probe_after_ms': 1500, 'ack_timeout_ms': 1000, 'max_missed': 2,
            'connect_timeout_ms': 3000, 'register_timeout_ms': 3000, 'retry_min_ms': 200,
            'retry_max_ms': 1000}


def _agent(mac, cm, srst, anchor, out, settings):
    p = fakes.provisioned(mac, ('cm', '127.0.0.1', cm.port, anchor),
                          ('127.0.0.1', srst.port, anchor),
                          identity=(b'cert-' + mac.encode(), b'key-' + mac.encode()), monitor_s=120)
    plat = Platform({'name': 'fleet', 'chip': 'unix', 'network': {'kind': 'HOST'}}, mac=p.mac)
    return Agent(plat, p, events=Events(out=out, tag=mac), settings=settings)


def _standing_by(a):
    return a.state == PRIMARY and a.srst is not None and a.srst.mode == _link.STANDBY


def _holds(value, objs):
    """Whether a module-level value is or contains (one level down) one of `objs`."""
    items = [value]
    if isinstance(value, dict):
        items += list(value.values())
    elif isinstance(value, (list, tuple)):
        items += list(value)
    for it in items:
        for o in objs:
            if it is o:
                return True
    return False


async def test_two_agents_keep_separate_state():
    fakes.install()
    cm = await Server().start()
    srst = await Server().start()
    out = CaptureOut()
    settings = Settings(SETTINGS)
    anchor = (b'server-cert', 'lab-server')   # one anchor object for both, as in a fleet
    a = _agent(MAC_A, cm, srst, anchor, out, settings)
    b = _agent(MAC_B, cm, srst, anchor, out, settings)
    tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
    try:
        await _until(lambda: _standing_by(a) and _standing_by(b), 10000, 'both registered + standby')
        eq(sorted(cm.registered), ['SEP' + MAC_A, 'SEP' + MAC_B], 'call manager registrations')
        for x, y in ((a, b), (b, a)):
            assert x.primary is not y.primary and x.srst is not y.srst
            assert x.prov.identity is not y.prov.identity
            for link in (x.primary, x.srst):
                ctx = fakes.context_of(link)
                assert ctx is not None, 'no context wrapped this link'
                eq(ctx.identity, x.prov.identity, 'certificate presented by ' + x.events.tag)
        # The call manager drops phone A only: A fails over, B stays where it is.
        await cm.drop('SEP' + MAC_A)
        await _until(lambda: a.state == FALLBACK, 10000, 'A in FALLBACK')
        await asyncio.sleep_ms(300)
        eq(b.state, PRIMARY, 'B state')
        eq(b.primary.mode, _link.REGISTERED, 'B primary link')
        eq(b.srst.mode, _link.STANDBY, 'B standby link')
        eq(a.srst.mode, _link.REGISTERED, 'A SRST link')
        eq(srst.registered, ['SEP' + MAC_A], 'SRST registrations')
        # Nothing at module level holds either agent or its links.
        import phone.agent
        import phone.sccplink
        # (A's primary is None in FALLBACK: a lost link is dropped, not kept)
        objs = tuple(o for o in (a, b, a.primary, a.srst, b.primary, b.srst) if o is not None)
        for mod in (phone.agent, _link, phone.sccplink, sccp):
            for name in dir(mod):
                assert not _holds(getattr(mod, name), objs), 'module global %s holds an agent' % name
    finally:
        await stop_agents((a, b), tasks)
        cm.close()
        srst.close()
    # One console, two streams: every line names its phone; only A's saw the failover.
    by = {MAC_A: [], MAC_B: []}
    for line in out.lines():
        e = json.loads(line)
        by[e['ph']].append(e)
    for mac in (MAC_A, MAC_B):
        evs = [e['ev'] for e in by[mac]]
        assert 'registered' in evs and 'standby_up' in evs, mac + ': ' + str(evs)
    lost = [e for e in by[MAC_A] if e['ev'] == 'primary_lost']
    eq(len(lost), 1, 'primary_lost of A')
    eq([e for e in by[MAC_B] if e['ev'] == 'primary_lost'], [], 'primary_lost of B')
    srst_regs = [e for e in by[MAC_A] if e['ev'] == 'registered' and e.get('link') == 'srst']
    eq(len(srst_regs), 1, 'A registered with the SRST router')
    assert srst_regs[0]['over_standby'], 'failover over the standby session'
