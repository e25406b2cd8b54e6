# phone.tftpwatch (after a boot from the store): the read request that tells whether TFTP
# answers again, and what the agent does when it does.
import asyncio
import socket

from fwtest import bound_udp, eq
from phone import tftpwatch
from phone.states import FALLBACK, PRIMARY

RRQ = b'\x00\x01SEP001122AABBCC.cnf.xml.sgn\x00octet\x00'


async def _serve(srv, nth, answer, got, stop):
    """A TFTP server on `srv` that sends `answer` to the nth packet it receives, keeps what
    it got in `got`, and ends after `stop` packets."""
    while len(got) < stop:
        try:
            data, peer = srv.recvfrom(600)
        except OSError:
            await asyncio.sleep_ms(10)
            continue
        got.append(data)
        if len(got) == nth:
            srv.sendto(answer, peer)


def test_an_answer_is_seen_and_the_transfer_ended():
    srv, port = bound_udp([41000])
    srv.setblocking(False)
    got = []

    async def main():
        # any answer counts, an ERROR too; the next packet is the client's own ERROR
        t = asyncio.create_task(_serve(srv, 1, b'\x00\x05\x00\x01File not found\x00', got, 2))
        ok = await tftpwatch._answers('127.0.0.1', port, RRQ, 1000)
        await asyncio.wait_for_ms(t, 1000)
        return ok

    eq(asyncio.run(main()), True)
    eq(got[0], RRQ)
    eq(got[1][:2], b'\x00\x05')             # the client ended the transfer
    srv.close()


def test_silence_is_not_an_answer():
    srv, port = bound_udp([41100])

    async def main():
        return await tftpwatch._answers('127.0.0.1', port, RRQ, 200)

    eq(asyncio.run(main()), False)
    srv.close()


class _Agent:
    """What watch() uses of the Agent."""

    def __init__(self, state, port):
        self.state = state
        self.running = True
        self._reset_kind = 0
        self._refresh = False
        self._wake = asyncio.Event()
        self.seen = []

        class P:
            secure = True
            tftp = (('127.0.0.1',), port)
        self.prov = P()

        class C:
            retry_min_ms = 50
            tftp_timeout_ms = 300
        self.cfg = C()
        agent = self

        class Ev:
            def emit(self, name, **f):
                agent.seen.append((name, f))
        self.events = Ev()

        class Plat:
            def device_name(self):
                return 'SEP001122AABBCC'
        self.platform = Plat()

    def _grow(self, d):
        return d * 2


def _watch(state):
    srv, port = bound_udp([41200])
    srv.setblocking(False)
    a = _Agent(state, port)

    async def main():
        # silent for the first ask (the backoff grows), a DATA block for the second
        t = asyncio.create_task(_serve(srv, 2, b'\x00\x03\x00\x01' + b'x' * 10, [], 99))
        await asyncio.wait_for_ms(tftpwatch.watch(a), 3000)
        t.cancel()

    asyncio.run(main())
    srv.close()
    return a


def test_in_primary_the_phone_restarts_at_once():
    a = _watch(PRIMARY)
    names = [n for n, f in a.seen]
    eq(names, ['tftp_watch', 'tftp_watch', 'tftp_back'])
    eq([f['retry_ms'] for n, f in a.seen if n == 'tftp_watch'], [50, 100])
    eq((a._refresh, a._reset_kind), (True, 'tftp'))


def test_in_fallback_the_restart_waits_for_the_re_home():
    a = _watch(FALLBACK)
    eq(a.seen[-1][1]['then'], 'restart at the re-home')
    eq((a._refresh, a._reset_kind), (True, 0))


def test_a_full_heap_costs_a_try_not_the_watch():
    # A report that finds no heap, then a read request that does not: the watch goes on at its
    # backoff and still sees TFTP answer (a watch that ended would leave the phone on the
    # stored configuration for good).
    srv, port = bound_udp([41300])
    srv.setblocking(False)
    a = _Agent(PRIMARY, port)
    seen = a.seen
    reports = [1]

    class Tight:
        def emit(self, name, **f):
            if name == 'tftp_watch' and reports[0]:
                reports[0] -= 1
                raise MemoryError('memory allocation failed, allocating 64 bytes')
            seen.append((name, f))
    a.events = Tight()
    real = tftpwatch._answers
    asks = [1]

    async def answers(*args):
        if asks[0]:
            asks[0] -= 1
            raise MemoryError('memory allocation failed, allocating 48 bytes')
        return await real(*args)

    async def main():
        t = asyncio.create_task(_serve(srv, 1, b'\x00\x03\x00\x01' + b'x' * 10, [], 99))
        await asyncio.wait_for_ms(tftpwatch.watch(a), 3000)
        t.cancel()

    tftpwatch._answers = answers
    try:
        asyncio.run(main())
    finally:
        tftpwatch._answers = real
        srv.close()
    eq([n for n, f in seen], ['agent_error', 'tftp_watch', 'tftp_back'])
    eq((seen[0][1]['where'], seen[0][1]['retry_ms']), ('tftp_watch', 50))
    eq((a._refresh, a._reset_kind), (True, 'tftp'))
