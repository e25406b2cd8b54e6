# heap: 256K
# timeout: 60
# A heap too full for one allocation must cost an attempt, never a session left behind
# (issue 16, the story at 80 KB: a re-home that met MemoryError in the registration
# dialogue left the probe's session registered and referenced by its own tasks, so every
# probe after it failed for want of that heap and the phone never re-homed):
#   - MemoryError inside a registration: the link is closed, the agent reports it and
#     registers at the next try;
#   - MemoryError while a lost link reports itself: it is torn down and its owner told all
#     the same (only the event is lost);
#   - a wait with no heap for its task still waits: every backoff is a wait, and one that
#     raised would retry at once (the standby keeper logged a million agent_error events in
#     a 75 KB story before);
#   - a registered link's attributes fit the hash table they were made in: one more would
#     grow it by reallocation at the registration, the story's tightest moment.
import time

import asyncio

import fakes
from fakes import Owner, Server
from fwtest import CaptureOut, eq, stop_agents, until
from fwtest import events as _events
from phone import link as _link
from phone.agent import Agent, PRIMARY
from phone.events import Events
from phone.platform import Platform
from phone.sccplink import SccpLink
from phone.settings import Settings

MAC = '02F1EE0000D1'
SETTINGS = {'probe_after_ms': 1500, 'ack_timeout_ms': 1000, 'max_missed': 2,
            'connect_timeout_ms': 2000, 'register_timeout_ms': 2000, 'retry_min_ms': 100,
            'retry_max_ms': 800, 'monitor_s': 60}
_TABLE = 23          # the size MicroPython's instance table has once it holds 18 to 23 names


_ANCHOR = (b'server-cert', 'lab-server')


def _agent(cm_port, srst_port, events):
    """An agent with a call manager and an SRST router on loopback, both pinned to _ANCHOR."""
    p = fakes.provisioned(MAC, ('cm', '127.0.0.1', cm_port, _ANCHOR),
                          ('127.0.0.1', srst_port, _ANCHOR))
    plat = Platform({'name': 'oom', 'chip': 'unix', 'network': {'kind': 'HOST'}}, mac=p.mac)
    return Agent(plat, p, events=events, settings=Settings(SETTINGS))


async def test_a_full_heap_in_the_registration_dialogue_leaves_no_link_behind():
    fakes.install()
    cm = await Server().start()
    srst = await Server().start()
    out = CaptureOut()
    a = _agent(cm.port, srst.port, Events(out=out))
    made = []
    fails = [2]

    class Tight(a.link_class):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(self)

        async def _registered(self, reg):
            if fails[0]:
                fails[0] -= 1
                raise MemoryError('memory allocation failed, allocating 464 bytes')
            await super()._registered(reg)

    a.link_class = Tight
    task = asyncio.create_task(a.run())
    try:
        await until(lambda: a.state == PRIMARY and a.srst is not None and
                    a.srst.mode == _link.STANDBY, 5000, 'registered and standing by', out)
        oom = _events(out, 'out_of_memory')
        eq(len(oom), 2, 'out_of_memory events')
        assert '464 bytes' in oom[0]['reason'], oom[0]
        eq(len(cm.registered), 3, 'Registers the call manager took')
        eq(a._trying, None, 'the link being registered')
        left = [l.role + ' ' + l.mode for l in made
                if l is not a.primary and l is not a.srst and l.mode != _link.DOWN]
        eq(left, [], 'links left open besides the primary and the standby')
        for l in (a.primary, a.srst):
            assert len(l.__dict__) <= _TABLE, '%s link: %d attributes' % (l.role, len(l.__dict__))
    finally:
        await stop_agents([a], [task])
        cm.close()
        srst.close()


class _NoHeapFor(Events):
    """Events whose `link_down` finds no heap (the event's own dict, on a full board)."""

    def emit(self, ev, **fields):
        if ev == 'link_down':
            raise MemoryError('memory allocation failed, allocating 160 bytes')
        return super().emit(ev, **fields)


async def test_a_lost_link_is_torn_down_when_its_event_finds_no_heap():
    fakes.install()
    cm = await Server().start()
    owner = Owner(_NoHeapFor(out=CaptureOut()), Settings(SETTINGS))
    lk = SccpLink(owner, 'srst', '127.0.0.1', cm.port, _ANCHOR)
    try:
        await lk.connect()
        eq(lk.mode, _link.STANDBY, 'mode after connect')
        await cm.stop()                      # the session ends: the reader sees it closed
        await until(lambda: lk.mode == _link.DOWN and lk._w is None, 3000,
                    'torn down after the peer closed')
        eq(owner.downs, [('srst', 'closed by peer')], 'what the owner was told')
        eq(lk._tasks, [], 'tasks left running')
    finally:
        await lk.close()
        cm.close()


async def test_a_wait_with_no_heap_for_its_task_still_waits():
    fakes.install()
    a = _agent(9, 9, Events(out=CaptureOut()))
    a.running = True                # as run() leaves it
    real = asyncio.wait_for_ms
    tries = [0]

    def no_heap(aw, ms):
        tries[0] += 1
        raise MemoryError('memory allocation failed, allocating 200 bytes')

    asyncio.wait_for_ms = no_heap
    try:
        t0 = time.ticks_ms()
        await a._sleep_or_wake(300)
        waited = time.ticks_diff(time.ticks_ms(), t0)
    finally:
        asyncio.wait_for_ms = real
    assert waited >= 300, 'a backoff of 300 ms waited %d ms' % waited
    eq(tries[0], 1, 'waits tried')


class _NoHeapForErrors(Events):
    """Events whose reports of a failed standby find no heap, the first `n` times."""

    def __init__(self, n, **kw):
        super().__init__(**kw)
        self.n = n

    def emit(self, ev, **fields):
        if ev in ('standby_failed', 'agent_error') and self.n:
            self.n -= 1
            raise MemoryError('memory allocation failed, allocating 96 bytes')
        return super().emit(ev, **fields)


async def test_the_standby_keeper_outlives_reports_that_find_no_heap():
    fakes.install()
    cm = await Server().start()
    srst = await Server().start()
    out = CaptureOut()
    a = _agent(cm.port, srst.port, _NoHeapForErrors(4, out=out))
    fails = [2]

    class Flaky(a.link_class):
        async def connect(self, *args, **kw):
            if self.role == 'srst' and fails[0]:
                fails[0] -= 1
                raise _link.LinkError('refused')
            return await super().connect(*args, **kw)

    a.link_class = Flaky
    task = asyncio.create_task(a.run())
    try:
        await until(lambda: a.state == PRIMARY and a.srst is not None and
                    a.srst.mode == _link.STANDBY, 8000, 'standing by after two failed tries', out)
        eq(fails[0], 0, 'standby tries left to fail')
    finally:
        await stop_agents([a], [task])
        cm.close()
        srst.close()
