from fwtest import eq, raises
from phone import der
from phone.der import DerError


def test_short_and_long_lengths():
    b = b'\x04\x03abc'
    eq(der.header(b, 0, len(b)), (4, 2, 5))
    b = b'\x04\x81\x80' + b'x' * 128
    eq(der.header(b, 0, len(b)), (4, 3, 131))
    b = b'\x30\x82\x01\x00' + bytes(256)
    eq(der.header(b, 0, len(b)), (0x30, 4, 260))
    eq(der.expect(b, 0, len(b), der.SEQUENCE), (4, 260))


def test_bad_headers_raise_der_error():
    for b in (b'', b'\x04', b'\x04\x05abc', b'\x04\x80abc', b'\x04\x85\x00\x00\x00\x00\x01',
              b'\x04\x82\x01', b'\x1f\x01\x01', b'\x30\x84\xff\xff\xff\xff'):
        with raises(DerError):
            der.header(b, 0, len(b))
    with raises(DerError, match='expected tag'):
        der.expect(b'\x02\x01\x05', 0, 3, der.SEQUENCE)
    # an element may not run past the end given by its container
    with raises(DerError):
        der.header(b'\x04\x03abcdef', 0, 4)


def test_children():
    b = b'\x30\x08\x02\x01\x05\x04\x01x\x05\x00\x01'
    s, e = der.expect(b, 0, len(b), der.SEQUENCE)
    eq([t for t, _, _ in der.children(b, s, e)], [2, 4, 5])


def test_integers():
    eq(der.integer(b'\x00\xff', 0, 2), 255)
    eq(der.integer(b'\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00', 0, 10), 1 << 72)
    with raises(DerError, match='negative'):
        der.integer(b'\x80', 0, 1)
    with raises(DerError):
        der.integer(b'', 0, 0)
    eq(der.unsigned_bytes(b'\x00\x00\x9a\x01', 0, 4), b'\x9a\x01')
    eq(der.unsigned_bytes(b'\x00', 0, 1), b'\x00')


def test_oids():
    eq(der.oid(b'\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0b', 0, 9), '1.2.840.113549.1.1.11')
    eq(der.oid(b'\x55\x04\x03', 0, 3), '2.5.4.3')
    eq(der.oid(b'\x88\x37', 0, 2), '2.999')
    with raises(DerError):
        der.oid(b'\x2a\x86', 0, 2)
    with raises(DerError):
        der.oid(b'', 0, 0)


def test_times():
    eq(der.time_value(b'491231235959Z', 0, 13, der.UTC_TIME), (2049, 12, 31, 23, 59, 59))
    eq(der.time_value(b'500101000000Z', 0, 13, der.UTC_TIME), (1950, 1, 1, 0, 0, 0))
    eq(der.time_value(b'20991231235959Z', 0, 15, der.GENERALIZED_TIME), (2099, 12, 31, 23, 59, 59))
    for raw, tag in ((b'4912312359Z', der.UTC_TIME), (b'491231235959+', der.UTC_TIME),
                     (b'49123123595aZ', der.UTC_TIME), (b'491331235959Z', der.UTC_TIME),
                     (b'491231235959Z', der.GENERALIZED_TIME)):
        with raises(DerError):
            der.time_value(raw, 0, len(raw), tag)


def test_text_and_rsa_key():
    eq(der.text(b'cucm1', 0, 5), 'cucm1')
    eq(der.text(b'\x00h\x00i', 0, 4, der.BMP_STRING), 'hi')
    eq(der.text(b'\xff\xfe', 0, 2), 'fffe')
    b = b'\x30\x0a\x02\x03\x00\xc3\x51\x02\x03\x01\x00\x01'
    eq(der.rsa_public_key(b, 0, len(b)), (0xC351, 65537))
    with raises(DerError):
        der.rsa_public_key(b + b'\x00', 0, len(b) + 1)   # trailing byte inside the bound
    with raises(DerError):
        der.rsa_public_key(b'\x30\x03\x02\x01\x05', 0, 5)


def test_random_bytes_only_ever_raise_der_error():
    x = 12345
    buf = bytearray(24)
    for round_ in range(300):
        for i in range(len(buf)):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            buf[i] = (x >> 16) & 0xFF
        buf[0] = (0x30, 0x02, 0x06, 0x17)[round_ % 4]
        try:
            t, s, e = der.header(buf, 0, len(buf))
            if t == der.SEQUENCE:
                for _ in der.children(buf, s, e):
                    pass
            elif t == der.INTEGER and e > s:
                der.unsigned_bytes(buf, s, e)
            elif t == der.OID:
                der.oid(buf, s, e)
            else:
                der.time_value(buf, s, e, t)
        except DerError:
            pass
