# A stand-in for the ESP32 port's `network` module, for firmware tests of the board path: the
# subset phone.hw uses, with the semantics of MicroPython's ports/esp32/network_lan.c and
# network_common.c over ESP-IDF's esp_netif:
# - LAN(...) is one interface; active(True) starts it; the link comes up after `link_polls`
#   looks at it (status, isconnected, ipconfig('dhcp4')): ETH_CONNECTED; the IDF starts its
#   DHCP client from that event `start_polls` looks later (just after the status changed:
#   before it, dhcp4 reads False as when stopped); the client then holds UDP 68 (`hold`: a
#   real socket bound without SO_REUSEADDR, so the agent's own bind fails with EADDRINUSE as
#   beside lwIP's client) and takes the platform lease at once (ETH_GOT_IP).
# - ipconfig(dhcp4=False) stops a started client only (esp_netif_dhcpc_stop: a DHCPRELEASE if it
#   had a lease, the address back to 0.0.0.0, UDP 68 free); ipconfig(addr4=, gw4=) stops it
#   whatever its state (INIT too) and sets the address; ipconfig('dhcp4') is True only while it
#   runs.
# - the module's ipconfig(dns=) / ipconfig('dns') is lwIP's DNS server 0.
# `log` records what the firmware did, in order.
import socket

PHY_LAN8720 = 0
PHY_IP101 = 1
PHY_RTL8201 = 2
PHY_DP83848 = 3
PHY_KSZ8041 = 4
PHY_KSZ8081 = 5
ETH_INITIALIZED = 0
ETH_STARTED = 1
ETH_STOPPED = 2
ETH_CONNECTED = 3
ETH_DISCONNECTED = 4
ETH_GOT_IP = 5
STA_IF = 0
AP_IF = 1

_INIT, _STARTED, _STOPPED = 0, 1, 2

# test knobs
hold = ('127.0.0.1', 68)
platform_lease = ('192.0.2.99', '255.255.255.0', '192.0.2.1')
link_polls = 2
start_polls = 1
ifname = 'lo'
mac = b'\x02\x00\x5e\x10\x00\x42'

log = []
_dns = ['0.0.0.0']
_nic = []


def reset():
    del log[:]
    del _nic[:]
    _dns[0] = '0.0.0.0'


def _check_ip(s):
    parts = s.split('.')
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise ValueError('invalid IPv4 address %r' % (s,))
    return s


def _bits_mask(bits):
    m = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF if bits else 0
    return '%d.%d.%d.%d' % (m >> 24, (m >> 16) & 255, (m >> 8) & 255, m & 255)


class _Lan:
    def __init__(self, kw):
        self.kw = kw
        self._active = False
        self.eth = ETH_INITIALIZED
        self.dhcpc = _INIT
        self.ip = ('0.0.0.0', '0.0.0.0', '0.0.0.0')
        self.sock = None
        self._polls = 0
        self._looks = 0
        self.leased = False

    # -- the platform's client -------------------------------------------------------------
    def _start_client(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(socket.getaddrinfo(hold[0], hold[1])[0][-1])   # no SO_REUSEADDR: lwIP's pcb
        self.sock = s
        self.dhcpc = _STARTED
        self.ip = platform_lease
        self.leased = True
        self.eth = ETH_GOT_IP
        log.append(('platform_dhcp', 'started'))

    def _stop_client(self):
        if self.dhcpc == _STARTED:
            if self.sock is not None:
                self.sock.close()
                self.sock = None
            if self.leased:
                log.append(('platform_dhcp', 'release', self.ip[0]))
                self.leased = False
            self.ip = ('0.0.0.0', '0.0.0.0', '0.0.0.0')     # esp_netif_reset_ip_info
        self.dhcpc = _STOPPED

    # -- the API -----------------------------------------------------------------------------
    def active(self, *a):
        if a:
            if a[0] and not self._active:
                self._active = True
                self.eth = ETH_STARTED
                log.append(('active', True))
            elif not a[0] and self._active:
                self._active = False
                self._stop_client()
                self.eth = ETH_STOPPED
        return self._active

    def _tick(self):
        # time passes as the firmware looks: the link comes up, then the IDF's client starts
        if not self._active:
            return
        if self.eth == ETH_STARTED:
            self._polls += 1
            if self._polls >= link_polls:
                self.eth = ETH_CONNECTED
        elif self.eth == ETH_CONNECTED and self.dhcpc == _INIT:
            self._looks += 1
            if self._looks > start_polls:
                self._start_client()

    def status(self):
        self._tick()
        return self.eth

    def isconnected(self):
        self._tick()
        return self._active and self.eth == ETH_GOT_IP

    def config(self, *a, **kw):
        if kw:
            raise ValueError('unexpected key')
        if a[0] == 'mac':
            return mac
        if a[0] == 'ifname':
            return ifname
        raise ValueError('unexpected key')

    def ifconfig(self, *a):
        if a:
            raise ValueError('deprecated setter not used by the firmware')
        return self.ip + (_dns[0],)

    def ipconfig(self, *a, **kw):
        if not kw:
            if len(a) != 1:
                raise TypeError('must query one param')
            key = a[0]
            if key == 'dhcp4':
                self._tick()
                return self.dhcpc == _STARTED
            if key == 'addr4':
                return (self.ip[0], self.ip[1])
            if key == 'gw4':
                return self.ip[2]
            raise ValueError('unexpected key')
        if a:
            raise TypeError("can't specify pos and kw args")
        ip, mask, gw = self.ip
        touched = False
        for key in kw:
            v = kw[key]
            if key == 'dhcp4':
                log.append(('dhcp4', bool(v)))
                if v and self.dhcpc != _STARTED:
                    self._start_client()
                elif not v and self.dhcpc == _STARTED:
                    self._stop_client()
            elif key == 'addr4':
                if isinstance(v, str):
                    if '/' in v:
                        v, bits = v.split('/')
                        mask = _bits_mask(int(bits))
                    ip = _check_ip(v)
                else:
                    ip, mask = _check_ip(v[0]), _check_ip(v[1])
                touched = True
            elif key == 'gw4':
                gw = _check_ip(v)
                touched = True
            else:
                raise ValueError('unexpected key')
        if touched:
            self._stop_client()                 # esp_netif_dhcpc_stop, whatever the state
            self.ip = (ip, mask, gw)
            log.append(('static', ip, mask, gw))
            if ip != '0.0.0.0':
                self.eth = ETH_GOT_IP


def LAN(**kw):
    for k in ('mdc', 'mdio', 'phy_type', 'phy_addr'):
        if k not in kw:
            raise TypeError('LAN() needs %s' % k)
    if not _nic:
        _nic.append(_Lan(kw))
    return _nic[0]


def ipconfig(*a, **kw):
    if not kw:
        if a != ('dns',):
            raise ValueError('unexpected key')
        return _dns[0]
    for key in kw:
        if key != 'dns':
            raise ValueError('unexpected key')
        _dns[0] = _check_ip(kw[key])
        log.append(('dns', _dns[0]))
