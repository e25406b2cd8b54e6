# heap: 96K
# SCCP codec and frame reader, under MicroPython.
import gc
import io
import struct

from fwtest import eq, raises
from phone import sccp_lab as sccp

NAME = 'SEP001122AABBCC'


class Chunky:
    """A stream whose readinto returns at most `step` bytes per call (TLS records, TCP)."""

    def __init__(self, data, step=5):
        self.data = data
        self.pos = 0
        self.step = step

    def readinto(self, buf):
        n = min(len(buf), self.step, len(self.data) - self.pos)
        buf[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


def test_header_layout():
    f = sccp.keepalive()
    eq(f, b'\x04\x00\x00\x00' + bytes(8))
    f = sccp.register_reject('no')
    eq(len(f), 12 + 32)
    eq(struct.unpack('<III', f[:12]), (36, 0, 0x9D))
    eq(sccp.parse_header(f[:12]), (32, 0, 0x9D))


def test_register_long_layout():
    f = sccp.register(NAME, '192.0.2.50', load_name='SCCP11.9-4-2SR3-1S')
    eq(len(f), 12 + 124, 'long Register body is 124 bytes')
    body = f[12:]
    eq(body[:16], b'SEP001122AABBCC\x00')
    eq(body[24:28], bytes([192, 0, 2, 50]), 'station IP in network order')
    eq(struct.unpack('<II', body[28:36]), (307, 5))
    eq(body[52:58], bytes([0x00, 0x11, 0x22, 0xAA, 0xBB, 0xCC]))
    eq(body[58:64], bytes(6))
    eq(body[92:110], b'SCCP11.9-4-2SR3-1S')
    d = sccp.decode(sccp.REGISTER, body)
    eq(d['name'], NAME)
    eq(d['ip'], '192.0.2.50')
    eq(d['device_type'], 307)
    eq(d['mac'], '00:11:22:aa:bb:cc')
    eq(d['load_name'], 'SCCP11.9-4-2SR3-1S')
    short = sccp.register(NAME, b'\xc0\x00\x02\x01', device_type=sccp.DEVICE_7942, long=False)
    eq(len(short), 12 + 36)
    d = sccp.decode(sccp.REGISTER, short[12:])
    eq((d['ip'], d['device_type']), ('192.0.2.1', 434))
    assert 'mac' not in d


def test_round_trips_server_messages():
    cases = [
        (sccp.register_ack(30, 45, 'D/M/Y'), {'keepalive': 30, 'secondary_keepalive': 45,
                                              'date_template': 'D/M/Y', 'max_protocol': 11}),
        (sccp.register_reject('Unknown device'), {'text': 'Unknown device'}),
        (sccp.reset(sccp.RESET_RESTART), {'kind': 2}),
        (sccp.unregister_ack(), {'status': 0}),
        (sccp.register_token_reject(7), {'wait': 7}),
        (sccp.display_notify(sccp.FALLBACK_TEXT, 10), {'text': 'CM Fallback Service Operating'}),
        (sccp.display_prompt_status('Waiting To Rehome'), {'text': 'Waiting To Rehome'}),
        (sccp.define_time_date(2026, 11, 27, 6, 5, 4, 3, 5, 1795766704),
         {'year': 2026, 'month': 11, 'day': 27, 'hour': 6, 'minute': 5, 'second': 4,
          'millis': 3, 'weekday': 5, 'system_time': 1795766704}),
        (sccp.button_template(((1, 9), (2, 9))), {'buttons': [(1, 9), (2, 9)]}),
        (sccp.capabilities_req(), {'msg': 'CapabilitiesReq'}),
        (sccp.keepalive_ack(), {'msg': 'KeepAliveAck'}),
        (sccp.register_token_ack(), {'msg': 'RegisterTokenAck'}),
    ]
    for f, want in cases:
        ((mid, body),) = sccp.split(f)
        d = sccp.decode(mid, body)
        for k in want:
            eq(d[k], want[k], sccp.name(mid) + '.' + k)


def test_round_trips_phone_messages():
    ((mid, body),) = sccp.split(sccp.capabilities_res())
    eq(len(body), 4 + 18 * 16)
    eq(sccp.decode(mid, body)['caps'], [(4, 40), (2, 40), (11, 60)])
    ((mid, body),) = sccp.split(sccp.unregister())
    eq(sccp.decode(mid, body), {'id': 0x27, 'msg': 'Unregister', 'reason': 0})
    ((mid, body),) = sccp.split(sccp.register_token_req(NAME, '192.0.2.50'))
    d = sccp.decode(mid, body)
    eq((d['name'], d['ip'], d['device_type']), (NAME, '192.0.2.50', 307))
    eq(sccp.split(sccp.time_date_req() + sccp.button_template_req()),
       [(0x0D, b''), (0x0E, b'')])


def test_display_label_codes_expanded():
    f = sccp.frame(sccp.DISPLAY_NOTIFY, struct.pack('<I', 0) + b'\x1e\x0a' + bytes(30))
    ((mid, body),) = sccp.split(f)
    eq(sccp.parse_display(mid, body), 'CM Fallback Service Operating')
    f = sccp.frame(sccp.DISPLAY_TEXT, b'ab\x80\x05' + bytes(28))
    eq(sccp.parse_display(sccp.DISPLAY_TEXT, sccp.split(f)[0][1]), 'ab[label 5]')


def test_text_fields_are_nul_terminated_and_cut():
    f = sccp.register_reject('x' * 40)
    eq(sccp.parse_register_reject(sccp.split(f)[0][1]), 'x' * 31)


def test_reader_reads_frames_and_skips_unknown_ids():
    data = (sccp.register_ack() + sccp.frame(0x0116, b'\x01\x02') + sccp.capabilities_req()
            + sccp.frame(0x0999) + sccp.keepalive_ack())
    r = sccp.FrameReader(io.BytesIO(data), accept=sccp.PHONE_RX)
    eq(r.read(), sccp.REGISTER_ACK)
    eq(sccp.parse_register_ack(r.body())[0], 30)
    eq(r.read(), sccp.CAPABILITIES_REQ)
    eq(len(r.body()), 0)
    eq(r.read(), sccp.KEEPALIVE_ACK)
    eq(r.read(), -1)
    eq(r.skipped, 2)
    eq(r.frames, 5)


def test_reader_partial_reads():
    data = sccp.register_ack() + sccp.display_notify('hello') + sccp.keepalive_ack()
    r = sccp.FrameReader(Chunky(data, 5))
    eq([r.read(), r.read(), r.read(), r.read()],
       [sccp.REGISTER_ACK, sccp.DISPLAY_NOTIFY, sccp.KEEPALIVE_ACK, -1])
    r = sccp.FrameReader(Chunky(data, 5))
    r.read()
    r.read()
    eq(sccp.parse_display(r.msg_id, r.body()), 'hello')


def test_reader_truncated_frames():
    f = sccp.register_ack()
    for cut in (5, 12, 20, len(f) - 1):
        r = sccp.FrameReader(io.BytesIO(f[:cut]))
        with raises(sccp.SccpError, match='truncated'):
            r.read()
    with raises(sccp.SccpError):
        sccp.parse_register_ack(b'\x00' * 10)
    with raises(sccp.SccpError):
        sccp.split(f[:-1])


def test_reader_bad_and_oversized_lengths():
    for length in (0, 3, 4 + 2049, 0x7FFFFFFF):
        r = sccp.FrameReader(io.BytesIO(struct.pack('<III', length, 0, 0x100) + bytes(64)))
        with raises(sccp.SccpError, match='bad length'):
            r.read()
    # exactly at the limit is fine
    big = sccp.frame(0x0999, bytes(2048)) + sccp.keepalive_ack()
    r = sccp.FrameReader(io.BytesIO(big), accept=sccp.PHONE_RX)
    eq(r.read(), sccp.KEEPALIVE_ACK)
    with raises(sccp.SccpError):
        sccp.body_length(struct.pack('<III', 5000, 0, 0))


def test_reader_short_buffer_reads_long_skipped_frames_in_pieces():
    data = (sccp.frame(0x0999, bytes(range(256)) * 5) + sccp.keepalive_ack()
            + sccp.display_notify('hi') + sccp.frame(0x0998, bytes(100)))
    r = sccp.FrameReader(Chunky(data, 7), accept=sccp.PHONE_RX, keep=64)
    eq(len(r.buf), 12 + 64)
    eq(r.read(), sccp.KEEPALIVE_ACK)
    eq(r.read(), sccp.DISPLAY_NOTIFY)
    eq(sccp.parse_display(r.msg_id, r.body()), 'hi')
    eq(r.read(), -1)
    eq((r.frames, r.skipped), (4, 2))
    r = sccp.FrameReader(io.BytesIO(sccp.register_reject('x') + sccp.keepalive_ack()),
                         accept=sccp.PHONE_RX, keep=16)
    with raises(sccp.SccpError, match='16 kept'):
        r.read()


def test_reader_async():
    import asyncio

    class AStream:
        def __init__(self, data):
            self.c = Chunky(data, 7)
            self.nones = 2

        async def readinto(self, buf):
            await asyncio.sleep(0)
            if self.nones:
                self.nones -= 1
                return None
            return self.c.readinto(buf)

    async def main():
        r = sccp.FrameReader(AStream(sccp.register_ack() + sccp.keepalive_ack()))
        eq(await r.aread(), sccp.REGISTER_ACK)
        eq(await r.aread(), sccp.KEEPALIVE_ACK)
        eq(await r.aread(), -1)

    asyncio.run(main())


def test_reader_loop_allocates_nothing():
    n = 200
    unit = sccp.keepalive_ack() + sccp.display_notify('x') + sccp.frame(0x0777, b'abcd')
    data = unit * n
    stream = io.BytesIO(data)
    r = sccp.FrameReader(stream, accept=sccp.PHONE_RX)
    # warm up with one full unit: the first frame of each size caches its buffer view
    for _ in range(3):
        r.read()
    count = 0
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        while True:
            mid = r.read()
            if mid < 0:
                break
            if mid == sccp.KEEPALIVE_ACK:
                count += 1
        after = gc.mem_alloc()
    finally:
        gc.enable()
    eq(count, n - 2)
    eq(r.skipped, n)
    eq(after - before, 0, 'bytes allocated while reading %d frames' % (3 * n))


def test_keepalive_frame_is_preallocated():
    a = sccp.keepalive()
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        for _ in range(50):
            a = sccp.keepalive()
        after = gc.mem_alloc()
    finally:
        gc.enable()
    eq(after - before, 0)


def test_names_and_helpers():
    eq(sccp.name(0x81), 'RegisterAck')
    eq(sccp.name(0x1234), '0x1234')
    eq(sccp.device_name('00:11:22:aa:bb:cc'), NAME)
    eq(sccp.mac_bytes(NAME), b'\x00\x11\x22\xaa\xbb\xcc')
    with raises(ValueError):
        sccp.ip_bytes('1.2.3')


def test_one_table_of_message_ids():
    # phone.sccp holds the ids; the lab re-exports them (no copy of its own) and names them
    from phone import sccp as phone_side
    assert sccp.PHONE_RX is phone_side.PHONE_RX
    for mid in sccp.PHONE_RX + sccp.SERVER_RX + (sccp.CLEAR_NOTIFY,):
        assert sccp.name(mid) != '0x%04X' % mid, mid
    # ClearNotify is not one the agent reads: its reader skips it (docs/decisions.md, issue 13)
    assert sccp.CLEAR_NOTIFY not in sccp.PHONE_RX
    r = sccp.FrameReader(io.BytesIO(sccp.clear_notify() + sccp.keepalive_ack()),
                         accept=sccp.PHONE_RX)
    eq(r.read(), sccp.KEEPALIVE_ACK)
    eq(r.skipped, 1)


def test_register_ack_of_older_call_managers():
    # 12 bytes: keepalive and date template only; the secondary keepalive is the keepalive
    body = struct.pack('<I', 30) + b'M/D/YA' + bytes(2)
    eq(sccp.parse_register_ack(body), (30, 'M/D/YA', 30, 0, 0))
    with raises(sccp.SccpError, match='12'):
        sccp.parse_register_ack(bytes(8))


def test_dialogue_opening_matches_the_lab_table():
    # phone.sccpreg builds the opening with private ids: they are phone.sccp_lab's
    got = sccp.split(sccp.opening())
    eq([m for m, _ in got], [sccp.IP_PORT, sccp.CAPABILITIES_RES, sccp.BUTTON_TEMPLATE_REQ,
                             sccp.SOFT_KEY_TEMPLATE_REQ, sccp.SOFT_KEY_SET_REQ,
                             sccp.CONFIG_STAT_REQ])
    eq([b for _, b in got][2:], [b'', b'', b'', b''])
    eq(got[0][1], bytes(4))
    eq(sccp.CONFIG_STAT in sccp.PHONE_RX, True)
    (m, body), = sccp.split(sccp.config_stat('SEP001122AABBCC', lines=2))
    eq((m, len(body), sccp._u32(body, 104)), (sccp.CONFIG_STAT, 112, 2))
