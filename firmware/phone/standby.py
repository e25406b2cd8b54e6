# A full board's standby half (the profile is not `limited`: it holds a standby TLS session
# to the SRST router beside the primary): the keeper that keeps that session up, and in
# FALLBACK the primary watched with TLS probes, then the re-home over the probe's session.
# The Agent loads this module on such a board only (a limited board has phone.limited
# instead), so neither board carries the other's code; `self` below is that Agent.
import gc
import time

from phone import link as _link
from phone.states import FALLBACK, PRIMARY, REHOME, TRYING, jitter


async def monitor_primary(self):
    monitor_ms = (self.cfg.monitor_s if self.cfg.monitor_s is not None else self.prov.monitor_s) * 1000
    delay = self.cfg.retry_min_ms
    probe = None
    since = None
    srst = self.srst
    while self.running and not self._reset_kind:
        if srst.mode != _link.REGISTERED:
            self.events.emit('srst_lost', reason=srst.reason)
            if probe is not None:
                await probe.close('srst lost')
            self.set_state(TRYING, reason='srst lost')
            return False
        if probe is None or probe.mode == _link.DOWN:
            if since is not None:
                self.events.emit('primary_unstable', reachable_ms=time.ticks_diff(time.ticks_ms(), since))
                since = None
            probe = await _probe(self, delay)
            if probe is None:
                await self._sleep_or_wake(jitter(delay),
                                          cond=lambda: srst.mode != _link.REGISTERED)
                delay = self._grow(delay)
                continue
            delay = self.cfg.retry_min_ms
            since = time.ticks_ms()
            self.events.emit('primary_reachable', cm=probe.cm, monitor_s=monitor_ms // 1000)
            self.set_state(FALLBACK, waiting_ms=monitor_ms)
        left = monitor_ms - time.ticks_diff(time.ticks_ms(), since)
        if left <= 0:
            self._probe = probe
            return True
        await self._sleep_or_wake(left, cond=lambda: (srst.mode != _link.REGISTERED or
                                                     probe.mode == _link.DOWN))
    if probe is not None:
        await probe.close('stopped')
    return False

async def _probe(self, retry_ms=0):
    """Connect (TLS and one keepalive exchange, no registration) to the first call manager
    that answers; the session is then kept open with probes so a flap is seen at once."""
    for name, host, port, anchor in self.prov.call_managers:
        if anchor is None and self.prov.secure:
            continue
        link = self.link_class(self, 'probe', host, port, anchor, name)
        try:
            await link.connect()
        except _link.LinkError as e:
            self.events.emit('probe_failed', cm=name, reason=str(e), retry_ms=retry_ms)
            continue
        return link
    return None

async def rehome(self):
    t0 = time.ticks_ms()
    probe = self._probe
    self._probe = None
    self.set_state(REHOME)
    # Registered over the probe's session, the probe is the primary link (phone.link).
    if not await self._register_primary(over=probe):
        self.set_state(FALLBACK, reason='re-home failed')
        return
    await self.srst.unregister()        # SRST back to standby: the keeper reopens it
    ms = time.ticks_diff(time.ticks_ms(), t0)
    # Heap after a collection at every re-home: a leak per outage shows in the field too.
    gc.collect()
    self.events.emit('rehomed', ms=ms, heap_used=gc.mem_alloc(), heap_free=gc.mem_free())

def _wanted(self):
    return (self.prov.srst is not None and not self._limited and self.state == PRIMARY and
            (self.srst is None or self.srst.mode == _link.DOWN))

async def keeper(self):
    delay = self.cfg.retry_min_ms
    gone = lambda: not _wanted(self)
    while self.running and not self._reset_kind:
        try:
            if not _wanted(self):
                await self._sleep_or_wake(1000, self._kick, cond=lambda: _wanted(self))
                continue
            host, port, anchor = self.prov.srst
            if self._sb_up is not None:
                # The backoff starts again after a standby link that held; one dropped
                # soon after it came up is waited out like a failed try.
                held = time.ticks_diff(time.ticks_ms(), self._sb_up)
                self._sb_up = None
                if held >= self.cfg.retry_max_ms:
                    delay = self.cfg.retry_min_ms
                else:
                    self.events.emit('standby_backoff', host=host, port=port, retry_ms=delay,
                                     reason='standby lost %d ms after it came up' % held)
                    await self._sleep_or_wake(jitter(delay), self._kick, cond=gone)
                    delay = self._grow(delay)
                    continue
            t0 = time.ticks_ms()
            try:
                self.srst = self.link_class(self, 'srst', host, port, anchor)
                await self.srst.connect()
            except (_link.LinkError, MemoryError) as e:
                self.events.emit('standby_failed', host=host, port=port, reason=str(e),
                                 retry_ms=delay)
                await self._sleep_or_wake(jitter(delay), self._kick, cond=gone)
                delay = self._grow(delay)
                continue
            self._sb_up = time.ticks_ms()
            if self.primary is not None:
                self.srst.standby(self.primary.secondary_keepalive_ms)
            self.events.emit('standby_up', host=host, port=port,
                             ms=time.ticks_diff(time.ticks_ms(), t0),
                             keepalive_s=self.srst.keepalive_ms // 1000)
        except Exception as e:
            # A bug here must not end the keeper (nor leave a half-made link behind), and
            # neither may its report: on a heap too full for the event only the event is lost.
            try:
                self.events.emit('agent_error', where='standby', reason=_link.why(e),
                                 retry_ms=delay)
            except MemoryError:
                pass
            l = self.srst
            if l is not None and l.mode != _link.REGISTERED:
                try:
                    await l.close('agent error')
                except Exception:
                    pass
            await self._sleep_or_wake(jitter(delay), self._kick, cond=gone)
            delay = self._grow(delay)
