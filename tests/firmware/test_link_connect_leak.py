# timeout: 60
# A TLS connect whose TCP connect never completes (a silent WAN cut: no SYN-ACK) must close
# the TLS socket asyncio.open_connection wrapped before it waited. On a board without PSRAM
# that socket's Mbed TLS session is the only one the board has: left to the GC, the next
# connect - to the SRST router, during a boot in a WAN outage - failed with ENOMEM, for good
# (virtual:wt32-eth01, scenario boot-during-outage). Before the fix the socket stayed open.
# The silent peer: a listener whose accept queue is full, so the kernel drops further SYNs.
import asyncio
import socket
import time

import fakes
from fakes import FakeContext, Owner
from fwtest import CaptureOut, eq
from phone import link as _link
from phone.events import Events
from phone.sccplink import SccpLink
from phone.settings import Settings


def _silent_listener():
    """(listener, port, fillers): a listener on 127.0.0.1 with its accept queue full."""
    base = 30000 + time.ticks_us() % 20000
    for port in range(base, base + 50):
        srv = socket.socket()
        try:
            srv.bind(socket.getaddrinfo('127.0.0.1', port)[0][-1])
        except OSError:
            srv.close()
            continue
        srv.listen(0)
        fillers = []
        for _ in range(3):                    # backlog 0 queues one; the rest are dropped
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(socket.getaddrinfo('127.0.0.1', port)[0][-1])
            except OSError:
                pass
            fillers.append(c)
        return srv, port, fillers
    raise OSError('no free port')


def _open(socks):
    return [s for s in socks if s.fileno() != -1]


async def _connect_times_out():
    fakes.install()
    srv, port, fillers = _silent_listener()
    try:
        out = CaptureOut()
        lk = SccpLink(Owner(Events(out=out), Settings({})), 'primary', '127.0.0.1', port,
                      (b'cm-cert', 'cm'))
        for _ in range(2):                    # and the next attempt does not pile up
            try:
                await lk.connect(timeout_ms=300)
                raise AssertionError('connected to a listener that never accepts')
            except _link.LinkError as e:
                eq(str(e), 'timeout', 'why the connect failed')
            eq(lk.mode, _link.DOWN, 'mode after the failed connect')
        wrapped = [sock for sock, _ in FakeContext.wrapped]
        eq(len(wrapped), 2, 'TLS sockets wrapped')
        eq(_open(wrapped), [], 'TLS sockets still open after the connects timed out')
    finally:
        for s in fillers + [srv]:
            s.close()


def test_tls_connect_that_times_out_closes_its_socket():
    asyncio.run(_connect_times_out())
