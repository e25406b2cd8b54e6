# The first registration after a boot from the store (phone.provision found no TFTP answer:
# the WAN is likely down), on a board that holds a standby session beside the primary. Loaded
# by the Agent for that registration only, then dropped; `self` below is that Agent.
import asyncio
import time

from phone import link as _link


async def run(self):
    """An offline boot (no TFTP answer: the WAN is likely down). The standby session to
    the SRST router opens beside the first call-manager attempt, and the SRST registration
    over it does not wait for that attempt to time out: once the standby is up and the call
    manager has not even completed TCP for boot_race_ms (or its host is one whose TFTP
    answered ICMP host/network unreachable), the attempt is dropped and the phone registers
    with the SRST router (then re-homes through fallback monitoring, as
    after any failover). A call manager that answers TCP is given its whole attempt. True
    once registered with either."""
    t0 = time.ticks_ms()
    host, port, anchor = self.prov.srst
    sb = self.srst = self.link_class(self, 'srst', host, port, anchor)
    down = self.prov.down
    wait = self.cfg.boot_race_ms
    up = asyncio.create_task(_standby(self, sb, t0))
    cm = asyncio.create_task(self._register_primary())
    try:
        while not cm.done():
            t = self._trying
            if sb.mode == _link.STANDBY and t is not None:
                if t.host in down:
                    why = 'its host is unreachable (ICMP to TFTP)'
                elif t._w is None and time.ticks_diff(time.ticks_ms(), t0) >= wait:
                    why = 'no TCP answer in %d ms' % wait
                else:
                    why = None
                if why:
                    cm.cancel()
                    self._trying = None
                    await t.close('boot race')
                    return await self._register_srst('call manager: ' + why, t0)
            await asyncio.sleep_ms(20)
        if await cm:
            return True
        await up                            # bounded by connect_timeout_ms
        return (sb.mode == _link.STANDBY and
                await self._register_srst('no call manager reachable', t0))
    finally:
        cm.cancel()
        self._trying = None

async def _standby(self, sb, t0):
    # the keeper's connect, with its events; the keeper takes over from what is left
    try:
        await sb.connect()
    except (_link.LinkError, MemoryError) as e:
        self.events.emit('standby_failed', host=sb.host, port=sb.port, reason=str(e),
                         retry_ms=self.cfg.retry_min_ms)
        return
    self._sb_up = time.ticks_ms()
    if self.primary is not None:
        sb.standby(self.primary.secondary_keepalive_ms)
    self.events.emit('standby_up', host=sb.host, port=sb.port,
                     ms=time.ticks_diff(time.ticks_ms(), t0), keepalive_s=sb.keepalive_ms // 1000)
