# Drives the agent's SCCP link (phone.link's TLS under phone.sccplink) under MicroPython for
# tests/host/test_link_security.py:
#   link_check.py HOST PORT ANCHOR_DER|- CN CERT_DER KEY_DER ACTION
# ACTION: connect | register | standby (register over the open standby session, printing
# what asyncio's poller waited on meanwhile and the time). Prints the link's events and a
# final RESULT line.
import sys
import time
import asyncio
from phone import clock, link, sccpreg, settings
from phone.events import Events
from phone.sccplink import SccpLink


class Owner:
    """What a link asks of its owner (docs/signalling.md): here a link alone."""

    def __init__(self, events, cfg, identity):
        self.events = events
        self.cfg = cfg
        self.prov = self
        self.identity = identity

    def link_down(self, link, reason):
        pass

    def reset_requested(self, link, kind):
        pass


def rd(p):
    with open(p, 'rb') as f:
        return f.read()


async def standby_register(l):
    """Register over the open standby session (the whole dialogue), noting the type of
    every object a reader waited on in asyncio's poller on the way."""
    seen = set()

    async def watch():
        while True:
            for e in asyncio.core._io_queue.map.values():
                if e[0] is not None:             # a task waits to read e[2]
                    seen.add(type(e[2]).__name__)
            await asyncio.sleep_ms(0)

    w = asyncio.create_task(watch())
    await asyncio.sleep_ms(50)                   # standing by
    t0 = time.ticks_ms()
    await l.register((sccpreg.register('SEP001122AABBCC', '127.0.0.1'), sccpreg.opening()))
    print('REGISTER_MS', time.ticks_diff(time.ticks_ms(), t0))
    await asyncio.sleep_ms(50)
    w.cancel()
    print('POLLED', ' '.join(sorted(seen)))


async def main():
    host, port, anchor, cn, cert, key, action = sys.argv[1:8]
    ev = Events()
    s = settings.Settings({'connect_timeout_ms': 3000, 'register_timeout_ms': 3000})
    a = None if anchor == '-' else (rd(anchor), cn)
    ident = (rd(cert), rd(key)) if cert != '-' else None
    l = SccpLink(Owner(ev, s, ident), 'primary', host, int(port), a)
    print('CLOCK', time.gmtime()[0])       # the year this interpreter believes it is
    try:
        await l.connect()
        if action == 'standby':
            await standby_register(l)
        if action == 'register':
            await l.register((sccpreg.register('SEP001122AABBCC', '127.0.0.1'), sccpreg.opening()))
            for _ in range(50):              # DefineTimeDate answers the TimeDateReq
                if clock.source == 'sccp':
                    break
                await asyncio.sleep_ms(20)
            print('CLOCKSET', clock.source, clock.utc())
        print('RESULT ok', l.mode)
    except link.LinkError as e:
        print('RESULT refused', e)
    await l.close()


asyncio.run(main())
