# What a SIP link needs of its owner (the Agent's part of the signalling contract), for the
# MicroPython scripts that drive phone.siplink alone (siplink_check.py, sip_refusal_check.py).
from phone.events import Events
from phone.platform import parse_mac
from phone.settings import Settings


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
    """cert/key: DER file paths; one line with its digest password; `settings` overrides."""

    def __init__(self, cert, key, mac, line, password, settings):
        self.events = Events()
        self.cfg = Settings(settings)
        self.prov = self
        self.identity = (rd(cert), rd(key))
        self.ip = '127.0.0.1'
        self.mac = parse_mac(mac)
        self.sip = {'lines': [{'name': line, 'authName': line, 'authPassword': password}],
                    'timerRegisterExpires': 3600, 'timerRegisterDelta': 5,
                    'timerKeepAliveExpires': 120}
        self.platform = Plat(mac)
        self.downs = []

    def link_down(self, lk, reason):
        self.downs.append((lk.role, reason))

    def reset_requested(self, lk, kind):
        pass
