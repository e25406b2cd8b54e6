# A `limited` board (profile; no PSRAM: room for one Mbed TLS session) in FALLBACK: the SRST
# registration is the one TLS session, so the primary is watched with plain TCP connects and
# re-homing closes the SRST session before the call manager's opens (docs/failover.md).
# The Agent loads this module only on such a board; `self` below is that Agent.
import asyncio
import gc
import time

from phone import link as _link
from phone.states import FALLBACK, REHOME, TRYING, jitter


async def watch_primary(self):
    """FALLBACK on a limited board. A TLS probe would be a second session, so the primary
    is watched with plain TCP connects to the call manager's TLS port (closed at once),
    every probe_after_ms while it answers, with backoff while it does not. True once it
    has answered for connectionMonitorDuration (longer after re-homes that failed)."""
    monitor_ms = (self.cfg.monitor_s if self.cfg.monitor_s is not None else self.prov.monitor_s) * 1000
    monitor_ms <<= min(self._rh_fails, 3)
    every = self.cfg.probe_after_ms or self.cfg.retry_max_ms
    delay = self.cfg.retry_min_ms
    since = None
    srst = self.srst
    lost = lambda: srst.mode != _link.REGISTERED
    while self.running and not self._reset_kind:
        if lost():
            self.events.emit('srst_lost', reason=srst.reason)
            self.set_state(TRYING, reason='srst lost')
            return False
        cm = why = None
        for name, host, port, anchor in self.prov.call_managers:
            if anchor is None and self.prov.secure:
                continue
            why = await _reach(host, port, self.cfg.connect_timeout_ms)
            if why is None:
                cm = name
                break
        if cm is None:
            if since is not None:
                self.events.emit('primary_unstable',
                                 reachable_ms=time.ticks_diff(time.ticks_ms(), since))
                since = None
            self.events.emit('probe_failed', how='tcp', reason=why or 'no call manager',
                             retry_ms=delay)
            await self._sleep_or_wake(jitter(delay), cond=lost)
            delay = self._grow(delay)
            continue
        delay = self.cfg.retry_min_ms
        if since is None:
            since = time.ticks_ms()
            self.events.emit('primary_reachable', cm=cm, how='tcp', monitor_s=monitor_ms // 1000)
            self.set_state(FALLBACK, waiting_ms=monitor_ms)
        left = monitor_ms - time.ticks_diff(time.ticks_ms(), since)
        if left <= 0:
            return True
        await self._sleep_or_wake(min(left, every), cond=lost)
    return False

async def rehome(self):
    """Unregister from the SRST router (its session closes: the one session is free), then
    TLS + Register with the call manager; if that fails, straight back to the SRST router."""
    t0 = time.ticks_ms()
    self.set_state(REHOME)
    await self.srst.unregister()
    if await self._register_primary():
        self._rh_fails = 0
        ms = time.ticks_diff(time.ticks_ms(), t0)
        gc.collect()
        self.events.emit('rehomed', ms=ms, heap_used=gc.mem_alloc(), heap_free=gc.mem_free())
        return
    self._rh_fails += 1
    self.events.emit('rehome_failed', back_to='srst', next_wait_x=1 << min(self._rh_fails, 3))
    if not await self._register_srst('re-home failed'):
        self.set_state(TRYING, reason='re-home failed')


async def _reach(host, port, timeout_ms):
    """Plain TCP connect to (host, port), closed at once: None when it was accepted, else the
    reason. No TLS session, no asyncio stream: the socket is closed on every path."""
    import socket
    import select
    from errno import EINPROGRESS
    s = None
    try:
        ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        s = socket.socket(ai[0], ai[1], ai[2])
        s.setblocking(False)
        try:
            s.connect(ai[-1])
        except OSError as e:
            if e.args[0] != EINPROGRESS:
                raise
        p = select.poll()
        p.register(s, select.POLLOUT)
        end = time.ticks_add(time.ticks_ms(), timeout_ms)
        while True:
            ev = p.poll(0)
            if ev:
                if ev[0][1] & (select.POLLERR | select.POLLHUP):
                    return 'TCP connect refused'
                return None
            if time.ticks_diff(end, time.ticks_ms()) <= 0:
                return 'no TCP answer within %d ms' % timeout_ms
            await asyncio.sleep_ms(20)
    except Exception as e:
        return _link.why(e)
    finally:
        if s is not None:
            s.close()
