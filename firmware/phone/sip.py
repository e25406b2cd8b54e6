# SIP (RFC 3261), the phone's side of the wire: the parsing of what a registrar sends
# (responses, and the few requests a phone answers), the answer to such a request, and the
# framing of a TLS byte stream into messages (RFC 3261 18.3, with RFC 5626's CRLF
# keepalives). The REGISTER and its digest authentication are phone.sipreg's. No I/O policy
# here: that is the SIP link's. Facts and sources: docs/protocols.md, "SIP". In the common
# subset of MicroPython and CPython (the host tests import it).
#
# Bad input never raises anything but SipError, with the reason in words: every size is
# bounded (the header block by the reader's buffer, the counts of headers and of items in a
# header, a body by MAX_BODY), and a body is skipped, never kept.
import sys

from micropython import const


class SipError(Exception):
    pass


MAX_MSG = const(2048)       # the reader's buffer: a message's start line and headers
MAX_BODY = const(65536)     # a longer body is refused (bodies are read and skipped)
_MAX_HEADERS = const(64)
_MAX_ITEMS = const(32)      # comma- or semicolon-separated items in one header value
_MAX_DELTA = const(0xFFFFFFFF)  # RFC 3261 20.19: larger delta-seconds mean this

# What Reader.aread() returns besides a status code (100..699), and -1 at a clean end
PONG = const(0)             # CR/LF between messages: RFC 5626's pong
REQUEST = const(1)          # a request from the server (Msg.method says which)
PING = b'\r\n\r\n'          # RFC 5626 3.5.1: the client's keepalive, answered by a pong

_MP = sys.implementation.name == 'micropython'

# Header names, lower case, long and compact forms (RFC 3261 7.3.3; o: RFC 6665) -> code
_VIA = const(1)
_FROM = const(2)
_TO = const(3)
_CALLID = const(4)
_CSEQ = const(5)
_CLEN = const(6)
_EXPIRES = const(7)
_CONTACT = const(8)
_WWW = const(9)
_PROXY = const(10)
_RETRY = const(11)
_MINEXP = const(12)
_FLOW = const(13)
_EVENT = const(14)
_OPTS = const(15)
_NAMES = {'via': _VIA, 'v': _VIA, 'from': _FROM, 'f': _FROM, 'to': _TO, 't': _TO,
          'call-id': _CALLID, 'i': _CALLID, 'cseq': _CSEQ, 'content-length': _CLEN,
          'l': _CLEN, 'expires': _EXPIRES, 'contact': _CONTACT, 'm': _CONTACT,
          'www-authenticate': _WWW, 'proxy-authenticate': _PROXY, 'retry-after': _RETRY,
          'min-expires': _MINEXP, 'flow-timer': _FLOW, 'event': _EVENT, 'o': _EVENT,
          'supported': _OPTS, 'k': _OPTS, 'require': _OPTS}


def _bad(what, v):
    return SipError('bad %s: %r' % (what, v[:40]))


def _uint(s, what):
    """delta-seconds and other unsigned numbers: digits only (int() takes '1_0', '+1')."""
    s = s.strip()
    if not s or len(s) > 20 or not all('0' <= c <= '9' for c in s):
        raise _bad(what, s)
    n = int(s)
    return n if n < _MAX_DELTA else _MAX_DELTA


def _split(s, sep):
    """s split at sep outside quoted strings and <...>, each item stripped."""
    if '"' not in s and '<' not in s:
        out = s.split(sep)
    else:
        out = []
        start = 0
        quoted = angle = False
        i = 0
        while i < len(s):
            c = s[i]
            if quoted:
                if c == '\\':
                    i += 1
                elif c == '"':
                    quoted = False
            elif c == '"':
                quoted = True
            elif c == '<':
                angle = True
            elif c == '>':
                angle = False
            elif c == sep and not angle:
                out.append(s[start:i])
                start = i + 1
            i += 1
        if quoted:
            raise _bad('quoted string', s)
        out.append(s[start:])
    if len(out) > _MAX_ITEMS:
        raise _bad('header value (more than %d items)' % _MAX_ITEMS, s)
    return [x.strip() for x in out]


def _unq(s):
    """A token as it is, a quoted string's content with its escapes undone."""
    if not s.startswith('"'):
        return s
    if len(s) < 2 or not s.endswith('"'):
        raise _bad('quoted string', s)
    s = s[1:-1]
    if '\\' not in s:
        return s
    out = []
    esc = False
    for c in s:
        if esc or c != '\\':
            out.append(c)
            esc = False
        else:
            esc = True
    return ''.join(out)


def _param(params, key):
    """The value of ;key=value in a header's parameters (unquoted), '' for a bare ;key,
    None when absent."""
    for p in _split(params, ';'):
        name, eq, value = p.partition('=')
        if name.strip().lower() == key:
            return _unq(value.strip()) if eq else ''
    return None


class Msg:
    """One parsed message (a Reader reuses one). A response: status (100..699) and reason;
    a request: status 0, method and uri. Then vias (each Via value, top first), branch (the
    top Via's), from_, to, call_id, cseq, cseq_method, length (Content-Length), expires (the
    Expires header), granted (our Contact's ;expires=, else Expires: what a registrar
    granted), min_expires (423), retry_after, flow_timer (RFC 5626), outbound (in Require or
    Supported), event (its type), auth ((proxy, value) of each WWW-/Proxy-Authenticate, for
    phone.sipreg.challenge) and hlen (bytes of the start line and headers)."""

    def __init__(self):
        self.clear()

    def clear(self):
        self.status = 0
        self.reason = self.method = self.uri = self.branch = self.from_ = self.to = None
        self.call_id = self.cseq_method = self.event = None
        self.vias = []
        self.auth = []
        self.cseq = self.length = -1
        self.expires = self.granted = self.min_expires = self.retry_after = None
        self.flow_timer = self._ours = None
        self.outbound = False
        self.hlen = self._contacts = 0


def head_end(buf, start=0, end=None):
    """The index just past the blank line that ends the headers in buf[start:end] (CRLF or
    LF line ends), or -1."""
    if end is None:
        end = len(buf)
    a = buf.find(b'\n\r\n', start, end)
    b = buf.find(b'\n\n', start, end)
    if a < 0:
        return b + 2 if b >= 0 else -1
    return a + 3 if b < 0 or a < b else b + 2


def parse(buf, end=None, reg=None, msg=None):
    """Parse the start line and headers in buf (bytes or bytearray; CR/LF before the start
    line skipped, RFC 3261 7.5) up to `end`, the end of the blank line (found when None).
    `reg` (a phone.sipreg.Reg: its instance and contact()) tells which Contact is ours.
    Returns `msg` (a new Msg when None) or raises SipError. The body is the caller's:
    msg.length says how long it is."""
    if msg is None:
        msg = Msg()
    else:
        msg.clear()
    try:
        _parse(buf, end, reg, msg)
    except SipError:
        raise
    except (ValueError, IndexError, KeyError, TypeError) as e:     # a gap in the checks
        raise SipError('malformed message (%s)' % type(e).__name__)
    return msg


def _parse(buf, end, reg, msg):
    i = 0
    stop = len(buf) if end is None else end
    while i < stop and buf[i] in (13, 10):
        i += 1
    if end is None:
        end = head_end(buf, i)
        if end < 0:
            raise SipError('no blank line after the headers')
    msg.hlen = end
    mv = memoryview(buf)
    n = 0
    name = value = None
    while i < end:
        j = buf.find(b'\n', i, end)
        k = j
        if k > i and buf[k - 1] == 13:
            k -= 1
        n += 1
        try:
            line = str(mv[i:k], 'utf-8')
        except UnicodeError:
            raise SipError('line %d is not UTF-8' % n)
        i = j + 1
        if n == 1:
            _start(line, msg)
        elif not line:
            break
        elif line[0] in ' \t':                          # folded: RFC 3261 7.3.1
            if value is None:
                raise SipError('continuation line before any header')
            value += ' ' + line.strip()
        else:
            if value is not None:
                _header(name, value, reg, msg)
            if n > _MAX_HEADERS:
                raise SipError('more than %d headers' % _MAX_HEADERS)
            c = line.find(':')
            name = line[:c].strip().lower() if c > 0 else ''
            if not name or ' ' in name or '\t' in name:
                raise _bad('header line %d' % n, line)
            value = line[c + 1:].strip()
    if value is not None:
        _header(name, value, reg, msg)
    for what, v in (('Via', msg.branch), ('From', msg.from_), ('To', msg.to),
                    ('Call-ID', msg.call_id), ('CSeq', msg.cseq_method),
                    ('Content-Length', msg.length >= 0 or None)):
        if v is None:
            raise SipError('no %s header' % what)
    msg.granted = msg._ours if msg._ours is not None else msg.expires


def _start(line, msg):
    if line[:8].upper() == 'SIP/2.0 ':
        code, _, reason = line[8:].partition(' ')
        if len(code) != 3 or not code.isdigit() or not '100' <= code <= '699':
            raise _bad('status line', line)
        msg.status = int(code)
        msg.reason = reason.strip()
        return
    parts = line.split(' ')
    if len(parts) != 3 or parts[2].upper() != 'SIP/2.0' or not parts[0] or not parts[1]:
        raise _bad('start line', line)
    msg.method = parts[0]
    msg.uri = parts[1]


def _header(name, value, reg, msg):
    h = _NAMES.get(name)
    if h is None:
        return
    if h in (_FROM, _TO, _CALLID, _CSEQ):
        name = ('From', 'To', 'Call-ID', 'CSeq')[h - _FROM]
        if (msg.from_, msg.to, msg.call_id, msg.cseq_method)[h - _FROM] is not None:
            raise SipError('two %s headers' % name)
        if not value:
            raise _bad(name, value)
    if h == _VIA:
        for v in _split(value, ','):
            if not v.upper().startswith('SIP/2.0/') or len(msg.vias) >= _MAX_ITEMS:
                raise _bad('Via', v)
            msg.vias.append(v)
            if msg.branch is None:
                msg.branch = _param(v, 'branch') or ''
    elif h == _FROM:
        msg.from_ = value
    elif h == _TO:
        msg.to = value
    elif h == _CALLID:
        msg.call_id = value
    elif h == _CSEQ:
        parts = value.split()
        if len(parts) != 2:
            raise _bad('CSeq', value)
        msg.cseq = _uint(parts[0], 'CSeq')
        msg.cseq_method = parts[1]
    elif h == _CLEN:
        n = _uint(value, 'Content-Length')
        if msg.length >= 0 and n != msg.length:
            raise SipError('two Content-Length: %d and %d' % (msg.length, n))
        if n > MAX_BODY:
            raise SipError('Content-Length %d over %d' % (n, MAX_BODY))
        msg.length = n
    elif h == _EXPIRES:
        msg.expires = _uint(value, 'Expires')
    elif h == _CONTACT:
        for c in _split(value, ','):
            _contact(c, reg, msg)
    elif h == _WWW or h == _PROXY:
        if len(msg.auth) >= _MAX_ITEMS:
            raise SipError('more than %d challenges' % _MAX_ITEMS)
        msg.auth.append((h == _PROXY, value))
    elif h == _RETRY:
        # delta-seconds [ comment ] *( ;param ): RFC 3261 20.33
        k = 0
        while k < len(value) and '0' <= value[k] <= '9':
            k += 1
        rest = value[k:].lstrip()
        if rest and rest[0] not in '(;':
            raise _bad('Retry-After', value)
        msg.retry_after = _uint(value[:k], 'Retry-After')
    elif h == _MINEXP:
        msg.min_expires = _uint(value, 'Min-Expires')
    elif h == _FLOW:
        msg.flow_timer = _uint(value, 'Flow-Timer')
    elif h == _EVENT:
        msg.event = value.partition(';')[0].strip().lower()
    elif 'outbound' in [x.lower() for x in _split(value, ',')]:     # _OPTS
        msg.outbound = True


def _contact(c, reg, msg):
    """One Contact value: its ;expires= is what was granted when it is ours (its
    +sip.instance, else its URI, is reg's; without a reg: when it is the only one)."""
    if c == '*':
        return
    if c.startswith('"'):                              # a display name: skip it whole
        k = 1
        while k < len(c) and c[k] != '"':
            k += 2 if c[k] == '\\' else 1
        c = c[k + 1:]
    lt = c.find('<')
    if lt >= 0:
        gt = c.find('>', lt)
        if gt < 0:
            raise _bad('Contact', c)
        uri, params = c[lt + 1:gt].strip(), c[gt + 1:]
    else:
        uri, _, params = c.partition(';')
        params = ';' + params
    if not uri:
        raise _bad('Contact', c)
    e = _param(params, 'expires')
    if e is None:
        return
    e = _uint(e, 'Contact expires')
    if reg is None:
        msg._contacts += 1
        msg._ours = e if msg._contacts == 1 else None
        return
    if msg._ours is None:
        inst = _param(params, '+sip.instance')
        if (inst.lower() == reg.instance if inst is not None
                else uri.lower() == reg.contact().lower()):
            msg._ours = e


def reply(msg, code, reason, tag=None):
    """The response (bytes) to a request from the server: its Via, From, To (with `tag`
    when it has none), Call-ID and CSeq, no body (RFC 3261 8.2.6)."""
    to = msg.to
    if tag and _param(to[to.find('>') + 1:], 'tag') is None:
        to += ';tag=' + tag
    return ('SIP/2.0 %d %s\r\n%sFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\n'
            'Content-Length: 0\r\n\r\n' % (
                code, reason, ''.join('Via: %s\r\n' % v for v in msg.vias), msg.from_, to,
                msg.call_id, msg.cseq, msg.cseq_method)).encode()


class Reader:
    """Splits a byte stream (TLS) into SIP messages in one preallocated buffer:

        r = Reader(stream, reg=reg)
        mid = await r.aread()   # a status code, REQUEST, PONG, or -1 at a clean end
        r.msg                   # the parsed message (reused: valid until the next read)
        r.body()                # its start line and headers, a memoryview into the buffer

    CR/LF between messages are pongs (RFC 5626 4.4.1: one PONG per run). A body
    (Content-Length, mandatory on a stream: RFC 3261 18.3, 20.14) is read and skipped, in
    pieces when longer than the buffer. Headers longer than the buffer, a stream that ends
    inside a message and a bad message raise SipError; the stream is then out of step and
    must be closed. Timeouts are the caller's."""

    def __init__(self, stream, size=MAX_MSG, reg=None):
        self.stream = stream
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        self.reg = reg
        self.msg = Msg()
        self.have = 0       # bytes in buf
        self.used = 0       # bytes of the last message still at buf's front
        self.skip = 0       # its body bytes still to come
        self.scan = 0       # where the search for the blank line goes on
        self.eof = False

    def body(self):
        return self.mv[:self.msg.hlen]

    def _drop(self, n):
        rest = self.have - n
        if rest > 0:
            # MicroPython moves with memmove (py/obj.h, mp_seq_replace_slice_no_grow);
            # CPython's memcpy must not be given overlapping buffers
            self.buf[:rest] = self.mv[n:self.have] if _MP else bytes(self.mv[n:self.have])
        self.have = rest
        self.scan = 0

    def _next(self):
        """The next message's id from what is buffered; None: read more."""
        if self.used:
            self._drop(self.used)
            self.used = 0
        if self.skip:
            k = self.skip if self.skip < self.have else self.have
            self._drop(k)
            self.skip -= k
            if self.skip:
                return self._more('a body')
        buf = self.buf
        k = 0
        lf = False
        while k < self.have and buf[k] in (13, 10):
            lf = lf or buf[k] == 10
            k += 1
        if k:
            if not lf and k == self.have and k < len(buf):
                return self._more(None)         # a CR alone so far: its LF may follow
            self._drop(k)
            if lf:
                return PONG
        end = head_end(buf, self.scan, self.have)
        if end < 0:
            if self.have == len(buf):
                raise SipError('headers over %d bytes' % len(buf))
            self.scan = self.have - 2 if self.have > 2 else 0
            return self._more('a message' if self.have else None)
        msg = parse(buf, end, self.reg, self.msg)
        if end + msg.length <= self.have:
            self.used = end + msg.length
        else:
            self.used = self.have
            self.skip = end + msg.length - self.have
        return msg.status or REQUEST

    def _more(self, inside):
        if not self.eof:
            return None
        if inside:
            raise SipError('stream ended inside ' + inside)
        return -1

    async def aread(self):
        while True:
            mid = self._next()
            if mid is not None:
                return mid
            n = await self.stream.readinto(self.mv[self.have:])
            if n == 0:
                self.eof = True
            elif n:
                self.have += n
