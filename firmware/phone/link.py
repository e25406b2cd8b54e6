# The connectivity half of a signalling link: one TLS session to one server (call manager or
# SRST router), asyncio based, and the dead-peer rule. The protocol half subclasses Link
# (phone.sccplink, phone.siplink), as mqtt_as keeps connectivity and protocol in two layers.
# What a signalling link offers the agent, its modes and its events: docs/signalling.md.
# The trust anchor is one (der, cn) pair: exactly one certificate is trusted, byte for byte,
# whatever the clock, the chain and the name (context(); docs/security.md rule 9).
#
# Modes: STANDBY (keepalives only, as Cisco's standby connection to the SRST router) and
# REGISTERED (after register()). The link pins exactly one trust anchor, sends the phone's
# certificate (mutual TLS) and detects a dead peer three ways: a reset or close (the reader
# sees it), a failed write, or a keepalive left unanswered.
#
# Dead-peer rule (numbers in Settings, see docs/failover.md):
#   - a keepalive every `keepalive_ms` (the registration's interval, or the secondary interval
#     for standby), as the protocol says;
#   - when the server has been silent for `probe_after_ms`, an extra keepalive "probe"
#     (a keepalive is idempotent and always answered, so probes never break the protocol);
#   - a keepalive unanswered for `ack_timeout_ms` is missed; `max_missed` misses in a row
#     declare the peer dead. Worst-case detection: probe_after + max_missed * ack_timeout.
import asyncio
import time

try:
    import tls as ssl                # the port's own module: micropython-lib's `ssl` wrapper
except ImportError:                  # drops a verify_callback without a word
    ssl = None

from micropython import const

from phone import drop

DOWN = 'DOWN'
CONNECTING = 'CONNECTING'
STANDBY = 'STANDBY'
REGISTERING = 'REGISTERING'
REGISTERED = 'REGISTERED'

_ERRQUEUE = const(0x2000)            # recv() flag: read the socket's error queue (Linux)
_ERRBUF = const(128)
_MIN_TICK_MS = const(20)
_MAX_NAP_MS = const(1000)
_POLL_ROOM = const(8)               # 3 links and the UDP clients, with room
# Read TLS at once and wait on the TCP socket under it (_Opened.readinto). False: wait on
# the TLS socket, as asyncio's stream does (a setting for measuring; fleets keep it on).
READ_UNDER_TLS = True
_roomy = None                        # the poller given room (poll_room)


def poll_room():
    """The unix port's select.poll (MICROPY_PY_SELECT_POSIX_OPTIMISATIONS, only there) keeps
    descriptors in an array and, when the array moves to grow, re-bases every registered
    object's pointer into it, an object without a descriptor (a TLS socket) included: its
    NULL becomes a wild pointer and the next poll dies (SIGSEGV; extmod/modselect.c,
    poll_set_add_fd). The links register the TCP socket under TLS beside TLS sockets, so on
    that port asyncio's poller gets room for _POLL_ROOM descriptors before the first link:
    the array never moves. A board's poll has no such array."""
    global _roomy
    p = asyncio.core._io_queue.poller
    if p is _roomy:
        return
    _roomy = p
    import sys
    if sys.platform != 'linux':
        return
    for fd in range(_POLL_ROOM):
        p.register(fd, 1)
    for fd in range(_POLL_ROOM - 1, -1, -1):
        p.unregister(fd)


class LinkError(Exception):
    pass


# TLS contexts, one per slot ('cm', 'srst') and phone identity, kept for the anchor they were
# made for: each is one ~3 KB block of heap, which a fragmented heap may no longer have later,
# and reusing it spares parsing the phone's key at every connect. Boot makes them up front
# (contexts()). Keyed by identity too: agents sharing an interpreter (a fleet) must each present
# their own certificate; the entry holds the identity, so its id() stays unique.
_contexts = {}


# A board with room for one TLS session (profile `limited`) never has two at once: one context
# serves both slots, its pin set for each connect (a second context is ~3 KB of heap that such
# a board needs for its DHCP renewal beside the session: docs/decisions.md).
_shared = False


def context(slot, anchor, identity):
    """The TLS context trusting exactly `anchor` (der, cn) for `slot`, made once."""
    if _shared:
        slot = 'one'
    key = (slot, id(identity))
    c = _contexts.get(key)
    if c is not None and c[1] is identity:
        if c[0] is anchor[0]:
            return c[2]
        if _shared:
            ctx = c[2]
            ctx.verify_callback = _pin(anchor[0])
            _contexts[key] = (anchor[0], identity, ctx)
            return ctx
    _contexts.pop(key, None)
    c = None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Exact pinning, whatever the clock and the chain (docs/security.md): Mbed TLS with
    # CERT_REQUIRED checks dates against a board clock that reads 2000-01-01 until set, and
    # trusts an end-entity certificate as its own anchor only if it is self-issued (a router
    # certificate issued by the router's CA never is). CERT_OPTIONAL keeps the chain's verdict
    # out of it, and the callback makes the leaf's bytes the whole decision.
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.verify_callback = _pin(anchor[0])
    if identity is not None:
        ctx.load_cert_chain(*_pair(identity))
    _contexts[key] = (anchor[0], identity, ctx)
    return ctx


def _pair(identity):
    """The phone's (certificate, key) as DER bytes. A board's identity is the two files'
    paths (phone.provcfg), read here for each context made and not kept: 2 KB of heap less
    through every session. A fleet's or a test's is the bytes themselves."""
    c, k = identity
    if isinstance(c, str):
        c, k = _read(c), _read(k)
    return c, k


def _read(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError as e:
        raise LinkError('phone identity %s: %s' % (path, why(e)))


# What Mbed TLS's handshake raises when a verify callback refuses: the callback's non-zero
# answer aborts the verification and is the handshake's error (MBEDTLS_ERR_X509_FATAL_ERROR
# is what Mbed TLS itself turns a callback's VERIFY_FAILED into; VERIFY_FAILED and
# SSL_BAD_CERTIFICATE would be ignored under CERT_OPTIONAL; a positive value would look like
# bytes written to the deferred handshake's write).
_REFUSED = const(-0x3000)
_refused = {}          # pinned DER -> the certificate its callback last refused, then why
                       # (why() puts it in words; gone once the pin accepts)
# The pin whose callback refused last: set without allocating (a slot of an existing list), so
# a refusal is told apart from another fatal handshake error (-0x3000 too, e.g. out of memory)
# even when the heap could not hold the reason.
_last_refused = [None]


def _pin(der):
    """The verify callback trusting exactly the certificate `der`. Mbed TLS calls it for each
    certificate of the chain it built, deepest first: cert is a memoryview valid during the
    call only, depth 0 is the server's own certificate; 0 accepts, anything else ends the
    handshake. It runs inside Mbed TLS: it must return an int and never raise."""
    def check(cert, depth):
        if depth:
            return 0                      # the chain above the leaf decides nothing
        # Compared in place: a copy of the certificate (1-2 KB) may not fit a heap fragmented
        # by then (a limited board at failover), and a MemoryError here refused the pinned one.
        if cert == der:
            _last_refused[0] = None
            _refused.pop(der, None)
            return 0
        _last_refused[0] = der
        try:
            _refused[der] = bytes(cert)   # named by why(), outside Mbed TLS
        except Exception:                 # MemoryError: refuse all the same
            pass
        return _REFUSED
    return check


def _name(der):
    """'CN=x sha256:0123456789ab' of a certificate, for reasons (the CN may be '?'). Read by
    phone.x509, loaded for this and dropped: a refusal is rare, and a certificate walker of
    our own would sit in the heap of every link for it."""
    from binascii import hexlify
    from hashlib import sha256
    cn = '?'
    try:
        from phone import x509
        cn = x509.parse(der, copy=False).cn[:64] or '?'     # a server's text: bounded
    except Exception:                     # not a certificate, no heap: the hash says which
        pass
    finally:
        x509 = None
        drop('x509', 'der')
    return 'CN=%s sha256:%s' % (cn, hexlify(sha256(der).digest()[:6]).decode())


def contexts(prov, shared=False):
    """Make the contexts a provision.Provisioned calls for (its first call manager's and the
    SRST router's) now: boot calls this before loading the agent, on a heap still in one piece.
    shared: one context for both (a limited board; its pin is set per connect)."""
    global _shared
    _shared = shared
    for _, _, _, anchor in prov.call_managers[:1]:
        if anchor is not None:
            context('cm', anchor, prov.identity)
    if prov.srst is not None:
        context('srst', prov.srst[2], prov.identity)


class _Opened:
    """The context handed to open_connection, keeping the socket it wraps. open_connection
    wraps before it waits for the TCP connect; a connect that times out (a silent WAN) leaves
    that socket to us, and its Mbed TLS session holds ~20 KB of IDF heap until closed. Left to
    the GC, a board without PSRAM (one session) refused the next connect with ENOMEM."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.sock = None

    def wrap_socket(self, sock, **kw):
        self.raw = sock
        self.sock = self.ctx.wrap_socket(sock, **kw)
        return self.sock

    async def readinto(self, buf):
        """The session's reading side, for the protocol's reader: what the TLS layer holds is
        read at once, and only then is the TCP socket under it waited for. asyncio's stream
        waits on the TLS socket, which the unix port's poll asks by ioctl: while one is
        waited on, every pass of the scheduler sleeps a 1 ms poll tick, ~25 ms per
        registration dialogue (docs/decisions.md, "Issue 16: register over standby")."""
        woke = False
        while True:
            n = self.sock.readinto(buf)
            if n is not None:
                return n
            if woke:
                # Woken with nothing to read: Linux reports an ICMP error for a segment of
                # this connection (an unreachable WAN while it was opened) as POLLERR until
                # it is read from the socket's error queue, even without IP_RECVERR; asyncio
                # then woke this reader at once, forever: 100% CPU after an outage with ICMP
                # unreachable. Read it off (the error queue only: no data is taken). Not on
                # a board: lwIP has no error queue and could take the flag for a plain read.
                # (sys imported here: no global more in this module, whose dict is part of
                # the 80 KB story's heap.)
                import sys
                if sys.platform == 'linux':
                    try:
                        self.raw.recv(_ERRBUF, _ERRQUEUE)
                    except OSError:
                        pass
            # asyncio's own wait for a readable socket (its Stream.readinto's first step)
            yield asyncio.core._io_queue.queue_read(self.raw)
            woke = True

    def close(self):
        s, self.sock = self.sock, None
        if s is not None:
            try:
                s.close()
            except Exception:
                pass


class Link:
    """One signalling session, the connectivity half: TLS, the modes, the dead-peer rule,
    request and answer. A protocol subclasses it (docs/signalling.md, "The protocol half") and
    provides KA (its keepalive, prebuilt), KA_ACK (the ids that answer it), ACK (its name, for
    reasons), registration(owner) (called on the class), _reading(stream), _on(id, reader),
    _register(reg, ms), _registered(reg) and _unregister(ms).
    `owner` (the agent) offers events, cfg (Settings), prov (identity: the phone's certificate
    and key, as their files' paths or as bytes: _pair), platform, link_down(link, reason) and
    reset_requested(link, kind)."""

    def __init__(self, owner, role, host, port, anchor, cm=None):
        self.owner = owner
        self.role = role                  # 'primary', 'srst' or 'probe' (for events)
        self.host = host
        self.port = port
        self.anchor = anchor              # (der, cn) of the one certificate trusted, or None
        self.cm = cm                      # the call manager's name (None: the SRST router)
        cfg = owner.cfg
        self.mode = DOWN
        self.secondary_keepalive_ms = self.keepalive_ms = cfg.standby_keepalive_ms
        # a probe session watches a call manager with the registered rule: the load in
        # FALLBACK is the load when registered (issue 16)
        self.probe_after_ms = cfg.probe_after_ms if role == 'probe' else 0
        self.reason = None
        self._w = None                    # the asyncio stream (its writing side)
        self._reader = None
        self._tasks = []
        self._down = None                 # the teardown _fail() started (close() awaits it)
        self._want = None                 # message ids a waiter expects
        self._got = asyncio.Event()
        self._got_msg = None              # (id, body) of what a waiter expected
        self._last_rx = 0
        self._ka_out = False              # a keepalive is waiting for its answer
        self._ka_sent = 0
        self._missed = 0

    # The owner's Settings, not a copy: an instance's attributes live in a hash table that
    # grows by reallocation once full, and 23 slots hold Link's own and SccpLink's _opening;
    # a 24th would grow it at the re-home, in the 80 KB story's tightest moment.
    @property
    def cfg(self):
        return self.owner.cfg

    # -- what the agent asks of a link (docs/signalling.md) -------------------------------
    async def connect(self, timeout_ms=None, ka=True):
        """Open TLS and prove the session with one keepalive exchange (the handshake is
        deferred to the first write on MicroPython): a standby session, a probe. ka False
        (register() on a DOWN link): TCP only, the link stays CONNECTING and its first message
        is the Register, as a phone's that registers. Raises LinkError with the reason."""
        if self.mode != DOWN:
            return
        timeout_ms = timeout_ms or self.cfg.connect_timeout_ms
        self.mode = CONNECTING
        poll_room()
        t0 = time.ticks_ms()
        opened = None
        try:
            a = self.anchor                # None: plain text (security mode 1 only)
            if a:
                if _last_refused[0] is a[0]:
                    _last_refused[0] = None    # a refusal is told by this handshake's callback
                opened = _Opened(context('srst' if self.role == 'srst' else 'cm', a,
                                         self.owner.prov.identity))
            # No server_hostname: the pin is the certificate's bytes, CN included (no SNI
            # either: phones reach their servers by address).
            r, self._w = await asyncio.wait_for_ms(
                asyncio.open_connection(self.host, self.port, ssl=opened), timeout_ms)
            self._reader = self._reading(opened if opened is not None and READ_UNDER_TLS else r)
            self._last_rx = time.ticks_ms()
            self._tasks = [asyncio.create_task(self._read_loop())]
            if ka:
                left = max(100, timeout_ms - time.ticks_diff(time.ticks_ms(), t0))
                await self._request(self.KA, self.KA_ACK, left, self.ACK)
        except Exception as e:
            reason = why(e, self.anchor)
            if self._w is None and opened is not None:
                opened.close()             # the TCP connect never completed (a silent WAN)
            await self._teardown()
            self.mode = DOWN
            raise LinkError(reason)
        if ka:
            self.mode = STANDBY
        self._ka_sent = self._last_rx
        self._tasks.append(asyncio.create_task(self._keep_loop()))
        return time.ticks_diff(time.ticks_ms(), t0)

    async def register(self, reg, timeout_ms=None):
        """Register with `reg` (made once by registration()) over this open session, or,
        on a DOWN link, over one opened for it: the Register is then its first message and
        the deadline connect_timeout_ms + register_timeout_ms (TCP, then the TLS handshake,
        the Register and its answer). Returns (keepalive_s, secondary_s). A refusal leaves the
        session in STANDBY; any other failure ends it (on a link opened here, as a failed
        connect: no link_down). A probe that registers is the primary (re-home)."""
        if self.role == 'probe':
            self.role = 'primary'
        timeout_ms = timeout_ms or self.cfg.register_timeout_ms
        if self.mode == DOWN:
            timeout_ms += self.cfg.connect_timeout_ms - await self.connect(None, False)
        elif self.mode != STANDBY:
            raise LinkError('cannot register in mode ' + self.mode)
        else:
            self.mode = REGISTERING
        try:
            got = await self._register(reg, timeout_ms)
        except Exception as e:             # a lost session, a timeout, a malformed answer
            reason = why(e, self.anchor)
            if self.mode == CONNECTING:
                await self.close(reason)
            else:
                self._fail('register: ' + reason)
            raise LinkError(reason)
        if isinstance(got, str):           # refused, in the server's words
            self.mode = STANDBY
            raise LinkError(got)
        if self.mode == DOWN:              # the session ended right after the answer
            raise LinkError(self.reason or 'connection lost')
        ka, sec = got
        self.keepalive_ms = max(1, ka) * 1000
        self.secondary_keepalive_ms = max(1, sec) * 1000
        self.probe_after_ms = self.cfg.probe_after_ms
        self.mode = REGISTERED
        # The rest of the registration dialogue. A server that closes right after
        # accepting fails these writes: a link failure.
        try:
            await self._registered(reg)
        except LinkError as e:
            self._fail('register: ' + str(e))
            raise
        return got

    async def unregister(self, timeout_ms=None):
        """Unregister and close; the caller reopens a standby session when it wants one."""
        if self.mode == REGISTERED:
            try:
                await self._unregister(timeout_ms or self.cfg.register_timeout_ms)
            except Exception as e:
                self.owner.events.emit('unregister_failed', link=self.role,
                                       reason=why(e, self.anchor))
        await self.close('unregistered')

    def standby(self, keepalive_ms):
        """Keep the session as a standby one: a keepalive every `keepalive_ms`, no probes."""
        self.keepalive_ms = keepalive_ms
        self.probe_after_ms = 0

    async def close(self, reason='closed'):
        if self.mode == DOWN:
            # Failed meanwhile: the socket is closed by the teardown _fail() started. Wait for
            # it, so a caller that opens the next session after close() never holds two (a
            # board without PSRAM has room for one Mbed TLS session).
            t, self._down = self._down, None
            if t is not None:
                await t
            return
        self.mode = DOWN
        self.reason = reason
        await self._teardown()

    # -- internals ---------------------------------------------------------------------
    async def _send(self, frame, timeout_ms=0):
        """Write and drain, bounded: the first write also runs the deferred TLS handshake,
        which a peer that accepts TCP and then says nothing would hold forever. Every failure
        (a link torn down meanwhile, EPIPE, a TLS error) is a LinkError."""
        w = self._w
        if w is None or self.mode == DOWN:
            raise LinkError(self.reason or 'connection lost')
        timeout_ms = timeout_ms or self.cfg.register_timeout_ms
        try:
            w.write(frame)
            await asyncio.wait_for_ms(w.drain(), timeout_ms)
        except asyncio.TimeoutError:
            raise LinkError('write not taken within %d ms' % timeout_ms)
        except asyncio.CancelledError:
            raise
        except Exception as e:            # EPIPE, ECONNRESET, the deferred handshake's errors
            raise LinkError(why(e, self.anchor))

    async def _request(self, frame, want, timeout_ms, what):
        """Send `frame`, wait for a message whose id is in `want`: (id, body)."""
        self._want = want
        self._got_msg = None
        self._got.clear()
        t0 = time.ticks_ms()
        try:
            await self._send(frame, timeout_ms)
            left = timeout_ms - time.ticks_diff(time.ticks_ms(), t0)
            await asyncio.wait_for_ms(self._got.wait(), left if left > 0 else 1)
        except asyncio.TimeoutError:
            raise LinkError('no %s within %d ms' % (what, timeout_ms))
        finally:
            self._want = None
            self._got.clear()                 # taken (or given up): the reader goes on
        got = self._got_msg
        if got is None:
            raise LinkError(self.reason or 'connection lost')
        return got

    async def _read_loop(self):
        """Every message the protocol's reader returns proves the peer alive; the protocol
        handles it (_on: what to answer, if anything), then a waiter for it is woken."""
        r = self._reader
        try:
            while True:
                mid = await r.aread()
                if mid < 0:
                    self._fail('closed by peer')
                    return
                self._last_rx = time.ticks_ms()
                self._ka_out = False
                self._missed = 0
                reply = self._on(mid, r)
                if reply is not None:
                    await self._send(reply)
                if self._want is not None and mid in self._want:
                    self._got_msg = (mid, bytes(r.body()))
                    self._got.set()
                # A waiter woken goes first: what came behind its answer in the same read (a
                # Reset right after RegisterAck) is handled in the state the answer made. A
                # 1 ms sleep queues the reader after the woken waiter (a 0 ms one ties with
                # it, and a process of many phones then spun every reader: fleet failover
                # twice as slow at 1,000 phones)
                while self._got.is_set() and self.mode != DOWN:
                    await asyncio.sleep_ms(1)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._fail(why(e, self.anchor))

    async def _keep_loop(self):
        try:
            while self.mode != DOWN:
                now = time.ticks_ms()
                if self._ka_out:
                    left = self.cfg.ack_timeout_ms - time.ticks_diff(now, self._ka_sent)
                    if left <= 0:
                        self._missed += 1
                        if self._missed >= self.cfg.max_missed:
                            self._fail('no %s (%d missed)' % (self.ACK, self._missed))
                            return
                        await self._keepalive(now)
                        left = self.cfg.ack_timeout_ms
                else:
                    left = self.keepalive_ms - time.ticks_diff(now, self._ka_sent)
                    if self.probe_after_ms > 0:
                        p = self.probe_after_ms - time.ticks_diff(now, self._last_rx)
                        if p < left:
                            left = p
                    if left <= 0:
                        await self._keepalive(now)
                        left = self.cfg.ack_timeout_ms
                # Sleep to the next deadline, not a fixed tick: a probe goes out when it is
                # due, so detection costs no tick's slack. At most _MAX_NAP_MS, since an
                # answer or a new rule (standby(), register()) moves the deadlines.
                await asyncio.sleep_ms(_MIN_TICK_MS if left < _MIN_TICK_MS else
                                       _MAX_NAP_MS if left > _MAX_NAP_MS else left)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._fail('write failed: ' + why(e, self.anchor))

    async def _keepalive(self, now):
        """The one place that knows the asyncio stream's insides (its unsent bytes, `out_buf`,
        and its socket, `s`). Straight to the socket, non-blocking and without allocating: the
        keepalive is prebuilt and a TLS record is written whole or not at all. A socket that
        cannot take it means a peer that stopped reading: the missing answer will declare
        it dead."""
        self._ka_out = True
        self._ka_sent = now
        w = self._w
        if w is None:
            raise LinkError(self.reason or 'connection lost')
        if w.out_buf:
            await self._send(b'', self.cfg.ack_timeout_ms)
        ka = self.KA
        n = w.s.write(ka)
        if n is not None and n != len(ka):
            raise OSError('partial KeepAlive write')

    def _fail(self, reason):
        """Peer is gone: tear down (in the background) and tell the owner once."""
        if self.mode == DOWN:
            return
        was = self.mode
        self.mode = DOWN
        self.reason = reason
        self._got_msg = None
        self._got.set()                       # wake any waiter: it sees the failure
        try:
            self.owner.events.emit('link_down', link=self.role, host=self.host,
                                   port=self.port, was=was, reason=reason)
        except MemoryError:
            pass                              # the event is lost, never the teardown
        self._down = asyncio.create_task(self._teardown())
        # A link still being made tells its owner by connect()'s LinkError: waking the owner
        # too would cut short the backoff it is about to announce.
        if was != CONNECTING:
            self.owner.link_down(self, reason)

    async def _teardown(self):
        cur = asyncio.current_task()
        for t in self._tasks:
            if t is not cur:
                t.cancel()
        self._tasks = []
        w, self._w = self._w, None
        self._reader = None                   # its buffer: a dead link may stay referenced
        if w is not None:
            try:
                w.close()
                await asyncio.wait_for_ms(w.wait_closed(), 500)
            except Exception:
                pass


# Mbed TLS codes that reach us as OSError(-N) from the handshake, in words.
_TLS_ERRORS = {-9984: 'TLS: server certificate verify failed',
               _REFUSED: 'TLS: server certificate is not the pinned one',
               -30592: 'TLS: the server sent a fatal alert (did it refuse our certificate?)',
               -29312: 'TLS: the server closed the connection during the handshake'}


def why(e, anchor=None):
    """A failure in words; `anchor`: the link's pin (names the certificate it refused)."""
    if isinstance(e, LinkError):
        return str(e)
    if isinstance(e, OSError) and e.args and isinstance(e.args[0], int):
        if e.args[0] == _REFUSED:
            if not anchor or _last_refused[0] is not anchor[0]:
                # not our callback's refusal: Mbed TLS's own fatal error (out of memory...)
                return 'TLS: handshake failed, not a certificate refusal (%d)' % e.args[0]
            told = _refused.get(anchor[0])
            if isinstance(told, bytes):
                told = 'server certificate %s is not the pinned %s' % (_name(told),
                                                                      _name(anchor[0]))
                _refused[anchor[0]] = told
            if told:
                return 'TLS: ' + told
        if e.args[0] in _TLS_ERRORS:
            return '%s (%d)' % (_TLS_ERRORS[e.args[0]], e.args[0])
        try:
            import errno
            return 'OSError ' + errno.errorcode.get(e.args[0], str(e.args[0]))
        except (ImportError, AttributeError):
            return 'OSError %d' % e.args[0]
    if isinstance(e, asyncio.TimeoutError):
        return 'timeout'
    s = str(e).strip()
    return '%s: %s' % (type(e).__name__, s) if s else type(e).__name__
