# The only module that knows the board: profile, network bring-up, MAC, LED, reset. The
# hardware side (LAN/WLAN, LED driver, the unix port's interface address) is phone.hw, loaded
# only when a board needs it. On the unix port (virtual board) the network is whatever
# namespace the process runs in.
import json
import sys

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
        """Bring the interface up. Returns None when the agent runs the whole DHCP exchange
        itself: always on the unix port; on a board once its own DHCP client is stopped
        (phone.hw). A board profile with "dhcp": false gets the platform's address back."""
        if self.profile['network']['kind'] == 'HOST':
            return None
        from phone import hw        # LAN/WLAN bring-up: loaded on boards only, at boot only
        return hw.network_up(self, timeout_ms)

    def dhcp_kw(self):
        """phone.dhcp.Client options for this phone: its name as option 12, and on a board the
        interface the socket must be bound to (it has no address while it asks for one)."""
        # ifname: set by phone.hw on a board (its lwIP interface name)
        return {'hostname': self.device_name(), 'ifname': getattr(self, 'ifname', None)}

    def apply_lease(self, lease):
        """Put a DHCP lease the agent got on the interface (phone.hw.put_lease): on a board as
        a static address, on the unix port on the namespace interface named by PHONE_IF."""
        from phone import hw
        hw.put_lease(self.nic, lease)

    def drop_lease(self, ip):
        """The lease of `ip` ended (or was refused): the address off the interface at once
        (phone.hw.take_lease), back to what a DHCP client needs."""
        from phone import hw
        hw.take_lease(self.nic)

    # -- LED: off / on / blink pattern by state ---------------------------
    def _setup_led(self):
        led = self.profile.get('led')
        if led and not IS_UNIX:
            from phone import hw
            self._led = hw.led(led)

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
