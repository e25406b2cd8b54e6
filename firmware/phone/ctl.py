# Cisco trust lists (CTL/ITL `.tlv`) and signed files (`.sgn`): parsing, signature check
# (phone.pkcs1: RSA PKCS#1 v1.5 with SHA-1/256/512) and the phone's trust rules.
# Format: as usecallmanagernz/certutils' tlvfile and sgnfile write it (tag u8, length u16
# BE, value; padding tag 13 is one bare byte; header, then records or the .sgn payload;
# signature over the file minus its TLV). Every element, with its sources: docs/protocols.md,
# "CTL and ITL files" and "Signed files (.sgn)".
# Streaming: one pass over the file, a record at a time, hashed as it is read; only the
# header (< 2 KiB), one record and the SAST certificates are held, so a file may be bigger
# than the heap. Any malformed, tampered or untrusted input raises CtlError(reason).
#
#   tl = load_trust(path, anchors=None, now=None)   CTL/ITL, verified, trust rules applied
#   tl.sast_certs()                                 anchors to keep for the next update
#   tl.certs(ROLE_CCM, ROLE_CCM_TFTP)               DER certificates by role
#   sg = verify_sgn(path, [tl])                     .sgn -> payload_off / payload_len
from binascii import hexlify

from micropython import const

from phone import pkcs1

# Record roles; private where nothing outside uses them (a public name costs a qstr)
_ROLE_SAST = const(0)
ROLE_CCM = const(1)
ROLE_CCM_TFTP = const(2)
ROLE_TFTP = const(3)
_ROLE_CAPF = const(4)
_ROLE_SRST = const(5)    # only in an old table; unconfirmed
_ROLE_APP = const(7)
_ROLE_TVS = const(21)
ROLE_NAMES = {_ROLE_SAST: 'SAST', ROLE_CCM: 'CCM', ROLE_CCM_TFTP: 'CCM+TFTP', ROLE_TFTP: 'TFTP',
              _ROLE_CAPF: 'CAPF', _ROLE_SRST: 'SRST', _ROLE_APP: 'APP', _ROLE_TVS: 'TVS'}

_MAX_HEADER = const(2048)     # a 4096-bit signature plus names fits easily
_MAX_RECORD = const(12288)    # one record: names, key, signature, certificate
_MAX_RECORDS = const(64)
_MAX_SAST = const(2)
_CHUNK = const(512)
_SPARE = const(12)            # heap kept for the signature check: this many times its length


class CtlError(Exception):
    """Malformed, tampered or untrusted trust list / signed file; str() is the reason.
    `memory` is True when the file could not be checked because the heap ran out: it is then
    neither accepted nor refused, and a caller should try again rather than treat it as bad."""
    memory = False

    @property
    def reason(self):
        return self.args[0] if self.args else ''


def _u16(b, i):
    return (b[i] << 8) | b[i + 1]


def _text(b, s, e):
    """A NUL-terminated string element (the NUL is counted in its length)."""
    if e > s and b[e - 1] == 0:
        e -= 1
    try:
        return bytes(b[s:e]).decode()
    except Exception:
        return hexs(b[s:e])


def hexs(b):
    return hexlify(bytes(b)).decode()


def _minimal(serial):
    """Serial without leading zero bytes, so DER and CTL forms compare equal."""
    i = 0
    while i < len(serial) - 1 and serial[i] == 0:
        i += 1
    return bytes(serial[i:])


def _readfull(f, mv):
    """readinto until the memoryview is full or EOF; returns the count."""
    got = 0
    while got < len(mv):
        n = f.readinto(mv[got:])
        if not n:
            break
        got += n
    return got


class Record:
    """A trust list record: role, subject, issuer, serial (bytes), dns, ip, cn, cert_off and
    cert_len (where its DER certificate sits in the file), cert (DER, kept for SAST records
    or with keep_certs)."""
    subject = issuer = dns = ip = cn = cert = None
    serial = b''
    cert_off = cert_len = 0

    def __init__(self, index, offset):
        self.index = index
        self.offset = offset
        self.role = None


class TrustList:
    """A parsed CTL/ITL (kind 'CTL'/'ITL', records) or .sgn (kind 'SGN', payload_off and
    payload_len). Header fields: version, header_len, signer_version, signer_name, ca_name,
    serial, hash_code, modulus_index, sig_off, sig_len, signature, filename, timestamp."""
    signer_version = signer_name = ca_name = serial = hash_code = modulus_index = None
    signature = filename = timestamp = digest = signer_cert = None
    sig_off = -1
    sig_len = size = payload_off = payload_len = 0
    spare = None
    tofu = False             # accepted on first use: there was no anchor yet

    def __init__(self, path, kind):
        self.path = path
        self.kind = kind
        self.records = []

    def signer(self):
        """The SAST record whose serial matches the header's (None if absent)."""
        want = _minimal(self.serial or b'')
        for r in self.records:
            if r.role == _ROLE_SAST and _minimal(r.serial) == want:
                return r
        return None

    def sast_certs(self):
        return [r.cert for r in self.records if r.role == _ROLE_SAST and r.cert]

    def cert(self, rec):
        """A record's DER certificate (read back from the file unless kept)."""
        if rec.cert is not None or not rec.cert_len:
            return rec.cert
        buf = bytearray(rec.cert_len)
        try:
            with open(self.path, 'rb') as f:
                f.seek(rec.cert_off)
                n = _readfull(f, memoryview(buf))
        except OSError as ex:
            raise CtlError('cannot read %s: %s' % (self.path, ex))
        if n != rec.cert_len:
            raise CtlError('%s changed since it was verified' % self.path)
        return bytes(buf)

    def certs(self, *roles):
        return [self.cert(r) for r in self.records if r.role in roles and r.cert_len]

    def keys(self, *roles):
        """(serial, n, e) of the RSA keys of the records in `roles` (n None: not RSA); what
        verify_sgn needs, as plain values (x509 need not be loaded to use them)."""
        from phone import x509
        out = []
        for r in self.records:
            if r.role in roles and r.cert_len:
                try:
                    c = x509.parse(self.cert(r))
                except x509.X509Error as ex:
                    raise CtlError('bad certificate in %s: %s' % (self.path, ex))
                out.append((c.serial_bytes, c.n, c.e))
                c = None
        return out


def _walk(b, pos, end, header):
    """Yield (tag, value_start, value_end) for the elements in b[pos:end]. In a header,
    padding (13) is one bare byte and containers (3, 7, 9) are stepped into."""
    while pos < end:
        tag = b[pos]
        if header and tag == 13:
            pos += 1
            continue
        if pos + 3 > end:
            raise CtlError('element at %d truncated' % pos)
        vs = pos + 3
        ve = vs + _u16(b, pos + 1)
        if ve > end:
            raise CtlError('element %d at %d overruns its %s' % (tag, pos, 'header' if header else 'record'))
        yield tag, vs, ve
        pos = vs if header and (tag == 3 or tag == 7 or tag == 9) else ve


def _sized(tag, vs, ve, n):
    if ve - vs != n:
        raise CtlError('element %d must be %d bytes' % (tag, n))


def _hfield(tl, b, tag, vs, ve):
    if tag == 12:
        if tl.sig_off >= 0:
            raise CtlError('two signatures in header')
        tl.sig_off, tl.sig_len = vs - 3, ve - vs
        tl.signature = bytes(b[vs:ve])
    elif tag == 5:
        tl.serial = bytes(b[vs:ve])
    elif tag == 4:
        tl.signer_name = _text(b, vs, ve)
    elif tag == 6:
        tl.ca_name = _text(b, vs, ve)
    elif tag == 14:
        tl.filename = _text(b, vs, ve)
    elif tag == 8:
        _sized(tag, vs, ve, 1)
        tl.hash_code = b[vs]
    elif tag == 11:
        _sized(tag, vs, ve, 1)
        tl.modulus_index = b[vs]
    elif tag == 15:
        _sized(tag, vs, ve, 4)
        tl.timestamp = (_u16(b, vs) << 16) | _u16(b, vs + 2)
    elif tag == 28:
        _sized(tag, vs, ve, 2)
        tl.signer_version = (b[vs], b[vs + 1])
    elif tag == 1 or tag == 2:
        raise CtlError('repeated header element %d' % tag)
    # 3/7/9 containers, 10 signature algorithm, 16..27 encryption info, newer tags: skipped
    # (they are covered by the signature)


def _header(f, tl):
    """Read and parse the header at the start of `f`; returns its bytes."""
    b = bytearray(10)
    if _readfull(f, memoryview(b)) != 10:
        raise CtlError('truncated header')
    if b[0] != 1 or _u16(b, 1) != 2:
        raise CtlError('not a trust list or signed file')
    tl.version = (b[3], b[4])
    if b[5] != 2 or _u16(b, 6) != 2:
        raise CtlError('no header length')
    hlen = _u16(b, 8)
    if hlen < 10 or hlen > _MAX_HEADER:
        raise CtlError('bad header length %d' % hlen)
    tl.header_len = hlen
    first = b
    b = bytearray(hlen)
    b[0:10] = first
    if _readfull(f, memoryview(b)[10:]) != hlen - 10:
        raise CtlError('truncated header')
    for tag, vs, ve in _walk(b, 10, hlen, True):
        _hfield(tl, b, tag, vs, ve)
    if tl.sig_off < 0 or not tl.sig_len:
        raise CtlError('no signature in header')
    if tl.serial is None:
        raise CtlError('no signer serial number in header')
    if tl.hash_code not in pkcs1.NAMES:
        raise CtlError('unsupported or missing hash algorithm %r' % (tl.hash_code,))
    m = tl.modulus_index
    if m is not None and (m > 3 or 64 << m != tl.sig_len):
        raise CtlError('modulus index %d does not match a %d-byte signature' % (m, tl.sig_len))
    return b


def _start(f, tl, digest):
    """Header, and a hash already fed with it (minus the signature TLV) if `digest`."""
    b = _header(f, tl)
    if not digest:
        return None
    h = pkcs1.new_hash(tl.hash_code)
    if h is None:
        raise CtlError('hash %s not available on this board' % pkcs1.NAMES[tl.hash_code])
    mv = memoryview(b)
    h.update(mv[:tl.sig_off])
    h.update(mv[tl.sig_off + 3 + tl.sig_len:])
    return h


def _rfield(rec, b, tag, vs, ve):
    if tag == 4:
        _sized(tag, vs, ve, 2)
        rec.role = _u16(b, vs)
    elif tag == 3:
        rec.subject = _text(b, vs, ve)
    elif tag == 5:
        rec.issuer = _text(b, vs, ve)
    elif tag == 2:
        rec.dns = _text(b, vs, ve)
    elif tag == 6:
        rec.serial = bytes(b[vs:ve])
    elif tag == 10:
        _sized(tag, vs, ve, 4)
        rec.ip = '%d.%d.%d.%d' % (b[vs], b[vs + 1], b[vs + 2], b[vs + 3])
    elif tag == 9:
        if rec.cert_len:
            raise CtlError('two certificates')
        rec.cert_off, rec.cert_len = vs, ve - vs    # relative for now
    elif tag == 1:
        raise CtlError('length element inside the record')
    # 7 public key, 8 certificate signature, 11/12 certificate hash: the certificate itself
    # is what is used; unknown tags are covered by the signature and skipped


def _record(b, n, rec, keep):
    """Parse one record's elements b[0:n] (what follows its 5-byte length element)."""
    from phone import x509
    try:
        for tag, vs, ve in _walk(b, 0, n, False):
            _rfield(rec, b, tag, vs, ve)
        if rec.role is None:
            raise CtlError('no role')
        if rec.cert_len:
            s = rec.cert_off
            rec.cert_off += rec.offset + 5
            keep = keep or rec.role == _ROLE_SAST
            c = x509.parse(b, s, s + rec.cert_len, keep)   # in place unless kept
            if rec.serial and _minimal(rec.serial) != c.serial_bytes:
                raise CtlError('serial does not match its certificate')
            rec.serial = c.serial_bytes
            rec.cn = c.cn
            if keep:
                rec.cert = c.der
        if rec.issuer is not None and rec.issuer == rec.subject:
            rec.issuer = rec.subject    # one string for both (self-signed): lists run to 50+ records
    except (CtlError, x509.X509Error) as ex:
        raise CtlError('record %d (%s): %s' % (rec.index, ROLE_NAMES.get(rec.role, rec.role), ex))


def _read_trust(path, digest, keep):
    tl = TrustList(path, 'CTL')
    with open(path, 'rb') as f:
        h = _start(f, tl, digest)
        # Heap layout is decided here, not left to luck (docs/decisions.md, "CTL heap"):
        # - room for the RSA arithmetic of the signature check is taken now, after a
        #   collection, while the heap is in one piece, and given back just before it
        #   (_check): the records' many small objects would otherwise leave no ~1 KB hole
        #   for pow() with a 4096-bit key. Only for keys above 2048 bits: below, measured,
        #   a reserve costs more than it saves. Not getting it is no failure: pow() may
        #   still fit, and if not the file is reported as a memory shortage, not as bad.
        # - each record is parsed just after a collection, so what it keeps (the trust list
        #   outlives this call) lands in the lowest holes rather than above the garbage of
        #   the hash (pure-Python SHA-512 makes some on every round) and of the last record,
        #   where it would cut the free heap into pieces for everything after.
        import gc
        tl.spare = None
        if digest and tl.sig_len > 256:
            gc.collect()
            try:
                tl.spare = bytearray(min(_SPARE * tl.sig_len, 6144))
            except MemoryError:
                pass
        pos = tl.header_len
        small = bytearray(5)
        buf = None
        while True:
            got = _readfull(f, memoryview(small))
            if got == 0:
                break
            if got != 5:
                raise CtlError('truncated record at %d' % pos)
            if small[0] != 1 or _u16(small, 1) != 2:
                raise CtlError('record at %d does not start with its length' % pos)
            rlen = _u16(small, 3)
            if rlen < 8 or rlen > _MAX_RECORD:
                raise CtlError('bad record length %d at %d' % (rlen, pos))
            if len(tl.records) >= _MAX_RECORDS:
                raise CtlError('more than %d records' % _MAX_RECORDS)
            n = rlen - 5
            if buf is None or n > len(buf):
                buf = None
                buf = bytearray(n)      # grows to the biggest record, reused
            mv = memoryview(buf)[:n]
            if _readfull(f, mv) != n:
                raise CtlError('truncated record at %d' % pos)
            if h:
                h.update(small)
                h.update(mv)
            gc.collect()
            rec = Record(len(tl.records), pos)
            _record(buf, n, rec, keep)
            tl.records.append(rec)
            pos += rlen
        tl.size = pos
    if h:
        tl.digest = h.digest()
    if (tl.filename or '')[:3].upper() == 'ITL':
        tl.kind = 'ITL'
    if not tl.records:
        raise CtlError('trust list has no records')
    if len([r for r in tl.records if r.role == _ROLE_SAST]) > _MAX_SAST:
        raise CtlError('more than %d SAST records' % _MAX_SAST)
    return tl


def _guard(fn, *args):
    """Any exception a bad file could provoke becomes a CtlError with the reason."""
    try:
        return fn(*args)
    except CtlError:
        raise
    except OSError as ex:
        raise CtlError('cannot read %s: %s' % (args[0], ex))
    except (IndexError, ValueError, TypeError, KeyError, AttributeError) as ex:
        raise CtlError('malformed file (%s: %s)' % (type(ex).__name__, ex))
    except MemoryError:         # records, certificates or text the heap cannot hold
        ex = CtlError('%s needs more memory than is left' % args[0])
        ex.memory = True
        raise ex


def parse(path, keep_certs=False):
    """Structure only, no signature check (for dumps)."""
    return _guard(_read_trust, path, False, keep_certs)


def _certs(items):
    """Certificates given as DER/PEM bytes, x509.Certificate or TrustList (its SASTs)."""
    from phone import x509
    out = []
    if isinstance(items, (TrustList, x509.Certificate, bytes, str)):
        items = [items]
    for it in items or ():
        if isinstance(it, x509.Certificate):
            out.append(it)
        elif isinstance(it, TrustList):
            out.extend(_certs(it.sast_certs()))
        else:
            try:
                out.append(x509.load(it))
            except x509.X509Error as ex:
                raise CtlError('bad trusted certificate: %s' % ex)
    return out


def _check(tl, cert, now, what):
    # cert: an x509.Certificate, or a key as (serial, n, e) (no validity to check then)
    if tl.spare is not None:
        tl.spare = None
        import gc
        gc.collect()
    key = isinstance(cert, tuple)
    n, e = cert[1:] if key else (cert.n, cert.e)
    if n is None:
        raise CtlError('%s key is not RSA' % what)
    if now is not None and not key and not cert.valid_at(now):
        raise CtlError('%s certificate %s is expired or not yet valid' % (what, cert.cn))
    why = pkcs1.check(n, e, tl.signature, tl.hash_code, tl.digest)
    if why:
        raise CtlError(why)
    tl.signer_cert = None if key else cert


def _load_trust(path, anchors, now, keep):
    from phone import x509
    tl = _read_trust(path, True, keep)
    rec = tl.signer()
    if rec is None or not rec.cert:
        raise CtlError('signer (serial %s) is not a SAST record of the file' % hexs(tl.serial))
    # A list of DER anchors holding the very certificate of the signer record (the usual
    # case on a board): that certificate is the only one to parse (~2.5 KB of heap each).
    fast = isinstance(anchors, list) and rec.cert in anchors
    known = None if fast else _certs(anchors)
    if known:
        want = _minimal(tl.serial)
        match = None
        for c in known:
            if c.serial_bytes == want:
                match = c
        known = None
        if match is None:
            raise CtlError('signed by an unknown SAST (serial %s)' % hexs(want))
        if match.der != rec.cert:
            raise CtlError('signer record differs from the known SAST certificate')
        _check(tl, match, now, 'SAST')
    else:
        _check(tl, x509.parse(rec.cert), now, 'SAST')
        tl.tofu = not fast
    return tl


def load_trust(path, anchors=None, now=None, keep_certs=False):
    """Verify a CTL/ITL and apply the trust rules; returns the TrustList.
    anchors: the SAST certificates already trusted (DER/PEM, x509.Certificate, or the
      TrustList in force). None/empty = first use: the file need only be signed by its own
      SAST record (tl.tofu is set). Otherwise it must be signed by a known SAST (header
      serial) and carry that same certificate as its signer record.
    now: a UTC time tuple; if given, the signer certificate must be valid then."""
    return _guard(_load_trust, path, anchors, now, keep_certs)


def verify(path, keep_certs=False):
    """Only the file's own signature (by its SAST record): load_trust(path, None)."""
    return load_trust(path, None, None, keep_certs)


def _read_sgn(path, signers, now, digest):
    tl = TrustList(path, 'SGN')
    buf = bytearray(_CHUNK)
    mv = memoryview(buf)
    total = 0
    with open(path, 'rb') as f:
        h = _start(f, tl, digest)
        while True:
            n = f.readinto(buf)
            if not n:
                break
            if h:
                h.update(mv[:n])
            total += n
    tl.payload_off = tl.header_len
    tl.payload_len = total
    tl.size = tl.header_len + total
    if not digest:
        return tl
    tl.digest = h.digest()
    want = _minimal(tl.serial)
    for s in signers or ():
        if isinstance(s, tuple):            # a key from TrustList.keys()
            if s[0] == want:
                _check(tl, s, now, 'TFTP')
                return tl
            continue
        for c in _certs(s.certs(ROLE_TFTP, ROLE_CCM_TFTP) if isinstance(s, TrustList) else [s]):
            if c.serial_bytes == want:
                _check(tl, c, now, 'TFTP')
                return tl
    raise CtlError('signed by an unknown certificate (serial %s)' % hexs(want))


def verify_sgn(path, signers, now=None):
    """Verify a .sgn file against `signers`: TrustList objects (their TFTP and CCM+TFTP
    records), certificates and/or keys from TrustList.keys(). Returns a TrustList of kind 'SGN' (payload_off/len)."""
    return _guard(_read_sgn, path, signers, now, True)


def parse_sgn(path):
    """A .sgn header without the signature check (for dumps)."""
    return _guard(_read_sgn, path, None, None, False)


def copy_payload(sg, dst):
    """Write a verified .sgn's payload to the file `dst` in fixed chunks; returns its size."""
    buf = bytearray(_CHUNK)
    mv = memoryview(buf)
    left = sg.payload_len
    with open(sg.path, 'rb') as f:
        f.seek(sg.payload_off)
        with open(dst, 'wb') as out:
            while left > 0:
                n = f.readinto(mv[:min(left, _CHUNK)])
                if not n:
                    raise CtlError('%s shrank since it was verified' % sg.path)
                out.write(mv[:n])
                left -= n
    return sg.payload_len
