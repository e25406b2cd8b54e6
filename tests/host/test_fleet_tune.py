"""The fleet runner's connect queue (host_tools/mpscripts/fleet_tune.py, limit_connects), run
on the MicroPython unix port with a stand-in `link` module: at most k sessions opening per
server, one server's queue never holds up another's, and a server that does not answer
(a connect timing out before TCP is up) is no longer queued for, those waiting included."""
from __future__ import annotations

import json
import subprocess

from host_tools import MPSCRIPTS, micropython

SCRIPT = r"""
import asyncio, sys, time
sys.path.insert(0, %(dir)r)
import fleet_tune

class LinkError(Exception):
    pass

DOWN = 'DOWN'
active = {}
peak = {}
log = []

class Link:
    def __init__(self, host, port, how):
        self.host, self.port, self.how, self.mode = host, port, how, DOWN
    async def connect(self, timeout_ms=None, ka=True):
        key = self.host
        active[key] = active.get(key, 0) + 1
        peak[key] = max(peak.get(key, 0), active[key])
        try:
            await asyncio.sleep_ms(self.how[1])
            if self.how[0] == 'timeout':
                raise LinkError('timeout')
        finally:
            active[key] -= 1
        log.append((self.host, time.ticks_ms()))
    async def register(self, reg, timeout_ms=None):
        await self.connect(timeout_ms, False)

class Mod:
    pass
link = Mod()
link.Link, link.LinkError, link.DOWN = Link, LinkError, DOWN
fleet_tune.limit_connects(asyncio, link, 2, 60000)

async def one(l, fn):
    t0 = time.ticks_ms()
    try:
        await fn(l)
        return ['ok', time.ticks_diff(time.ticks_ms(), t0)]
    except LinkError as e:
        return [str(e), time.ticks_diff(time.ticks_ms(), t0)]

async def main():
    # 6 sessions to a server answering in 100 ms (2 at a time: ~300 ms for the last),
    # 8 to one that never answers (each times out after 500 ms), 1 register() to the
    # answering one, all at once
    up = [Link('up', 1, ('ok', 100)) for _ in range(6)]
    dead = [Link('dead', 1, ('timeout', 500)) for _ in range(8)]
    reg = Link('up', 1, ('ok', 100))
    tasks = [asyncio.create_task(one(l, lambda l: l.connect())) for l in up + dead]
    tasks.append(asyncio.create_task(one(reg, lambda l: l.register(None))))
    res = []
    for t in tasks:
        res.append(await t)
    late = Link('dead', 1, ('timeout', 500))
    res.append(await one(late, lambda l: l.connect()))
    print(__import__('json').dumps({'res': res, 'peak': peak}))

asyncio.run(main())
"""


def test_connect_queue_per_server_and_none_for_a_silent_one(tmp_path) -> None:
    script = tmp_path / "q.py"
    script.write_text(SCRIPT % {"dir": str(MPSCRIPTS)})
    out = subprocess.run(micropython.command([str(script)], heap="2M"), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    res, peak = got["res"], got["peak"]
    up, dead, reg, late = res[:6], res[6:14], res[14], res[15]
    assert peak["up"] == 2                          # k sessions opening at a time
    assert all(r[0] == "ok" for r in up) and reg[0] == "ok"
    # the answering server's queue drained at its own pace (7 sessions, 2 at a time,
    # 100 ms each): the silent server's 500 ms timeouts held none of them up
    assert max(r[1] for r in up + [reg]) < 480, res
    assert all(r[0] == "timeout" for r in dead)
    # the first two timed out holding slots; the six queued behind them then went at once,
    # without a slot: every one done by ~1 s, not 4 x 500 ms
    assert max(r[1] for r in dead) < 1300, res
    # 2 with slots, then the 6 let go together (the second slot's own timeout may end a
    # moment after the first let them go: 7 at once then)
    assert 6 <= peak["dead"] <= 8, peak
    # a later connect to the silent server is not queued either
    assert late[0] == "timeout" and late[1] < 700


POLL_SCRIPT = r"""
import io, select, sys
from asyncio import core
sys.path.insert(0, %(dir)r)
if %(reserve)r:
    import fleet_tune
    fleet_tune.reserve_pollfds(64)

class NoFd(io.IOBase):                 # pollable without a descriptor, as a TLS socket is
    def ioctl(self, req, arg):
        if req == 3:                   # MP_STREAM_POLL: readable
            return arg & select.POLLIN
        return -1                      # MP_STREAM_GET_FILENO: none

p = core._io_queue.poller
obj = NoFd()
p.register(obj, select.POLLIN)
for fd in range(40):                   # then descriptors enough to grow the pollfd array
    p.register(fd, select.POLLIN)
for fd in range(40):
    p.unregister(fd)
print([ev for s, ev in p.ipoll(0) if s is obj])
"""


def test_reserved_pollfds_keep_an_object_without_descriptor_polled(tmp_path) -> None:
    """The unix port's poll re-bases a descriptor-less object's NULL pollfd pointer when its
    descriptor array moves to grow: the object is then lost (here) or read through a wild
    pointer (a fleet's SIGSEGV). fleet_tune.reserve_pollfds sizes the array first."""
    def run(reserve: bool) -> str:
        script = tmp_path / f"p{int(reserve)}.py"
        script.write_text(POLL_SCRIPT % {"dir": str(MPSCRIPTS), "reserve": reserve})
        out = subprocess.run(micropython.command([str(script)], heap="2M"),
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout.strip().splitlines()[-1]
    assert run(True) == "[1]"          # readable, as its ioctl says
