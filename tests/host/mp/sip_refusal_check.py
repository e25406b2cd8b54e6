# Registers one SIP line (phone.siplink under MicroPython) with a registrar and prints what
# came of it, for tests/host/test_sipp_registrar.py:
#   sip_refusal_check.py HOST PORT SERVER_DER CERT_DER KEY_DER MAC LINE PASSWORD
# Prints "EXPIRES N" (what the registration asked for at the end) and "RESULT ok ..." or
# "RESULT refused REASON".
import sys

import asyncio
from phone import link
from phone.siplink import SipLink
from sip_owner import Owner, rd


async def main():
    a = sys.argv
    o = Owner(a[4], a[5], a[6], a[7], a[8],
              {'connect_timeout_ms': 5000, 'register_timeout_ms': 8000})
    reg = SipLink.registration(o)
    cm = SipLink(o, 'primary', a[1], int(a[2]), (rd(a[3]), 'cm'), 'cm')
    try:
        got = await cm.register(reg)
        print('RESULT ok', got)
    except link.LinkError as e:
        print('RESULT refused', e)
    print('EXPIRES', reg.expires)
    await cm.close()


asyncio.run(main())
