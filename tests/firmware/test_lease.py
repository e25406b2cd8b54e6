# The lease keeper (phone.lease, RFC 2131 4.4.5) against a small DHCP server on loopback in
# the same asyncio loop, with tiny leases (seconds): renewal at T1 unicast to the server that
# gave the lease, rebinding at T2 to the broadcast address, retransmission after half the
# time left, the address dropped at the end of the lease or at a NAK, and starting over.
# Socket A (127.0.0.1) is the server of the lease; socket B (127.0.0.2) stands for the
# broadcast address, so where a REQUEST arrives tells RENEWING from REBINDING.
# timeout: 90
# heap: 128K
# (the test's own DHCP server shares the interpreter, and the keeper loads a second copy of
# phone.dhcp at each exchange while the test holds its own: the keeper's heap is measured by
# tests/firmware/test_agent_heap.py and the memory bench, not here)
import asyncio
import sys
import time

from fwtest import eq, udp_socket
from phone import dhcpcore, lease
from phone.events import Events
from phone.settings import Settings

MAC = b'\x02\x00\x5e\x10\x00\x01'
IP = '192.0.2.50'
A = '127.0.0.1'
B = '127.0.0.2'
_port = [47900]
VENDOR = b'Cisco Systems, Inc. IP Phone CP-7911G\x00'


def _ip4(s):
    return dhcpcore.ip_bytes(s)


def answer(pkt, mtype, yiaddr=IP, lease_s=None, t1=None, t2=None, sid=A):
    """A server message for the client packet `pkt` (same xid and MAC)."""
    b = bytearray(240)
    b[0] = 2
    b[1] = 1
    b[2] = 6
    b[4:8] = pkt['xid']
    b[16:20] = _ip4(yiaddr)
    b[28:34] = MAC
    b[236:240] = b'\x63\x82\x53\x63'
    b += bytes((53, 1, mtype, 54, 4)) + _ip4(sid)
    for code, v in ((51, lease_s), (58, t1), (59, t2)):
        if v is not None:
            b += bytes((code, 4, (v >> 24) & 255, (v >> 16) & 255, (v >> 8) & 255, v & 255))
    b += bytes((1, 4)) + _ip4('255.255.255.0') + b'\xff'
    while len(b) < 300:
        b.append(0)
    return b


class Server:
    """Receives on A and B; `reply(where, pkt)` returns the bytes to answer with, or None.
    Every packet is kept: where ('A'/'B'), t (ms since the lease's start), type, ciaddr,
    options, broadcast flag."""

    def __init__(self, t0, reply):
        _port[0] += 2
        self.port = _port[0]
        self.socks = (('A', udp_socket(A, self.port)), ('B', udp_socket(B, self.port)))
        self.t0 = t0
        self.reply = reply
        self.got = []

    async def serve(self):
        while True:
            for where, s in self.socks:
                try:
                    d, addr = s.recvfrom(1500)
                except OSError:
                    continue
                opts = {}
                dhcpcore._walk(d, 240, len(d), opts, 'client')
                pkt = {'where': where, 't': time.ticks_diff(time.ticks_ms(), self.t0),
                       'type': opts[53][0], 'ciaddr': dhcpcore.ip_str(d, 12),
                       'opts': tuple(opts), 'vendor': opts.get(60) == VENDOR,
                       'bcast': bool(d[10] & 0x80), 'xid': bytes(d[4:8])}
                self.got.append(pkt)
                r = self.reply(where, pkt)
                if r is not None:
                    s.sendto(r, addr)
            await asyncio.sleep_ms(5)

    def close(self):
        for _, s in self.socks:
            s.close()

    def at(self, where, mtype=dhcpcore.REQUEST):
        return [p for p in self.got if p['where'] == where and p['type'] == mtype]


class Plat:
    def __init__(self, t0):
        self.t0 = t0
        self.dropped = []
        self.applied = []
        self.resets = 0

    def mac(self):
        return MAC

    def drop_lease(self, ip):
        self.dropped.append((ip, time.ticks_diff(time.ticks_ms(), self.t0)))

    def apply_lease(self, L):
        self.applied.append(L.ip)

    def reset(self):
        self.resets += 1


def run_keeper(reply, lease_s, t1, t2, until, limit_ms):
    """Run a keeper of a lease that starts now until until(keeper, server, downs, plat) or
    limit_ms. Returns (server, plat, downs, ups, event lines, keeper, task_done)."""
    t0 = time.ticks_ms()
    srv = Server(t0, reply)
    plat = Plat(t0)
    log = []        # (name, fields): lighter than the JSON lines under the 96K heap
    ev = Events(out=_Null())
    ev.listeners.append(lambda name, t, f: log.append((name, f)))
    downs = []
    ups = []

    async def down(reason):
        downs.append((reason, time.ticks_diff(time.ticks_ms(), t0)))

    s = Settings({'retry_min_ms': 200, 'retry_max_ms': 400, 'dhcp_timeout_ms': 3000})
    k = lease.Keeper(plat, (IP, A, lease_s, t1, t2, t0), ev, s, down, lambda: ups.append(1),
                     port=srv.port + 1000, bind_ip=A, server=B, server_port=srv.port,
                     first_ms=150, max_ms=300)
    done = []

    async def main():
        st = asyncio.create_task(srv.serve())
        kt = asyncio.create_task(k.run())

        async def watch():
            await kt
            done.append(1)
        wt = asyncio.create_task(watch())
        while time.ticks_diff(time.ticks_ms(), t0) < limit_ms and not done:
            if until(k, srv, downs, plat):
                break
            await asyncio.sleep_ms(20)
        for t in (kt, st, wt):
            t.cancel()
        await asyncio.sleep_ms(10)

    try:
        asyncio.run(main())
    finally:
        srv.close()
    return srv, plat, downs, ups, log, k, bool(done)


class _Null:
    def write(self, s):
        return len(s)


def evs(log, name):
    return [f for n, f in log if n == name]


def near(t, want, what):
    # a timer never fires early; late by the scheduler and the server's 5 ms poll at most
    assert want - 20 <= t <= want + 400, '%s at %d ms, expected %d' % (what, t, want)


def renewal_shape(p):
    eq(p['ciaddr'], IP, 'ciaddr')
    assert 50 not in p['opts'], 'requested-ip option in a renewal'
    assert 54 not in p['opts'], 'server-id option in a renewal'
    assert not p['bcast'], 'broadcast flag set with an address to answer to'
    assert p['vendor'], 'no Cisco phone vendor class (option 60) in a renewal'


def test_times_defaults_and_bounds():
    eq(lease.times(120), (60000, 105000, 120000))
    eq(lease.times(120, 30, 90), (30000, 90000, 120000))
    eq(lease.times(120, 100, 90), (60000, 105000, 120000), 'T1 after T2: defaults')
    eq(lease.times(120, 30, 200), (60000, 105000, 120000), 'T2 after the end: defaults')
    eq(lease.times(0xFFFFFFFF), None)
    eq(lease.times(None), None)
    eq(lease.times(30 * 86400)[2], 5 * 86400 * 1000, 'capped at 5 days')
    eq(lease.floor_ms(3600000), 60000)
    eq(lease.floor_ms(120000), 7500)
    eq(lease.floor_ms(4000), 1000)


def test_renewal_at_t1_is_unicast_keeps_the_address_and_drops_dhcp():
    def reply(where, p):
        if where == 'A' and p['type'] == dhcpcore.REQUEST:
            return answer(p, dhcpcore.ACK, lease_s=4, t1=2, t2=3)
        return None

    mods = []

    def until(k, srv, downs, plat):
        if k.renewals == 1 and not mods:
            mods.append('phone.dhcp' in sys.modules)
        return k.renewals >= 2

    srv, plat, downs, ups, lines, k, _ = run_keeper(reply, 4, 2, 3, until, 8000)
    eq(k.renewals, 2)
    reqs = srv.at('A')
    eq(len(reqs), 2, 'one REQUEST per renewal')
    eq(srv.at('B'), [], 'nothing broadcast while the server answers')
    near(reqs[0]['t'], 2000, 'first renewal')
    # the second lease runs from the first renewal's REQUEST: its T1 is 2 s after it
    assert reqs[1]['t'] - reqs[0]['t'] >= 1950, (reqs[0]['t'], reqs[1]['t'])
    for p in reqs:
        renewal_shape(p)
    eq(downs, [])
    eq(plat.dropped, [])
    eq([e['stage'] for e in evs(lines, 'dhcp_renewed')], ['renewing', 'renewing'])
    eq(mods, [False], 'phone.dhcp still loaded between renewals')


def test_server_gone_rebinds_then_expires_drops_and_starts_over():
    # lease 16 s, T1 4 s, T2 12 s: RENEWING sends at 4, then after half the time to T2
    # (8, 10) and the 1 s floor (11); REBINDING at 12, 14, 15; the lease ends at 16.
    lost = []

    def reply(where, p):
        if not lost:
            return None                 # the server is gone until the lease has ended
        if where == 'B' and p['type'] == dhcpcore.DISCOVER:
            return answer(p, dhcpcore.OFFER)
        if where == 'B' and p['type'] == dhcpcore.REQUEST:
            return answer(p, dhcpcore.ACK, lease_s=60)
        return None

    def until(k, srv, downs, plat):
        if downs and not lost:
            lost.append(1)
        return bool(plat.applied) and k.lease_s == 60

    srv, plat, downs, ups, lines, k, _ = run_keeper(reply, 16, 4, 12, until, 30000)
    renew = srv.at('A')
    eq(len(renew), 4, 'RENEWING REQUESTs')
    for p, want in zip(renew, (4000, 8000, 10000, 11000)):
        near(p['t'], want, 'renewing REQUEST')
        renewal_shape(p)
    rebind = [p for p in srv.at('B') if p['ciaddr'] == IP]
    eq(len(rebind), 3, 'REBINDING REQUESTs')
    for p, want in zip(rebind, (12000, 14000, 15000)):
        near(p['t'], want, 'rebinding REQUEST')
        renewal_shape(p)
    eq(len(plat.dropped), 1)
    eq(plat.dropped[0][0], IP)
    near(plat.dropped[0][1], 16000, 'address dropped')
    eq(len(downs), 1)
    assert 'expired' in downs[0][0], downs
    # then a fresh DISCOVER (broadcast), and the same address back: no restart
    disc = srv.at('B', dhcpcore.DISCOVER)
    assert disc and disc[0]['t'] >= plat.dropped[0][1], disc
    eq(plat.applied, [IP])
    eq(plat.resets, 0)
    eq(len(ups), 1)
    lost_ev = evs(lines, 'dhcp_lost')
    eq(len(lost_ev), 1)
    eq(lost_ev[0]['reason'], 'expired')


def test_nak_drops_the_address_at_once_and_a_new_address_restarts():
    def reply(where, p):
        if where == 'A' and p['type'] == dhcpcore.REQUEST:
            return answer(p, dhcpcore.NAK)
        if where == 'B' and p['type'] == dhcpcore.DISCOVER:
            return answer(p, dhcpcore.OFFER, yiaddr='192.0.2.51')
        if where == 'B' and p['type'] == dhcpcore.REQUEST:
            return answer(p, dhcpcore.ACK, yiaddr='192.0.2.51', lease_s=60)
        return None

    srv, plat, downs, ups, lines, k, done = run_keeper(
        reply, 8, 2, 6, lambda k, s, d, p: False, 6000)
    eq(len(srv.at('A')), 1, 'a NAK ends RENEWING at once')
    eq([p[0] for p in plat.dropped], [IP])
    assert plat.dropped[0][1] < 3000, plat.dropped      # well before T2 (6 s)
    assert 'NAK' in downs[0][0], downs
    eq(len(evs(lines, 'dhcp_nak')), 1)
    eq(plat.applied, ['192.0.2.51'])
    eq(plat.resets, 1, 'a new address restarts the board')
    eq(ups, [])
    assert done, 'the keeper ends with the restart'


def test_an_ack_for_another_address_is_not_a_renewal():
    def reply(where, p):
        if where == 'A' and p['type'] == dhcpcore.REQUEST:
            return answer(p, dhcpcore.ACK, yiaddr='192.0.2.99', lease_s=4)
        return None

    srv, plat, downs, ups, lines, k, _ = run_keeper(
        reply, 4, 2, 3, lambda k, s, d, p: bool(d), 6000)
    eq(k.renewals, 0)
    assert any('we hold' in e['reason'] for e in evs(lines, 'dhcp_ignored'))
    eq([p[0] for p in plat.dropped], [IP])


def test_infinite_lease_is_not_kept():
    srv, plat, downs, ups, lines, k, done = run_keeper(
        lambda w, p: None, 0xFFFFFFFF, None, None, lambda k, s, d, p: False, 300)
    assert done
    eq(len(evs(lines, 'dhcp_kept')), 1)
    eq(srv.got, [])

