# Streaming reader of SEP<MAC>.cnf.xml / XMLDefault.cnf.xml into a small Config.
#
# The XML is read in fixed-size chunks (readinto into one preallocated buffer), never whole:
# configs run to tens of KB and the heap is ~96 KB. Only the text of the few elements the agent
# needs is kept (bounded); everything else (unknown elements, comments, CDATA, processing
# instructions, DOCTYPE, attributes) is passed over with bytes.find, at C speed.
#
# Kept: call managers (<member priority>, callManager <name>, <processNodeName>,
# <ports><ethernetPhonePort>), <srstInfo> (name, srstOption, ipAddr1..3, port1..3, isSecure and,
# by our convention, <certificate> = base64 DER or a PEM block, with an optional <certHash> =
# base64 (or hex) SHA-256 of the DER), deviceSecurityMode, connectionMonitorDuration; for a
# SIP phone (issue 15) deviceProtocol, transportLayerProtocol, the call managers' <sipPort> and
# <securedSipPort>, <srstInfo>'s <sipIpAddr1..3>/<sipPort1..3>, <sipProfile><sipStack>'s
# registration timers and the <sipLines> lines (featureID 9) with their digest credentials.
# Where each comes from, and which is the lab's convention: docs/protocols.md, "The
# configuration file".
#
# Common MicroPython/CPython subset (host tools import it too). Kept small on purpose: its
# code is in the heap while provisioning runs, and the names it interns stay there for good.
import binascii
import hashlib
import json

from micropython import const

BUF_SIZE = const(1024)      # read chunk; also the longest tag (name + attributes) accepted
_TEXT_MAX = const(256)      # longest text of an ordinary field
_CERT_MAX = const(8192)     # longest <certificate> text
_DEPTH_MAX = const(64)
_NAME_MAX = const(64)       # longest element name: the open ones are kept (64 x 64 bytes)
_DEFAULT_MONITOR_S = const(120)
DEFAULT_PORT = const(2000)  # plain SCCP; the TLS port is this + SECURE_OFFSET
SECURE_OFFSET = const(443)  # TLS port = the config's plain SCCP port + 443 (host tools too)
_LAST = const(1 << 30)      # sort key of a <member> without a priority
_SIP_PORT = const(5060)     # plain SIP; securedSipPort is 5061 when absent (_SIP_PORT + 1)

# element name -> key, by parent
_SRST = {b'name': 'name', b'srstOption': 'option', b'isSecure': 'secure',
         b'certificate': 'cert', b'certHash': 'hash', b'ipAddr1': 'ip1', b'ipAddr2': 'ip2',
         b'ipAddr3': 'ip3', b'port1': 'port1', b'port2': 'port2', b'port3': 'port3'}
_CM = {b'name': 'name', b'processNodeName': 'host', b'ethernetPhonePort': 'port'}
_TOP = {b'deviceSecurityMode': 'sec', b'connectionMonitorDuration': 'mon',
        b'deviceProtocol': 'sip'}
# SIP (issue 15): fields kept under their element names, decoded when met (names of our own
# would be interned for good: docs/decisions.md, issue 15). By parent: [0:2] a call manager's
# <ports>, [2:8] <srstInfo>, [8] the device's, [9:12] <sipProfile><sipStack>; _LINE: a
# <sipLines><line>'s.
_SIPS = (b'sipPort', b'securedSipPort', b'sipIpAddr1', b'sipPort1', b'sipIpAddr2', b'sipPort2',
         b'sipIpAddr3', b'sipPort3', b'transportLayerProtocol', b'timerRegisterExpires',
         b'timerRegisterDelta', b'timerKeepAliveExpires')
_LINE = (b'featureID', b'name', b'authName', b'authPassword', b'displayName', b'proxy', b'port')
_ENT = {b'amp': b'&', b'lt': b'<', b'gt': b'>', b'quot': b'"', b'apos': b"'"}
_WS = (b' ', b'\n', b'\t', b'\r')


class ConfigError(ValueError):
    pass


class Config:
    """call_managers: [{'priority', 'name', 'host', 'port'}] in priority order (host is
    processNodeName, else name; port the plain SCCP port). srst: None without <srstInfo>, else
    {'name', 'option', 'servers': [[ip, port]], 'secure', 'cert': DER bytes or None,
    'cert_sha256': bytes or None}. security_mode: 1 (also when absent), 2 or 3. root: 'device'
    or 'Default' (XMLDefault.cnf.xml). source_size/source_crc: the XML read (CRC-32).
    sgn: [timestamp, file name] of the .sgn header it came in (verified), None if unsigned.
    sip: None for an SCCP phone. A SIP phone's config (<deviceProtocol> SIP; without one, a
    <sipProfile> with a line) has sip = {'lines': [{'name', 'authName', 'authPassword',
    'displayName', 'proxy', 'port' (int): those present}] (featureID 9 or none, in file
    order), 'transportLayerProtocol', 'timerRegisterExpires', 'timerRegisterDelta',
    'timerKeepAliveExpires': int or None}; each call manager 'sip': [sipPort (5060 when
    absent), securedSipPort (5061)]; srst 'sip': [[sipIpAddrN or ipAddrN, sipPortN (5060)]],
    whose TLS port is sipPortN + 1 (Secure SRST). SCCP configs are read as before."""
    root = srst = sgn = sip = None
    security_mode = 1
    monitor_s = _DEFAULT_MONITOR_S
    source_size = source_crc = 0

    def __init__(self):
        self.call_managers = []

    def wants_srst_standby(self):
        """The config's side of the Secure SRST rule (the caller also needs a CTL)."""
        s = self.srst
        return self.security_mode in (2, 3) and bool(
            s and s['cert'] and s['sip' if self.sip else 'servers'])

    def to_dict(self):
        s = self.srst
        if s and s['cert']:
            s = dict(s, cert=binascii.b2a_base64(s['cert']).strip().decode(),
                     cert_sha256=binascii.hexlify(s['cert_sha256']).decode())
        d = {'root': self.root, 'call_managers': self.call_managers, 'srst': s,
             'security_mode': self.security_mode,
             'connection_monitor_duration': self.monitor_s,
             'source': [self.source_size, self.source_crc], 'sgn': self.sgn}
        if self.sip:
            d['sip'] = self.sip
        return d

    def dumps(self):
        return json.dumps(self.to_dict())


def loads(text):
    """Config from dumps() text."""
    try:
        d = json.loads(text)
        c = Config()
        c.root = d['root']
        c.call_managers = d['call_managers']
        c.security_mode = d['security_mode']
        c.monitor_s = d['connection_monitor_duration']
        c.source_size, c.source_crc = d['source']
        c.sgn = d.get('sgn')
        c.sip = d.get('sip')
        s = c.srst = d['srst']
        if s and s['cert']:
            s['cert'] = binascii.a2b_base64(s['cert'])
            s['cert_sha256'] = hashlib.sha256(s['cert']).digest()
        return c
    except (KeyError, TypeError, ValueError, IndexError):
        raise ConfigError('stored config is malformed')


def _unescape(b):
    """The five XML entities and &#N; / &#xH;; unknown references stay as written."""
    i = b.find(b'&')
    if i < 0:
        return b
    out = bytearray(b[:i])
    while i >= 0:
        k = b.find(b';', i)
        ent = b[i + 1:k] if 0 < k - i < 12 else b''
        rep = _ENT.get(ent)
        if rep is None and ent[:1] == b'#':
            try:
                rep = _utf8(int(ent[2:], 16) if ent[1:2] in (b'x', b'X') else int(ent[1:]))
            except ValueError:
                pass
        if rep is None:
            rep = b'&'
            k = i
        out += rep
        i = b.find(b'&', k + 1)
        out += b[k + 1:] if i < 0 else b[k + 1:i]
    return bytes(out)


def _utf8(c):
    # UTF-8 of a code point, without chr(): MicroPython interns every distinct character chr()
    # returns, for good (a certificate of 900 numeric references kept 16 KB and ran out of heap)
    if c < 0x80:
        if c < 0:
            raise ValueError
        return bytes((c,))
    if c < 0x800:
        return bytes((0xC0 | c >> 6, 0x80 | c & 0x3F))
    if c < 0x10000:
        return bytes((0xE0 | c >> 12, 0x80 | c >> 6 & 0x3F, 0x80 | c & 0x3F))
    if c > 0x10FFFF:
        raise ValueError
    return bytes((0xF0 | c >> 18, 0x80 | c >> 12 & 0x3F, 0x80 | c >> 6 & 0x3F, 0x80 | c & 0x3F))


def _num(v, what):
    if not v:
        return None
    try:
        return int(v)
    except ValueError:
        raise ConfigError('<%s> is not a number: %s' % (what, v))


def _cert(t):
    """<certificate> text (base64 DER, or a PEM block) -> DER bytes, None when empty."""
    if not t:
        return None
    if t.startswith('-----BEGIN'):
        a = t.find('\n')
        t = t[a:t.find('-----END')] if a > 0 else ''
    try:
        der = binascii.a2b_base64(t)
    except ValueError:
        der = b''
    # a DER SEQUENCE whose length is exactly the data
    n = der[1] if len(der) > 2 and der[0] == 0x30 else 0
    L = 2
    if n > 0x80 and n < 0x84:
        L += n - 0x80
        n = int.from_bytes(der[2:L], 'big')
    if n + L != len(der):
        raise ConfigError('SRST <certificate> is not a base64/PEM DER certificate')
    return der


def _prio(t):
    # int value of the priority="N" attribute in the tag bytes t, or None
    i = t.find(b'priority')
    v = t[i + 8:].lstrip() if i > 0 else b''
    if v[:1] == b'=':
        v = v[1:].lstrip()
        e = v.find(v[:1], 1)
        try:
            return int(v[1:e]) if e > 0 else None
        except ValueError:
            pass


def parse(stream, bufsize=BUF_SIZE):
    """Read a cnf.xml from `stream` (anything with readinto) in chunks of `bufsize` bytes;
    return a Config. ConfigError for truncated, unbalanced or malformed XML, a tag longer than
    `bufsize`, a bad SRST certificate, or one that does not match <certHash>."""
    try:
        return _parse(stream, bufsize)
    except UnicodeError:    # a name or kept text that is not UTF-8 (the error has no message)
        raise ConfigError('text that is not UTF-8 in the config')


def _scan(stream, bufsize, names, begin, add, close):
    # The scanner: XML bytes to elements, for the element handlers (_parse). The stream is
    # read in chunks into one buffer (the offset and CRC-32 of what was read are kept);
    # comments, declarations and processing instructions are passed over; a tag's '>' is
    # found outside quoted attribute values; the open elements (`names`, bytes) are checked:
    # balanced, one root, at most _DEPTH_MAX deep, names of at most _NAME_MAX bytes.
    #   begin(name, attr)  a start tag below the root (attr: its bytes after the name),
    #                      before it is pushed on `names`
    #   close()            its end (also of an empty element), before it is popped
    #   add(seg, at)       character data, and CDATA escaped as text, from byte `at`; only
    #                      where the handlers collect text: begin and close return whether
    #                      they do at the depth they leave
    # Returns (root name, bytes read, their CRC-32).
    buf = bytearray(bufsize)
    mv = memoryview(buf)
    rd = stream.readinto
    start = end = offset = crc = 0
    eof = want = False
    root = None

    def fill():
        # move unread bytes to the front, read more; False at end of input (or buffer full)
        nonlocal start, end, offset, crc, eof
        if eof:
            return False
        n = end - start
        if start:
            buf[0:n] = mv[start:end]
            offset += start
            start = 0
            end = n
        if n >= bufsize:
            return False
        got = rd(mv[n:])
        if not got:
            eof = True
            return False
        crc = binascii.crc32(mv[n:n + got], crc)
        end = n + got
        return True

    def err(msg, at=-1):
        return ConfigError('%s (byte %d)' % (msg, offset + (start if at < 0 else at)))

    def skip(pat, frm, what, cdata=False):
        # to just after `pat`; CDATA content is element text (cdata: the handlers collect it)
        nonlocal start
        k = len(pat) - 1
        while True:
            j = buf.find(pat, frm, end)
            cut = j if j >= 0 else max(frm, end - k)
            if cdata:
                add(bytes(mv[frm:cut]).replace(b'&', b'&amp;'), offset + start)
            if j >= 0:
                start = j + len(pat)
                return
            start = cut
            if not fill():
                raise err('truncated inside ' + what)
            frm = start

    fill()
    if not end:
        raise ConfigError('empty config file')
    while True:
        s = start
        i = buf.find(b'<', s, end)
        if i < 0:
            if want:
                add(mv[s:end], offset + s)
            start = end
            if not fill():
                break
            continue
        if want and i > s:
            add(mv[s:i], offset + s)
        start = i
        while end - start < 9 and fill():
            pass
        s = start
        c = buf[s + 1] if end - s > 1 else 0
        if c == 0x21:               # '<!'
            if mv[s:s + 4] == b'<!--':
                skip(b'-->', s + 4, 'a comment')
            elif mv[s:s + 9] == b'<![CDATA[':
                skip(b']]>', s + 9, 'CDATA', want)
            else:                   # <!DOCTYPE ...> without an internal subset
                skip(b'>', s + 2, 'a declaration')
            continue
        if c == 0x3F:               # '<?'
            skip(b'?>', s + 2, 'a processing instruction')
            continue
        # a tag: find its '>' outside quoted attribute values
        j = s + 1
        q = None
        while True:
            if q:
                k = buf.find(q, j, end)
                if k >= 0:
                    q = None
                    j = k + 1
                    continue
            else:
                gt = buf.find(b'>', j, end)
                lim = end if gt < 0 else gt
                k = buf.find(b'"', j, lim)
                k2 = buf.find(b"'", j, lim if k < 0 else k)
                if k2 >= 0:
                    k = k2
                if k >= 0:
                    q = buf[k:k + 1]
                    j = k + 1
                    continue
                if gt >= 0:
                    break
            if end - start >= bufsize:
                raise err('tag longer than %d bytes' % bufsize)
            j -= start
            if not fill():
                raise err('truncated inside a tag')
            j += start
        s = start
        start = gt + 1
        if buf[s + 1] == 0x2F:      # '</'
            name = bytes(mv[s + 2:gt]).strip()
        else:
            e = gt - 1 if buf[gt - 1] == 0x2F else gt   # '/>'
            a = e
            for w in _WS:
                k = buf.find(w, s + 1, a)
                if k >= 0:
                    a = k
            name = bytes(mv[s + 1:a])
            if not name or name.find(b'<') >= 0:
                raise err('bad tag', s)
            if len(name) > _NAME_MAX:
                raise err('element name longer than %d bytes' % _NAME_MAX, s)
            if len(names) >= _DEPTH_MAX:
                raise err('elements nested too deep', s)
            if names:
                want = begin(name, mv[a:e])
            elif root is not None:
                raise err('a second root element', s)
            else:
                root = name
            names.append(name)
            if e == gt:
                continue
        # an end tag, or the end of an empty element
        if not names or name != names[-1]:
            raise err('</%s> does not close %s' % (
                name.decode(), '<%s>' % names[-1].decode() if names else 'any element'), s)
        want = close()
        names.pop()
    if names:
        raise err('truncated: <%s> is not closed' % names[-1].decode())
    if root is None:
        raise ConfigError('no XML element in the config file')
    return root, offset + end, crc


def _parse(stream, bufsize):
    # The element handlers: the text of the fields the agent reads (bounded) into tgt[key]
    # (a <member>, the <srstInfo> or the device's fields: by the parent, _CM, _SRST, _TOP),
    # then the Config. Closures over locals, not a class: every attribute name would be one
    # more name interned for good (docs/decisions.md, issue 13).
    names = []              # open element names (bytes), kept by the scanner
    key = tgt = mem = srst = line = None    # key: field collected into tgt[key], at depth fd
    tn = fd = md = 0        # text length; depth of the field collected, of the <member>/<line>
    text = bytearray(_TEXT_MAX)
    cms = []                # [((priority, order), member)]
    lines = []              # the <sipLines><line>s kept
    top = {}                # (top['sip']: <deviceProtocol>)

    def begin(name, attr):
        # a field is known by its parent; <srstInfo> and <members><member> open a record
        nonlocal key, tgt, mem, srst, line, tn, fd, md
        d = len(names)      # the parent's depth (the root's is 1)
        par = names[-1]
        k = None
        # a SIP field, unless <deviceProtocol> (which comes first) said SCCP: an SCCP parse
        # keeps what it did
        sf = name in _SIPS and top.get('sip', 'SIP').upper().encode() == b'SIP' and name.decode()
        if par == b'srstInfo':
            k = _SRST.get(name) or sf
            tgt = srst
        elif name == b'srstInfo':
            if srst is None:
                srst = {}
        elif name == b'member' and par == b'members':
            mem = {'priority': _prio(bytes(attr))}
            md = d + 1
        elif mem is not None:
            if par == b'callManager' or par == b'ports':
                k = _CM.get(name) or sf
                tgt = mem
        elif line is not None:
            if par == b'line':
                k = name in _LINE and name.decode()
                tgt = line
        elif name == b'line' and par == b'sipLines':
            if top.get('sip', 'SIP').upper().encode() == b'SIP':     # (as sf)
                line = {}
                md = d + 1
        elif par == b'sipStack':
            k = sf
            tgt = top
        elif d == 1 or par == b'devicePool':
            k = _TOP.get(name) or sf
            if k and d > 1:
                k += '2'        # the device-level element wins
            tgt = top
        if k:
            key = k
            fd = d + 1
            tn = 0
        return key and fd == d + 1

    def add(seg, at):
        # text of the field being collected (the buffer grows only for a <certificate>)
        nonlocal text, tn
        n = tn + len(seg)
        if n > len(text):
            if key != 'cert' or n > _CERT_MAX:
                raise ConfigError('<%s> text is too long (byte %d)' % (names[-1].decode(), at))
            t = bytearray(min(_CERT_MAX, (max(n, len(text) * 3 // 2) + 255) & ~255))
            t[0:tn] = memoryview(text)[0:tn]
            text = t
        text[tn:n] = seg
        tn = n

    def close():
        # the field's text is kept, a <member> with a name or host is a call manager
        nonlocal key, mem, line, text
        d = len(names)
        if key and d == fd:
            tgt[key] = _unescape(bytes(memoryview(text)[0:tn])).strip().decode()
            key = None
            if tn > _TEXT_MAX:
                text = bytearray(_TEXT_MAX)
        if mem is not None and d == md:
            if 'name' in mem or 'host' in mem:
                k = mem.get('priority')
                cms.append(((_LAST if k is None else k, len(cms)), mem))
            mem = None
        if line is not None and d == md:
            if line.pop(_LINE[0].decode(), '9') == '9' and line.get('name'):   # featureID
                lines.append(line)
            line = None
        return key and fd == d - 1

    root, size, crc = _scan(stream, bufsize, names, begin, add, close)
    c = Config()
    c.root = root.decode()
    c.source_size = size
    c.source_crc = crc
    v = top.get('sip')      # <deviceProtocol>
    sip = v.upper().encode() if v else b'SIP' if lines else b'SCCP'
    if sip != b'SIP' and sip != b'SCCP':
        raise ConfigError('<deviceProtocol> is neither SCCP nor SIP: %s' % v)
    sip = sip == b'SIP'
    if sip and not lines:
        raise ConfigError('SIP configuration without a line (<sipLines><line> with a <name>)')
    for _, m in sorted(cms):
        c.call_managers.append({
            'priority': m.get('priority'), 'name': m.get('name'),
            'host': m.get('host') or m.get('name'),
            'port': _num(m.get('port'), 'ethernetPhonePort') or DEFAULT_PORT})
        if sip:     # [sipPort (5060 when absent), securedSipPort (5061)]
            c.call_managers[-1]['sip'] = v = []
            for k in (0, 1):
                n = _SIPS[k].decode()
                v.append(_num(m.get(n), n) or _SIP_PORT + k)
    if sip:
        for m in lines:
            if 'port' in m:
                m['port'] = _num(m['port'], 'line <port>')
        c.sip = v = {'lines': lines}
        for k in _SIPS[8:]:
            k = k.decode()
            v[k] = _num(top.get(k), k)
    c.security_mode = _num(top.get('sec') or top.get('sec2'), 'deviceSecurityMode') or 1
    c.monitor_s = _num(top.get('mon') or top.get('mon2'), 'connectionMonitorDuration') or c.monitor_s
    f = srst
    if f is not None:
        cert = _cert(f.get('cert'))
        h = cert and hashlib.sha256(cert).digest()
        want = f.get('hash')
        if cert and want:
            try:
                want = binascii.unhexlify(want) if len(want) == 64 else binascii.a2b_base64(want)
            except ValueError:
                pass
            if want != h:
                raise ConfigError('SRST certificate does not match <certHash>')
        c.srst = s = {'name': f.get('name'), 'option': f.get('option'), 'servers': [],
                      'secure': f.get('secure', '').lower() == 'true', 'cert': cert,
                      'cert_sha256': h}
        for k in '123':
            if f.get('ip' + k):
                s['servers'].append([f['ip' + k],
                                     _num(f.get('port' + k), 'port' + k) or DEFAULT_PORT])
        if sip:
            s['sip'] = v = []
            for k in (2, 4, 6):             # sipIpAddrN (else ipAddrN), sipPortN
                a, n = _SIPS[k].decode(), _SIPS[k + 1].decode()
                a = f.get(a) or f.get('ip' + n[-1])
                if a:
                    v.append([a, _num(f.get(n), n) or _SIP_PORT])
    return c


def parse_file(path, bufsize=BUF_SIZE, offset=0):
    """parse() a file; `offset` skips a leading header (e.g. of a .sgn file)."""
    try:
        f = open(path, 'rb')
    except OSError as e:
        raise ConfigError('cannot open %s: %s' % (path, e))
    try:
        if offset:
            f.seek(offset)
        return parse(f, bufsize)
    finally:
        f.close()


# -- the stored copies: raw XML (for the record) and the parsed JSON (what boot reads) -----
# (the store's names: phone.store is loaded wherever there is a Store to read)
def save(store, cfg):
    from phone.store import CONFIG
    store.write_bytes(CONFIG, cfg.dumps().encode())


def load(store):
    """Boot: the stored parsed config if it was made from the stored raw XML (same size and
    CRC-32), else parse the raw XML again and refresh the parsed copy. None when no config is
    stored; ConfigError when the stored XML is bad, or when the phone has trust (a pinned SAST
    or a stored CTL) and the config is not a signed one with security mode 2 or 3 (one stored
    before the trust, or whose signature record was lost with a re-parse)."""
    from phone.store import CONFIG, CONFIG_RAW, CTL, SAST_PIN
    if not store.exists(CONFIG_RAW):
        return None
    buf = bytearray(BUF_SIZE)
    size = crc = 0
    with open(store.path(CONFIG_RAW), 'rb') as f:
        n = f.readinto(buf)
        while n:
            crc = binascii.crc32(memoryview(buf)[0:n], crc)
            size += n
            n = f.readinto(buf)
    buf = c = None
    data = store.read_bytes(CONFIG)
    if data:
        try:
            c = loads(data)
            if c.source_size != size or c.source_crc != crc:
                c = None
        except ConfigError:
            c = None
    if c is None:
        c = parse_file(store.path(CONFIG_RAW))
        save(store, c)
    if store.exists(SAST_PIN) or store.exists(CTL):    # trust: never less
        if not c.sgn:
            raise ConfigError('stored configuration is not signed and the phone has trust')
        if c.security_mode not in (2, 3):
            raise ConfigError('stored configuration has security mode %d (plain text) and the '
                              'phone has trust' % c.security_mode)
    return c
