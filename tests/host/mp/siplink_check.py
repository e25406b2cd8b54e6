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
from phone.events import Events
from phone.platform import parse_mac
from phone.settings import Settings
from phone.siplink import SipLink


class Plat:
    profile = {}

    def __init__(self, mac):
        self.mac = mac

    def device_name(self):
        return 'SEP' + self.mac.upper()


class Owner:
    def __init__(self, a):
        self.events = Events()
        self.cfg = Settings({'connect_timeout_ms': 5000, 'register_timeout_ms': 5000,
                             'probe_after_ms': 1000, 'ack_timeout_ms': 1500})
        self.prov = self
        self.identity = (rd(a[7]), rd(a[8]))
        self.ip = '127.0.0.1'
        self.mac = parse_mac(a[9])
        self.sip = {'lines': [{'name': a[10], 'authName': a[10], 'authPassword': a[11]}],
                    'timerRegisterExpires': 3600, 'timerRegisterDelta': 5,
                    'timerKeepAliveExpires': 120}
        self.platform = Plat(a[9])
        self.downs = []

    def link_down(self, lk, reason):
        self.downs.append((lk.role, reason))

    def reset_requested(self, lk, kind):
        pass


def rd(p):
    with open(p, 'rb') as f:
        return f.read()


async def main():
    a = sys.argv
    o = Owner(a)
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
