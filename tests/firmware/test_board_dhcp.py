# DHCP on a board whose network stack owns DHCP (ESP32: lwIP's client, started by the IDF at
# link up, holds UDP 68 and keeps option 150 to itself). With the support `network` module
# shaped like the ESP32 port's (tests/firmware/support/network.py), provisioning's network step
# must: stop the platform client (nic.ipconfig(dhcp4=False)), run its own DISCOVER/REQUEST
# as a Cisco phone (options 60, 12, 55, 61), set the lease as a static address
# (nic.ipconfig(addr4=, gw4=), network.ipconfig(dns=)) and hand the lease to phone.lease, which
# renews it with the same options and, when it is lost, takes the address off the interface and
# puts the new one back. The DHCP server (a thread on loopback) gives option 150 only to the
# Cisco phone vendor class, as a server configured that way does (dnsmasq --dhcp-vendorclass).
# heap: 128K
# timeout: 90
# (128K: this file, the support network module, both compiled from source, and the server
# thread share the heap with the firmware; the boot's own heap: tests/host/test_provision_heap.py.)
import _thread
import asyncio
import socket
import sys
import time

import network
from fwtest import eq
from phone import platform
from phone.events import Events
from phone.settings import Settings

A = '127.0.0.1'
IP = '192.0.2.50'
MASK = '255.255.255.0'
ROUTER = '192.0.2.1'
DNS = '192.0.2.53'
TFTP = '203.0.113.10'
MAC = b'\x02\x00\x5e\x10\x00\x07'
NAME = b'SEP02005E100007'
VENDOR = b'Cisco Systems, Inc. IP Phone CP-7911G\x00'
PRL = bytes((1, 3, 6, 15, 42, 66, 150))
_port = [48300]


class _Null:
    def write(self, s):
        return len(s)


class _Pin:
    OUT = 1
    IN = 0

    def __init__(self, n, *a):
        self.n = n


class _Machine:
    Pin = _Pin


def _ip4(s):
    return bytes(int(x) for x in s.split('.'))


DISCOVER, OFFER, REQUEST, ACK, NAK = 1, 2, 3, 5, 6


def _options(d):
    opts = {}
    i = 240
    while i < len(d) and d[i] != 255:
        if d[i] == 0:
            i += 1
            continue
        opts[d[i]] = bytes(d[i + 2:i + 2 + d[i + 1]])
        i += 2 + d[i + 1]
    return opts


def _u32(v):
    return bytes(((v >> 24) & 255, (v >> 16) & 255, (v >> 8) & 255, v & 255))


class Server:
    """A DHCP server on loopback in a thread: OFFER/ACK for IP; option 150 only when option 60
    holds "Cisco Systems, Inc. IP Phone"; naks[i] True answers the i-th REQUEST with a NAK.
    Keeps (type, ciaddr, {code: value of 12, 55, 60, 61}, codes) of every packet."""

    def __init__(self, lease_s=3600, naks=()):
        _port[0] += 2
        self.port = _port[0]
        self.client_port = _port[0] + 1
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(socket.getaddrinfo(A, self.port)[0][-1])
        s.setblocking(False)
        self.s = s
        self.lease_s = lease_s
        self.naks = list(naks)
        self.requests = 0
        self.got = []
        self.run = True
        self.done = False
        _thread.start_new_thread(self._loop, ())

    def _loop(self):
        try:
            while self.run:
                try:
                    d, addr = self.s.recvfrom(600)   # a client's message: <= 548 bytes
                except OSError:
                    time.sleep_ms(5)
                    continue
                self._answer(d, addr)
        finally:
            self.done = True

    def _answer(self, d, addr):
        # (no phone.dhcp here: provisioning and the keeper import and drop it meanwhile)
        opts = _options(d)
        mtype = opts[53][0]
        keep = {}
        for c in (12, 55, 60, 61):
            if c in opts:
                keep[c] = opts[c]
        self.got.append((mtype, '%d.%d.%d.%d' % tuple(d[12:16]), keep, tuple(opts)))
        if mtype == DISCOVER:
            answer = OFFER
        elif mtype == REQUEST:
            nak = self.requests < len(self.naks) and self.naks[self.requests]
            self.requests += 1
            answer = NAK if nak else ACK
        else:
            return
        b = bytearray(240)
        b[0] = 2
        b[1] = 1
        b[2] = 6
        b[4:8] = d[4:8]
        if answer != NAK:
            b[16:20] = _ip4(IP)
        b[28:34] = d[28:34]
        b[236:240] = b'\x63\x82\x53\x63'
        b += bytes((53, 1, answer, 54, 4)) + _ip4(A)
        if answer != NAK:
            b += bytes((51, 4)) + _u32(self.lease_s)
            b += bytes((1, 4)) + _ip4(MASK) + bytes((3, 4)) + _ip4(ROUTER)
            b += bytes((6, 4)) + _ip4(DNS)
            if b'Cisco Systems, Inc. IP Phone' in opts.get(60, b''):
                b += bytes((150, 4)) + _ip4(TFTP)
        b += b'\xff'
        while len(b) < 300:
            b.append(0)
        self.s.sendto(b, addr)

    def close(self):
        self.run = False
        t0 = time.ticks_ms()
        while not self.done and time.ticks_diff(time.ticks_ms(), t0) < 1000:
            time.sleep_ms(5)
        self.s.close()

    def of(self, mtype):
        return [g for g in self.got if g[0] == mtype]


def _board(srv, tag):
    """A Platform for a LAN board profile, whose DHCP client talks to `srv` on loopback."""
    sys.modules['machine'] = _Machine
    network.reset()
    network.hold = (A, srv.client_port)
    network.platform_lease = ('192.0.2.99', MASK, ROUTER)

    class Board(platform.Platform):
        def dhcp_kw(self):
            kw = super().dhcp_kw()
            kw.update(port=srv.client_port, bind_ip=A, server=A, server_port=srv.port,
                      first_ms=1000, max_ms=2000)
            return kw

    prof = {'name': tag, 'chip': 'esp32', 'mac': '02:00:5e:10:00:07',
            'network': {'kind': 'LAN', 'mdc': 23, 'mdio': 18, 'phy': 'LAN8720', 'phy_addr': 0,
                        'ref_clk': 0, 'ref_clk_mode': 'out'}}
    return Board(prof)


def _events():
    log = []
    ev = Events(out=_Null())
    ev.listeners.append(lambda name, t, f: log.append((name, f)))
    return ev, log


def _provision(srv, plat):
    from phone import provision
    ev, log = _events()
    p = provision.Provisioner(None, Settings({'dhcp_timeout_ms': 5000}))
    servers = p._network(plat, ev)
    provision.unload()          # as boot does: the agent's heap back
    return p, servers, log


def _phone_options(g, what):
    keep = g[2]
    eq(keep.get(60), VENDOR, what + ' option 60')
    eq(keep.get(12), NAME, what + ' option 12')
    eq(keep.get(55), PRL, what + ' option 55')
    eq(keep.get(61), b'\x01' + MAC, what + ' option 61')


def test_first_boot_stops_the_platform_client_and_gets_option150():
    srv = Server()
    try:
        plat = _board(srv, 'olimex')
        p, servers, log = _provision(srv, plat)
    finally:
        srv.close()
    eq(servers, [TFTP], 'TFTP servers (option 150)')
    names = [n for n, f in log]
    assert 'dhcp_unavailable' not in names and 'network_failed' not in names, log
    nic = plat.nic
    # the platform's client ran (it held UDP 68) and was stopped before the agent's exchange
    steps = [e[:2] for e in network.log]
    eq(steps[:4], [('active', True), ('platform_dhcp', 'started'), ('dhcp4', False),
                   ('platform_dhcp', 'release')])
    eq(nic.ipconfig('dhcp4'), False, 'platform DHCP client running')
    # the agent's lease on the interface as a static address, its DNS server lwIP's
    eq(network.log[-2:], [('static', IP, MASK, ROUTER), ('dns', DNS)])
    eq(nic.ipconfig('addr4'), (IP, MASK))
    eq(nic.ipconfig('gw4'), ROUTER)
    eq(network.ipconfig('dns'), DNS)
    eq(plat.ifname, 'lo')
    # kept for phone.lease: address, server, lease time
    eq((p.ip, p.lease[0], p.lease[1], p.lease[2]), (IP, IP, A, 3600))
    # what a Cisco phone sends, in the DISCOVER and the REQUEST
    d, r = srv.of(DISCOVER), srv.of(REQUEST)
    eq((len(d), len(r)), (1, 1), 'DISCOVERs, REQUESTs')
    _phone_options(d[0], 'DISCOVER')
    _phone_options(r[0], 'REQUEST')


def test_socket_is_bound_to_the_board_interface():
    """No address on the interface while the agent asks for one: its socket must be bound to
    the interface (SO_BINDTODEVICE with nic.config('ifname')); an interface that does not exist
    is a clear dhcp_unavailable, never a DISCOVER sent somewhere else."""
    srv = Server()
    try:
        plat = _board(srv, 'olimex')
        network.ifname = 'nosuch9'
        try:
            p, servers, log = _provision(srv, plat)
        finally:
            network.ifname = 'lo'
    finally:
        srv.close()
    eq(servers, [])
    un = [f for n, f in log if n == 'dhcp_unavailable']
    eq(len(un), 1, 'dhcp_unavailable events')
    assert 'ENODEV' in un[0]['reason'], un     # from SO_BINDTODEVICE
    eq(srv.got, [], 'packets the server saw')


def test_board_lease_is_renewed_and_put_back_after_a_nak():
    """phone.lease keeps the board's lease: renewals carry the phone's options; a NAK takes the
    address off the interface (0.0.0.0), DISCOVER starts over and the same address goes back
    on as a static one, and the links are told it is back."""
    from phone import lease
    srv = Server(lease_s=2, naks=(False, False, True))     # ACK, ACK (renewal), NAK, ...
    ups = []
    downs = []
    try:
        plat = _board(srv, 'olimex')
        p, servers, log = _provision(srv, plat)
        eq(servers, [TFTP])
        ev, klog = _events()

        async def down(reason):
            downs.append(reason)

        s = Settings({'retry_min_ms': 200, 'retry_max_ms': 400, 'dhcp_timeout_ms': 3000})
        k = lease.Keeper(plat, p.lease, ev, s, down, lambda: ups.append(1))

        async def main():
            t = asyncio.create_task(k.run())
            t0 = time.ticks_ms()
            while not ups and time.ticks_diff(time.ticks_ms(), t0) < 20000:
                await asyncio.sleep_ms(20)
            t.cancel()
            await asyncio.sleep_ms(10)

        asyncio.run(main())
    finally:
        srv.close()
    eq(len(downs), 1, 'links taken down')
    eq(len(ups), 1, 'address back')
    reqs = srv.of(REQUEST)
    renewal = reqs[1]
    eq(renewal[1], IP, 'renewal ciaddr')
    _phone_options(renewal, 'renewal REQUEST')
    assert 50 not in renewal[3] and 54 not in renewal[3], renewal
    assert len(srv.of(DISCOVER)) >= 2, 'no DISCOVER after the NAK'
    statics = [e for e in network.log if e[0] == 'static']
    eq(statics, [('static', IP, MASK, ROUTER), ('static', '0.0.0.0', '0.0.0.0', '0.0.0.0'),
                 ('static', IP, MASK, ROUTER)])
    eq(plat.nic.ipconfig('addr4'), (IP, MASK))
    eq(plat.nic.ipconfig('dhcp4'), False, 'platform DHCP client running')
