# The lease keeper (RFC 2131 4.4.5), an asyncio task beside the agent's links, for the lease
# the agent acquired itself: on the unix port, and on ESP32 boards too (provisioning stopped
# the IDF's client and set the lease as a static address, which nothing else renews):
#   BOUND until T1; RENEWING until T2: REQUEST unicast to the server that gave the lease;
#   REBINDING until the lease ends: the REQUEST broadcast; an ACK starts a new lease and the
#   links stay up (same address: nothing to re-register). A NAK, or the end of the lease: the
#   address goes at once (event dhcp_lost), the links are taken down (the agent's TRYING path)
#   and a new DISCOVER starts over, with backoff, until a server answers; the same address
#   back wakes the agent, another one restarts the board (everything built on the old one).
# phone.dhcpcore (a renewal) or phone.leaseloss and phone.dhcp (a loss, DISCOVER again) are
# imported for one exchange and dropped after it (provisioning dropped them too).
# The agent goes further (Agent._keep_lease): it loads this module for one step() at a time
# and drops it while it waits for the next one, holding the keeper's state() (a few plain
# values) and a timer; tests and tools may keep a Keeper and run() it.
import asyncio
import gc
import time

from micropython import const

from phone import drop

_MAX_S = const(432000)      # leases past 5 days are kept as 5-day ones (ticks_diff range)
_FLOOR_MS = const(60000)    # RFC 2131: at least 60 s between REQUESTs ...
_FLOOR_MIN_MS = const(1000)  # ... scaled down for short leases, never below 1 s
_STEP_MS = const(100)       # how often the socket is looked at while an answer is awaited
_SPARE = const(2048)        # a renewal's own objects beyond phone.dhcpcore (client, reply)


def times(lease_s, t1_s=None, t2_s=None):
    """(T1, T2, end) in ms from the start of the lease, or None for an infinite (or
    unstated) one. T1/T2 default to 1/2 and 7/8 of the lease (RFC 2131 4.4.5); values out
    of order (not 0 < T1 < T2 < lease) are replaced by the defaults."""
    if not lease_s or lease_s == 0xFFFFFFFF:
        return None
    end = min(lease_s, _MAX_S) * 1000
    t1 = t1_s * 1000 if t1_s else end // 2
    t2 = t2_s * 1000 if t2_s else end * 7 // 8
    if not 0 < t1 < t2 < end:
        t1, t2 = end // 2, end * 7 // 8
    return t1, t2, end


def floor_ms(end):
    """The least wait between two REQUESTs of a lease `end` ms long: RFC 2131's 60 s,
    scaled to a sixteenth of the lease below 16 minutes (a 2-minute lease: 7.5 s) so a
    short lease still gets several tries, and never below 1 s."""
    return max(_FLOOR_MIN_MS, min(_FLOOR_MS, end // 16))


async def drive(c, g):
    """Run a phone.dhcpcore exchange generator without blocking the event loop: its socket is
    looked at every _STEP_MS until the wait it asked for is over. Returns its result."""
    try:
        ms = next(g)
        while True:
            end = time.ticks_add(time.ticks_ms(), ms)
            ready = c.readable(0)
            while not ready:
                left = time.ticks_diff(end, time.ticks_ms())
                if left <= 0:
                    break
                await asyncio.sleep_ms(min(left, _STEP_MS))
                ready = c.readable(0)
            ms = g.send(ready)
    except StopIteration as e:
        return e.value


def _loss():
    # The loss path is its own module: a renewal, beside a TLS session on a board without
    # PSRAM, has this module and phone.dhcpcore in the heap and no room for code it never runs.
    from phone import leaseloss
    return leaseloss


class Keeper:
    """lease: (ip, server_id, lease_s, t1_s, t2_s, bound_ms) as provisioning handed it on
    (bound_ms: ticks_ms when the REQUEST that got it left), or a keeper's state(). down(reason):
    a coroutine that takes the links down; up(): the address is back. kw: phone.dhcpcore.Client
    options."""

    def __init__(self, plat, lease, events, settings, down, up, **kw):
        self.plat = plat
        self.ip, self.sid, self.lease_s, self.t1_s, self.t2_s, self.bound = lease[:6]
        self.ev = events
        self.s = settings
        self.down = down
        self.up = up
        self.kw = kw
        self.renewals = 0
        self.old = None             # the address lost, while DISCOVER starts over
        self.due = False            # T1 reached (dhcp_bound said): extend at the next step
        self.need = 0               # heap phone.dhcpcore took when it was loaded here
        if len(lease) > 6:
            self.renewals, self.old, self.due, self.bufs, self.need = lease[6:]
        else:
            # The exchange's two buffers, made now and kept for the keeper's life: at a
            # renewal, beside a TLS session, a fragmented heap may have no 1 KB block left
            # (a WT32-ETH01's did not). Loading phone.dhcpcore for their sizes also interns
            # its names now, while there is room for the qstr pool to grow. No room even
            # now: each exchange makes its own, as before.
            self.bufs = None
            try:
                from phone import dhcpcore
                self.bufs = (bytearray(dhcpcore.BUF_SIZE), bytearray(dhcpcore.TX_SIZE))
                dhcpcore = None
                drop('dhcpcore')
                # Loaded again to weigh it (`need`): the first load may also have grown the
                # qstr pool for its names, which a renewal's load never does again.
                a0 = gc.mem_alloc()
                from phone import dhcpcore
                self.need = gc.mem_alloc() - a0
            except MemoryError:
                pass
            finally:
                dhcpcore = None
                drop('dhcpcore')

    def state(self):
        """Everything the keeper knows, as plain values: Keeper(.., state, ..) goes on."""
        return (self.ip, self.sid, self.lease_s, self.t1_s, self.t2_s, self.bound,
                self.renewals, self.old, self.due, self.bufs, self.need)

    def _client(self, dhcp):
        # the phone's own options (option 12, the board's interface), then the keeper's kw
        f = getattr(self.plat, 'dhcp_kw', None)
        kw = f() if f is not None else {}
        kw.update(self.kw)
        return dhcp.Client(self.plat.mac(), self.ev, bufs=self.bufs, **kw)

    def _at(self, ms):
        """ms from now until `ms` after the start of the lease."""
        return time.ticks_diff(time.ticks_add(self.bound, ms), time.ticks_ms())

    async def run(self):
        """Keep the lease for as long as the agent runs (step() after step())."""
        while True:
            ms = await self.step()
            if ms is None:
                return
            await asyncio.sleep_ms(ms)

    async def step(self):
        """Do what is due now; the ms to wait before the next step, or None when there is
        nothing more to do (an infinite lease, a board restarting for a new address). No
        exception ends the keeper: a socket that cannot be opened, a full heap, are events,
        and the lease is looked at again later (from where it stands then: past T1, an
        exchange at once)."""
        try:
            return await self._step()
        except (OSError, MemoryError) as e:
            drop('dhcp', 'dhcpcore', 'hw', 'leaseloss')
            self.due = False
            if self.ip is None and isinstance(e, MemoryError):
                # The lease is lost and the whole client does not fit beside the agent (a
                # board without PSRAM): a fresh boot asks for one before any link is up.
                self.ev.emit('restarting', reason='no heap to ask for an address: %r' % (e,))
                self.plat.reset()
                return None
            self.ev.emit('dhcp_keeper_failed', reason=repr(e), retry_ms=self.s.retry_max_ms,
                         heap_free=gc.mem_free())
            return self.s.retry_max_ms

    async def _step(self):
        if self.ip is None:                 # lost (and not back yet): ask again
            try:
                if not await _loss().start_over(self, drive):
                    return None
            finally:
                drop('leaseloss')
        t = times(self.lease_s, self.t1_s, self.t2_s)
        if t is None:
            self.ev.emit('dhcp_kept', ip=self.ip, reason='infinite lease: nothing to renew')
            return None
        t1, t2, end = t
        if not self.due:
            left = self._at(t1)
            self.ev.emit('dhcp_bound', ip=self.ip, server=self.sid, lease_s=self.lease_s,
                         renew_in_ms=left, rebind_in_ms=self._at(t2), ends_in_ms=self._at(end))
            self.due = True
            if left > 0:
                return left
        self.due = False
        got = await self._extend(self.sid, t2, end)
        if got is None:
            got = await self._extend(None, end, end)
        if not got:
            try:
                await _loss().lost(self, 'NAK' if got is False else 'expired')
            finally:
                drop('leaseloss')
            # DISCOVER after the links' teardown has run to its end and their heap is back
            # (a board without PSRAM needs it for the whole client).
            return self.s.retry_min_ms
        return 0

    async def _extend(self, sid, until, end):
        """One RENEWING (sid: unicast to it) or REBINDING (None: broadcast) stage until
        `until` ms into the lease: True (ACK: a new lease), False (NAK) or None."""
        if self._at(until) <= 0:
            return None
        gc.collect()
        a0 = gc.mem_alloc()
        free = gc.mem_free()
        if free < self.need + _SPARE:
            # Not begun: an import cut short by MemoryError keeps part of itself in the heap
            # for good, and every later try then has less (seen on a WT32: one failed load,
            # then every renewal failed until the lease ran out). Tried again later.
            raise MemoryError('%d bytes free, a renewal needs %d' % (free, self.need + _SPARE))
        from phone import dhcpcore
        c = self._client(dhcpcore)
        r = None
        try:
            c._setup()
            r = await drive(c, c.extending(self.ip, sid, time.ticks_add(self.bound, until),
                                           floor_ms(end)))
            used = gc.mem_alloc() - a0      # everything the exchange allocated (no collect)
            if r is None:
                return None
            if r.mtype != dhcpcore.ACK:
                return False
            lease_s, t1_s, t2_s, s = dhcpcore.terms(r)
            self.bound = c.t_sent           # a lease runs from its REQUEST (RFC 2131 4.4.1)
        finally:
            c.close()
            c = r = dhcpcore = None
            drop('dhcpcore')
        self.lease_s = lease_s or self.lease_s
        self.t1_s, self.t2_s = t1_s, t2_s
        self.sid = s or sid or self.sid
        self.renewals += 1
        self.ev.emit('dhcp_renewed', ip=self.ip, server=self.sid, lease_s=self.lease_s,
                     stage='renewing' if sid else 'rebinding', heap_bytes=used)
        return True
