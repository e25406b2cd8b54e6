# The REGISTER a Cisco SIP phone sends over TLS, and digest authentication (RFC 3261 22 on
# RFC 2617, with RFC 8760's SHA-256): what a SIP registration needs beside phone.sip's
# parsing and framing. Its own module so that a board keeps it only while it registers (the
# SIP link decides; docs/decisions.md, "Issue 15: the SIP wire format"). Facts and sources:
# docs/protocols.md, "SIP". In the common subset of MicroPython and CPython.
import hashlib
from binascii import hexlify
from os import urandom

from phone.sip import SipError, _param, _split, _unq

UA = 'Cisco-CP7911G/9.4.2'  # a 79x1's User-Agent (docs/protocols.md, "SIP")
_ALGS = {'MD5': 'md5', 'SHA-256': 'sha256'}


def _rand(n):
    return hexlify(urandom(n)).decode()


def _hash(alg):
    """hashlib's constructor for a digest algorithm (RFC 8760; -sess alike), or None:
    unknown, or not in this firmware's hashlib (docs/protocols.md, "SIP")."""
    a = alg.upper()
    if a.endswith('-SESS'):
        a = a[:-5]
    return getattr(hashlib, _ALGS.get(a, '_'), None)


def _hex(h, s):
    return hexlify(h(s.encode()).digest()).decode()


def _q(s):
    return '"' + s.replace('\\', '\\\\').replace('"', '\\"') + '"'


def challenge(msg):
    """The challenge of a 401/407 to answer: (ch, None), ch a dict of proxy, realm, nonce,
    opaque, algorithm, qop (the one chosen: auth, else auth-int; None: RFC 2069's form) and
    stale; or (None, why). The first Digest challenge the phone supports, in header order
    (RFC 8760: the topmost it supports); several may share a header (RFC 7235 4.1)."""
    why = None
    for proxy, value in msg.auth:
        ch = None
        for item in _split(value, ',') + [None]:
            if item == '':
                continue
            if item is not None:
                k = 0
                while k < len(item) and item[k] not in ' \t=':
                    k += 1
                rest = item[k:].lstrip()
            if item is None or not rest.startswith('='):     # a scheme, or the end
                if ch is not None:
                    w = _usable(ch)
                    if w is None:
                        return ch, None
                    why = why or w
                if item is None:
                    break
                ch = {'scheme': item[:k].lower(), 'proxy': proxy, 'realm': None,
                      'nonce': None, 'opaque': None, 'algorithm': 'MD5', 'qop': None,
                      'stale': False}
                if not rest:
                    continue
                item = rest                             # the scheme's first parameter
            if ch is None:
                raise SipError('auth parameter before a scheme: %r' % item[:40])
            name, eq, v = item.partition('=')
            name = name.strip().lower()
            if not name or not eq:
                raise SipError('bad auth parameter: %r' % item[:40])
            v = _unq(v.strip())
            if name == 'stale':
                ch[name] = v.lower() == 'true'
            elif name in ('realm', 'nonce', 'opaque', 'algorithm', 'qop'):
                ch[name] = v
    return None, why or 'none'


def _usable(ch):
    """None when the phone can answer ch (its qop then the one chosen), else why not."""
    alg = ch['algorithm']
    qop = ch['qop']
    if ch['scheme'] != 'digest':
        return ch['scheme']
    if _hash(alg) is None:
        return alg
    if ch['realm'] is None or not ch['nonce']:
        return 'Digest without realm or nonce'
    if qop is not None:
        offered = [x.strip().lower() for x in qop.split(',')]
        ch['qop'] = 'auth' if 'auth' in offered else 'auth-int' if 'auth-int' in offered else None
        if ch['qop'] is None:
            return 'qop ' + qop
    elif alg.upper().endswith('-SESS'):
        return alg + ' without qop'
    return None


def digest(ch, user, password, method, uri, cnonce='', nc=1):
    """The request-digest (hex) answering challenge ch: RFC 2617 3.2.2.1-3 with RFC 8760's
    algorithms; auth-int over the empty body (a REGISTER has none)."""
    h = _hash(ch['algorithm'])
    if h is None:
        raise SipError('digest algorithm %s not supported' % ch['algorithm'])
    nonce = ch['nonce']
    ha1 = _hex(h, '%s:%s:%s' % (user, ch['realm'], password))
    if ch['algorithm'].upper().endswith('-SESS'):
        ha1 = _hex(h, '%s:%s:%s' % (ha1, nonce, cnonce))
    qop = ch['qop']
    a2 = method + ':' + uri
    if qop == 'auth-int':
        a2 += ':' + _hex(h, '')
    if qop:
        return _hex(h, '%s:%s:%08x:%s:%s:%s' % (ha1, nonce, nc, cnonce, qop, _hex(h, a2)))
    return _hex(h, '%s:%s:%s' % (ha1, nonce, _hex(h, a2)))


def authorization(ch, user, password, method, uri, cnonce=None, nc=1):
    """The Authorization (to a proxy's challenge: Proxy-Authorization) header line."""
    if ch['qop'] and not cnonce:
        cnonce = _rand(8)
    out = '%s: Digest username=%s,realm=%s,nonce=%s,uri=%s,response="%s",algorithm=%s' % (
        'Proxy-Authorization' if ch['proxy'] else 'Authorization', _q(user), _q(ch['realm']),
        _q(ch['nonce']), _q(uri), digest(ch, user, password, method, uri, cnonce, nc),
        ch['algorithm'])
    if ch['qop']:
        out += ',cnonce=%s,nc=%08x,qop=%s' % (_q(cnonce), nc, ch['qop'])
    if ch['opaque'] is not None:
        out += ',opaque=' + _q(ch['opaque'])
    return out + '\r\n'


class Reg:
    """One line's registration: what stays from one REGISTER to the next (the Call-ID, the
    From tag and the instance id, for a boot cycle: RFC 3261 10.2), the CSeq and the digest
    state. As a Cisco SIP phone builds it (docs/protocols.md, "SIP"):

        reg = Reg('1001', 'cucm.example', '192.0.2.50', 5061, '00:11:22:AA:BB:CC',
                  password='secret', device='SEP001122AABBCC', model='307')
        reg.port = local_port       # the TLS session's own port, in Via and Contact
        data = reg.register()       # REGISTER, Expires: reg.expires
        reg.answer(msg)             # a 401/407: None, and register() again answers it
        reg.register(0)             # un-REGISTER
        reg.register(keepalive=True)    # Cisco's keepalive REGISTER (Expires: 0)

    `auth`: the digest user id (the line's authName; the line when None). phone.sip.parse
    takes a Reg to find our Contact (its instance, else contact())."""

    def __init__(self, line, domain, ip, port, mac, password='', auth=None, ua=UA,
                 device=None, model=None, expires=3600, reg_id=0):
        mac = mac.replace(':', '').replace('-', '').lower()
        if len(mac) != 12 or not all(c in '0123456789abcdef' for c in mac):
            raise SipError('bad MAC address: %r' % mac[:40])
        self.line = line
        self.uri = 'sip:' + domain              # the Request-URI, and the digest uri
        self.aor = '<sip:%s@%s>' % (line, domain)
        self.ip = ip
        self.port = port
        self.instance = '<urn:uuid:00000000-0000-0000-0000-%s>' % mac
        self.call_id = '%s-%s%s-%s-%s@%s' % (mac[:8], mac[8:], _rand(2), _rand(4), _rand(4), ip)
        self.tag = '%s%s-%s' % (mac, _rand(6), _rand(4))
        self.cseq = 100
        self.ua = ua
        self.device = device
        self.model = model
        self.expires = expires
        self.reg_id = reg_id
        self.user = auth or line
        self.password = password
        self.challenge = None
        self.nc = 0
        self.branch = None

    def contact(self):
        return 'sip:%s@%s:%d;transport=tls' % (self.line, self.ip, self.port)

    def register(self, expires=None, keepalive=False):
        """The next REGISTER (bytes): a new branch, the CSeq one up, credentials when a
        challenge is held (its nonce again, nc one up)."""
        self.cseq += 1
        self.branch = 'z9hG4bK' + _rand(4)
        if keepalive:
            expires = 0
        elif expires is None:
            expires = self.expires
        c = '<%s>;+sip.instance="%s"' % (self.contact(), self.instance)
        if self.device:
            c += ';+u.sip!devicename.ccm.cisco.com="%s"' % self.device
        if self.model:
            c += ';+u.sip!model.ccm.cisco.com="%s"' % self.model
        if self.reg_id:
            c += ';reg-id=%d' % self.reg_id
        if keepalive:
            c += ';expires=0;cisco-keep-alive'
        auth = ''
        if self.challenge is not None:
            self.nc += 1
            auth = authorization(self.challenge, self.user, self.password, 'REGISTER',
                                 self.uri, nc=self.nc)
        return ('REGISTER %s SIP/2.0\r\nVia: SIP/2.0/TLS %s:%d;branch=%s\r\n'
                'From: %s;tag=%s\r\nTo: %s\r\nCall-ID: %s\r\nMax-Forwards: 70\r\n'
                'CSeq: %d REGISTER\r\nUser-Agent: %s\r\nContact: %s\r\n%s%s'
                'Expires: %d\r\nContent-Length: 0\r\n\r\n' % (
                    self.uri, self.ip, self.port, self.branch, self.aor, self.tag, self.aor,
                    self.call_id, self.cseq, self.ua, c,
                    'Supported: outbound\r\n' if self.reg_id else '', auth,
                    expires)).encode()

    def answer(self, msg):
        """A 401/407 to our REGISTER: None when the next register() answers it, else why
        not, in words: no challenge the phone supports, or credentials refused (our first
        answer to a nonce challenged again without stale=true: RFC 2617 3.2.1)."""
        ch, why = challenge(msg)
        if ch is None:
            return '%d without a challenge we support (%s)' % (msg.status, why)
        old = self.challenge
        if old is not None and self.nc == 1 and not ch['stale']:
            return '%d: credentials for %s refused (realm %s)' % (
                msg.status, self.user, ch['realm'])
        if old is None or old['nonce'] != ch['nonce']:
            self.nc = 0
        self.challenge = ch
        return None
