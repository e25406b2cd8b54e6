# Drives phone.link under MicroPython for tests/host/test_link_security.py:
#   link_check.py HOST PORT ANCHOR_DER|- CN CERT_DER KEY_DER ACTION
# ACTION: connect | register. Prints the link's events and a final RESULT line.
import sys
import time
import asyncio
from phone import clock, link, sccp, settings
from phone.events import Events


def rd(p):
    with open(p, 'rb') as f:
        return f.read()


async def main():
    host, port, anchor, cn, cert, key, action = sys.argv[1:8]
    ev = Events()
    s = settings.Settings({'connect_timeout_ms': 3000, 'register_timeout_ms': 3000})
    a = None if anchor == '-' else (rd(anchor), cn)
    ident = (rd(cert), rd(key)) if cert != '-' else None
    l = link.Link('primary', host, int(port), a, ident, ev, s)
    print('CLOCK', time.gmtime()[0])       # the year this interpreter believes it is
    try:
        await l.connect()
        if action == 'register':
            await l.register(sccp.register('SEP001122AABBCC', '127.0.0.1'))
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
