# timeout: 90
# Provisioning bounded in time (phone.tftp and phone.provision.Provisioner.download) against
# small UDP TFTP servers on loopback addresses: a server that drips its blocks (in a thread),
# servers that never answer (a bound socket that only counts the read requests), and an
# address where nothing listens (ICMP port unreachable). Each bound is shown by what the
# servers received and the events, never by how long something took.
import _thread
import json
import select
import socket
import time

from fakestore import Store, Writer
from fwtest import CaptureOut, eq, raises
from phone import provision, tftp
from phone.events import Events
from phone.settings import Settings

_port = [47100]
WANTED = (('CTL', ('CTLSEP001122AABBCC.tlv', 'CTLFile.tlv'), 'ctl.tlv'),
          ('ITL', ('ITLSEP001122AABBCC.tlv', 'ITLFile.tlv'), 'itl.tlv'))


def addr(ip, port):
    return socket.getaddrinfo(ip, port)[0][-1]


def free_port(ips):
    """A port free on every address of `ips` (each server below binds it on its own ip)."""
    while True:
        _port[0] += 1
        socks = []
        try:
            for ip in ips:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(addr(ip, _port[0]))
            return _port[0], socks
        except OSError:
            for s in socks:
                s.close()


class Silent:
    """A TFTP 'server' that never answers: it only keeps the read requests it got."""

    def __init__(self, sock):
        self.sock = sock

    def rrqs(self):
        self.sock.setblocking(False)
        got = []
        while True:
            try:
                d = self.sock.recv(600)
            except OSError:
                return got
            if d[:2] == b'\x00\x01':
                got.append(d[2:d.index(b'\x00', 2)].decode())


class Drip:
    """A TFTP server in a thread: every read request gets an OACK (blksize 512 and tsize) from
    a new port, then the file one block at a time, each block gap_ms after the ACK of the one
    before. `result` says how the last transfer ended: 'ok', 'aborted' (an ERROR from the
    client) or 'timeout'."""

    def __init__(self, sock, content, gap_ms, ip='127.0.0.1', blksize=512):
        self.blksize = blksize          # what the OACK says (the blocks are 512 bytes)
        self.sock = sock
        self.ip = ip
        self.content = content
        self.gap_ms = gap_ms
        self.files = []
        self.result = None
        self.stop = False
        self.done = 0
        _thread.start_new_thread(self._main, ())

    def close(self):
        for _ in range(50):             # let a transfer that is ending say how it ended
            if self.result is not None:
                break
            time.sleep_ms(20)
        self.stop = True
        for _ in range(50):
            if self.done:
                break
            time.sleep_ms(20)

    def _wait(self, s, ms):
        p = select.poll()
        p.register(s, select.POLLIN)
        end = time.ticks_add(time.ticks_ms(), ms)
        while not self.stop:
            left = time.ticks_diff(end, time.ticks_ms())
            if left <= 0:
                return None
            if p.poll(min(left, 50)):
                return s.recvfrom(600)
        return None

    def _main(self):
        try:
            while not self.stop:
                got = self._wait(self.sock, 100)
                if got and got[0][:2] == b'\x00\x01':
                    d, peer = got
                    self.files.append(d[2:d.index(b'\x00', 2)].decode())
                    self._serve(peer)
        finally:
            self.sock.close()
            self.done = 1

    def _serve(self, peer):
        x = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        x.bind(addr(self.ip, 0))
        self.result = None
        try:
            c = self.content
            n = len(c) // 512 + 1
            x.sendto(b'\x00\x06blksize\x00%d\x00tsize\x00%d\x00' % (self.blksize, len(c)), peer)
            blk = 0
            while blk < n:
                got = self._wait(x, 3000)
                if got is None:
                    self.result = 'timeout'
                    return
                d = got[0]
                if d[:2] == b'\x00\x05':
                    self.result = 'aborted'
                    return
                if d[:2] != b'\x00\x04' or (d[2] << 8 | d[3]) != blk:
                    continue
                time.sleep_ms(self.gap_ms)
                blk += 1
                x.sendto(bytes((0, 3, blk >> 8, blk & 255)) + c[(blk - 1) * 512:blk * 512], peer)
            got = self._wait(x, 3000)        # the last ACK
            self.result = 'ok' if got and got[0][:2] == b'\x00\x04' else 'timeout'
        finally:
            x.close()


def events():
    out = CaptureOut()
    return Events(out=out), out


def names(out):
    return [json.loads(l)['ev'] for l in out.lines()]


def first(out, name):
    for l in out.lines():
        e = json.loads(l)
        if e['ev'] == name:
            return e
    return None


def provisioner(port, **settings):
    p = provision.Provisioner(Store(), Settings(settings), tftp_port=port)
    p._begin()
    return p


# -- per server --------------------------------------------------------------------------
def test_a_file_slower_than_the_minimum_rate_is_given_up():
    # 8 KB in 512-byte blocks, one every 100 ms: 1.7 s. Its deadline: one retry budget
    # (2 x 200 ms) + 8192 bytes at 40960 B/s (200 ms) = 0.6 s. Without the per-file deadline
    # the file would arrive, ACK after ACK within the retransmission timeout.
    port, (s,) = free_port(['127.0.0.1'])
    srv = Drip(s, b'x' * 8192, 100)
    ev, out = events()
    c = tftp.Client(port=port, timeout_ms=200, retries=1, min_rate=40960, events=ev)
    w = Writer()
    try:
        with raises(tftp.TftpTimeout, match='too slow') as r:
            c.get('127.0.0.1', 'CTLFile.tlv', w)
    finally:
        srv.close()
    assert r.value.code is None
    assert 0 < w.n < 8192, w.n
    eq(srv.result, 'aborted')          # the server was told (ERROR 0)
    assert 'too slow' in first(out, 'tftp_error')['msg']


def test_icmp_unreachable_ends_a_server_at_once():
    # Nothing listens on the port: the kernel answers the RRQ with ICMP port unreachable,
    # which ends this server's tries without a single retransmission (a silent server would
    # get `retries` of them, 3 s apart).
    port, (s,) = free_port(['127.0.0.1'])
    s.close()
    ev, out = events()
    c = tftp.Client(port=port, timeout_ms=1500, retries=3, events=ev)
    with raises(tftp.TftpError, match='unreachable') as r:
        c.get('127.0.0.1', 'CTLFile.tlv', Writer())
    assert r.value.code is None
    eq((c.last_stats.retransmits, c.last_stats.timeouts), (0, 0))
    assert 'ECONNREFUSED' in str(r.value) or '111' in str(r.value), str(r.value)


def test_a_server_whose_oack_is_refused_counts_as_none():
    # blksize 8 in the OACK: refused, and as no other server is left the downloads end as
    # when TFTP is unreachable (no second name asked, no ITL): the stored state is used.
    port, (s,) = free_port(['127.0.0.1'])
    srv = Drip(s, b'z' * 4000, 0, blksize=8)
    ev, out = events()
    p = provisioner(port)
    try:
        got = p.download(ev, ['127.0.0.1'], WANTED)
    finally:
        srv.close()
    eq(got, [('CTL', None, 'unreachable')])
    eq(srv.files, ['CTLSEP001122AABBCC.tlv'])
    eq(srv.result, 'aborted')
    assert 'blksize 8 refused (< 512)' in first(out, 'tftp_failed')['reason']


# -- the server list ---------------------------------------------------------------------
def test_only_the_first_servers_are_asked_and_silent_ones_briefly():
    # Six silent servers, tftp_max_servers 3: the first three are asked, the first two with
    # one RRQ each (another server follows them), the last of the three with the full
    # retries (two RRQs); the other three never hear of the phone.
    ips = ['127.0.0.%d' % k for k in range(2, 8)]
    port, socks = free_port(ips)
    servers = [Silent(s) for s in socks]
    ev, out = events()
    p = provisioner(port, tftp_max_servers=3, tftp_silent_retries=0, tftp_retries=1,
                    tftp_timeout_ms=100)
    got = p.download(ev, ips, WANTED)
    asked = [len(s.rrqs()) for s in servers]
    for s in socks:
        s.close()
    eq(asked, [1, 1, 2, 0, 0, 0])
    eq(got, [('CTL', None, 'unreachable')])    # nothing answered: the stored state is used
    b = first(out, 'tftp_servers_bounded')
    eq((b['offered'], b['tried']), (6, ips[:3]))
    assert 'tftp_failed' in names(out)


def test_a_server_that_never_answered_is_skipped_for_the_next_files():
    # [silent, live]: the CTL walk asks the silent server once and gets the CTL from the live
    # one; the ITL goes to the live server straight away.
    port, (s1, s2) = free_port(['127.0.0.2', '127.0.0.1'])
    silent = Silent(s1)
    srv = Drip(s2, b'trust list', 0)
    ev, out = events()
    p = provisioner(port, tftp_silent_retries=0, tftp_retries=1, tftp_timeout_ms=200)
    try:
        got = p.download(ev, ['127.0.0.2', '127.0.0.1'], WANTED)
    finally:
        srv.close()
    asked = silent.rrqs()
    s1.close()
    eq(asked, ['CTLSEP001122AABBCC.tlv'])
    eq([(k, n) for k, w, n in got], [('CTL', 'CTLSEP001122AABBCC.tlv'),
                                     ('ITL', 'ITLSEP001122AABBCC.tlv')])
    eq(srv.files, ['CTLSEP001122AABBCC.tlv', 'ITLSEP001122AABBCC.tlv'])


# -- the pass ----------------------------------------------------------------------------
def test_the_pass_deadline_ends_a_dripping_transfer_and_the_stored_state_is_used():
    # No per-file deadline (tftp_min_rate 0) and a server that keeps each block within the
    # retransmission timeout: only the pass deadline (300 ms) ends the 1.7 s transfer. The
    # downloads end as when TFTP is unreachable, so provisioning goes on from the store.
    port, (s,) = free_port(['127.0.0.1'])
    srv = Drip(s, b'y' * 8192, 100)
    ev, out = events()
    p = provisioner(port, tftp_min_rate=0, tftp_timeout_ms=1000, provision_deadline_ms=300)
    try:
        got = p.download(ev, ['127.0.0.1'], WANTED)
    finally:
        srv.close()
    eq(got, [('CTL', None, 'unreachable')])
    eq(srv.files, ['CTLSEP001122AABBCC.tlv'])   # nothing asked after the deadline
    eq(srv.result, 'aborted')
    eq(names(out).count('provision_deadline'), 1)
    assert p.offline
    # a later step of the same pass (the config) asks nothing either
    got = p.download(ev, ['127.0.0.1'], (('CFG', ('SEP001122AABBCC.cnf.xml',), 'c.xml'),))
    eq(got, [('CFG', None, 'unreachable')])
    eq(names(out).count('provision_deadline'), 1)
