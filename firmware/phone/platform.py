# The only module that knows the board: profile, network bring-up, MAC, LED, reset.
# On the unix port (virtual board) the network is whatever namespace the process runs in.
import sys
import time

try:
    import json
except ImportError:
    import ujson as json

IS_UNIX = sys.platform == 'linux'
PROFILE_FILE = 'board.json'
_NET_KINDS = ('LAN', 'WLAN', 'HOST')


class ProfileError(ValueError):
    pass


def load_profile(path=PROFILE_FILE):
    """Read and check the board profile; raise ProfileError with the reason."""
    try:
        with open(path) as f:
            p = json.load(f)
    except OSError:
        raise ProfileError('no board profile at %s' % path)
    except ValueError as e:
        raise ProfileError('board profile %s is not JSON: %s' % (path, e))
    if not isinstance(p, dict):
        raise ProfileError('board profile must be an object')
    for key in ('name', 'chip', 'network'):
        if key not in p:
            raise ProfileError('board profile lacks "%s"' % key)
    kind = p['network'].get('kind') if isinstance(p['network'], dict) else None
    if kind not in _NET_KINDS:
        raise ProfileError('network.kind must be one of %s' % (_NET_KINDS,))
    return p


def _env(name):
    try:
        import os
        return os.getenv(name)
    except (ImportError, AttributeError):
        return None


def parse_mac(text):
    """'00:11:22:aa:bb:cc', '0011.22aa.bbcc' or '001122AABBCC' -> 6 bytes."""
    h = ''.join(c for c in text if c in '0123456789abcdefABCDEF')
    if len(h) != 12:
        raise ValueError('MAC must have 12 hex digits: %r' % text)
    return bytes(int(h[i:i + 2], 16) for i in range(0, 12, 2))


class Platform:
    def __init__(self, profile, mac=None):
        self.profile = profile
        self.nic = None
        self._mac = mac
        self._led = None
        self._setup_led()

    # -- identity ---------------------------------------------------------
    def mac(self):
        if self._mac is None:
            m = _env('PHONE_MAC') if IS_UNIX else None
            if m is None and self.profile.get('mac'):
                m = self.profile['mac']
            if m is not None:
                self._mac = parse_mac(m)
            elif self.nic is not None:
                self._mac = bytes(self.nic.config('mac'))
            else:
                # Unix port without a configured MAC: a stable locally administered one.
                self._mac = b'\x02\x00\x5e\x10\x00\x01'
        return self._mac

    def device_name(self):
        return 'SEP' + ''.join('%02X' % b for b in self.mac())

    # -- network ----------------------------------------------------------
    def network_up(self, timeout_ms=20000):
        """Bring the interface up. Returns the IPv4 address the platform's own DHCP got,
        or None when the agent must run the whole DHCP exchange itself (unix port)."""
        net = self.profile['network']
        kind = net['kind']
        if kind == 'HOST':
            return None
        import network
        from machine import Pin
        if kind == 'LAN':
            phy = getattr(network, 'PHY_' + net.get('phy', 'LAN8720'))
            kw = {'mdc': Pin(net['mdc']), 'mdio': Pin(net['mdio']), 'phy_type': phy,
                  'phy_addr': net.get('phy_addr', 0)}
            if net.get('power') is not None:
                kw['power'] = Pin(net['power'])
            if net.get('ref_clk') is not None:
                kw['ref_clk'] = Pin(net['ref_clk'])
                kw['ref_clk_mode'] = Pin.OUT if net.get('ref_clk_mode') == 'out' else Pin.IN
            nic = network.LAN(**kw)
            nic.active(True)
        else:
            nic = network.WLAN(network.STA_IF)
            nic.active(True)
            ssid, key = _wlan_credentials()
            nic.connect(ssid, key)
        self.nic = nic
        t0 = time.ticks_ms()
        while not nic.isconnected():
            if time.ticks_diff(time.ticks_ms(), t0) > timeout_ms:
                raise OSError('network did not come up within %d ms' % timeout_ms)
            time.sleep_ms(100)
        return nic.ifconfig()[0]

    def apply_lease(self, lease):
        """Put a DHCP lease on the interface. Boards get theirs from the built-in client
        (the agent then only sends DHCPINFORM); on the unix port the agent runs the whole
        exchange and sets the namespace interface named by PHONE_IF itself."""
        dev = _env('PHONE_IF') if IS_UNIX else None
        if not dev or not lease.ip:
            return
        import os
        bits = sum(bin(int(x)).count('1') for x in (lease.mask or '255.255.255.0').split('.'))
        os.system('ip addr flush dev %s scope global' % dev)
        os.system('ip addr add %s/%d dev %s' % (lease.ip, bits, dev))
        if lease.router:
            os.system('ip route replace default via %s dev %s' % (lease.router, dev))

    # -- LED: off / on / blink pattern by state ---------------------------
    def _setup_led(self):
        led = self.profile.get('led')
        if not led or IS_UNIX:
            return
        from machine import Pin
        if led.get('kind') == 'neopixel':
            import neopixel
            self._led = neopixel.NeoPixel(Pin(led['pin']), 1)
        else:
            self._led = Pin(led['pin'], Pin.OUT)

    def led(self, colour):
        """colour: (r, g, b); a plain LED is on for any non-black colour."""
        self.led_state = colour
        if self._led is None:
            return
        if hasattr(self._led, 'write'):
            self._led[0] = colour
            self._led.write()
        else:
            self._led.value(1 if any(colour) else 0)

    def reset(self):
        if IS_UNIX:
            # The virtual board restarts the interpreter when the process exits with 3.
            sys.exit(3)
        import machine
        machine.reset()


def _wlan_credentials(path='wlan.json'):
    try:
        with open(path) as f:
            c = json.load(f)
        return c['ssid'], c.get('key', '')
    except (OSError, ValueError, KeyError):
        raise OSError('WLAN board needs wlan.json with {"ssid": ..., "key": ...}')
