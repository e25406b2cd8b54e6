# Fuzz harness: runs on the MicroPython unix port with the firmware (.mpy) on MICROPYPATH and
# feeds one parser the inputs the host sends (host_tools/fuzz drives it; docs/fuzzing.md).
#
#   fuzz_harness.py TARGET ALLOWED [TRUST_FILE...]
#
# TARGET: dhcp | tftp | sccp | x509 | ctl | sgn | config. ALLOWED: the comma-separated names of
# the exception classes the parser documents (anything else is a crash). TRUST_FILE: CTLs whose
# SAST certificates and TFTP keys the ctl/sgn targets trust.
# stdin: inputs, each a u32 big-endian length then that many bytes: byte 0 is a flags byte
# (which variant of the call to make), the rest the payload; for the file parsers (ctl, sgn,
# config) the payload is the path of a file the host wrote. stdout: one line per input:
#   ok | rejected:<Class>:<message> | crash:<Class>:<traceback>
# (newlines escaped as \n); an empty input (length 0) is answered `mem <free heap bytes>`.
# A class in ALLOWED with an empty message is still answered as
# "rejected"; the host flags it as an unclear rejection.
import gc
import io
import sys

TARGET = sys.argv[1]
ALLOWED = sys.argv[2].split(',')
TRUST = sys.argv[3:]


class Null:
    def write(self, s):
        return len(s)


def events():
    from phone.events import Events
    return Events(Null())        # every event is still formatted as JSON, then dropped


class Mismatch(Exception):
    # A result that differs between two equivalent calls (always a crash: never allowed).
    pass


# ---------------------------------------------------------------------------------- UDP
# The clients run unchanged over a fake `socket`/`select` pair (patched into their module):
# every datagram they receive is the next one of the fuzz input, and poll() says at once
# whether one is left, so timeouts cost nothing and the run is deterministic.
Q = []


class FakeSock:
    # no recv_into, as on MicroPython: readinto(buf, want) reads until `want` bytes
    # (merging datagrams, as the port's socket does)
    dest = None
    sent = b''

    def setsockopt(self, *a):
        pass

    def bind(self, a):
        pass

    def setblocking(self, f):
        pass

    def close(self):
        pass

    def connect(self, a):
        self.dest = a

    def sendto(self, d, a):
        self.dest = a
        self.sent = bytes(d[:8])

    def send(self, d):
        self.sent = bytes(d[:8])

    def _next(self, n):
        d = Q.pop(0)
        if len(d) >= 8 and d[4:8] == b'\x5e\xed\x12\x34' and len(self.sent) >= 8:
            d = d[:4] + self.sent[4:8] + d[8:]      # the DHCP client's own xid
        return d[:n]

    def recv(self, n):
        return self._next(n)

    def recvfrom(self, n):
        return self._next(n), self.dest

    def readinto(self, mv, want=None):
        want = len(mv) if want is None else want
        got = 0
        while Q and got < want:
            d = self._next(want - got)
            mv[got:got + len(d)] = d
            got += len(d)
        return got


class FakePoll:
    def register(self, s, ev=None):
        pass

    def unregister(self, s):
        pass

    def poll(self, ms=-1):
        return [(None, 1)] if Q else []

    def ipoll(self, ms=-1, flags=0):
        return self.poll(ms)


class FakeSelect:
    POLLIN = 1
    POLLOUT = 4

    def poll(self):
        return FakePoll()


def fake_net(mod):
    import socket
    fake = type('FakeSocketModule', (), {})()
    for k in dir(socket):
        if not k.startswith('__'):
            setattr(fake, k, getattr(socket, k))
    fake.socket = lambda *a: FakeSock()
    mod.socket = fake
    mod.select = FakeSelect()


def datagrams(b):
    # payload of the network targets: u16 big-endian length, bytes; repeated
    out = []
    i = 0
    n = len(b)
    while i + 2 <= n:
        k = (b[i] << 8) | b[i + 1]
        out.append(bytes(b[i + 2:i + 2 + k]))
        i += 2 + k
    return out


# ---------------------------------------------------------------------------------- DHCP
XID = 0x5EED1234            # replies carrying this xid get the client's own (FakeSock._next)
MAC = b'\x00\x11\x22\x33\x44\x55'


def run_dhcp(flags, b):
    from phone import dhcp, dhcpcore
    fake_net(dhcpcore)
    dgs = datagrams(b)
    buf = bytearray(1024)
    first = None
    for d in dgs:             # parse() alone, from a receive buffer as the client's
        n = min(len(d), len(buf))
        buf[:n] = d[:n]
        try:
            dhcpcore.parse(memoryview(buf), n, XID if flags & 1 else None, MAC if flags & 1 else None)
        except dhcpcore.Ignored as e:
            if first is None:
                first = e
            if not e.reason:
                raise
    # the whole client over the same datagrams (DISCOVER/OFFER/REQUEST/ACK, or INFORM)
    Q[:] = dgs
    c = dhcp.Client(MAC, events(), tftp_server='192.0.2.9', tries=2, rounds=2,
                    resolve=lambda name: '198.51.100.7')
    try:
        if flags & 2:
            c.inform('192.0.2.50')
        else:
            c.acquire()
    except dhcp.DhcpError:
        pass
    if first is not None:
        raise first


# ---------------------------------------------------------------------------------- TFTP
class Sink:
    def __init__(self):
        self.n = 0

    def write(self, d):
        self.n += len(d)
        return len(d)

    def seek(self, pos):
        self.n = pos

    def truncate(self):
        pass


def run_tftp(flags, b):
    from phone import tftp
    fake_net(tftp)
    dgs = datagrams(b)
    for d in dgs:             # the packet parsers alone
        n = len(d)
        tftp.parse_error(d, n)
        if tftp.opcode(d, n) == 6:
            try:
                tftp.parse_oack(d, n)
            except tftp.TftpError as e:
                if not e.msg:
                    raise
    Q[:] = dgs
    c = tftp.Client(blksize=(512, 1428, 8, 64)[(flags >> 1) & 3],
                    windowsize=(4, 1, 2, 16)[(flags >> 3) & 3], timeout_ms=1000, retries=2,
                    max_bytes=4096 if flags & 0x20 else 524288, options=not flags & 1,
                    events=events())
    c.fetch(['192.0.2.1', '192.0.2.2'] if flags & 0x40 else '192.0.2.1',
            'SEP001122334455.cnf.xml', Sink())


# ---------------------------------------------------------------------------------- SCCP
class Stream:
    def __init__(self, data, step):
        self.d = data
        self.i = 0
        self.step = step

    def readinto(self, buf):
        k = min(len(buf), self.step, len(self.d) - self.i)
        buf[:k] = self.d[self.i:self.i + k]
        self.i += k
        return k


class AStream(Stream):
    async def readinto(self, buf):
        return Stream.readinto(self, buf)


# what phone.sccplink does with each message it reads (sccp.PHONE_RX); ClearNotify too, which
# the lab decodes (read with accept=None)
def _sccp_dispatch(sccp, mid, body, ev):
    if mid == sccp.REGISTER_ACK:
        ka, tmpl, sec, proto, feat = sccp.parse_register_ack(body)
        ev.emit('registered', keepalive=ka, template=tmpl, secondary=sec)
    elif mid == sccp.REGISTER_REJECT:
        ev.emit('register_rejected', text=sccp.parse_register_reject(body))
    elif mid == sccp.RESET:
        ev.emit('reset_requested', kind=sccp.parse_u32(body, 'Reset'))
    elif mid == sccp.UNREGISTER_ACK or mid == sccp.REGISTER_TOKEN_REJECT:
        sccp.parse_u32(body)
    elif mid in (sccp.DISPLAY_TEXT, sccp.DISPLAY_NOTIFY, sccp.DISPLAY_PRI_NOTIFY,
                 sccp.DISPLAY_PROMPT_STATUS, sccp.CLEAR_NOTIFY):
        ev.emit('display', text=sccp.parse_display(mid, body))


def run_sccp(flags, b):
    # the links' reader: FrameReader.aread() over an asyncio-style stream
    import asyncio
    from phone import sccp
    keep = (512, None, 16, 100)[flags & 3]          # 512: what phone.sccplink keeps
    step = (1 << 30, 1, 7, 13)[(flags >> 2) & 3]    # bytes per readinto (TLS records)
    accept = None if flags & 0x10 else sccp.PHONE_RX
    ev = events()
    r = sccp.FrameReader(AStream(b, step), accept=accept, keep=keep)
    seen = []
    cut = [False]             # a message failed to decode: the link drops the connection

    async def main():
        while True:
            mid = await r.aread()
            if mid < 0:
                return
            seen.append(mid)
            cut[0] = True
            _sccp_dispatch(sccp, mid, r.body(), ev)
            cut[0] = False

    try:
        asyncio.run(main())
    finally:
        if flags & 0x20:      # the lab's blocking read() must read the same frames
            from phone import sccp_lab
            rl = sccp_lab.FrameReader(Stream(b, step), accept=accept, keep=keep)
            got = []
            try:
                while True:
                    mid = rl.read()
                    if mid < 0:
                        break
                    got.append(mid)
            except sccp.SccpError:
                pass
            if (got[:len(seen)] if cut[0] else got) != seen:
                raise Mismatch('read() read %r, aread() %r' % (got, seen))


# ---------------------------------------------------------------------------------- DER/X.509
def _der_walk(der, b, s, e, depth):
    for t, vs, ve in der.children(b, s, e):
        if t & 0x20:
            if depth < 24:
                _der_walk(der, b, vs, ve, depth + 1)
        elif t == 0x02:                         # INTEGER
            der.unsigned_bytes(b, vs, ve)
            if ve - vs <= 1024:
                der.integer(b, vs, ve)
        elif t == 0x06:                         # OID
            der.oid(b, vs, ve)
        elif t == 0x17 or t == 0x18:            # UTCTime, GeneralizedTime
            der.time_value(b, vs, ve, t)
        elif t in (0x0C, 0x13, 0x14, 0x16, 0x1E):   # strings
            der.text(b, vs, ve, t)


def run_x509(flags, b):
    from phone import der, x509
    if flags & 1:             # the DER reader alone, over whatever tree the input holds
        try:
            _der_walk(der, b, 0, len(b), 0)
        except der.DerError as e:
            if not str(e):
                raise
        try:
            der.rsa_public_key(b, 0, len(b))
        except der.DerError:
            pass
    c = x509.load(b)
    c.valid_at((2030, 1, 1, 0, 0, 0))
    c.tbs()
    if flags & 2 and c.n is not None and c.sig_hash:
        # RSA with the certificate's own (fuzzed) key, as a CTL's signature is checked
        from phone import pkcs1
        h = pkcs1.new_hash(c.sig_hash)
        h.update(c.tbs())
        pkcs1.check(c.n, c.e, c.signature, c.sig_hash, h.digest())


# ---------------------------------------------------------------------------------- CTL / .sgn
_trust = []


def trust():
    # as provision keeps them: the SAST certificates (anchors) and the TFTP keys, plain values
    from phone import ctl
    if not _trust:
        anchors, keys = [], []
        for p in TRUST:
            tl = ctl.load_trust(p)
            anchors.extend(tl.sast_certs())
            keys.extend(tl.keys(ctl.ROLE_TFTP, ctl.ROLE_CCM_TFTP))
            tl = None
        _trust.extend((anchors, keys))
    return _trust


def read_path(b):
    return bytes(b).decode()


def run_ctl(flags, b):
    from phone import ctl
    path = read_path(b)
    anchors = trust()[0]
    if flags & 1:             # the dump path (certificates read back from the file)
        tl = ctl.parse(path)
        for r in tl.records:
            tl.cert(r)
        tl = None
    err = None
    for a in ((None, anchors) if flags & 2 else (None,)):
        try:
            tl = ctl.load_trust(path, a, (2030, 1, 1, 0, 0, 0) if flags & 4 else None)
        except ctl.CtlError as e:
            if err is None:
                err = e
            if not str(e):
                raise
            continue
        # what provision keeps of a trust list
        tl.sast_certs()
        tl.keys(ctl.ROLE_TFTP, ctl.ROLE_CCM_TFTP)
        [(r.cn, r.dns, r.ip, r.cert_off, r.cert_len) for r in tl.records]
        tl.certs(ctl.ROLE_CCM, ctl.ROLE_CCM_TFTP)
    if err is not None:
        raise err


def run_sgn(flags, b):
    from phone import config, ctl
    path = read_path(b)
    if flags & 1:
        ctl.parse_sgn(path)
    keys = trust()[1]
    sg = ctl.verify_sgn(path, keys[::-1] if flags & 2 else keys)
    out = path + '.out'
    ctl.copy_payload(sg, out)
    sg = None
    gc.collect()
    # as provision: the payload is the config, read in place past the header
    try:
        config.parse_file(path, offset=ctl.parse_sgn(path).payload_off)
    except config.ConfigError as e:
        if not str(e):
            raise


# ---------------------------------------------------------------------------------- cnf.xml
_BUFS = (1024, 64, 200, 4096)


def _config_once(config, path, bufsize):
    try:
        c = config.parse_file(path, bufsize) if bufsize != 1024 else config.parse_file(path)
    except config.ConfigError as e:
        return e
    d = c.dumps()             # what boot stores, and reads back
    import json
    d = json.loads(d)
    if json.loads(config.loads(c.dumps()).dumps()) != d:
        raise Mismatch('dumps/loads round trip changed the config: %s' % c.dumps())
    c.wants_srst_standby()
    if c.srst and c.srst['cert']:
        from phone import x509
        try:
            x509.load(c.srst['cert']).cn
        except x509.X509Error:
            pass
    return d


def run_config(flags, b):
    from phone import config
    path = read_path(b)
    a = _config_once(config, path, 1024)     # parse_file's default buffer
    other = _BUFS[flags & 3]
    if other != 1024:
        gc.collect()
        o = _config_once(config, path, other)
        # a streaming parser must not depend on where the chunks end; only the tag-length
        # limit (= the buffer size) may differ
        ea, eo = isinstance(a, Exception), isinstance(o, Exception)
        if ea and eo:
            pass
        elif ea or eo:
            e = a if ea else o
            if not str(e).startswith('tag longer than'):
                raise Mismatch('buffer %d: %s, buffer %d: %s' % (
                    1024, 'error ' + str(a) if ea else 'ok',
                    other, 'error ' + str(o) if eo else 'ok'))
        elif a != o:
            raise Mismatch('buffer 1024 and %d read different configs' % other)
    if isinstance(a, Exception):
        raise a


RUN = {'dhcp': run_dhcp, 'tftp': run_tftp, 'sccp': run_sccp, 'x509': run_x509,
       'ctl': run_ctl, 'sgn': run_sgn, 'config': run_config}[TARGET]


# ---------------------------------------------------------------------------------- loop
def esc(s):
    return s.replace('\\', '\\\\').replace('\n', '\\n').replace('\r', '\\r')


def answer(e):
    name = type(e).__name__
    if name in ALLOWED:
        try:
            msg = str(e)
        except Exception as x:      # a message that cannot be made is a crash too
            e = x
            name = type(e).__name__
        else:
            return 'rejected:%s:%s' % (name, esc(msg))
    s = io.StringIO()
    sys.print_exception(e, s)
    return 'crash:%s:%s' % (name, esc(s.getvalue()))


MAX_INPUT = 16384      # network inputs (the host keeps them below); files come as a path


def fill(f, mv):
    got = 0
    while got < len(mv):
        k = f.readinto(mv[got:])
        if not k:
            return False
        got += k
    return True


def main():
    fin = sys.stdin.buffer
    out = sys.stdout
    # one buffer for every input: the harness itself must not fragment the heap it measures
    inbuf = bytearray(1024 if TARGET in ('ctl', 'sgn', 'config') else MAX_INPUT)
    inmv = memoryview(inbuf)
    if TRUST and TARGET in ('ctl', 'sgn'):
        trust()
    hdr = bytearray(4)
    gc.collect()
    out.write('ready %d\n' % gc.mem_free())
    while True:
        if not fill(fin, memoryview(hdr)):
            return
        n = (hdr[0] << 24) | (hdr[1] << 16) | (hdr[2] << 8) | hdr[3]
        if n > len(inbuf) or not fill(fin, inmv[:n]):
            return
        if not n:                       # an empty input asks for the free heap
            gc.collect()
            out.write('mem %d\n' % gc.mem_free())
            continue
        try:
            RUN(inbuf[0] if n else 0, inmv[1:n] if n else inmv[0:0])
            line = 'ok'
        except Exception as e:      # MemoryError and RecursionError included
            line = answer(e)
        gc.collect()
        out.write(line + '\n')


main()
