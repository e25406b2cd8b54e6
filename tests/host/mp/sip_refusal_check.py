# Registers one SIP line (phone.siplink under MicroPython) with a registrar and prints what
# came of it, for tests/host/test_sipp_registrar.py:
#   sip_refusal_check.py HOST PORT SERVER_DER CERT_DER KEY_DER MAC LINE PASSWORD
# Prints "EXPIRES N" (what the registration asked for at the end) and "RESULT ok ..." or
# "RESULT refused REASON".
import sys

import asyncio
from phone import link
from phone.events import Events
from phone.platform import parse_mac
from phone.settings import Settings
from phone.siplink import SipLink


def rd(p):
    with open(p, 'rb') as f:
        return f.read()


class Plat:
    profile = {}

    def __init__(self, mac):
        self.mac = mac

    def device_name(self):
        return 'SEP' + self.mac.upper()


class Owner:
    def __init__(self, a):
        self.events = Events()
        self.cfg = Settings({'connect_timeout_ms': 5000, 'register_timeout_ms': 8000})
        self.prov = self
        self.identity = (rd(a[4]), rd(a[5]))
        self.ip = '127.0.0.1'
        self.mac = parse_mac(a[6])
        self.sip = {'lines': [{'name': a[7], 'authName': a[7], 'authPassword': a[8]}],
                    'timerRegisterExpires': 3600, 'timerRegisterDelta': 5,
                    'timerKeepAliveExpires': 120}
        self.platform = Plat(a[6])

    def link_down(self, lk, reason):
        pass

    def reset_requested(self, lk, kind):
        pass


async def main():
    a = sys.argv
    o = Owner(a)
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
