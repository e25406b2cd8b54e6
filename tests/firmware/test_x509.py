import hashlib
import json

from fwtest import eq, raises
from phone import x509
from phone.x509 import X509Error

D = 'fixtures/data/'


def _read(name):
    with open(D + name, 'rb') as f:
        return f.read()


def _expect():
    with open(D + 'expect.json') as f:
        return json.load(f)['certs']


def _hex(b):
    return ''.join(['%02x' % x for x in b])


def test_fields_match_what_cryptography_says():
    facts = _expect()
    for name in ('sast', 'ccm', 'phone', 'expired_sast', 'sast_2048'):
        want = facts[name]
        c = x509.parse(_read(name + '.der'))
        eq(c.cn, want['cn'], name)
        eq(_hex(c.serial_bytes), want['serial'], name)
        eq(c.serial, int(want['serial'], 16), name)
        eq('%x' % c.n, want['n'], name)
        eq(c.e, want['e'], name)
        eq(c.subject, want['subject'], name)
        eq(c.issuer, want['issuer'], name)
        eq(list(c.not_before), want['not_before'], name)
        eq(list(c.not_after), want['not_after'], name)
        eq(c.sig_oid, want['sig_oid'], name)
        eq(c.sig_hash, 2, name)
        eq(c.key_type, 'rsa')
        eq(_hex(hashlib.sha256(c.tbs()).digest()), want['tbs_sha256'], name)
        eq(len(c.signature), want['sig_len'], name)
        eq(_hex(c.signature[:8]), want['sig_head'], name)
        eq(len(c.der), want['size'], name)
    eq(x509.parse(_read('phone.der')).issuer_cn, 'CAPF-lab')


def _signed_by(cert, issuer):
    """True if `issuer` (a Certificate with an RSA key) signed `cert`."""
    from phone import pkcs1
    if issuer.n is None or not cert.sig_hash:
        return False
    h = pkcs1.new_hash(cert.sig_hash)
    h.update(cert.tbs())
    return pkcs1.check(issuer.n, issuer.e, cert.signature, cert.sig_hash, h.digest()) is None


def test_signatures_and_validity():
    capf = x509.parse(_read('capf.der'))
    phone = x509.parse(_read('phone.der'))
    sast = x509.parse(_read('sast.der'))
    assert _signed_by(phone, capf)
    assert not _signed_by(phone, sast)
    assert _signed_by(sast, sast)          # self-signed
    assert not _signed_by(sast, capf)
    t = (2026, 1, 1, 0, 0, 0, 3, 1)        # a time.gmtime()-shaped tuple
    assert sast.valid_at(t)
    old = x509.parse(_read('expired_sast.der'))
    assert not old.valid_at(t)
    assert old.valid_at((2001, 6, 1, 12, 0, 0))
    assert not sast.valid_at((2019, 12, 31, 23, 59, 59))


def test_pem_and_load():
    pem = _read('sast.pem')
    eq(x509.pem_to_der(pem), _read('sast.der'))
    eq(x509.load(pem).cn, 'SAST-ADMIN-1')
    eq(x509.load(pem.decode()).cn, 'SAST-ADMIN-1')
    eq(x509.load(_read('sast.der')).cn, 'SAST-ADMIN-1')
    with raises(X509Error, match='no PEM'):
        x509.pem_to_der('nothing here')
    with raises(X509Error):
        x509.load(b'-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n')


def test_garbage_and_truncated_certificates_raise_x509_error():
    with raises(X509Error):
        x509.parse(_read('garbage.der'))
    with raises(X509Error):
        x509.parse(b'')
    with raises(X509Error, match='too big'):
        x509.parse(bytes(9000))
    good = _read('ccm.der')
    for cut in range(0, len(good), 7):
        with raises(X509Error):
            x509.parse(good[:cut])
    with raises(X509Error, match='trailing'):
        x509.parse(good + b'\x00')


def test_flipped_bytes_never_escape_as_other_errors():
    buf = bytearray(_read('ccm.der'))
    n_ok = 0
    for i in range(0, len(buf), 3):
        buf[i] ^= 0x41
        try:
            x509.parse(buf)
            n_ok += 1                       # e.g. a flip inside a name or the signature
        except X509Error:
            pass
        buf[i] ^= 0x41
    assert n_ok > 0
