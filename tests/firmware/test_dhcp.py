# DHCP client: packet building and parsing (good, malformed, unknown options), TFTP server
# preference, and the exchange itself over loopback sockets with pre-queued answers.
import socket
import time

from fwtest import CaptureOut, bound_udp, eq, raises
from phone import dhcp, dhcpcore
from phone.events import Events

MAC = b'\x02\x00\x5e\x10\x00\x01'
XID = 0x1234abcd


def ev():
    out = CaptureOut()
    return Events(out=out), out


def names(out):
    import json
    return [json.loads(l)['ev'] for l in out.lines()]


def reply(mtype=dhcpcore.OFFER, xid=XID, mac=MAC, yiaddr='192.0.2.50', siaddr='0.0.0.0',
          opts=None, op=2, cookie=True, end=True, server_id='192.0.2.1', raw_opts=b'',
          pad=True):
    """A server message as a bytearray."""
    b = bytearray(240)
    b[0] = op
    b[1] = 1
    b[2] = 6
    b[4:8] = bytes(((xid >> 24) & 255, (xid >> 16) & 255, (xid >> 8) & 255, xid & 255))
    b[16:20] = dhcpcore.ip_bytes(yiaddr)
    b[20:24] = dhcpcore.ip_bytes(siaddr)
    b[28:34] = mac
    if cookie:
        b[236:240] = b'\x63\x82\x53\x63'
    o = bytearray()
    if mtype is not None:
        o += bytes((53, 1, mtype))
    if server_id:
        o += bytes((54, 4)) + dhcpcore.ip_bytes(server_id)
    for code, val in (opts or []):
        o += bytes((code, len(val))) + val
    o += raw_opts
    if end:
        o += b'\xff'
    b += o
    while pad and len(b) < 300:
        b.append(0)
    return b


def ips(*a):
    return b''.join(dhcpcore.ip_bytes(x) for x in a)


def parse(b, xid=XID, mac=MAC):
    return dhcpcore.parse(b, len(b), xid, mac)


GOOD = [(1, ips('255.255.255.0')), (3, ips('192.0.2.1')), (6, ips('192.0.2.53', '192.0.2.54')),
        (51, b'\x00\x00\x0e\x10'), (150, ips('203.0.113.10', '203.0.113.11')),
        (66, b'192.0.2.9'), (15, b'branch.example')]


# -- building ---------------------------------------------------------------------------
def test_discover_layout():
    tx = bytearray(dhcpcore.TX_SIZE)
    n = dhcpcore.build(tx, dhcpcore.DISCOVER, XID, MAC, secs=3, hostname='SEP02005E100001')
    eq(n, 300)
    eq(tx[0], 1)
    eq(bytes(tx[4:8]), b'\x12\x34\xab\xcd')
    eq(tx[9], 3)
    eq(tx[10], 0x80, 'broadcast flag')
    eq(bytes(tx[28:34]), MAC)
    eq(bytes(tx[236:240]), b'\x63\x82\x53\x63')
    opts = {}
    assert dhcpcore._walk(tx, 240, n, opts, 'test')
    eq(opts[53], b'\x01')
    eq(opts[61], b'\x01' + MAC)
    assert 150 in opts[55] and 66 in opts[55] and 1 in opts[55]
    eq(opts[12], b'SEP02005E100001')
    eq((opts[57][0] << 8) | opts[57][1], dhcpcore.BUF_SIZE)


def test_request_and_inform_fields():
    tx = bytearray(dhcpcore.TX_SIZE)
    n = dhcpcore.build(tx, dhcpcore.REQUEST, XID, MAC, requested='192.0.2.50', server_id='192.0.2.1')
    opts = {}
    dhcpcore._walk(tx, 240, n, opts, 'test')
    eq(opts[53], b'\x03')
    eq(opts[50], ips('192.0.2.50'))
    eq(opts[54], ips('192.0.2.1'))
    n = dhcpcore.build(tx, dhcpcore.INFORM, XID, MAC, ciaddr='192.0.2.77', broadcast=False)
    eq(bytes(tx[12:16]), ips('192.0.2.77'))
    eq(tx[10], 0)
    opts = {}
    dhcpcore._walk(tx, 240, n, opts, 'test')
    eq(opts[53], b'\x08')
    assert 50 not in opts


# -- parsing good packets ---------------------------------------------------------------
def test_parse_good_ack_and_lease():
    r = parse(reply(dhcpcore.ACK, siaddr='192.0.2.2', opts=GOOD))
    eq(r.mtype, dhcpcore.ACK)
    eq(r.server_id(), '192.0.2.1')
    e, out = ev()
    L = dhcp.lease_from(r, configured='198.51.100.7', events=e)
    eq(L.ip, '192.0.2.50')
    eq(L.mask, '255.255.255.0')
    eq(L.router, '192.0.2.1')
    eq(L.dns, ['192.0.2.53', '192.0.2.54'])
    eq(L.lease_s, 3600)
    eq(L.server_id, '192.0.2.1')
    eq(L.domain, 'branch.example')
    eq(L.opt150, ['203.0.113.10', '203.0.113.11'])
    # 150 (in order) > 66 > siaddr > configured
    eq(L.tftp_servers, ['203.0.113.10', '203.0.113.11', '192.0.2.9', '192.0.2.2', '198.51.100.7'])
    assert L.lease_s * 1000 - time.ticks_diff(time.ticks_ms(), L.acquired_ms) > 3590000
    d = L.as_dict()
    eq(d['tftp_servers'][0], '203.0.113.10')


def test_preference_without_150_and_dedup():
    eq(dhcp.tftp_order([], '192.0.2.9', '192.0.2.9', ['192.0.2.9', '198.51.100.7']),
       ['192.0.2.9', '198.51.100.7'])
    eq(dhcp.tftp_order(None, None, None, '198.51.100.7'), ['198.51.100.7'])
    eq(dhcp.tftp_order(None, None, '0.0.0.0', None), [])


def test_option66_name_is_resolved_and_failure_is_an_event():
    def resolve(name):
        if name == 'tftp.branch.example':
            return '192.0.2.9'
        raise OSError(-2)

    e, out = ev()
    eq(dhcp.tftp_order([], 'tftp.branch.example', None, None, resolve, e), ['192.0.2.9'])
    eq(dhcp.tftp_order([], 'nowhere.example', '192.0.2.2', None, resolve, e), ['192.0.2.2'])
    eq(names(out), ['dhcp_resolve_failed'])
    r = parse(reply(dhcpcore.ACK, opts=[(66, b'tftp.branch.example\x00')]))
    L = dhcp.lease_from(r, resolve=resolve)
    eq(L.opt66, 'tftp.branch.example')
    eq(L.tftp_servers, ['192.0.2.9'])


def test_unknown_options_are_skipped():
    r = parse(reply(opts=[(224, b'abc'), (43, b'\x01\x02vendor'), (250, b''), (150, ips('203.0.113.10'))]))
    eq(r.mtype, dhcpcore.OFFER)
    assert 224 in r.unknown and 250 in r.unknown and 43 in r.unknown
    eq(dhcp.lease_from(r).tftp_servers, ['203.0.113.10'])


def test_pad_options_and_split_option_concatenate():
    # RFC 3396: two instances of 150 are one list.
    r = parse(reply(raw_opts=b'\x00\x00' + bytes((150, 4)) + ips('203.0.113.1')
                    + b'\x00' + bytes((150, 4)) + ips('203.0.113.2')))
    eq(dhcp.lease_from(r).opt150, ['203.0.113.1', '203.0.113.2'])


def test_option_overload_reads_file_field():
    b = reply(opts=[(52, b'\x01')])
    f = bytes((150, 4)) + ips('203.0.113.5') + b'\xff'
    b[108:108 + len(f)] = f
    eq(dhcp.lease_from(parse(b)).opt150, ['203.0.113.5'])


def test_missing_end_is_tolerated_when_not_truncated():
    r = parse(reply(end=False, opts=[(150, ips('203.0.113.1'))]))
    eq(r.mtype, dhcpcore.OFFER)


# -- malformed packets: ignored with a reason, never a crash ---------------------------------
def bad(b, match, xid=XID):
    with raises(dhcpcore.Ignored, match=match) as r:
        dhcpcore.parse(b, len(b), xid, MAC)
    return r.value


def test_malformed_packets_are_ignored_with_reasons():
    bad(reply()[:200], 'short packet')
    bad(reply(op=1), 'not a server reply')
    bad(reply(cookie=False), 'magic cookie')
    bad(reply(opts=[(150, b'\xcb\x00\x71\x0a\x01')]), 'option 150 has length 5')
    bad(reply(opts=[(1, b'\xff\xff\xff')]), 'option 1 has length 3')
    bad(reply(opts=[(51, b'\x00')]), 'option 51')
    bad(reply(opts=[(3, b'')]), 'option 3')
    bad(reply(mtype=None), 'no message type')
    bad(reply(mtype=None, raw_opts=b'\x35\x02\x02\x02'), 'option 53 has length 2')
    bad(reply(mtype=dhcpcore.DISCOVER), 'not for a client')
    bad(reply(opts=[(66, b'')]), 'option 66 is empty')
    bad(reply(opts=[(66, b'\x01\x02bin')]), 'option 66 is not')
    bad(reply(opts=[(52, b'\x07')]), 'overload')
    b = reply()
    b[1] = 6
    bad(b, 'not Ethernet')


def test_truncated_packets():
    full = reply(opts=[(150, ips('203.0.113.10', '203.0.113.11'))], end=False, pad=False)
    # Cut inside option 150's value: its length runs past the end.
    bad(full[:-3], 'runs past the end')
    # Cut right after an option code: no length byte.
    b = reply(end=False, server_id=None)
    b = b[:243] + b'\x96'
    bad(b, 'no length byte')


def test_foreign_packets_are_marked():
    e = bad(reply(xid=0x1111), 'not ours')
    assert e.foreign
    e = bad(reply(mac=b'\x02\x00\x00\x00\x00\x99'), 'not our MAC')
    assert e.foreign
    e = bad(reply(cookie=False), 'cookie')
    assert not e.foreign


def test_garbage_never_raises_anything_but_ignored():
    import random
    random.seed(7)
    base = reply(opts=GOOD)
    for k in range(300):
        b = bytearray(base)
        for _ in range(1 + k % 6):
            b[240 + random.getrandbits(7) % (len(b) - 240)] = random.getrandbits(8)
        b = b[:240 + random.getrandbits(8) % (len(b) - 240)]
        try:
            r = dhcpcore.parse(b, len(b), XID, MAC)
            dhcp.lease_from(r, resolve=lambda n: '192.0.2.99')
        except dhcpcore.Ignored:
            pass


# -- the exchange over loopback: answers are queued before the client runs ---------------
# Loopback sockets on fixed ports (the unix port has no getsockname).
_next_port = [47600]


def _bound():
    return bound_udp(_next_port)


class LoopClient(dhcp.Client):
    def __init__(self, cli, **kw):
        dhcp.Client.__init__(self, MAC, **kw)
        self.cli = cli

    def _open(self):
        return self.cli


def loop(xid=XID, **kw):
    srv, sport = _bound()
    cli, cport = _bound()
    dhcpcore.new_xid = lambda: xid
    e, out = ev()
    c = LoopClient(cli, events=e, server='127.0.0.1', server_port=sport, first_ms=150,
                   max_ms=300, **kw)
    to_client = socket.getaddrinfo('127.0.0.1', cport)[0][-1]
    return srv, to_client, c, out


def sent_types(srv):
    srv.setblocking(False)
    types = []
    while True:
        try:
            d = srv.recv(1500)
        except OSError:
            break
        opts = {}
        dhcpcore._walk(d, 240, len(d), opts, 'sent')
        types.append(opts[53][0])
    return types


def test_exchange_ignores_bad_offers_and_takes_the_good_one():
    srv, to, c, out = loop()
    srv.sendto(reply(cookie=False), to)
    srv.sendto(reply(opts=[(150, b'\x01\x02\x03')]), to)
    srv.sendto(reply(op=1), to)
    srv.sendto(reply(xid=0x0bad), to)                    # another client's: no event
    srv.sendto(reply(opts=GOOD)[:260], to)               # truncated
    srv.sendto(reply(dhcpcore.ACK, opts=GOOD), to)           # ACK while selecting
    srv.sendto(reply(opts=GOOD), to)                     # the good OFFER
    srv.sendto(reply(dhcpcore.ACK, server_id='192.0.2.3', opts=GOOD), to)  # other server's ACK
    srv.sendto(reply(dhcpcore.ACK, siaddr='192.0.2.2', opts=GOOD), to)
    L = c.acquire(total_ms=5000)
    eq(L.ip, '192.0.2.50')
    eq(L.tftp_servers[:3], ['203.0.113.10', '203.0.113.11', '192.0.2.9'])
    evs = names(out)
    eq(evs.count('dhcp_ignored'), 6)
    eq(c.stats['foreign'], 1)
    assert evs.index('dhcp_offer') < evs.index('dhcp_request') < evs.index('dhcp_lease')
    eq(sent_types(srv), [dhcpcore.DISCOVER, dhcpcore.REQUEST])
    text = out.text()
    for reason in ('magic cookie', 'option 150 has length 3', 'not a server reply',
                   'runs past the end', 'ACK while selecting', 'answer from server 192.0.2.3'):
        assert reason in text, reason


def test_nak_restarts_discovery():
    srv, to, c, out = loop()
    srv.sendto(reply(opts=GOOD), to)
    srv.sendto(reply(dhcpcore.NAK, yiaddr='0.0.0.0', opts=[(56, b'wrong network')]), to)
    srv.sendto(reply(yiaddr='192.0.2.51', opts=GOOD), to)
    srv.sendto(reply(dhcpcore.ACK, yiaddr='192.0.2.51', opts=GOOD), to)
    L = c.acquire(total_ms=5000)
    eq(L.ip, '192.0.2.51')
    assert 'dhcp_nak' in names(out)
    assert 'wrong network' in out.text()
    eq(sent_types(srv), [dhcpcore.DISCOVER, dhcpcore.REQUEST, dhcpcore.DISCOVER, dhcpcore.REQUEST])


def test_no_server_means_bounded_retransmission_then_error():
    import time
    srv, to, c, out = loop(tries=3, rounds=2)
    t0 = time.ticks_ms()
    with raises(dhcp.DhcpError, match='no DHCP lease'):
        c.acquire(total_ms=10000)
    took = time.ticks_diff(time.ticks_ms(), t0)
    # 150 + 300 + 300 ms (+- jitter): the first round gives up, no second DISCOVER round
    # without an offer.
    assert 600 < took < 1500, took
    eq(sent_types(srv), [dhcpcore.DISCOVER] * 3)
    eq(c.stats['timeouts'], 3)
    evs = names(out)
    assert 'dhcp_timeout' in evs and evs[-1] == 'dhcp_failed'


def test_total_bound_wins_over_tries():
    import time
    srv, to, c, out = loop(tries=10)
    t0 = time.ticks_ms()
    with raises(dhcp.DhcpError):
        c.acquire(total_ms=400)
    assert time.ticks_diff(time.ticks_ms(), t0) < 700


def test_unanswered_request_is_retransmitted():
    srv, to, c, out = loop(tries=2)
    srv.sendto(reply(opts=GOOD), to)
    with raises(dhcp.DhcpError):
        c.acquire(total_ms=3000)
    types = sent_types(srv)
    eq(types[:3], [dhcpcore.DISCOVER, dhcpcore.REQUEST, dhcpcore.REQUEST])


def test_inform_from_an_existing_address():
    srv, to, c, out = loop()
    srv.sendto(reply(dhcpcore.ACK, yiaddr='0.0.0.0', opts=[(150, ips('203.0.113.10')),
                                                      (1, ips('255.255.255.0'))]), to)
    L = c.inform('192.0.2.77', total_ms=3000)
    eq(L.kind, 'inform')
    eq(L.ip, '192.0.2.77')
    eq(L.lease_s, None)
    eq(L.tftp_servers, ['203.0.113.10'])
    eq(sent_types(srv), [dhcpcore.INFORM])


def test_configured_server_is_the_last_resort():
    srv, to, c, out = loop(tftp_server='198.51.100.7')
    srv.sendto(reply(opts=[(1, ips('255.255.255.0'))]), to)
    srv.sendto(reply(dhcpcore.ACK, opts=[(1, ips('255.255.255.0'))]), to)
    eq(c.acquire(total_ms=3000).tftp_servers, ['198.51.100.7'])


def test_option42_ntp_servers_are_kept():
    r = parse(reply(dhcpcore.ACK, opts=GOOD + [(42, ips('192.0.2.123', '198.51.100.123'))]))
    assert 42 not in r.unknown
    eq(dhcp.lease_from(r).ntp, ['192.0.2.123', '198.51.100.123'])
    eq(dhcp.lease_from(parse(reply(dhcpcore.ACK, opts=GOOD))).ntp, [])
    # a malformed NTP list costs the clock its source, not the phone its lease
    L = dhcp.lease_from(parse(reply(dhcpcore.ACK, opts=GOOD + [(42, b'\x01\x02\x03')])))
    eq((L.ntp, L.opt150[0]), ([], '203.0.113.10'))


def test_udp_plumbing_lives_with_the_clients():
    # phone.udp is dropped once a client has its names: unloading phone.dhcp or phone.tftp
    # (phone.lease, phone.provision) frees it too
    import sys
    from phone import tftp
    eq('phone.udp' in sys.modules, False)
    eq(dhcpcore.wait is tftp.wait, False)   # each client's own copy, gone with it
