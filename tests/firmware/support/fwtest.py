# Small assertion helpers for firmware tests (MicroPython has no pytest), and the agent's
# events as a test reads them.
import json
import time


class Skip(Exception):
    pass


class raises:
    """with raises(ValueError, match='CTL'): ..."""

    def __init__(self, exc, match=None):
        self.exc = exc
        self.match = match
        self.value = None

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is None:
            raise AssertionError('%s not raised' % self.exc.__name__)
        if not issubclass(et, self.exc):
            return False
        if self.match is not None and self.match not in str(ev):
            raise AssertionError('%r does not contain %r' % (str(ev), self.match))
        self.value = ev
        return True


class Pieces:
    """An asyncio stream over bytes whose readinto gives at most `step` bytes a call (TCP
    segments, TLS records)."""

    def __init__(self, data, step=1 << 20):
        self.data = data
        self.pos = 0
        self.step = step

    async def readinto(self, buf):
        n = min(len(buf), self.step, len(self.data) - self.pos)
        buf[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n


def eq(a, b, what=''):
    if a != b:
        raise AssertionError('%s%r != %r' % (what + ': ' if what else '', a, b))


class CaptureOut:
    """A stream that keeps what is written (for events)."""

    def __init__(self):
        self.parts = []

    def write(self, s):
        self.parts.append(s)
        return len(s)

    def text(self):
        return ''.join(self.parts)

    def lines(self):
        return [l for l in self.text().split('\n') if l]


async def until(cond, timeout_ms, what, out=None):
    """Wait (asyncio) until cond() holds; fails after timeout_ms, naming the events seen."""
    import asyncio
    t0 = time.ticks_ms()
    while not cond():
        if time.ticks_diff(time.ticks_ms(), t0) > timeout_ms:
            seen = ' '.join(e['ev'] for e in events(out)) if out is not None else ''
            raise AssertionError('timed out waiting for %s%s' % (
                what, '; events: ' + seen if seen else ''))
        await asyncio.sleep_ms(20)


async def stop_agents(agents, tasks, timeout_ms=3000):
    """Stop agents, then wait, at most timeout_ms each, for their run() tasks to end, whatever
    they end with (the test asserts on events and state, not on how run() returned)."""
    import asyncio
    for a in agents:
        a.stop()
    for t in tasks:
        if not t.done():
            try:
                await asyncio.wait_for_ms(t, timeout_ms)
            except Exception:
                pass


def bound_udp(next_port):
    """A UDP socket bound on loopback to the first free port above next_port[0] (a one-item
    list, advanced; the unix port has no getsockname): (socket, port)."""
    import socket
    while True:
        next_port[0] += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(socket.getaddrinfo('127.0.0.1', next_port[0])[0][-1])
            return s, next_port[0]
        except OSError:
            s.close()


def udp_socket(host, port):
    """A non-blocking UDP socket bound to host:port, the address reusable."""
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(socket.getaddrinfo(host, port)[0][-1])
    s.setblocking(False)
    return s


def events(out, name=None):
    evs = [json.loads(l) for l in out.lines()]
    return [e for e in evs if name is None or e['ev'] == name]


def states(out):
    return [e['state'] for e in events(out, 'state')]
