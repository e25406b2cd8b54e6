# The REQUEST exchange of RENEWING/REBINDING itself (phone.dhcp Client.extending, RFC 2131
# 4.3.2 and 4.4.5), driven by phone.lease.drive (asyncio) and by the blocking Client.run:
# the packet's shape, the answers it takes, the retransmission schedule. (The keeper's
# timers: test_lease.py; separate files so each compiles inside the 96K heap.)
import asyncio
import time

from fwtest import eq, udp_socket
from phone import dhcpcore, lease
from phone.events import Events

MAC = b'\x02\x00\x5e\x10\x00\x01'
IP = '192.0.2.50'
A = '127.0.0.1'
_port = [48100]


class _Null:
    def write(self, s):
        return len(s)


def answer(p, mtype, yiaddr=IP, lease_s=None, t1=None):
    b = bytearray(240)
    b[0] = 2
    b[1] = 1
    b[2] = 6
    b[4:8] = p['xid']
    b[16:20] = dhcpcore.ip_bytes(yiaddr)
    b[28:34] = MAC
    b[236:240] = b'\x63\x82\x53\x63'
    b += bytes((53, 1, mtype, 54, 4)) + dhcpcore.ip_bytes(A)
    for code, v in ((51, lease_s), (58, t1)):
        if v is not None:
            b += bytes((code, 4, (v >> 24) & 255, (v >> 16) & 255, (v >> 8) & 255, v & 255))
    b += b'\xff'
    while len(b) < 300:
        b.append(0)
    return b


def renewal_shape(p):
    eq(p['type'], dhcpcore.REQUEST)
    eq(p['ciaddr'], IP, 'ciaddr')
    assert 50 not in p['opts'], 'requested-ip option in a renewal'
    assert 54 not in p['opts'], 'server-id option in a renewal'
    assert not p['bcast'], 'broadcast flag set with an address to answer to'


def _client():
    """A dhcp.Client on loopback and a server socket (A) it talks to; returns both."""
    _port[0] += 2
    srv = udp_socket(A, _port[0])
    out = []
    ev = Events(out=_Null())
    ev.listeners.append(lambda name, t, f: out.append((name, f)))
    c = dhcpcore.Client(MAC, ev, port=_port[0] + 1000, bind_ip=A, server=A, server_port=_port[0])
    c._setup()
    return srv, c, out


def _sent(srv):
    got = []
    while True:
        try:
            d, addr = srv.recvfrom(1500)
        except OSError:
            return got
        opts = {}
        dhcpcore._walk(d, 240, len(d), opts, 'sent')
        got.append({'opts': opts, 'ciaddr': dhcpcore.ip_str(d, 12), 'bcast': bool(d[10] & 0x80),
                    'type': opts[53][0], 'xid': bytes(d[4:8]), 'addr': addr})


def test_extending_sends_the_renewal_shape_and_takes_the_ack():
    srv, c, log = _client()
    try:
        async def serve():
            while True:
                for p in _sent(srv):
                    srv.sendto(answer(p, dhcpcore.ACK, yiaddr='192.0.2.99'), p['addr'])  # not ours
                    srv.sendto(answer(p, dhcpcore.ACK, lease_s=120, t1=60), p['addr'])
                    return p
                await asyncio.sleep_ms(5)

        async def main():
            t = asyncio.create_task(serve())
            r = await lease.drive(c, c.extending(IP, A, time.ticks_add(time.ticks_ms(), 3000),
                                                 1000))
            return r, await t
        r, p = asyncio.run(main())
    finally:
        c.close()
        srv.close()
    eq(r.mtype, dhcpcore.ACK)
    eq(dhcpcore.terms(r), (120, 60, None, A))
    eq(p['type'], dhcpcore.REQUEST)
    renewal_shape(p)
    assert any('we hold ' + IP in f.get('reason', '') for n, f in log if n == 'dhcp_ignored')


def test_extending_retransmits_after_half_the_time_left():
    srv, c, log = _client()
    t0 = time.ticks_ms()
    try:
        # 1600 ms to the deadline, floor 300 ms: REQUESTs at 0, 800, 1200, 1500 ms
        r = asyncio.run(lease.drive(c, c.extending(IP, None, time.ticks_add(t0, 1600), 300)))
    finally:
        c.close()
    took = time.ticks_diff(time.ticks_ms(), t0)
    pkts = _sent(srv)
    srv.close()
    eq(r, None)
    assert took >= 1600, took
    waits = [f['wait_ms'] for n, f in log if n == 'dhcp_renew']
    for w, want in zip(waits, (800, 400, 300)):     # half of what is left, then the floor
        assert want - 10 <= w <= want, waits
    eq(len(pkts), 4)
    for p in pkts:
        renewal_shape(p)
    eq(pkts[0]['xid'], pkts[-1]['xid'], 'one transaction: the same xid')
    assert all(f['stage'] == 'rebinding' for n, f in log if n == 'dhcp_renew')
