# The X.509 facts the agent needs: subject/issuer (and their CN), serial, RSA key (n, e),
# validity, signature algorithm, and the span of the signed TBS part (for signature checks).
# Malformed certificates raise X509Error (a ValueError). Kept small: it is compiled on
# the board. Common subset of MicroPython and CPython.
from micropython import const

from phone import der

_MAX_CERT = const(8192)   # bigger "certificates" are refused before anything is copied
RSA_OID = '1.2.840.113549.1.1.1'
# signature algorithm -> hash code (as in phone.pkcs1: 1 SHA-1, 2 SHA-256, 3 SHA-512)
SIG_HASH = {'1.2.840.113549.1.1.5': 1, '1.2.840.113549.1.1.11': 2, '1.2.840.113549.1.1.13': 3}
_KEYS = {'2.5.4.3': 'CN', '2.5.4.11': 'OU', '2.5.4.10': 'O', '2.5.4.7': 'L', '2.5.4.8': 'ST',
         '2.5.4.6': 'C'}


class X509Error(ValueError):
    pass


class Certificate:
    """Set by parse(): der (the certificate's bytes), tbs_start/tbs_end (TBSCertificate
    element inside der), serial (int), serial_bytes (minimal big-endian), subject/issuer
    ('CN=a;OU=b;O=c'), cn/issuer_cn, not_before/not_after ((Y, M, D, h, m, s) UTC),
    key_type ('rsa' or the key OID), n/e (RSA), sig_oid, sig_hash (0 = unsupported),
    signature (bytes)."""
    n = e = None
    sig_hash = 0

    def tbs(self):
        """The signed part, as a memoryview into der (no copy)."""
        return memoryview(self.der)[self.tbs_start:self.tbs_end]

    def valid_at(self, now):
        """`now`: UTC time tuple (year, month, day, hour, minute, second, ...); None (the clock
        is unknown) -> None: unknown, never "expired"."""
        if now is None:
            return None
        t = tuple(now[:6])
        return self.not_before <= t <= self.not_after

    def __repr__(self):
        from binascii import hexlify
        return '<Certificate %s serial %s>' % (self.subject, hexlify(self.serial_bytes).decode())


def _name(b, s, e):
    """Name -> ('CN=a;O=b', cn)."""
    parts = []
    cn = ''
    for t, rs, re_ in der.children(b, s, e):
        if t != der.SET:
            raise X509Error('bad RDN')
        for t2, as_, ae in der.children(b, rs, re_):
            if t2 != der.SEQUENCE:
                raise X509Error('bad name attribute')
            os_, oe = der.expect(b, as_, ae, der.OID)
            key = der.oid(b, os_, oe)
            vt, vs, ve = der.header(b, oe, ae)
            v = der.text(b, vs, ve, vt)
            key = _KEYS.get(key, key)
            if key == 'CN' and not cn:
                cn = v
            parts.append(key + '=' + v)
    return ';'.join(parts), cn


def parse(buf, start=0, end=None, copy=True):
    """Parse the certificate occupying exactly buf[start:end] (default: all of buf).
    copy=False: read it in place and keep no copy (c.der is None): for a caller that only
    wants the facts of a certificate in a buffer it is about to reuse."""
    if end is None:
        end = len(buf)
    if end - start > _MAX_CERT:
        raise X509Error('certificate too big (%d bytes)' % (end - start))
    c = Certificate()
    if copy and isinstance(buf, bytes) and start == 0 and end == len(buf):
        c.der = b = buf                 # immutable already: a copy would only cost heap
    elif copy:
        c.der = b = bytes(buf[start:end])
    else:
        c.der = None
        b = memoryview(buf)[start:end]
    try:
        _parse(c, b, len(b))
    except der.DerError as ex:
        raise X509Error('bad certificate: %s' % ex)
    except (IndexError, TypeError):
        raise X509Error('bad certificate')
    except MemoryError:         # e.g. names of thousands of characters
        raise X509Error('certificate needs more memory than is left')
    return c


def _parse(c, b, end):
    ex = der.expect
    s, e = ex(b, 0, end, der.SEQUENCE)
    if e != end:
        raise X509Error('trailing bytes after certificate')
    t, ts, te = der.header(b, s, e)
    if t != der.SEQUENCE:
        raise X509Error('no TBSCertificate')
    c.tbs_start, c.tbs_end = s, te
    t, vs, pos = der.header(b, ts, te)
    if t != der.CTX0:                       # version absent: v1
        pos = ts
    is_, ie = ex(b, pos, te, der.INTEGER)
    c.serial_bytes = der.unsigned_bytes(b, is_, ie)
    c.serial = int.from_bytes(c.serial_bytes, 'big')
    _, pos = ex(b, ie, te, der.SEQUENCE)     # signature AlgorithmIdentifier
    ns, pos = ex(b, pos, te, der.SEQUENCE)
    c.issuer, c.issuer_cn = _name(b, ns, pos)
    vs, ve = ex(b, pos, te, der.SEQUENCE)    # validity
    t, s1, e1 = der.header(b, vs, ve)
    c.not_before = der.time_value(b, s1, e1, t)
    t, s2, e2 = der.header(b, e1, ve)
    c.not_after = der.time_value(b, s2, e2, t)
    ns, pos = ex(b, ve, te, der.SEQUENCE)
    c.subject, c.cn = _name(b, ns, pos)
    ks, ke = ex(b, pos, te, der.SEQUENCE)    # subjectPublicKeyInfo
    als, ale = ex(b, ks, ke, der.SEQUENCE)
    os_, oe = ex(b, als, ale, der.OID)
    c.key_type = der.oid(b, os_, oe)
    bs, be = ex(b, ale, ke, der.BIT_STRING)
    if c.key_type == RSA_OID:
        if be - bs < 2 or b[bs] != 0:
            raise X509Error('bad RSA key')
        c.key_type = 'rsa'
        c.n, c.e = der.rsa_public_key(b, bs + 1, be)
    pos = ke
    while pos < te:                         # issuer/subject unique IDs, extensions: skipped
        pos = der.header(b, pos, te)[2]
    as_, ae = ex(b, te, e, der.SEQUENCE)    # signatureAlgorithm
    os_, oe = ex(b, as_, ae, der.OID)
    c.sig_oid = der.oid(b, os_, oe)
    c.sig_hash = SIG_HASH.get(c.sig_oid, 0)
    ss, se = ex(b, ae, e, der.BIT_STRING)
    if se != e or se - ss < 1 or b[ss] != 0:
        raise X509Error('bad signature value')
    c.signature = bytes(b[ss + 1:se])


def pem_to_der(text, label='CERTIFICATE'):
    """The DER bytes of the first `-----BEGIN <label>-----` block (str or bytes input)."""
    import binascii
    if not isinstance(text, str):
        try:
            text = bytes(text).decode()
        except UnicodeError:
            raise X509Error('PEM block is not text')
    begin = '-----BEGIN %s-----' % label
    i = text.find(begin)
    j = text.find('-----END %s-----' % label, i + 1)
    if i < 0 or j < 0:
        raise X509Error('no PEM %s block' % label)
    try:
        return binascii.a2b_base64(''.join(text[i + len(begin):j].split()))
    except Exception:
        raise X509Error('bad base64 in PEM block')


def load(data):
    """A Certificate from DER or PEM (bytes or str)."""
    if isinstance(data, str) or bytes(data[:11]) == b'-----BEGIN ':
        if len(data) > _MAX_CERT * 3 // 2:   # base64 of _MAX_CERT bytes, line breaks, labels
            raise X509Error('PEM certificate too big (%d bytes)' % len(data))
        data = pem_to_der(data)
    return parse(data)
