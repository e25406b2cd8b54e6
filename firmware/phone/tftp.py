# TFTP client for the phone agent: read requests (RFC 1350) with option negotiation
# (RFC 2347 OACK, 2348 blksize, 2349 timeout and tsize, 7440 windowsize), falling back to
# plain RFC 1350 when the server ignores the options. Streams each block into a writable
# object (a flash file) from one preallocated buffer: no whole-file buffering.
#
# Receive path and memory: one buffer of blksize + 4 bytes is allocated per Client.
# CPython has recv_into; MicroPython (1.29) does not, and its socket readinto() keeps reading
# until the requested size is reached, which would merge queued datagrams. So on MicroPython
# the client reads with readinto(buf, want) where `want` is the exact size of the datagram it
# expects next: blksize + 4 for a full block, and - once tsize is known - the exact size of the
# final block. A full or exactly-expected datagram then ends the read on its own, so the loop
# allocates nothing. A shorter datagram (ERROR, a duplicate OACK) may swallow the next one, which
# only ever costs a retransmission, never wrong data. When the server did not give tsize
# (a plain RFC 1350 server) the client cannot know the last block's size and falls back to
# recv() (one short-lived object per block).
#
# Written in the common MicroPython/CPython subset.
import select
import socket

from micropython import const

from phone import drop
from phone.udp import addr_ip, sockaddr, ticks_add, ticks_diff, ticks_ms, wait

drop('udp')     # its functions live as long as this module's (phone/udp.py)

# Opcodes and error codes (RFC 1350, 2347). Private: a public name would cost the board a
# qstr and a module dict slot each, and nothing outside uses them.
_RRQ = const(1)
_DATA = const(3)
_ACK = const(4)
_ERROR = const(5)
_OACK = const(6)
_E_UNDEF = const(0)
_E_NOT_FOUND = const(1)
_E_ILLEGAL = const(4)
_E_DISK_FULL = const(3)
_E_OPTION = const(8)
_NAMES = ('not defined', 'file not found', 'access violation', 'disk full or allocation exceeded',
          'illegal operation', 'unknown transfer ID', 'file already exists', 'no such user',
          'option negotiation refused')

_PORT = const(69)
_BLKSIZE = const(1428)      # fits a 1500-byte MTU with room for a tunnel header
_WINDOWSIZE = const(4)
_TIMEOUT_MS = const(1000)
_RETRIES = const(5)         # consecutive timeouts before the transfer is given up
_SILENT_RETRIES = const(2)  # RRQ resends to a server that never answered, when another follows
_MIN_BLKSIZE = const(512)   # an OACK blksize under this (or under ours, if smaller) is refused
_MAX_MS = const(86400000)   # a per-file deadline is never further than a day
_IP_RECVERR = const(11)     # Linux: ICMP errors reach an unconnected UDP socket (recv raises)
_MAX_BYTES = const(524288)  # transfer size limit (tsize or running total)
_PLAIN_BLKSIZE = const(512)
_TX_SIZE = const(512)       # RRQ (file name + options) and ERROR packets
_EAGAIN = (11, 110)         # EAGAIN, ETIMEDOUT: nothing to read after all
_UNREACH = (101, 111, 113)  # ENETUNREACH, ECONNREFUSED, EHOSTUNREACH: no use asking again


class TftpError(Exception):
    down = False    # ICMP host or network unreachable (phone.provision: a WAN that is down)

    """A failed transfer. `code` is the TFTP error code (0-8) when the server sent an ERROR
    packet or we aborted with one; None for timeouts and network errors. `local` is True
    when this side gave up (size limit, bad OACK, write failure), False when the server said so."""

    def __init__(self, code, msg, server=None, local=False):
        super().__init__(code, msg)
        self.code = code
        self.msg = msg
        self.server = server
        self.local = local
        self.tried = None

    def __str__(self):
        where = ' from %s' % self.server if self.server else ''
        if self.code is None:
            return 'TFTP failed%s: %s' % (where, self.msg)
        name = _NAMES[self.code] if 0 <= self.code < len(_NAMES) else '?'
        who = 'we aborted' if self.local else 'server says'
        return 'TFTP error %d (%s)%s, %s: %s' % (self.code, name, where, who, self.msg)


def _gone(e):
    # An ICMP error: `down` when the host or its network is unreachable (not a closed port)
    err = TftpError(None, 'unreachable: %r' % (e,))
    err.down = e.args[0] != 111
    return err


class TftpTimeout(TftpError):
    def __init__(self, msg, server=None):
        super().__init__(None, msg, server)


class _Refused(Exception):
    # ERROR 8 in answer to a request with options: retry without them.
    pass


class Stats:
    """Per-transfer figures."""

    def __init__(self, server=None, file=None):
        self.server = server
        self.file = file
        self.answered = False   # any packet from the server (a silent one is skipped later)
        self.reset()

    def reset(self):
        self.bytes = 0
        self.blocks = 0
        self.retransmits = 0    # RRQ or ACK sent again after a timeout
        self.timeouts = 0
        self.reacks = 0         # ACKs sent at once on a duplicate or out-of-order block
        self.dups = 0
        self.ooo = 0
        self.ms = 0
        self.blksize = _PLAIN_BLKSIZE
        self.windowsize = 1
        self.tsize = None
        self.negotiated = False
        self.attempt = 1


# ---------------------------------------------------------------------------------------
# Packets
# ---------------------------------------------------------------------------------------
def build_rrq(buf, filename, options=None, mode='octet'):
    """RRQ into buf; options is a list of (name, value) string pairs. Returns the length."""
    parts = [filename, mode]
    if options:
        for name, value in options:
            parts.append(name)
            parts.append(str(value))
    i = 2
    buf[0] = 0
    buf[1] = _RRQ
    for p in parts:
        b = p.encode()
        if 0 in b:
            raise ValueError('NUL in TFTP request field')
        j = i + len(b)
        if j + 1 > len(buf):
            raise ValueError('TFTP request too long')
        buf[i:j] = b
        buf[j] = 0
        i = j + 1
    return i


def build_error(buf, code, msg):
    b = msg.encode()[:len(buf) - 5]
    buf[0] = 0
    buf[1] = _ERROR
    buf[2] = code >> 8
    buf[3] = code & 0xFF
    buf[4:4 + len(b)] = b
    buf[4 + len(b)] = 0
    return 5 + len(b)


def opcode(b, n):
    return (b[0] << 8) | b[1] if n >= 2 else -1


def parse_error(b, n):
    """(code, message) of an ERROR packet; tolerates a missing NUL or a short packet."""
    if n < 4:
        return _E_UNDEF, 'truncated ERROR packet'
    code = (b[2] << 8) | b[3]
    end = 4
    while end < n and b[end] != 0:
        end += 1
    try:
        msg = bytes(b[4:end]).decode()
    except UnicodeError:
        msg = repr(bytes(b[4:end]))
    return code, msg


def parse_oack(b, n):
    """{name (lower case): value string} of an OACK; raises TftpError(8) when malformed."""
    if n < 2 or opcode(b, n) != _OACK:
        raise TftpError(_E_OPTION, 'not an OACK', local=True)
    fields = []
    i = 2
    while i < n:
        j = i
        while j < n and b[j] != 0:
            j += 1
        if j >= n:
            raise TftpError(_E_OPTION, 'OACK field not NUL-terminated', local=True)
        try:
            fields.append(bytes(b[i:j]).decode())
        except UnicodeError:
            raise TftpError(_E_OPTION, 'OACK field is not text', local=True)
        i = j + 1
    if len(fields) % 2:
        raise TftpError(_E_OPTION, 'OACK has an option without a value', local=True)
    out = {}
    for k in range(0, len(fields), 2):
        out[fields[k].lower()] = fields[k + 1]
    return out


# ---------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------
class Client:
    """Fetches files into writable objects. One Client holds one receive buffer sized for
    its blksize; reuse it for every file of a boot.

    Bounds in time: an OACK blksize under min_blksize is refused (ERROR 8); a server that
    never answered gets silent_retries RRQ resends when another server follows it in the
    list (the last one gets `retries`); an ICMP unreachable ends a server's tries at once;
    with min_rate (bytes/s) each file has a deadline of one full retry budget plus its size
    (tsize, else max_bytes) at that rate; `until` (a ticks_ms value) ends any transfer and
    the walk of the list. `silent`: a list that collects the servers that never answered
    (pass the same list to the next Client of a pass); fetch asks them last. `answer_ms`:
    a server that has not answered a read request within this many ms is given up (a phone
    with a stored configuration does not wait out every retry of a WAN that is down); the
    first answer from any server lifts it for the Client's life."""

    def __init__(self, blksize=_BLKSIZE, windowsize=_WINDOWSIZE, timeout_ms=_TIMEOUT_MS,
                 retries=_RETRIES, max_bytes=_MAX_BYTES, options=True, port=_PORT, events=None,
                 min_blksize=_MIN_BLKSIZE, silent_retries=_SILENT_RETRIES, min_rate=0,
                 until=None, silent=None, answer_ms=None):
        if not 8 <= blksize <= 65464:
            raise ValueError('blksize must be 8..65464')
        if not 1 <= windowsize <= 65535:
            raise ValueError('windowsize must be 1..65535')
        if events is None:
            from phone import events as _ev
            events = _ev.default
        self.blksize = blksize
        self.windowsize = windowsize
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.max_bytes = max_bytes
        self.options = options
        self.port = port
        self.events = events
        self.min_blksize = min_blksize if min_blksize < blksize else blksize
        self.silent_retries = silent_retries
        self.min_rate = min_rate
        self.until = until
        self.silent = [] if silent is None else silent
        self.answer_ms = answer_ms      # see the class doc: lifted at the first answer
        self.heard = False              # a server answered (anything) this Client's life
        self._first_retries = retries   # RRQ resends for the server being asked
        self._t0 = 0
        self._end = None                # ticks_ms the transfer must end by (None: no bound)
        self.buf = bytearray(max(blksize, _PLAIN_BLKSIZE) + 4)
        self.mv = memoryview(self.buf)
        self.tx = bytearray(_TX_SIZE)
        self.ackb = bytearray(4)
        self.ackb[1] = _ACK
        self.last_stats = None
        self._sock = None
        self._poller = None
        self._ipoll = None

    # -- plumbing -------------------------------------------------------------------
    def _open(self, server):
        """A fresh UDP socket for one transfer (tests override this)."""
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def _send(self, b):
        try:
            self._sock.send(b)
        except OSError as e:
            if e.args and e.args[0] in _EAGAIN:
                return      # a lost packet: the timers recover it
            raise TftpError(None, 'send failed: %r' % (e,))

    def _ack(self, blk):
        self.ackb[2] = (blk >> 8) & 0xFF
        self.ackb[3] = blk & 0xFF
        self._send(self.ackb)

    def _abort(self, code, msg):
        """Tell the server we give up (best effort), and return the error to raise."""
        try:
            n = build_error(self.tx, code, msg)
            self._sock.send(memoryview(self.tx)[:n])
        except (OSError, TftpError):
            pass
        return TftpError(code, msg, local=True)

    def _bound(self, size):
        """The ticks_ms this transfer must end by: a full retry budget plus `size` bytes at
        min_rate, and never after `until`; None when there is no bound."""
        end = None
        if self.min_rate:
            ms = self.timeout_ms * (self.retries + 1) + size * 1000 // self.min_rate
            end = ticks_add(self._t0, ms if ms < _MAX_MS else _MAX_MS)
        u = self.until
        if u is not None and (end is None or ticks_diff(u, end) < 0):
            end = u
        return end

    def _late(self, st):
        """The error for a transfer past its deadline."""
        if self.until is not None and ticks_diff(self.until, ticks_ms()) <= 0:
            return TftpTimeout('provisioning deadline passed after %d bytes' % st.bytes)
        return TftpTimeout('too slow: %d bytes in %d ms, under %d bytes/s' % (
            st.bytes, ticks_diff(ticks_ms(), self._t0), self.min_rate))

    # -- one server ---------------------------------------------------------------------
    def get(self, server, filename, sink):
        """Fetch `filename` from one server into sink.write(). Returns Stats; raises
        TftpError (TftpTimeout when the server never answers)."""
        st = Stats(server, filename)
        self.last_stats = st
        t0 = self._t0 = ticks_ms()
        self._end = self._bound(self.max_bytes)
        opts = self.options
        self.events.emit('tftp_start', server=server, file=filename,
                         blksize=self.blksize if opts else None,
                         windowsize=self.windowsize if opts else None)
        try:
            while True:
                try:
                    self._transfer(server, filename, sink, st, opts)
                    break
                except _Refused:
                    opts = False
                    self.events.emit('tftp_options_refused', server=server, file=filename)
        except TftpError as e:
            e.server = server
            st.ms = ticks_diff(ticks_ms(), t0)
            self.events.emit('tftp_error', server=server, file=filename, code=e.code,
                             msg=e.msg, local=e.local, bytes=st.bytes, ms=st.ms,
                             retransmits=st.retransmits)
            raise
        st.ms = ticks_diff(ticks_ms(), t0)
        self.events.emit('tftp_done', server=server, file=filename, bytes=st.bytes,
                         blocks=st.blocks, ms=st.ms, blksize=st.blksize,
                         windowsize=st.windowsize, tsize=st.tsize,
                         negotiated=st.negotiated, retransmits=st.retransmits,
                         timeouts=st.timeouts, dups=st.dups, ooo=st.ooo)
        return st

    def _transfer(self, server, filename, sink, st, opts):
        """One attempt: the read request, the first answer (OACK, DATA 1 or ERROR) from the
        server's new port (its TID), then the blocks."""
        st.reset()
        try:
            dest = sockaddr(server, self.port)
        except (OSError, IndexError) as e:
            raise TftpError(None, 'cannot resolve %s: %r' % (server, e))
        s = self._open(server)
        s.setblocking(False)
        try:
            s.setsockopt(0, _IP_RECVERR, 1)     # IPPROTO_IP; lwIP has no such option
        except OSError:
            pass
        p = select.poll()
        p.register(s, select.POLLIN)
        self._sock = s
        self._poller = p
        self._ipoll = getattr(p, 'ipoll', None)    # bound once per transfer: no allocation per wait
        try:
            sip = addr_ip(dest)
            timeout = self.timeout_ms
            if opts:
                secs = (timeout + 500) // 1000
                secs = 1 if secs < 1 else (255 if secs > 255 else secs)
                opts = [('blksize', self.blksize), ('timeout', secs), ('tsize', 0)]
                if self.windowsize > 1:
                    opts.append(('windowsize', self.windowsize))
            n = build_rrq(self.tx, filename, opts or None)
            rrq = bytes(memoryview(self.tx)[:n])
            pre = 0         # bytes of a DATA 1 already in self.buf (server ignored options)
            tries = 0
            end = self._end
            wait_ms = timeout
            quiet = self.answer_ms
            if quiet:
                # Within answer_ms, a resend at every third of it: a router that rate-limits
                # ICMP (1/s) may drop the first request's error and answer a later one's.
                wait_ms = min(timeout, quiet // 3 or 1)
                quiet = ticks_add(ticks_ms(), quiet)
            deadline = ticks_add(ticks_ms(), wait_ms)
            try:
                s.sendto(rrq, dest)
            except OSError as e:
                raise TftpError(None, 'cannot send to %s: %r' % (sip, e))
            while True:
                now = ticks_ms()
                left = ticks_diff(deadline, now)
                if end is not None:
                    e_left = ticks_diff(end, now)
                    if e_left <= 0:
                        raise self._late(st)
                    if e_left < left:
                        left = e_left
                if quiet:
                    q_left = ticks_diff(quiet, now)
                    if q_left <= 0:
                        raise TftpTimeout('no answer to the read request in %d ms'
                                          % self.answer_ms)
                    if q_left < left:
                        left = q_left
                if left <= 0 or not wait(self._poller, self._ipoll, left):
                    if (end is not None and ticks_diff(end, ticks_ms()) <= 0 or
                            quiet and ticks_diff(quiet, ticks_ms()) <= 0):
                        continue
                    tries += 1
                    st.timeouts += 1
                    if tries > self._first_retries:
                        raise TftpTimeout('no answer to the read request after %d tries' % tries)
                    try:
                        s.sendto(rrq, dest)
                    except OSError as e:
                        if e.args and e.args[0] in _UNREACH:
                            raise _gone(e)
                    st.retransmits += 1
                    deadline = ticks_add(ticks_ms(), wait_ms)
                    continue
                try:
                    data, peer = s.recvfrom(len(self.buf))
                except OSError as e:
                    if e.args and e.args[0] in _EAGAIN:
                        continue
                    if e.args and e.args[0] in _UNREACH:    # ICMP: no one serves TFTP there
                        raise _gone(e)
                    raise TftpError(None, 'receive failed: %r' % (e,))
                ln = len(data)
                if ln < 4 or addr_ip(peer) != sip:
                    continue
                st.answered = self.heard = True
                self.answer_ms = quiet = None
                op = opcode(data, ln)
                if op == _ERROR:
                    code, msg = parse_error(data, ln)
                    if code == _E_OPTION and opts:
                        raise _Refused()
                    raise TftpError(code, msg)
                if op == _OACK and opts:
                    s.connect(peer)
                    try:
                        self._accept_oack(parse_oack(data, ln), st)
                    except TftpError as e:
                        raise self._abort(_E_OPTION, e.msg)
                    st.negotiated = True
                    if st.tsize is not None and st.tsize > self.max_bytes:
                        raise self._abort(_E_DISK_FULL, 'file is %d bytes, limit %d'
                                          % (st.tsize, self.max_bytes))
                    if st.tsize is not None:
                        self._end = self._bound(st.tsize)   # the size is known now
                    self.events.emit('tftp_oack', server=sip, blksize=st.blksize,
                                     windowsize=st.windowsize, tsize=st.tsize)
                    self._ack(0)
                    break
                if op == _DATA and data[2] == 0 and data[3] == 1:
                    s.connect(peer)
                    if ln - 4 > _PLAIN_BLKSIZE:
                        raise self._abort(_E_ILLEGAL, 'block 1 has %d bytes without an OACK'
                                          % (ln - 4))
                    if opts:
                        self.events.emit('tftp_options_ignored', server=sip)
                    self.mv[:ln] = data
                    pre = ln
                    break
                # Anything else before the transfer starts is ignored.
            data = peer = None
            self._receive(sink, st, pre, timeout)
        finally:
            try:
                p.unregister(s)
            except (OSError, KeyError, ValueError):
                pass
            s.close()
            self._sock = self._poller = self._ipoll = None

    def _accept_oack(self, got, st):
        for name in got:
            if name not in ('blksize', 'timeout', 'tsize', 'windowsize') or (
                    name == 'windowsize' and self.windowsize <= 1):
                raise TftpError(_E_OPTION, 'server acknowledged option %r we did not ask for'
                                % name, local=True)
        try:
            if 'blksize' in got:
                b = int(got['blksize'])
                if not 8 <= b <= self.blksize:
                    raise ValueError
                if b < self.min_blksize:
                    # RFC 2348 allows 8, but no path needs less than 512 (it fits the 576
                    # bytes every IPv4 host accepts): tiny blocks only multiply round trips.
                    raise TftpError(_E_OPTION, 'blksize %d refused (< %d)'
                                    % (b, self.min_blksize), local=True)
                st.blksize = b
            if 'windowsize' in got:
                w = int(got['windowsize'])
                if not 1 <= w <= self.windowsize:
                    raise ValueError
                st.windowsize = w
            if 'timeout' in got:
                t = int(got['timeout'])
                if not 1 <= t <= 255:
                    raise ValueError
            if 'tsize' in got:
                t = int(got['tsize'])
                if t < 0:
                    raise ValueError
                st.tsize = t
        except ValueError:
            raise TftpError(_E_OPTION, 'bad value in OACK %r' % (got,), local=True)

    def _receive(self, sink, st, pre, timeout):
        blksize = st.blksize
        window = st.windowsize
        tsize = st.tsize
        cap = blksize + 4
        buf = self.buf
        mv = self.mv
        full = mv[4:cap]
        exact = tsize is not None
        limit = self.max_bytes
        sock = self._sock
        into = getattr(sock, 'recv_into', None)
        expected = 1
        since_ack = 0
        reacked_at = -1
        tries = 0
        end = self._end
        deadline = ticks_add(ticks_ms(), timeout)
        while True:
            if pre:
                n = pre
                pre = 0
            else:
                now = ticks_ms()
                left = ticks_diff(deadline, now)
                if end is not None:
                    e_left = ticks_diff(end, now)
                    if e_left <= 0:
                        e = self._late(st)
                        self._abort(_E_UNDEF, e.msg)
                        raise e
                    if e_left < left:
                        left = e_left
                if left <= 0 or not wait(self._poller, self._ipoll, left):
                    if end is not None and ticks_diff(end, ticks_ms()) <= 0:
                        continue
                    tries += 1
                    st.timeouts += 1
                    if tries > self.retries:
                        msg = 'timed out waiting for block %d' % expected
                        self._abort(_E_UNDEF, msg)
                        raise TftpTimeout(msg)
                    self._ack((expected - 1) & 0xFFFF)
                    st.retransmits += 1
                    since_ack = 0
                    deadline = ticks_add(ticks_ms(), timeout)
                    continue
                want = cap
                if exact:
                    rem = tsize - st.bytes
                    if 0 <= rem and rem + 4 < cap:
                        want = rem + 4
                try:
                    if into is not None:
                        n = into(mv, want)
                    elif exact:
                        n = sock.readinto(mv, want)
                    else:
                        d = sock.recv(len(buf))
                        n = len(d)
                        mv[:n] = d
                        d = None
                except OSError as e:
                    if not (e.args and e.args[0] in _EAGAIN):
                        if e.args and e.args[0] in _UNREACH:
                            raise _gone(e)
                        raise TftpError(None, 'receive failed: %r' % (e,))
                    n = 0
                if not n or n < 4:
                    continue
            op = (buf[0] << 8) | buf[1]
            if op == _DATA:
                blk = (buf[2] << 8) | buf[3]
                if blk == expected & 0xFFFF:
                    dlen = n - 4
                    total = st.bytes + dlen
                    if total > limit:
                        raise self._abort(_E_DISK_FULL, 'transfer exceeds the %d byte limit'
                                          % limit)
                    last = dlen < blksize
                    if exact and (total > tsize or (last and total != tsize)):
                        raise self._abort(_E_UNDEF, 'size mismatch: tsize %d, received %d'
                                          % (tsize, total))
                    try:
                        sink.write(full if dlen == blksize else mv[4:n])
                    except OSError as e:
                        raise self._abort(_E_DISK_FULL, 'cannot store the file: %r' % (e,))
                    st.bytes = total
                    st.blocks += 1
                    expected += 1
                    tries = 0
                    since_ack += 1
                    if last or since_ack >= window:
                        self._ack(blk)
                        since_ack = 0
                    if last:
                        return
                    deadline = ticks_add(ticks_ms(), timeout)
                else:
                    if ((blk - expected) & 0xFFFF) < 0x8000:
                        st.ooo += 1     # ahead: a block of the window was lost
                    else:
                        st.dups += 1    # behind: our ACK was lost or the net duplicated
                    # ACK the last block received in order, once per position: the server
                    # restarts its window there (RFC 7440), or moves on after a lost ACK.
                    if reacked_at != expected:
                        reacked_at = expected
                        self._ack((expected - 1) & 0xFFFF)
                        st.reacks += 1
                        since_ack = 0
                        deadline = ticks_add(ticks_ms(), timeout)
            elif op == _ERROR:
                code, msg = parse_error(buf, n)
                raise TftpError(code, msg)
            elif op == _OACK and expected == 1 and st.negotiated:
                self._ack(0)    # our ACK of the OACK was lost: the server repeats its OACK
            # Anything else from the server's port is ignored.

    # -- a list of servers ------------------------------------------------------------
    def fetch(self, servers, filename, sink, next_on_not_found=True):
        """Try the servers in order (the DHCP preference list); return the Stats of the
        first success. When all fail, raise the first error a server answered with (e.g.
        file not found), else the last one; `.tried` lists the servers tried.
        next_on_not_found=False: a server that answers "file not found" ends the walk (the
        caller has another name to ask that server for before going to the next server).
        A server that failed after writing data is only followed by the next one when the
        sink can seek (it is rewound; and truncated if it can be and the new file is shorter).
        A server that never answered (in `self.silent`) is skipped while another is left;
        once `until` has passed no further server is asked."""
        if isinstance(servers, str):
            servers = [servers]
        if not servers:
            raise TftpError(None, 'no TFTP server to try for %s' % filename)
        silent = self.silent
        todo = [x for x in servers if x not in silent] or list(servers)
        errors = []
        tried = []
        dirty = 0
        for i in range(len(todo)):
            server = todo[i]
            if self.until is not None and ticks_diff(self.until, ticks_ms()) <= 0:
                errors.append(TftpTimeout('provisioning deadline passed'))
                break
            if dirty:
                if not hasattr(sink, 'seek'):
                    break
                sink.seek(0)
            # Fewer RRQ resends to a server that never answers while another one follows.
            self._first_retries = self.retries if i + 1 == len(todo) else min(
                self.retries, self.silent_retries)
            tried.append(server)
            try:
                st = self.get(server, filename, sink)
            except TftpError as e:
                errors.append(e)
                st = self.last_stats
                b = st.bytes if st else 0
                if b > dirty:
                    dirty = b
                if st is not None and not st.answered and server not in silent:
                    silent.append(server)
                if e.code == _E_NOT_FOUND and not e.local and not next_on_not_found:
                    break
                if i + 1 < len(todo):
                    self.events.emit('tftp_next_server', file=filename, failed=server,
                                     next=todo[i + 1], reason=str(e))
                continue
            finally:
                self._first_retries = self.retries
            st.attempt = len(tried)
            if dirty > st.bytes:
                if hasattr(sink, 'truncate'):
                    sink.truncate()
                else:
                    raise TftpError(None, 'earlier partial transfer left stale bytes in '
                                    'a sink that cannot truncate', server=server, local=True)
            return st
        best = None
        for e in errors:
            if e.code is not None and not e.local:
                best = e
                break
        if best is None:
            best = errors[-1]
        best.tried = tried
        raise best


def fetch(servers, filename, sink, events=None, **kw):
    """Fetch `filename` from the first server of `servers` that delivers it. Keyword
    arguments are Client's (blksize, windowsize, timeout_ms, retries, max_bytes, options,
    port). Returns Stats; raises TftpError."""
    return Client(events=events, **kw).fetch(servers, filename, sink)
