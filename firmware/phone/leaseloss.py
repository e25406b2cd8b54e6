# A lease lost (phone.lease): the address given up and the DHCP client run again from
# DISCOVER. Loaded by the keeper only when that happens and dropped after it, so that the
# renewal, which runs beside a TLS session, does not carry this code in the heap.
import asyncio

from phone import drop


async def lost(k, why):
    """Stop using the address at once: off the interface, links down."""
    ip, k.ip, k.old = k.ip, None, k.ip
    k.ev.emit('dhcp_lost', ip=ip, reason=why, renewals=k.renewals)
    k.plat.drop_lease(ip)
    drop('hw')
    await k.down('address %s lost (%s)' % (ip, why))


async def start_over(k, drive):
    """DISCOVER again, with backoff between rounds, until a lease (drive: phone.lease's,
    passed in rather than imported, so the two modules are no import cycle). False when the
    board restarts for a new address."""
    delay = k.s.retry_min_ms
    got = None
    while got is None:
        from phone import dhcp
        c = k._client(dhcp)
        L = None
        try:
            c._setup()
            L = await drive(c, c.acquiring(k.s.dhcp_timeout_ms))
            if L is not None:
                k.plat.apply_lease(L)
                got = (L.ip, L.server_id, L.lease_s, L.t1_s, L.t2_s, L.acquired_ms)
        finally:
            c.close()
            c = L = dhcp = None
            drop('dhcp', 'dhcpcore', 'hw')
        if got is None:
            k.ev.emit('dhcp_retry', retry_ms=delay)
            await asyncio.sleep_ms(delay)
            delay = min(delay * 2, k.s.retry_max_ms)
    old = k.old
    k.ip, k.sid, k.lease_s, k.t1_s, k.t2_s, k.bound = got
    k.renewals = 0
    if k.ip != old:
        # The Register message, the links' addresses: all built on the old one.
        k.ev.emit('restarting', reason='new address %s (was %s)' % (k.ip, old))
        k.plat.reset()
        return False
    k.up()
    return True
