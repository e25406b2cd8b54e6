# heap: 128K
# Why not 96K: this module, phone.ctl/x509/der/pkcs1/sha512 are all compiled from source
# inside the test process, and the compiler leaves the heap fragmented (the qstr pool then
# needs a 3.5 KB contiguous block). Boards load these modules as .mpy (host_tools.deploy),
# and tests/host/test_ctl_cli.py verifies a trust list bigger than the heap with the same
# code at 96K.
# Every way a trust list or signed file can be damaged must end in CtlError (never an
# IndexError or similar), and never in acceptance. Files are copied and patched on "flash"
# in place (no whole-file buffers: the heap is a small board's).
from fwtest import eq, raises
from phone import sha512  # noqa: F401  (loaded up front, as at boot: see test_ctl.py)
from phone import ctl
from phone.ctl import CtlError

D = 'fixtures/data/'
TFTP = D + 'tftp.der'


def _copy(src, dst, cut=None, tail=b''):
    buf = bytearray(256)
    left = cut
    with open(src, 'rb') as f, open(dst, 'wb') as out:
        while left is None or left > 0:
            n = f.readinto(buf)
            if not n:
                break
            if left is not None:
                n = min(n, left)
                left -= n
            out.write(memoryview(buf)[:n])
        out.write(tail)


def _header_len(path):
    with open(path, 'rb') as f:
        b = f.read(10)
    return (b[8] << 8) | b[9]


def _size(path):
    with open(path, 'rb') as f:
        f.seek(0, 2)
        return f.tell()


def _refused(path, load):
    try:
        load(path)
    except CtlError as ex:
        return str(ex)
    raise AssertionError('accepted a damaged file')


def _positions(hlen, size, step):
    for i in range(hlen):
        yield i
    for i in range(hlen, size, step):
        yield i
    yield size - 1


def _flip_sweep(tmp_path, name, step, load):
    """Flip one bit at every header byte and every `step`-th byte after it."""
    path = tmp_path + '/t'
    _copy(D + name, path)
    hlen = _header_len(path)
    size = _size(path)
    reasons = {}
    count = 0
    one = bytearray(1)
    with open(path, 'r+b') as f:
        for i in _positions(hlen, size, step):
            f.seek(i)
            f.readinto(one)
            one[0] ^= 0x01
            f.seek(i)
            f.write(one)
            f.flush()
            why = _refused(path, load)
            one[0] ^= 0x01
            f.seek(i)
            f.write(one)
            f.flush()
            key = why.split(' (')[0][:24]
            reasons[key] = reasons.get(key, 0) + 1
            count += 1
    load(path)                              # restored: accepted again
    return count, reasons


def test_one_flipped_bit_anywhere_refuses_a_ctl(tmp_path):
    n, reasons = _flip_sweep(tmp_path, 'ctl_sha256.tlv', 5, ctl.load_trust)
    assert n > 1000, n
    assert reasons.get('bad signature', 0) > n // 2, reasons


def test_flipped_bits_in_sha1_sha512_and_itl(tmp_path):
    _flip_sweep(tmp_path, 'ctl_sha1.tlv', 17, ctl.load_trust)
    _flip_sweep(tmp_path, 'itl.tlv', 17, ctl.load_trust)
    _flip_sweep(tmp_path, 'ctl_sha512.tlv', 97, ctl.load_trust)


def test_flipped_bits_in_a_signed_config(tmp_path):
    n, reasons = _flip_sweep(tmp_path, 'cnf.xml.sgn', 1, lambda p: ctl.verify_sgn(p, [TFTP_DER]))
    assert n > 500, n


def test_truncated_and_extended_files_refused(tmp_path):
    src = D + 'ctl_sha1.tlv'
    path = tmp_path + '/t'
    hlen = _header_len(src)
    size = _size(src)
    for cut in (0, 1, 3, 5, 9, 10, 11, hlen - 1, hlen + 1, hlen + 3, hlen + 4, hlen + 5,
                hlen + 100, size // 2, size - 1):
        _copy(src, path, cut=cut)
        _refused(path, ctl.load_trust)
        _refused(path, ctl.parse)
    for tail in (b'\x01', b'\x01\x00', b'\x01\x00\x02\x00\x05', b'\x00' * 8):
        _copy(src, path, tail=tail)
        _refused(path, ctl.load_trust)
    _copy(src, path, cut=hlen)              # a header alone
    eq(_refused(path, ctl.load_trust), 'trust list has no records')
    sgn = D + 'cnf.xml.sgn'
    for cut in (5, 20, _header_len(sgn) - 1):
        _copy(sgn, path, cut=cut)
        _refused(path, lambda p: ctl.verify_sgn(p, [TFTP_DER]))


def _patch(path, at, data):
    with open(path, 'r+b') as f:
        f.seek(at)
        f.write(data)


def test_header_length_and_duplicate_signature(tmp_path):
    path = tmp_path + '/t'
    for hl in (0, 9, 0xFFFF, _size(D + 'ctl_sha1.tlv') + 4):
        _copy(D + 'ctl_sha1.tlv', path)
        _patch(path, 8, bytes([hl >> 8, hl & 0xFF]))
        with raises(CtlError):
            ctl.load_trust(path)
    # turn the filename element into a second (empty) signature element
    _copy(D + 'ctl_sha1.tlv', path)
    tl = ctl.parse(path)
    _patch(path, tl.sig_off + 3 + tl.sig_len, b'\x0c')
    with raises(CtlError, match='two signatures'):
        ctl.load_trust(path)


with open(TFTP, 'rb') as _f:
    TFTP_DER = _f.read()
