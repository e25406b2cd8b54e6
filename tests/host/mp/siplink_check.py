# Drives the SIP link (phone.link's TLS under phone.siplink) under MicroPython against the
# lab's Kamailio registrars, for tests/host/test_siplink_kamailio.py:
#   siplink_check.py HQ_HOST HQ_PORT HQ_DER SRST_HOST SRST_PORT SRST_DER CERT_DER KEY_DER
#                    MAC LINE PASSWORD
# Registers at HQ (a session opened for it: the REGISTER first, digest), keeps a standby
# session to the branch (CRLF pings), then registers over that standby session (failover
# without a new handshake) and unregisters both. Prints a line per step and RESULT.
import sys

import asyncio
from phone import link
from phone.siplink import SipLink
from sip_owner import Owner, rd


async def main():
    a = sys.argv
    o = Owner(a[7], a[8], a[9], a[10], a[11],
              {'connect_timeout_ms': 5000, 'register_timeout_ms': 5000,
               'probe_after_ms': 1000, 'ack_timeout_ms': 1500})
    reg = SipLink.registration(o)
    hq = SipLink(o, 'primary', a[1], int(a[2]), (rd(a[3]), 'hq'), 'hq')
    br = SipLink(o, 'srst', a[4], int(a[5]), (rd(a[6]), 'branch'))
    try:
        got = await hq.register(reg)
        print('HQ', hq.mode, got[0], got[1])
        ms = await br.connect()
        print('STANDBY', br.mode, ms is not None)
        br.standby(300)
        await asyncio.sleep_ms(3500)   # CRLF pings: unanswered ones would end it in 3 s
        print('STANDBY_KEPT', br.mode)
        await hq.close('primary lost')
        w = br._w
        got = await br.register(reg)
        print('BRANCH', br.mode, got[0], br._w is w)
        await asyncio.sleep_ms(500)
        await br.unregister()
        print('UNREGISTERED', br.mode)
        print('DOWNS', o.downs)
        print('RESULT ok')
    except link.LinkError as e:
        print('RESULT failed', e)
    await hq.close()
    await br.close()


asyncio.run(main())
