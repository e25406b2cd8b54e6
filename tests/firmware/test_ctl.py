# heap: 128K
# Why not 96K: this module, phone.ctl/x509/der/pkcs1/sha512 are all compiled from source
# inside the test process, and the compiler leaves the heap fragmented (the qstr pool then
# needs a 3.5 KB contiguous block). Boards load these modules as .mpy (host_tools.deploy),
# and tests/host/test_ctl_cli.py verifies a trust list bigger than the heap with the same
# code at 96K.
# Trust lists and signed files: parsing, signatures (SHA-1/256/512), trust rules.
import hashlib
import json

from fwtest import eq, raises
# Imported up front, as the agent does at boot: compiling it from source later, on a heap
# this test has fragmented, may not find a contiguous block (boards load it as .mpy/frozen).
from phone import sha512  # noqa: F401
from phone import ctl
from phone.ctl import CtlError

D = 'fixtures/data/'
NOW = (2026, 6, 1, 12, 0, 0)


def _read(name):
    with open(D + name, 'rb') as f:
        return f.read()


def _hex(b):
    return ''.join(['%02x' % x for x in b])


def _facts():
    with open(D + 'ctl.json') as f:
        return json.load(f)


def test_valid_ctl_each_hash_accepted_on_first_use():
    exp = _facts()
    for h in ('sha1', 'sha256', 'sha512'):
        tl = ctl.load_trust(D + 'ctl_%s.tlv' % h)
        eq(tl.kind, 'CTL')
        eq(tl.hash_code, {'sha1': 1, 'sha256': 2, 'sha512': 3}[h])
        assert tl.tofu
        eq([[ctl.ROLE_NAMES[r.role], r.cn] for r in tl.records], exp['ctl_records'], h)
        eq(tl.filename, 'CTLFile.tlv')
        eq(tl.timestamp, exp['timestamp'])
        eq(tl.version, (1, 2))
        eq(tl.modulus_index, 1)
        eq(tl.sig_len, 128)
        eq(tl.header_len % 4, 0)
        eq(tl.size, exp['sizes']['ctl_%s.tlv' % h])
        eq(tl.signer_cert.cn, 'SAST-ADMIN-1')
        eq(_hex(tl.serial), exp['sast_serial'])
    eq(tl.signer().cn, 'SAST-ADMIN-1')
    eq(tl.sast_certs(), [_read('sast.der'), _read('sast2.der')])
    eq(tl.certs(ctl.ROLE_CCM), [_read('ccm.der')])
    eq(tl.certs(ctl.ROLE_TFTP, ctl.ROLE_CCM_TFTP), [_read('tftp.der'), _read('ccm_tftp.der')])
    ccm = tl.records[2]
    eq((ccm.ip, ccm.dns, ccm.subject), ('203.0.113.10', 'cucm1.lab', 'CN=cucm1;OU=CCM;O=SRST Phone Lab'))


def test_itl_and_parse_only():
    tl = ctl.load_trust(D + 'itl.tlv')
    eq(tl.kind, 'ITL')
    eq(tl.signer_version, (1, 1))
    eq(tl.filename, 'ITLSEP001122334455.tlv')
    eq([ctl.ROLE_NAMES[r.role] for r in tl.records], ['SAST', 'CCM+TFTP', 'TVS', 'CAPF'])
    p = ctl.parse(D + 'ctl_sha1.tlv', keep_certs=True)
    eq(p.digest, None)
    eq(p.records[2].cert, _read('ccm.der'))


def test_later_lists_need_a_known_sast():
    first = ctl.load_trust(D + 'ctl_sha1.tlv')
    # signed by the second SAST of the list in force: accepted
    nxt = ctl.load_trust(D + 'ctl_sast2.tlv', anchors=first)
    assert not nxt.tofu
    eq(nxt.signer_cert.cn, 'SAST-ADMIN-2')
    # anchors as DER, PEM or parsed certificates work alike
    ctl.load_trust(D + 'ctl_sast2.tlv', anchors=first.sast_certs())
    ctl.load_trust(D + 'ctl_sha256.tlv', anchors=[_read('sast.pem')])
    with raises(CtlError, match='unknown SAST'):
        ctl.load_trust(D + 'ctl_other.tlv', anchors=first)
    # provisioned SAST certificate: the first list must already match it
    with raises(CtlError, match='unknown SAST'):
        ctl.load_trust(D + 'ctl_other.tlv', anchors=[_read('sast.der')])
    with raises(CtlError, match='unknown SAST'):
        ctl.load_trust(D + 'ctl_sast2.tlv', anchors=[_read('sast.der')])


def test_forged_signer_with_a_known_serial_refused():
    # self-consistent, so a phone with no anchor would take it (the first-use window) ...
    assert ctl.load_trust(D + 'ctl_impostor.tlv').tofu
    # ... but not once the real SAST is known
    with raises(CtlError, match='differs'):
        ctl.load_trust(D + 'ctl_impostor.tlv', anchors=[_read('sast.der')])


def test_expired_signer_only_refused_when_the_clock_is_known():
    ctl.load_trust(D + 'ctl_expired.tlv')
    with raises(CtlError, match='expired'):
        ctl.load_trust(D + 'ctl_expired.tlv', now=NOW)
    ctl.load_trust(D + 'ctl_sha1.tlv', now=NOW)


def test_bad_structures_refused_with_a_reason():
    for name, why in (('ctl_garbage.tlv', 'record 2'), ('ctl_norole.tlv', 'no role'),
                      ('ctl_3sast.tlv', 'more than 2 SAST'), ('garbage.der', 'not a trust list'),
                      ('no-such-file.tlv', 'cannot'), ('cnf.xml.sgn', 'does not start')):
        with raises(CtlError, match=why):
            ctl.load_trust(D + name)


def test_signed_config():
    tl = ctl.load_trust(D + 'ctl_sha1.tlv')
    exp = _facts()
    sg = ctl.verify_sgn(D + 'cnf.xml.sgn', [tl])
    eq(sg.kind, 'SGN')
    eq(sg.signer_cert.cn, 'tftp1')
    eq(sg.filename, 'SEP001122334455.cnf.xml')
    eq(sg.payload_len, exp['cnf_len'])
    h = hashlib.sha256()
    with open(D + 'cnf.xml.sgn', 'rb') as f:
        f.seek(sg.payload_off)
        h.update(f.read())
    eq(_hex(h.digest()), exp['cnf_sha256'])
    eq(ctl.verify_sgn(D + 'cnf_sha512.sgn', [tl]).signer_cert.cn, 'cucm-tftp1')
    eq(ctl.verify_sgn(D + 'cnf.xml.sgn', [_read('tftp.der')]).payload_len, exp['cnf_len'])
    # signed by the call manager's certificate, which is not a TFTP one
    with raises(CtlError, match='unknown certificate'):
        ctl.verify_sgn(D + 'cnf_ccm.sgn', [tl])
    with raises(CtlError, match='unknown certificate'):
        ctl.verify_sgn(D + 'cnf.xml.sgn', [])
    eq(ctl.parse_sgn(D + 'cnf_ccm.sgn').payload_len, exp['cnf_len'])


def test_copy_payload(tmp_path):
    sg = ctl.verify_sgn(D + 'cnf.xml.sgn', [_read('tftp.der')])
    out = tmp_path + '/SEP001122334455.cnf.xml'
    n = ctl.copy_payload(sg, out)
    with open(out, 'rb') as f:
        data = f.read()
    eq(len(data), n)
    assert data.startswith(b'<?xml')


def test_2048_bit_signer():
    tl = ctl.load_trust(D + 'ctl_2048.tlv')
    eq((tl.sig_len, tl.modulus_index), (256, 2))
    eq(tl.signer_cert.cn, 'SAST-ADMIN-2048')
