# What hundreds of phone agents in one MicroPython unix-port process need, measured with
# host_tools/mpscripts/fleet_run.py (docs/fleet.md): asyncio's I/O wait without the 1 ms sleep
# per poll, a gc for the agent module that does not scan a fleet-sized heap per phone, and a
# queue in front of Link.connect. None of it changes the agent's code or protocol.
import time

STATS = []          # fast_poll: calls, sweeps, sweep us, sleeps, sleep us


def fast_poll(gap_ms=4, ratio=6):
    """asyncio's I/O wait for a process holding hundreds of TLS links (unix port only).

    The unix port's select.poll treats TLS sockets as objects without a file descriptor: every
    poll then sleeps in poll(2) for 1 ms (MICROPY_PY_SELECT_IOCTL_CALL_PERIOD_MS) before asking
    each of them, whatever the timeout, and asyncio polls before every task step and timer.
    With 100 TLS links a KeepAlive round trip took 0.7 s, with 200 1.6 s (docs/fleet.md).
    Here a poll is one sweep without that sleep (an always-writable UDP socket is registered,
    so poll(2) returns at once), at most every `gap_ms` (a sweep asks every link: 0.4 ms for
    1000 of them); in between, ready tasks run and an idle loop sleeps until the next timer or
    sweep. I/O is seen within `gap_ms`. Boards (ESP32) poll without that sleep: nothing the
    agent relies on changes. A sweep costs in proportion to the links (2,000 TLS links:
    ~3 ms), so the gap grows to `ratio` times the last sweep's time: sweeping stays under
    1/(1 + ratio) of a busy process's CPU (at 1,000 phones per process it took 30%, and the
    agents' own work starved). STATS counts calls, sweeps, sweep time, sleeps, sleep time."""
    import select
    import socket
    from asyncio import core
    q = core._io_queue
    stock = q.wait_io_event
    ready = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    last = [time.ticks_ms()]
    gap = [gap_ms]
    STATS[:] = [0, 0, 0, 0, 0]

    def sweep():
        a = time.ticks_us()
        q.map[id(ready)] = [None, None, ready]      # no waiters: asyncio drops it after the poll
        q.poller.register(ready, select.POLLOUT)
        stock(0)
        if id(ready) in q.map:
            q._dequeue(ready)
        us = time.ticks_diff(time.ticks_us(), a)
        STATS[1] += 1
        STATS[2] += us
        g = us * ratio // 1000
        gap[0] = g if g > gap_ms else gap_ms

    def wait_io_event(dt):
        STATS[0] += 1
        since = time.ticks_diff(time.ticks_ms(), last[0])
        if since >= gap[0]:
            sweep()
            last[0] = time.ticks_ms()
            since = 0
            t = core._task_queue.peek()
            if t is not None and time.ticks_diff(t.ph_key, time.ticks_ms()) <= 0:
                return
        if dt == 0:
            return
        ms = gap[0] - since
        if 0 < dt < ms:
            ms = dt
        a = time.ticks_us()
        time.sleep_ms(ms)
        STATS[3] += 1
        STATS[4] += time.ticks_diff(time.ticks_us(), a)

    q.wait_io_event = wait_io_event


def reserve_pollfds(n):
    """Grow asyncio's poller's descriptor array to `n` entries up front (registering the
    integers 0..n-1, then unregistering them; it never shrinks). The unix port's select.poll
    keeps a pollfd pointer per registered object, NULL for one without a descriptor (a TLS
    socket); when the array has to move to grow, it re-bases every object's pointer, NULLs
    included, and the next poll reads through a wild pointer (SIGSEGV in poll_iternext).
    Since phone.link waits on the TCP socket under TLS (a descriptor), a process of many
    phones grows that array while TLS sockets are registered: fleets of 2 phones crashed.
    With room for every descriptor the process will poll, the array never moves."""
    import select
    from asyncio import core
    poller = core._io_queue.poller
    for fd in range(n):
        poller.register(fd, select.POLLIN)
    for fd in range(n - 1, -1, -1):
        poller.unregister(fd)


class ThrottledGc:
    """The `gc` the agent module sees in a fleet. The agent collects at its start and after
    each registration, and reports gc.mem_free()/mem_alloc(): right for one phone on a small
    board, but each costs a pass over the whole heap, and a fleet's heap holds hundreds of
    phones: at 500 agents in one 20 MB heap these calls took most of the boot (perf: 44% of
    the CPU in gc_mark_subtree, gc_collect_end, gc_info). Here a collection runs at most once
    per `every_ms` and the figures are refreshed as often; gc's other functions pass through."""

    def __init__(self, every_ms=1000):
        import gc as real
        self.real = real
        self.every_ms = every_ms
        self.at = time.ticks_add(time.ticks_ms(), -every_ms)
        self.free = self.alloc = 0
        self.skipped = 0

    def _due(self):
        if time.ticks_diff(time.ticks_ms(), self.at) < self.every_ms:
            return False
        self.at = time.ticks_ms()
        return True

    def collect(self):
        if self._due():
            self.real.collect()
            self.free, self.alloc = self.real.mem_free(), self.real.mem_alloc()
        else:
            self.skipped += 1

    def mem_free(self):
        if self._due():
            self.free, self.alloc = self.real.mem_free(), self.real.mem_alloc()
        return self.free

    def mem_alloc(self):
        return self.alloc

    def __getattr__(self, name):
        return getattr(self.real, name)


def limit_connects(asyncio, link, k, max_wait_ms):
    """At most `k` links of this process opening a session to one server at a time: in
    connect() (TCP + TLS handshake + first KeepAlive: a standby session, a probe) or in
    register() on a DOWN link (TCP, then the TLS handshake with the Register, its answer and
    the dialogue: a session opened to register). The others queue (first come, first served;
    a wait longer than `max_wait_ms` fails the connect, which the agent retries). One process
    does the TLS client work of all its phones on one core (mbedtls RSA-2048 + ECDHE, ~10 ms
    each); hundreds started at once all finish their handshakes together, late, past the
    servers' 10 s handshake timeout, and retry (measured: 437 retries, 52 s to register 1000
    phones). A real phone has its own CPU for its one handshake; the queue keeps each
    handshake short without changing the work.

    One queue per server (host, port), and none for a server that does not answer: after a
    WAN cut every phone's probes of the call manager wait out their connect timeout holding
    a slot, and a phone that had to re-open its SRST session, or that tried the call manager
    before the router (TRYING), waited behind a thousand of them (2,000 phones: 8 gave up
    after 120 s, 290 reached the router after 90 s). A connect that times out before TCP
    is up ('timeout': no SYN-ACK) costs no handshake; from then on that server's connects
    skip the queue, those queued included, until one succeeds."""
    stock_connect = link.Link.connect
    stock_register = link.Link.register
    slots = {}                            # (host, port) -> [busy, queue of [event, slot?]]
    quiet = {}                            # (host, port) -> its last connect timed out

    def release(key):
        slot = slots[key]
        if slot[1]:
            w = slot[1].pop(0)            # the slot passes to the next in line
            w[0].set()
        else:
            slot[0] -= 1

    def let_all_go(key):
        slot = slots.get(key)
        while slot and slot[1]:
            w = slot[1].pop(0)
            w[1] = False                  # goes without a slot
            w[0].set()

    async def acquire(key):
        """True when the caller holds a slot (it must release it), False when it goes
        without one (a quiet server)."""
        if quiet.get(key):
            return False
        slot = slots.get(key)
        if slot is None:
            slot = slots[key] = [0, []]
        if slot[0] < k:
            slot[0] += 1
            return True
        w = [asyncio.Event(), True]
        slot[1].append(w)
        try:
            await asyncio.wait_for_ms(w[0].wait(), max_wait_ms)
        except BaseException as e:
            if w in slot[1]:
                slot[1].remove(w)
            elif w[0].is_set() and w[1]:
                release(key)
            if isinstance(e, asyncio.TimeoutError):
                raise link.LinkError('no connect slot within %d ms' % max_wait_ms)
            raise
        return w[1]

    async def held(self, call):
        key = (self.host, self.port)
        mine = await acquire(key)
        try:
            got = await call()
        except link.LinkError as e:
            if str(e) == 'timeout' and not quiet.get(key):
                quiet[key] = True
                let_all_go(key)
            raise
        finally:
            if mine:
                release(key)
        quiet[key] = False
        return got

    async def connect(self, timeout_ms=None, ka=True):
        if not ka:                        # register() opening its session: it holds the slot
            return await stock_connect(self, timeout_ms, ka)
        return await held(self, lambda: stock_connect(self, timeout_ms))

    async def register(self, reg, timeout_ms=None):
        if self.mode != link.DOWN:        # over an open session: no handshake
            return await stock_register(self, reg, timeout_ms)
        return await held(self, lambda: stock_register(self, reg, timeout_ms))

    link.Link.connect = connect
    link.Link.register = register
