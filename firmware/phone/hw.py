# Board hardware bring-up for phone.platform: the network interface (Ethernet or WLAN), the
# LED, and the unix port's namespace interface. Imported only when a board needs it, at boot;
# provision.unload() drops it, so its code and names cost the agent nothing afterwards.
import time

_SETTLE_MS = 1000   # how long to look for the platform's DHCP client starting after link up


def network_up(plat, timeout_ms):
    """LAN or WLAN up. The agent runs DHCP itself (a phone's options out, option 150 back), so
    once the link is up the platform's own client (lwIP's, started by the IDF at link up; it
    holds UDP 68 and keeps the options to itself) is stopped, and None is returned. With
    "dhcp": false in the profile the platform's client is left alone: its address is returned."""
    import network
    from machine import Pin
    net = plat.profile['network']
    lan = net['kind'] == 'LAN'
    if lan:
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
    plat.nic = nic
    own = plat.profile.get('dhcp', True)
    # The link: LAN status ETH_CONNECTED (3) or ETH_GOT_IP (5); WLAN has no "associated, no
    # address" state in its API, so there the platform's lease is awaited (and let go).
    up = (getattr(network, 'ETH_CONNECTED', 3), getattr(network, 'ETH_GOT_IP', 5))
    t0 = time.ticks_ms()
    while not (nic.status() in up if lan and own else nic.isconnected()):
        if time.ticks_diff(time.ticks_ms(), t0) > timeout_ms:
            raise OSError('network did not come up within %d ms' % timeout_ms)
        time.sleep_ms(50)
    if not own:
        return nic.ipconfig('addr4')[0]
    # The IDF starts its client from the link-up event, right after the status changes:
    # look for it a little while (dhcp4 reads False both before it starts and once stopped).
    t0 = time.ticks_ms()
    while not nic.ipconfig('dhcp4'):
        if time.ticks_diff(time.ticks_ms(), t0) > _SETTLE_MS:
            break
        time.sleep_ms(50)
    # esp_netif_dhcpc_stop: lwIP's dhcp_stop (a DHCPRELEASE if it had a lease), the address
    # back to 0.0.0.0, UDP 68 free.
    nic.ipconfig(dhcp4=False)
    if nic.ipconfig('dhcp4'):
        raise OSError('the platform DHCP client did not stop')
    try:
        plat.ifname = nic.config('ifname')
    except (ValueError, OSError):
        plat.ifname = None
    return None


def put_lease(nic, lease):
    """The agent's lease on the interface. Board: a static address (esp_netif_set_ip_info; the
    platform's client stays stopped), its first DNS server lwIP's. Unix port: the namespace
    interface named by PHONE_IF (none: the process's network is left alone)."""
    if nic is None:
        dev = _dev()
        if dev and lease.ip:
            apply_lease(dev, lease)
        return
    import network
    nic.ipconfig(addr4=(lease.ip, lease.mask or '255.255.255.0'), gw4=lease.router or '0.0.0.0')
    if lease.dns:
        network.ipconfig(dns=lease.dns[0])


def take_lease(nic):
    """The address off the interface (the lease ended); DHCP goes on from 0.0.0.0."""
    if nic is None:
        dev = _dev()
        if dev:
            drop_lease(dev)
        return
    nic.ipconfig(addr4=('0.0.0.0', '0.0.0.0'), gw4='0.0.0.0')


def _dev():
    import sys
    if sys.platform != 'linux':
        return None
    import os
    return os.getenv('PHONE_IF')


def _wlan_credentials(path='wlan.json'):
    try:
        import json
        with open(path) as f:
            c = json.load(f)
        return c['ssid'], c.get('key', '')
    except (OSError, ValueError, KeyError):
        raise OSError('WLAN board needs wlan.json with {"ssid": ..., "key": ...}')


def apply_lease(dev, lease):
    """Unix port: the lease's address and default route on namespace interface `dev`."""
    import os
    bits = sum(bin(int(x)).count('1') for x in (lease.mask or '255.255.255.0').split('.'))
    os.system('ip addr flush dev %s scope global' % dev)
    os.system('ip addr add %s/%d dev %s' % (lease.ip, bits, dev))
    if lease.router:
        os.system('ip route replace default via %s dev %s' % (lease.router, dev))


def drop_lease(dev):
    """Unix port: the address off namespace interface `dev` (its routes go with it), the state
    a DHCP client needs to see a broadcast OFFER back (0.0.0.0/0 and a default route)."""
    import os
    os.system('ip addr flush dev %s scope global' % dev)
    os.system('ip addr add 0.0.0.0/0 dev %s' % dev)
    os.system('ip route replace default dev %s' % dev)


def led(conf):
    """The LED object for a profile's "led": a NeoPixel (write()) or a plain Pin."""
    from machine import Pin
    if conf.get('kind') == 'neopixel':
        import neopixel
        return neopixel.NeoPixel(Pin(conf['pin']), 1)
    return Pin(conf['pin'], Pin.OUT)
