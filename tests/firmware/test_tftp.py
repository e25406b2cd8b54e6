# heap: 144K  (the test module itself takes heap; the client alone runs at 96K: bench/tftp.py)
# TFTP client: packet building and parsing, and transfers over loopback sockets whose server
# packets are queued before the client runs (one MicroPython thread, no real server).
import gc
import socket
import time

from fwtest import CaptureOut, bound_udp, eq, raises
from phone import tftp
from phone.events import Events


def pattern(n, seed=0):
    b = bytearray(n)
    x = seed
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        b[i] = x >> 16 & 0xFF
    return b


class BufSink:
    """A sink that stores into one preallocated buffer (no growth during the test)."""

    def __init__(self, cap):
        self.b = bytearray(cap)
        self.n = 0

    def write(self, d):
        ln = len(d)
        self.b[self.n:self.n + ln] = d
        self.n += ln
        return ln

    def seek(self, pos):
        self.n = pos

    def truncate(self):
        pass

    def value(self):
        return bytes(self.b[:self.n])


class CountSink:
    def __init__(self):
        self.n = 0

    def write(self, d):
        self.n += len(d)


_next_port = [48700]


def bound():
    return bound_udp(_next_port)


class Fake:
    """The server side: one socket that receives the RRQ (as port 69 would) and sends every
    answer (as the transfer's TID would)."""

    def __init__(self):
        self.sock, self.port = bound()

    def client(self):
        s, port = bound()
        return s, socket.getaddrinfo('127.0.0.1', port)[0][-1]

    def sent_by_client(self):
        self.sock.setblocking(False)
        got = []
        while True:
            try:
                got.append(self.sock.recv(2048))
            except OSError:
                return got


def oack(**opts):
    b = bytearray(b'\x00\x06')
    for k in opts:
        b += k.encode() + b'\x00' + str(opts[k]).encode() + b'\x00'
    return b


def data(block, payload):
    return bytes((0, 3, block >> 8, block & 255)) + bytes(payload)


def error(code, msg):
    return bytes((0, 5, 0, code)) + msg.encode() + b'\x00'


def blocks(content, blksize):
    out = []
    for i in range(0, len(content) + 1, blksize):
        out.append(content[i:i + blksize])
        if len(out[-1]) < blksize:
            break
    return out


class QClient(tftp.Client):
    """Client whose sockets are the pre-bound, pre-filled ones of the test."""

    def __init__(self, socks, **kw):
        out = CaptureOut()
        kw.setdefault('events', Events(out=out))
        tftp.Client.__init__(self, **kw)
        self.out = out
        self.socks = socks

    def _open(self, server):
        return self.socks.pop(0)

    def evnames(self):
        import json
        return [json.loads(l)['ev'] for l in self.out.lines()]


def acks(packets):
    return [(p[2] << 8) | p[3] for p in packets if p[1] == 4]


# -- packets ----------------------------------------------------------------------------
def test_rrq_with_options():
    b = bytearray(512)
    n = tftp.build_rrq(b, 'SEP02005E100001.cnf.xml', [('blksize', 1428), ('tsize', 0)])
    eq(bytes(b[:n]), b'\x00\x01SEP02005E100001.cnf.xml\x00octet\x00blksize\x001428\x00tsize\x000\x00')
    with raises(ValueError, match='too long'):
        tftp.build_rrq(bytearray(16), 'a-very-long-file-name.xml')


def test_error_packets():
    b = bytearray(64)
    n = tftp.build_error(b, 3, 'too big')
    eq(bytes(b[:n]), b'\x00\x05\x00\x03too big\x00')
    eq(tftp.parse_error(b, n), (3, 'too big'))
    eq(tftp.parse_error(b'\x00\x05\x00\x01no nul', 10), (1, 'no nul'))
    eq(tftp.parse_error(b'\x00\x05\x00', 3)[0], 0)
    e = tftp.TftpError(1, 'File not found', server='192.0.2.1')
    assert 'file not found' in str(e) and '192.0.2.1' in str(e) and 'File not found' in str(e)


def test_oack_parsing():
    p = oack(BLKSIZE=1024, tsize=5000)
    eq(tftp.parse_oack(p, len(p)), {'blksize': '1024', 'tsize': '5000'})
    for badp, why in ((b'\x00\x06blksize\x001024', 'NUL'), (b'\x00\x06blksize\x00', 'without a value'),
                      (b'\x00\x03', 'not an OACK')):
        with raises(tftp.TftpError, match=why) as r:
            tftp.parse_oack(badp, len(badp))
        eq(r.value.code, 8)


# -- transfers ----------------------------------------------------------------------------
def run(queue_fn, content_len=None, **kw):
    f = Fake()
    s, to = f.client()
    queue_fn(f, to)
    kw.setdefault('timeout_ms', 200)
    kw.setdefault('retries', 2)
    c = QClient([s], port=f.port, **kw)
    sink = BufSink(content_len or 16384)
    return f, c, sink


def test_negotiated_windowed_transfer_is_byte_identical():
    content = pattern(9000, 1)

    def q(f, to):
        f.sock.sendto(oack(blksize=1024, tsize=len(content), windowsize=4), to)
        for i, chunk in enumerate(blocks(content, 1024)):
            f.sock.sendto(data(i + 1, chunk), to)

    f, c, sink = run(q, content_len=9000, blksize=1024, windowsize=4)
    st = c.get('127.0.0.1', 'CTLFile.tlv', sink)
    eq(sink.value(), bytes(content))
    eq((st.bytes, st.blocks, st.blksize, st.windowsize, st.tsize), (9000, 9, 1024, 4, 9000))
    assert st.negotiated
    sent = f.sent_by_client()
    assert b'windowsize\x004\x00' in sent[0] and b'tsize\x000\x00' in sent[0]
    eq(acks(sent), [0, 4, 8, 9])        # ACK of the OACK, one per window, the last block
    assert 'tftp_oack' in c.evnames() and c.evnames()[-1] == 'tftp_done'


def test_duplicates_and_out_of_order_blocks():
    content = pattern(3000, 2)
    ch = blocks(content, 512)           # 6 blocks: 5 full and 440 bytes

    def q(f, to):
        f.sock.sendto(oack(blksize=512, tsize=len(content), windowsize=8), to)
        for k in (1, 1, 2, 4, 3, 4, 5, 2, 6):
            f.sock.sendto(data(k, ch[k - 1]), to)

    f, c, sink = run(q, blksize=512, windowsize=8)
    st = c.get('127.0.0.1', 'f', sink)
    eq(sink.value(), bytes(content))
    eq((st.dups, st.ooo), (2, 1))
    sent = f.sent_by_client()
    # ACK 0; re-ACK 1 for the duplicate 1; ACK 2 when 4 came too early; ACK 5 for the
    # late duplicate 2 (once per position); final ACK 6.
    eq(acks(sent), [0, 1, 2, 5, 6])


def test_server_ignoring_options_falls_back_to_rfc1350():
    content = pattern(1300, 3)

    def q(f, to):
        for i, chunk in enumerate(blocks(content, 512)):
            f.sock.sendto(data(i + 1, chunk), to)

    f, c, sink = run(q)
    st = c.get('127.0.0.1', 'f', sink)
    eq(sink.value(), bytes(content))
    assert not st.negotiated
    eq((st.blksize, st.windowsize, st.tsize), (512, 1, None))
    eq(acks(f.sent_by_client()), [1, 2, 3])
    assert 'tftp_options_ignored' in c.evnames()


def test_exact_multiple_of_blksize_ends_with_empty_block():
    content = pattern(1024, 4)

    def q(f, to):
        f.sock.sendto(oack(blksize=512, tsize=1024), to)
        f.sock.sendto(data(1, content[:512]), to)
        f.sock.sendto(data(2, content[512:]), to)
        f.sock.sendto(data(3, b''), to)

    f, c, sink = run(q, blksize=512, windowsize=1)
    st = c.get('127.0.0.1', 'f', sink)
    eq(sink.value(), bytes(content))
    eq(st.blocks, 3)


def test_error_packet_is_a_clear_tftp_error():
    def q(f, to):
        f.sock.sendto(error(1, 'File not found'), to)

    f, c, sink = run(q)
    with raises(tftp.TftpError, match='File not found') as r:
        c.get('127.0.0.1', 'SEP000000000000.cnf.xml', sink)
    eq(r.value.code, 1)
    assert not r.value.local
    eq(r.value.server, '127.0.0.1')
    assert c.evnames()[-1] == 'tftp_error'


def test_error_in_the_middle_of_a_transfer():
    def q(f, to):
        f.sock.sendto(oack(blksize=512, tsize=2000), to)
        f.sock.sendto(data(1, pattern(512)), to)
        f.sock.sendto(error(2, 'Access violation'), to)

    f, c, sink = run(q, blksize=512)
    with raises(tftp.TftpError, match='Access violation') as r:
        c.get('127.0.0.1', 'f', sink)
    eq(r.value.code, 2)
    eq(c.last_stats.bytes, 512)


def test_option_refusal_retries_without_options():
    f = Fake()
    s1, to1 = f.client()
    s2, to2 = f.client()
    f.sock.sendto(error(8, 'no options here'), to1)
    f.sock.sendto(data(1, b'hello'), to2)
    c = QClient([s1, s2], port=f.port, timeout_ms=200)
    sink = BufSink(100)
    st = c.get('127.0.0.1', 'f', sink)
    eq(sink.value(), b'hello')
    assert not st.negotiated
    sent = f.sent_by_client()
    assert b'blksize' in sent[0] and b'blksize' not in sent[1]
    assert 'tftp_options_refused' in c.evnames()


def _refused(q, match, code, written, **kw):
    """A transfer whose server sends what q(f, to) sends is refused by the client: TftpError
    matching `match` with ERROR `code`, which the client sends too, after `written` bytes."""
    f, c, sink = run(q, **kw)
    with raises(tftp.TftpError, match=match) as r:
        c.get('127.0.0.1', 'f', sink)
    eq((r.value.code, r.value.local), (code, True))
    eq(f.sent_by_client()[-1][:4], b'\x00\x05\x00' + bytes((code,)))
    eq(sink.n, written)


def test_bad_oack_aborts_with_error_8():
    def q(f, to):
        f.sock.sendto(oack(blksize=9000), to)       # more than we asked for

    _refused(q, None, 8, 0, blksize=1024)


def test_tiny_oack_blksize_is_refused():
    # RFC 2348 allows blksize 8: a server answering so (and dripping the blocks) would keep
    # the phone busy for hours. Under 512 (ours if smaller) the OACK is refused with ERROR 8.
    def q(f, to):
        f.sock.sendto(oack(blksize=8, tsize=4000), to)
        for k in (1, 2, 3):
            f.sock.sendto(data(k, b'12345678'), to)

    _refused(q, 'blksize 8 refused (< 512)', 8, 0, blksize=1428)


def test_a_small_blksize_we_asked_for_is_accepted():
    # The floor is never above what the client itself asked for.
    content = pattern(600, 8)

    def q(f, to):
        f.sock.sendto(oack(blksize=256, tsize=600), to)
        for i, chunk in enumerate(blocks(content, 256)):
            f.sock.sendto(data(i + 1, chunk), to)

    f, c, sink = run(q, blksize=256, windowsize=1)
    st = c.get('127.0.0.1', 'f', sink)
    eq((sink.value(), st.blksize), (bytes(content), 256))


def test_tsize_over_the_limit_aborts_before_any_data():
    def q(f, to):
        f.sock.sendto(oack(blksize=512, tsize=10000), to)

    _refused(q, 'limit', 3, 0, blksize=512, max_bytes=5000)


def test_running_total_over_the_limit_aborts():
    def q(f, to):
        for k in (1, 2, 3):
            f.sock.sendto(data(k, pattern(512, k)), to)

    _refused(q, '1000 byte limit', 3, 512, max_bytes=1000)


def test_size_mismatch_with_tsize_is_an_error():
    def q(f, to):
        f.sock.sendto(oack(blksize=512, tsize=900), to)
        f.sock.sendto(data(1, pattern(512)), to)
        f.sock.sendto(data(2, pattern(100)), to)   # 612 bytes, not 900

    f, c, sink = run(q, blksize=512)
    with raises(tftp.TftpError, match='size mismatch'):
        c.get('127.0.0.1', 'f', sink)


def test_silent_server_times_out_with_bounded_retransmissions():
    f, c, sink = run(lambda f, to: None, timeout_ms=100, retries=2)
    t0 = time.ticks_ms()
    with raises(tftp.TftpTimeout, match='no answer'):
        c.get('127.0.0.1', 'f', sink)
    took = time.ticks_diff(time.ticks_ms(), t0)
    assert 250 <= took < 1000, took
    eq(len(f.sent_by_client()), 3)         # RRQ + 2 retransmissions
    eq(c.last_stats.retransmits, 2)


def test_lost_block_is_recovered_by_the_ack_timer():
    content = pattern(1500, 5)
    ch = blocks(content, 512)

    def q(f, to):
        f.sock.sendto(oack(blksize=512, tsize=1500), to)
        f.sock.sendto(data(1, ch[0]), to)
        # block 2 "lost"; the server's own retransmission is queued after a pause that
        # the client sees as a timeout (queued now, but the client re-ACKs 1 first).

    f, c, sink = run(q, blksize=512, timeout_ms=100, retries=1)
    with raises(tftp.TftpTimeout, match='block 2'):
        c.get('127.0.0.1', 'f', sink)
    sent = f.sent_by_client()
    eq(acks(sent), [0, 1, 1])                # ACK 0, ACK 1, then the timer re-ACKs 1
    eq(sent[-1][:4], b'\x00\x05\x00\x00')    # and we tell the server we gave up
    eq(c.last_stats.retransmits, 1)


def test_fetch_tries_the_next_server():
    f = Fake()
    s1, to1 = f.client()
    s2, to2 = f.client()
    content = pattern(700, 6)
    f.sock.sendto(oack(tsize=700, blksize=1024), to2)
    f.sock.sendto(data(1, content), to2)
    c = QClient([s1, s2], port=f.port, timeout_ms=80, retries=1, blksize=1024)
    sink = BufSink(1000)
    st = c.fetch(['127.0.0.2', '127.0.0.1'], 'f', sink)
    eq(sink.value(), bytes(content))
    eq((st.attempt, st.server), (2, '127.0.0.1'))
    assert 'tftp_next_server' in c.evnames()


def test_fetch_reports_the_server_error_first():
    # Every server is tried and the first answer reported; next_on_not_found=False stops at
    # a "file not found" (the caller has another name to ask that server for).
    for go_on, tried in ((True, ['127.0.0.1', '127.0.0.3']), (False, ['127.0.0.1'])):
        f = Fake()
        s1, to1 = f.client()
        s2, to2 = f.client()
        f.sock.sendto(error(1, 'File not found'), to1)
        c = QClient([s1, s2], port=f.port, timeout_ms=60, retries=1)
        with raises(tftp.TftpError, match='File not found') as r:
            c.fetch(['127.0.0.1', '127.0.0.3'], 'f', BufSink(10), go_on)
        eq(r.value.code, 1)
        eq(r.value.tried, tried)
        eq('tftp_next_server' in c.evnames(), go_on)


def test_fetch_rewinds_a_sink_after_a_partial_transfer():
    f = Fake()
    s1, to1 = f.client()
    s2, to2 = f.client()
    f.sock.sendto(oack(blksize=512, tsize=1200), to1)
    f.sock.sendto(data(1, pattern(512, 9)), to1)
    f.sock.sendto(error(0, 'disk on fire'), to1)
    f.sock.sendto(data(1, b'short file'), to2)
    c = QClient([s1, s2], port=f.port, timeout_ms=100, blksize=512)
    sink = BufSink(2000)
    c.fetch(['127.0.0.1', '127.0.0.1'], 'f', sink)
    eq(sink.value(), b'short file')


def test_receive_loop_does_not_allocate_per_block():
    # 40 full blocks through the exact-size readinto path: the heap used by the transfer
    # must not grow with the number of blocks.
    def measure(nblocks):
        content = pattern(1024, 7)

        def q(f, to):
            f.sock.sendto(oack(blksize=1024, tsize=1024 * nblocks + 10, windowsize=8), to)
            for k in range(1, nblocks + 1):
                f.sock.sendto(data(k, content), to)
            f.sock.sendto(data(nblocks + 1, content[:10]), to)

        f, c, _ = run(q, content_len=16, blksize=1024, windowsize=8)
        sink = CountSink()
        gc.collect()
        gc.disable()
        a0 = gc.mem_alloc()
        st = c.get('127.0.0.1', 'f', sink)
        used = gc.mem_alloc() - a0
        gc.enable()
        eq(sink.n, 1024 * nblocks + 10)
        return used

    small = measure(4)
    large = measure(40)
    assert large - small < 256, (small, large)


def test_a_silent_server_is_given_up_after_answer_ms():
    # A stored configuration (phone.provision): the server silent for answer_ms is not
    # waited out (5 tries of 1 s here); the RRQ is resent every third of it (a router that
    # rate-limits ICMP may answer a later one with the error it dropped for the first).
    f, c, sink = run(lambda f, to: None, timeout_ms=1000, retries=5, answer_ms=250)
    t0 = time.ticks_ms()
    with raises(tftp.TftpTimeout, match='in 250 ms'):
        c.get('127.0.0.1', 'f', sink)
    took = time.ticks_diff(time.ticks_ms(), t0)
    assert 240 <= took < 700, took
    assert 3 <= len(f.sent_by_client()) <= 4, f.sent_by_client()
    eq(c.answer_ms, 250)                    # still in force: nobody answered


def test_an_answer_lifts_answer_ms_for_the_client():
    content = pattern(700, 7)

    def q(f, to):
        f.sock.sendto(oack(tsize=700, blksize=1024), to)
        f.sock.sendto(data(1, content), to)

    f, c, sink = run(q, blksize=1024, timeout_ms=100, retries=1, answer_ms=250)
    c.get('127.0.0.1', 'f', sink)
    eq(sink.value(), bytes(content))
    eq(c.answer_ms, None)                   # TFTP is there: later files get every retry
