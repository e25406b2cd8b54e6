# Board hardware bring-up for phone.platform: the network interface (Ethernet or WLAN), the
# LED, and the unix port's namespace interface. Imported only when a board needs it, at boot;
# provision.unload() drops it, so its code and names cost the agent nothing afterwards.
import time


def network_up(plat, timeout_ms):
    """LAN or WLAN up; returns the address the built-in DHCP client got."""
    import network
    from machine import Pin
    net = plat.profile['network']
    if net['kind'] == 'LAN':
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
    t0 = time.ticks_ms()
    while not nic.isconnected():
        if time.ticks_diff(time.ticks_ms(), t0) > timeout_ms:
            raise OSError('network did not come up within %d ms' % timeout_ms)
        time.sleep_ms(100)
    return nic.ifconfig()[0]


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
