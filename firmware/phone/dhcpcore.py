# DHCP messages and the one exchange loop (RFC 2131/2132): what every DHCP conversation of
# the phone needs, and all that keeping a lease needs. phone.lease loads this module alone
# for a RENEWING/REBINDING REQUEST (Client.extending): on a board without PSRAM the heap
# beside a TLS session has no room for the whole client. Getting a lease (DISCOVER/OFFER/
# REQUEST/ACK, INFORM, the options a phone wants from it) is phone.dhcp, built on this Client.
# Every exchange is one loop (_exchange), a generator that a blocking driver (Client.run) or
# an asyncio task (phone.lease) drives.
#
# Every wait is a select.poll with a timeout; retransmission backs off exponentially and is
# bounded. A bad or foreign packet never raises out of the client: it is ignored with a reason
# (event "dhcp_ignored") and the client keeps waiting for a good one.
#
# Written in the common MicroPython/CPython subset so the lab and host tests can import it.
import select
import socket

from micropython import const

from phone import drop
from phone.udp import addr_ip, sockaddr, ticks_add, ticks_diff, ticks_ms, wait

drop('udp')     # its functions live as long as this module's (phone/udp.py)

# Message types (option 53). Names that nothing outside uses are private: a public name
# costs the board a qstr and a module dict slot.
DISCOVER = const(1)
OFFER = const(2)
REQUEST = const(3)
ACK = const(5)
NAK = const(6)
_RELEASE = const(7)
INFORM = const(8)

_CLIENT_PORT = const(68)
_SERVER_PORT = const(67)
BUF_SIZE = const(1024)      # receive buffer; announced as option 57 (max message size)
TX_SIZE = const(548)        # 576 - IP - UDP: the size every DHCP server must accept
_MIN_LEN = const(300)       # BOOTP minimum, some relays drop shorter packets
_HDR = const(236)           # fixed BOOTP header, then the 4-byte magic cookie
_OPTS = const(240)
_FLAG_BROADCAST = const(0x80)

# Defaults for retransmission (RFC 2131 suggests 4 s doubling to 64 s with +-1 s jitter;
# a phone on a LAN wants to boot faster, so start at 2 s and cap at 16 s).
_FIRST_MS = const(2000)
_MAX_MS = const(16000)
_TRIES = const(4)           # transmissions per stage (DISCOVER, REQUEST, INFORM)
_ROUNDS = const(3)          # DISCOVER rounds after a NAK or an unanswered REQUEST
TOTAL_MS = const(60000)     # hard bound on one acquire()/inform() call
_RENEW_TRIES = const(32)    # REQUESTs per RENEWING/REBINDING stage (the deadline ends it first)

_COOKIE = b'\x63\x82\x53\x63'
# Option 55 as a Cisco IP phone sends it (FingerBank "Cisco IP Phone": 1,3,6,15,42,66,150):
# mask, router, DNS, domain, NTP (the clock), TFTP server name, TFTP servers (150).
_PRL = b'\x01\x03\x06\x0f\x2a\x42\x96'
# Option 60 of a 7911 (the device type the agent registers as), NUL-terminated as the
# 79x1 phones send it.
VENDOR_CLASS = 'Cisco Systems, Inc. IP Phone CP-7911G\x00'
_BINDTODEVICE = getattr(socket, 'SO_BINDTODEVICE', 25)  # 25: Linux's (the unix port lacks it)

# Options whose length is fixed (lists of IPv4 addresses, and the known codes: in parse()).
_EXACT = {1: 4, 51: 4, 54: 4, 53: 1, 52: 1, 58: 4, 59: 4, 57: 2}


class DhcpError(Exception):
    """No lease (or no INFORM answer) within the bounds."""


class Ignored(Exception):
    """A received packet that is not (or not a usable) answer. `foreign` marks packets that
    are simply for another client (other xid or MAC): normal traffic on a shared LAN."""

    def __init__(self, reason, foreign=False):
        super().__init__(reason)
        self.reason = reason
        self.foreign = foreign


def ip_str(b, i=0):
    return '%d.%d.%d.%d' % (b[i], b[i + 1], b[i + 2], b[i + 3])


def ip_bytes(s):
    parts = s.split('.')
    if len(parts) != 4:
        raise ValueError('not an IPv4 address: %r' % (s,))
    out = bytearray(4)
    for k in range(4):
        p = parts[k]
        if not p or not p.isdigit() or int(p) > 255:
            raise ValueError('not an IPv4 address: %r' % (s,))
        out[k] = int(p)
    return bytes(out)


def _u32(b, i=0):
    return (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]


# ---------------------------------------------------------------------------------------
# Building requests
# ---------------------------------------------------------------------------------------
def build(tx, mtype, xid, mac, ciaddr=None, requested=None, server_id=None, secs=0,
          broadcast=True, hostname=None, vendor_class=None, max_size=BUF_SIZE):
    """Write a client message into the preallocated `tx` (>= 300 bytes); return its length."""
    n = len(tx)
    for i in range(n):
        tx[i] = 0
    tx[0] = 1           # BOOTREQUEST
    tx[1] = 1           # Ethernet
    tx[2] = 6
    tx[4] = (xid >> 24) & 0xFF
    tx[5] = (xid >> 16) & 0xFF
    tx[6] = (xid >> 8) & 0xFF
    tx[7] = xid & 0xFF
    secs = min(secs, 0xFFFF)
    tx[8] = secs >> 8
    tx[9] = secs & 0xFF
    if broadcast:
        tx[10] = _FLAG_BROADCAST
    if ciaddr:
        tx[12:16] = ip_bytes(ciaddr)
    tx[28:34] = mac
    tx[_HDR:_OPTS] = _COOKIE
    i = _OPTS
    i = _opt(tx, i, 53, bytes((mtype,)))
    i = _opt(tx, i, 61, b'\x01' + bytes(mac))
    if requested:
        i = _opt(tx, i, 50, ip_bytes(requested))
    if server_id:
        i = _opt(tx, i, 54, ip_bytes(server_id))
    if mtype != _RELEASE:
        i = _opt(tx, i, 57, bytes((max_size >> 8, max_size & 0xFF)))
        # servers send 51, 54 (and dnsmasq T1/T2) unasked; phone.lease defaults T1/T2
        i = _opt(tx, i, 55, _PRL)
        if hostname:
            i = _opt(tx, i, 12, hostname.encode())
        if vendor_class:
            i = _opt(tx, i, 60, vendor_class.encode())
    tx[i] = 255
    i += 1
    return max(i, _MIN_LEN)


def _opt(tx, i, code, value):
    ln = len(value)
    tx[i] = code
    tx[i + 1] = ln
    tx[i + 2:i + 2 + ln] = value
    return i + 2 + ln


# ---------------------------------------------------------------------------------------
# Parsing replies
# ---------------------------------------------------------------------------------------
class Reply:
    """A parsed server message: fixed fields as strings, options as {code: bytes}."""

    def __init__(self):
        self.op = 0
        self.xid = 0
        self.mtype = 0
        self.ciaddr = None
        self.yiaddr = None
        self.siaddr = None
        self.chaddr = b''
        self.opts = {}
        self.unknown = []

    def type_name(self):
        names = ('?', 'DISCOVER', 'OFFER', 'REQUEST', 'DECLINE', 'ACK', 'NAK', 'RELEASE', 'INFORM')
        return names[self.mtype] if 0 < self.mtype < len(names) else str(self.mtype)

    def server_id(self):
        v = self.opts.get(54)
        return ip_str(v) if v else None


def _walk(b, i, end, opts, where):
    """Collect options from b[i:end] into opts (RFC 3396: repeated codes concatenate).
    Returns True when the END option was seen."""
    while i < end:
        c = b[i]
        if c == 0:
            i += 1
            continue
        if c == 255:
            return True
        if i + 1 >= end:
            raise Ignored('option %d truncated (no length byte) in %s' % (c, where))
        ln = b[i + 1]
        j = i + 2 + ln
        if j > end:
            raise Ignored('option %d length %d runs past the end of %s' % (c, ln, where))
        v = bytes(b[i + 2:j])
        opts[c] = opts[c] + v if c in opts else v
        i = j
    return False




def parse(b, n, xid=None, mac=None):
    """Parse a server message in b[:n]. Returns a Reply or raises Ignored(reason)."""
    if n < _OPTS:
        raise Ignored('short packet (%d bytes)' % n)
    if b[0] != 2:
        raise Ignored('not a server reply (op=%d)' % b[0])
    r = Reply()
    r.op = 2
    r.xid = _u32(b, 4)
    if xid is not None and r.xid != xid:
        raise Ignored('xid %08x is not ours' % r.xid, foreign=True)
    if b[1] != 1 or b[2] != 6:
        raise Ignored('hardware type %d length %d is not Ethernet' % (b[1], b[2]))
    r.chaddr = bytes(b[28:34])
    if mac is not None and r.chaddr != bytes(mac):
        raise Ignored('chaddr is not our MAC', foreign=True)
    if bytes(b[_HDR:_OPTS]) != _COOKIE:
        raise Ignored('no DHCP magic cookie')
    r.ciaddr = ip_str(b, 12)
    r.yiaddr = ip_str(b, 16)
    r.siaddr = ip_str(b, 20)
    opts = r.opts
    _walk(b, _OPTS, n, opts, 'options')
    ov = opts.get(52)
    if ov is not None:
        if len(ov) != 1 or ov[0] not in (1, 2, 3):
            raise Ignored('option 52 (overload) is malformed')
        if ov[0] & 1:
            _walk(b, 108, 236, opts, 'file field')
        if ov[0] & 2:
            _walk(b, 44, 108, opts, 'sname field')
    for c in opts:
        v = opts[c]
        want = _EXACT.get(c)
        if want is not None and len(v) != want:
            raise Ignored('option %d has length %d, expected %d' % (c, len(v), want))
        if c in (3, 6, 150) and (not v or len(v) % 4):
            raise Ignored('option %d has length %d, not a list of IPv4 addresses' % (c, len(v)))
        # options we know; any other is kept in Reply.unknown and otherwise skipped
        if c not in (1, 3, 6, 12, 15, 42, 51, 52, 53, 54, 56, 57, 58, 59, 61, 66, 150):
            r.unknown.append(c)
    mt = opts.get(53)
    if mt is None:
        raise Ignored('no message type (option 53): BOOTP, not DHCP')
    r.mtype = mt[0]
    if r.mtype not in (OFFER, ACK, NAK):
        raise Ignored('message type %d is not for a client' % r.mtype)
    if 66 in opts:
        text66(opts[66])   # validate now: a bad 66 spoils the whole offer
    return r


def text66(v):
    # Servers sometimes NUL-terminate the string.
    while v and v[-1] == 0:
        v = v[:-1]
    if not v:
        raise Ignored('option 66 is empty')
    for ch in v:
        if ch < 0x20 or ch > 0x7E:
            raise Ignored('option 66 is not a host name or address')
    return v.decode()


def terms(reply):
    """(lease_s, t1_s, t2_s, server_id) of an ACK; None for what it does not say."""
    o = reply.opts
    return (_u32(o[51]) if 51 in o else None, _u32(o[58]) if 58 in o else None,
            _u32(o[59]) if 59 in o else None, reply.server_id())


# ---------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------
def new_xid():
    try:
        import os
        b = os.urandom(4)
        return _u32(b)
    except (ImportError, AttributeError):
        import random
        return random.getrandbits(32)


class Client:
    """One DHCP client for one interface. `events` has .emit(name, **fields).

    On the unix port in a network namespace the interface needs some IPv4 state before the
    broadcast OFFER can arrive (`ip addr add 0.0.0.0/0 dev IF` and a default route): the
    platform (or the test harness) sets that up; the client binds 0.0.0.0:68 with
    SO_BROADCAST. Applying the leased address to the interface is the platform's job.
    `ifname` binds the socket to that interface (SO_BINDTODEVICE): needed on an ESP32, where
    the interface has no address while the agent asks for one. `hostname` (option 12) and
    `vendor_class` (60; None: not sent) go into every DISCOVER, REQUEST and INFORM."""

    def __init__(self, mac, events=None, tftp_server=None, hostname=None,
                 vendor_class=VENDOR_CLASS, first_ms=_FIRST_MS, max_ms=_MAX_MS, tries=_TRIES,
                 rounds=_ROUNDS, server='255.255.255.255', server_port=_SERVER_PORT,
                 port=_CLIENT_PORT, bind_ip='0.0.0.0', resolve=None, ifname=None,
                 bufs=None):
        if len(mac) != 6:
            raise ValueError('MAC must be 6 bytes')
        if events is None:
            from phone import events as _ev
            events = _ev.default
        self.mac = bytes(mac)
        self.events = events
        self.tftp_server = tftp_server
        self.hostname = hostname
        self.vendor_class = vendor_class
        self.first_ms = first_ms
        self.max_ms = max_ms
        self.tries = tries
        self.rounds = rounds
        self.server = server
        self.server_port = server_port
        self.port = port
        self.bind_ip = bind_ip
        self.resolve = resolve
        self.ifname = ifname
        # bufs: (receive, transmit) of BUF_SIZE and TX_SIZE bytes, made once by a caller that
        # cannot count on two contiguous blocks later (phone.lease on a fragmented heap)
        self.buf, self.tx = bufs or (bytearray(BUF_SIZE), bytearray(TX_SIZE))
        self._lean = bufs is not None       # receive without allocating (_recv)
        self.mv = memoryview(self.buf)
        self.txv = memoryview(self.tx)
        self.sock = None
        self.poller = None
        self.xid = 0
        self.t_start = 0
        self.t_sent = 0
        self.stats = {'sent': 0, 'received': 0, 'ignored': 0, 'foreign': 0, 'timeouts': 0}

    # -- socket -------------------------------------------------------------------------
    def _open(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            if self.ifname:
                # lwIP routes nothing from an interface without an address (ip4_route): a
                # DISCOVER from 0.0.0.0 leaves only through a socket bound to the interface.
                s.setsockopt(socket.SOL_SOCKET, _BINDTODEVICE, self.ifname.encode())
            s.bind(sockaddr(self.bind_ip, self.port))
        except OSError:
            s.close()   # port 68 still held (EADDRINUSE), no such interface (ENODEV)
            raise
        return s

    def _setup(self):
        self.sock = self._open()
        self.sock.setblocking(False)
        self.poller = select.poll()
        self.poller.register(self.sock, select.POLLIN)
        self._ipoll = getattr(self.poller, 'ipoll', None)
        self._recv_into = getattr(self.sock, 'recv_into', None)
        self.dest = sockaddr(self.server, self.server_port)

    def close(self):
        if self.sock is not None:
            try:
                self.poller.unregister(self.sock)
            except (OSError, KeyError, ValueError):
                pass
            self.sock.close()
            self.sock = None

    def readable(self, ms):
        """Wait up to ms for an answer on the socket (0: just look)."""
        return wait(self.poller, self._ipoll, ms)

    def _recv(self):
        # MicroPython sockets have no recv_into, and their readinto() keeps reading until
        # the buffer is full, which merges queued datagrams (a bad OFFER followed by the good
        # one would be lost together). DHCP answers are few and of unknown size, so on such
        # ports recv() (one short-lived object per answer) is copied into the buffer - except
        # for a caller that gave its own buffers (phone.lease): recv()'s 1 KB block is what a
        # fragmented heap beside a TLS session may not have, so readinto() it is; an answer
        # merged behind another is lost like a dropped one, and the retransmission covers it.
        if self._recv_into is not None:
            return self._recv_into(self.buf)
        if self._lean:
            return self.sock.readinto(self.buf) or 0
        d = self.sock.recv(BUF_SIZE)
        n = len(d)
        self.mv[:n] = d
        return n

    def _send(self, n):
        try:
            self.sock.sendto(self.txv[:n], self.dest)
            self.stats['sent'] += 1
        except OSError as e:
            # No route yet, interface flapping: count it as a lost packet, retry later.
            self.events.emit('dhcp_send_failed', error=repr(e))

    def _secs(self):
        return ticks_diff(ticks_ms(), self.t_start) // 1000

    # -- the one send / wait / retransmit loop -------------------------------------------
    # Written as generators: they yield the ms they want to wait for an answer and take back
    # whether the socket became readable. phone.dhcp's Client.run() drives them with
    # blocking waits (boot); phone.lease drives them from an asyncio task (renewal next to
    # the TLS links).
    def _await(self, ms, stage, accept, deadline_total):
        """Wait up to ms (and never past deadline_total) for a reply `accept` takes.
        accept(reply) returns None to take it or the reason to ignore it."""
        deadline = ticks_add(ticks_ms(), ms)
        if ticks_diff(deadline_total, deadline) < 0:
            deadline = deadline_total
        while True:
            left = ticks_diff(deadline, ticks_ms())
            if left <= 0 or not (yield left):
                return None
            try:
                n = self._recv()
            except OSError:
                continue
            if not n:
                continue
            self.stats['received'] += 1
            try:
                r = parse(self.mv, n, self.xid, self.mac)
            except Ignored as e:
                if e.foreign:
                    self.stats['foreign'] += 1
                else:
                    self.stats['ignored'] += 1
                    self.events.emit('dhcp_ignored', stage=stage, reason=e.reason)
                continue
            why = accept(r)
            if why is None:
                return r
            self.stats['ignored'] += 1
            self.events.emit('dhcp_ignored', stage=stage, reason=why,
                             type=r.type_name(), server=r.server_id())

    def _exchange(self, mtype, stage, accept, deadline, tries, waits, note, **kw):
        """Send `mtype` (build() options in kw) up to `tries` times, each followed by a wait
        of waits(attempt) ms for a reply `accept` takes, never past `deadline`; note(attempt,
        wait_ms) emits the stage's event per transmission. Returns the reply, or None. self.t_sent: when the
        first of these transmissions left (a lease runs from there, RFC 2131 4.4.1)."""
        for attempt in range(tries):
            if ticks_diff(deadline, ticks_ms()) <= 0:
                break
            n = build(self.tx, mtype, self.xid, self.mac, secs=self._secs(),
                      hostname=self.hostname, vendor_class=self.vendor_class, **kw)
            if not attempt:
                self.t_sent = ticks_ms()
            self._send(n)
            wait = waits(attempt)
            note(attempt + 1, wait)
            r = yield from self._await(wait, stage, accept, deadline)
            if r is not None:
                return r
            self.stats['timeouts'] += 1
        self.events.emit('dhcp_timeout', stage=stage, tries=tries)
        return None

    def _nak(self, r, sid):
        msg = r.opts.get(56)
        try:
            msg = msg.decode() if msg else None
        except UnicodeError:
            pass        # not text: the event shows the bytes (hex)
        self.events.emit('dhcp_nak', server=sid, message=msg)

    # -- keeping the lease (RFC 2131 4.4.5) ----------------------------------------------
    def extending(self, ip, sid, deadline, floor_ms):
        """RENEWING (sid: the server that gave the lease, unicast) or REBINDING (sid None:
        broadcast): a REQUEST with ciaddr = ip and neither option 50 nor 54 (RFC 2131 4.3.2),
        retransmitted after half the time left to `deadline` (T2, or the lease's end), at
        least floor_ms, until the deadline. An exchange generator on an open socket:
        returns the ACK or NAK, or None at the deadline."""
        self.t_start = ticks_ms()
        self.xid = new_xid()
        self.dest = sockaddr(sid or self.server, self.server_port)
        stage = 'renewing' if sid else 'rebinding'

        def accept(r):
            if r.mtype not in (ACK, NAK):
                return '%s while %s' % (r.type_name(), stage)
            if sid and r.server_id() not in (None, sid):
                return 'answer from server %s, our lease is from %s' % (r.server_id(), sid)
            if r.mtype == ACK and r.yiaddr != ip:
                return 'ACK for %s, we hold %s' % (r.yiaddr, ip)
            return None

        def waits(attempt):
            return max(ticks_diff(deadline, ticks_ms()) // 2, floor_ms)

        def note(attempt, wait):
            self.events.emit('dhcp_renew', stage=stage, ip=ip, server=sid, attempt=attempt,
                             wait_ms=wait)

        r = yield from self._exchange(REQUEST, stage, accept, deadline, _RENEW_TRIES, waits,
                                      note, ciaddr=ip, broadcast=False)
        if r is not None and r.mtype == NAK:
            self._nak(r, r.server_id() or sid)
        return r
