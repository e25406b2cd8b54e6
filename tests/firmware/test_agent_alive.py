# heap: 256K
# timeout: 120
# The agent never dies and never storms (issue 11, items 5 and 6). The agent runs in one
# asyncio loop against small SCCP servers on loopback with fault modes, TLS replaced by a
# stand-in that wraps nothing (support/fakes.py), so the faults are the server's:
#   - a call manager that closes the session right after RegisterAck (or after a 64 KB
#     DisplayText): the agent must not end, and its state must leave PRIMARY;
#   - a server that closes every connection at once (what a failed TLS verification looks
#     like to the link: the reader fails while the connection is still being made): the tries
#     must follow the announced backoff, not the ~30 ms loop of the wake events;
#   - garbage, a RegisterReject loop, a Reset on a standby link;
#   - anything that escapes the agent is turned into an event and a restart by the supervisor
#     (phone.agent.supervise).
import time

import asyncio

import fakes
from fakes import Server
from fwtest import CaptureOut, eq, stop_agents
from fwtest import events as _events
from fwtest import states as _states
from phone import link as _link
from phone.agent import Agent, FALLBACK, PRIMARY, TRYING
from phone.events import Events
from phone.platform import Platform
from phone.settings import Settings

MAC = '02F1EE0000C3'
SETTINGS = {'probe_after_ms': 1500, 'ack_timeout_ms': 1000, 'max_missed': 2,
            'connect_timeout_ms': 2000, 'register_timeout_ms': 2000, 'retry_min_ms': 100,
            'retry_max_ms': 800, 'monitor_s': 60}


def _agent(cm, srst, out, overrides=None):
    anchor = (b'server-cert', 'lab-server')
    p = fakes.provisioned(MAC, ('cm', '127.0.0.1', cm.port, anchor),
                          ('127.0.0.1', srst.port, anchor) if srst is not None else None)
    plat = Platform({'name': 'alive', 'chip': 'unix', 'network': {'kind': 'HOST'}}, mac=p.mac)
    s = dict(SETTINGS)
    s.update(overrides or {})
    return Agent(plat, p, events=Events(out=out), settings=Settings(s))


async def _run_for(agent, ms):
    """Run the agent for `ms`; returns the exception that ended it early (None: it kept
    running, as it must)."""
    fakes.install()
    task = asyncio.create_task(agent.run())
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < ms:
        await asyncio.sleep_ms(50)
        if task.done():
            break
    died = None
    if task.done():
        try:
            await task
            died = 'ended'
        except Exception as e:
            died = '%s: %s' % (type(e).__name__, e)
    await stop_agents([agent], [task])
    return died


async def _against(cm_mode, srst_mode, ms, prepare=None):
    """Run an agent for `ms` against a call manager in `cm_mode` and an SRST router in
    `srst_mode` (None: no SRST router), closing both after; `prepare(agent)` runs before the
    agent starts. Returns (agent, captured output, call manager, what ended the agent)."""
    cm = await Server(cm_mode).start()
    srst = await Server(srst_mode).start() if srst_mode else None
    out = CaptureOut()
    a = _agent(cm, srst, out)
    if prepare is not None:
        prepare(a)
    try:
        died = await _run_for(a, ms)
    finally:
        cm.close()
        if srst is not None:
            srst.close()
    return a, out, cm, died


def _check_backoff(evs, what, retry_min, retry_max):
    """Each try comes at least the announced retry_ms after the one before (jitter only
    upward), and the announced delays double from retry_min up to retry_max."""
    assert len(evs) >= 3, '%s: only %d tries' % (what, len(evs))
    want = retry_min
    for i, e in enumerate(evs):
        eq(e['retry_ms'], want, '%s #%d announced retry_ms' % (what, i))
        want = min(want * 2, retry_max)
    for a, b in zip(evs, evs[1:]):
        gap = b['t'] - a['t']
        assert gap >= a['retry_ms'], '%s: try %d ms after the previous one, which announced %d ms' % (
            what, gap, a['retry_ms'])


async def test_close_after_register_ack_with_srst():
    a, out, cm, died = await _against('ack_close', 'ok', 3000)
    eq(died, None, 'the agent ended')
    states = _states(out)
    # Each time the call manager takes the registration and drops it, the state says so.
    assert FALLBACK in states, states
    eq(a.state, FALLBACK, 'state after the call manager dropped every registration')
    regs = [e for e in _events(out, 'registered') if e.get('link') == 'srst']
    assert regs, 'never registered with the SRST router'


async def test_close_after_register_ack_without_srst():
    a, out, cm, died = await _against('ack_close', None, 3000)
    eq(died, None, 'the agent ended')
    # The state must not stay PRIMARY on a link that is gone.
    assert a.state != PRIMARY or (a.primary is not None and a.primary.mode == _link.REGISTERED), \
        'state PRIMARY with the primary link ' + (a.primary.mode if a.primary else 'None')
    assert TRYING in _states(out), _states(out)
    # Registrations that last no time are paced by the backoff, not looped: at most one per
    # retry_min in the window (3 s / 100 ms = 30), in practice far fewer.
    assert cm.registers <= 12, '%d registrations in 3 s' % cm.registers


async def test_big_display_then_close():
    a, out, cm, died = await _against('big_display', 'ok', 3000)
    eq(died, None, 'the agent ended')
    eq(a.state, FALLBACK, 'state')


async def _tries_paced(cm_mode, srst_mode, state, event):
    """Against a server that closes every connection at once the agent lives on, stays in
    `state`, and its `event` tries follow the announced backoff: 100+200+400+800+800 ms, 5 or 6
    tries in 3.5 s (the bug made ~100)."""
    a, out, cm, died = await _against(cm_mode, srst_mode, 3500)
    eq(died, None, 'the agent ended')
    eq(a.state, state, 'state')
    tries = _events(out, event)
    assert len(tries) <= 8, '%d %s tries in 3.5 s' % (len(tries), event)
    _check_backoff(tries, event, 100, 800)


async def test_standby_retries_follow_the_announced_backoff():
    await _tries_paced('ok', 'close', PRIMARY, 'standby_failed')


async def test_probe_retries_follow_the_backoff():
    await _tries_paced('close', 'ok', FALLBACK, 'probe_failed')


async def test_trying_retries_follow_the_backoff():
    a, out, cm, died = await _against('close', 'close', 3500)
    eq(died, None, 'the agent ended')
    eq(a.state, TRYING, 'state')
    tries = [e for e in _events(out, 'register_failed') if e.get('link') == 'primary']
    assert len(tries) <= 8, '%d registration rounds in 3.5 s' % len(tries)
    tr = [e for e in _events(out, 'retrying')]
    _check_backoff(tr, 'retrying', 100, 800)


async def test_register_reject_loop_is_paced():
    a, out, cm, died = await _against('reject', 'reject', 3000)
    eq(died, None, 'the agent ended')
    eq(a.state, TRYING, 'state')
    assert cm.registers <= 8, '%d Registers in 3 s' % cm.registers


async def test_garbage_and_reset_on_standby():
    # Garbage from the SRST router breaks the standby link, never the agent; a Reset on a
    # standby link (no registration) is not obeyed: only a server the phone is registered
    # with may restart it.
    for mode in ('garbage', 'reset'):
        a, out, cm, died = await _against('ok', mode, 2000)
        eq(died, None, mode + ': the agent ended')
        eq(a.state, PRIMARY, mode + ': state')
        eq(_events(out, 'restarting'), [], mode + ': restarted')
        assert len(_events(out, 'standby_failed')) + len(_events(out, 'link_down')) <= 12, \
            mode + ': storm'


async def test_unexpected_error_in_a_loop_is_an_event():
    # A bug inside the serve loop (here: the registration frame is unusable) is reported and
    # retried with backoff; the agent goes on.
    calls = []

    def prepare(a):
        real = a._register_primary

        async def broken(over=None):
            calls.append(1)
            if len(calls) <= 2:
                raise TypeError('simulated bug')
            return await real(over)

        a._register_primary = broken

    a, out, cm, died = await _against('ok', None, 2000, prepare)
    eq(died, None, 'the agent ended')
    errs = _events(out, 'agent_error')
    eq(len(errs), 2, 'agent_error events')
    assert 'simulated bug' in errs[0]['reason'], errs[0]
    eq(a.state, PRIMARY, 'state after recovering')


def test_supervisor_restarts_a_crashed_agent():
    from phone import agent
    out = CaptureOut()
    ev = Events(out=out)
    runs = []

    class Crashing:
        def __init__(self):
            runs.append(self)

        async def run(self):
            if len(runs) < 3:
                raise AttributeError("'NoneType' object has no attribute 'write'")

    fed = []

    class Dog:
        def feed(self):
            fed.append(1)

    agent.supervise(Crashing, ev, Settings({'retry_min_ms': 100, 'retry_max_ms': 400}), Dog())
    eq(len(runs), 3, 'agent runs')
    crashes = _events(out, 'agent_crashed')
    eq(len(crashes), 2, 'agent_crashed events')
    assert "attribute 'write'" in crashes[0]['reason'], crashes[0]
    eq([c['restart_ms'] for c in crashes], [100, 200], 'restart backoff')
    assert fed, 'the watchdog was never fed'


async def test_reset_at_every_registration_is_no_reboot_loop():
    # A call manager that sends Reset right after every RegisterAck: the phone obeys (it is
    # registered there) but restarts no sooner than retry_max_ms after the agent started, so
    # such a server cannot reboot it as fast as it boots.
    cm = await Server('reset_ack').start()
    out = CaptureOut()
    a = _agent(cm, None, out, {'retry_max_ms': 1500})
    resets = []
    a.platform.reset = lambda: resets.append(time.ticks_ms())
    t0 = time.ticks_ms()
    fakes.install()
    try:
        await asyncio.wait_for_ms(a.run(), 5000)
    finally:
        cm.close()
    eq(len(resets), 1, 'restarts')
    assert time.ticks_diff(resets[0], t0) >= 1500, 'restarted %d ms after start' % (
        time.ticks_diff(resets[0], t0))
    eq(len(_events(out, 'restart_delayed')), 1, 'restart_delayed events')
    eq(cm.registers, 1, 'registrations')
