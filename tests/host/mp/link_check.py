# Drives the agent's SCCP link (phone.link's TLS under phone.sccplink) under MicroPython for
# tests/host/test_link_security.py:
#   link_check.py HOST PORT ANCHOR_DER|- CN CERT_DER KEY_DER ACTION
# ACTION: connect | register. Prints the link's events and a final RESULT line.
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
