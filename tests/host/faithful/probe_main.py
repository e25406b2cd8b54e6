# Runs under MicroPython as main.py of a faithful virtual board (tests/host/test_vboard_faithful.py):
# what the firmware before the ESP32 fixes did at boot, each outcome printed as
# "PROBE [key, value]" for the host. probe.json: the call manager's address, certificate,
# name, the phone identity and the host's real time.
import sys
import time
import socket
import json
import machine
import network
import hashlib
import tls


def say(k, v):
    print('PROBE', json.dumps([k, v]))


def why(e):
    return [type(e).__name__] + [a if isinstance(a, (int, str)) else repr(a) for a in e.args]


with open('probe.json') as f:
    cfg = json.load(f)
say('platform', sys.platform)
say('year', time.gmtime()[0])
try:
    open('second_boot').close()
    second = True
except OSError:
    second = False
if second:                  # after machine.reset(): the clock is back at 2000
    import os
    os.remove('second_boot')
    nic = network.LAN(mdc=machine.Pin(23), mdio=machine.Pin(18), phy_type=network.PHY_LAN8720,
                      phy_addr=0)
    say('addr4_after_reset', nic.ipconfig('addr4'))
    say('done', 2)
    sys.exit(0)
say('sha512', hasattr(hashlib, 'sha512'))
lan = cfg['lan']
nic = network.LAN(mdc=machine.Pin(lan['mdc']), mdio=machine.Pin(lan['mdio']),
                  phy_type=network.PHY_LAN8720, phy_addr=lan['phy_addr'])
nic.active(True)
t0 = time.ticks_ms()
while not nic.isconnected() and time.ticks_diff(time.ticks_ms(), t0) < 30000:
    time.sleep_ms(100)
say('addr4', nic.ipconfig('addr4'))
say('dhcp4', nic.ipconfig('dhcp4'))


def bind68():
    # phone/dhcp.py's DHCPINFORM socket, as it was
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    try:
        s.bind(socket.getaddrinfo('0.0.0.0', 68)[0][-1])
        return 'bound'
    except OSError as e:
        return e.errno
    finally:
        s.close()


say('bind68', bind68())
with open(cfg['cert'], 'rb') as f:
    ca = f.read()
with open('state/phone.der', 'rb') as f:
    mycert = f.read()
with open('state/phone.key', 'rb') as f:
    mykey = f.read()
addr = socket.getaddrinfo(cfg['host'], cfg['port'])[0][-1]


def session(on_connect):
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = tls.CERT_REQUIRED
    ctx.load_verify_locations(ca)       # the native method: positional only
    ctx.load_cert_chain(mycert, mykey)
    s = socket.socket()
    s.connect(addr)
    try:
        ss = ctx.wrap_socket(s, server_hostname=cfg['name'], do_handshake_on_connect=on_connect)
        if not on_connect:
            ss.write(b'\0' * 12)      # the deferred handshake runs at the first write
        return ss
    except BaseException:
        s.close()
        raise


for on_connect in (False, True):
    try:
        session(on_connect).close()
        say('tls_at_boot_%d' % on_connect, 'ok')
    except Exception as e:
        say('tls_at_boot_%d' % on_connect, why(e))
rtc = machine.RTC()
t = time.gmtime(cfg['now'] - 946684800)          # the board's epoch is 2000
rtc.datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))
say('year_set', time.gmtime()[0])
held = []
for i in range(6):
    try:
        held.append(session(True))
    except Exception as e:
        say('sessions', [len(held), why(e)])
        break
else:
    say('sessions', [len(held), None])
for s in held:
    s.close()
try:
    session(True).close()
    say('session_after_close', 'ok')
except Exception as e:
    say('session_after_close', why(e))
leased = nic.ipconfig('addr4')
nic.ipconfig(dhcp4=False)
say('after_stop', [nic.ipconfig('dhcp4'), nic.ipconfig('addr4'), bind68()])
nic.ipconfig(addr4=leased)                 # static, as the firmware keeps its own lease
say('static', nic.ipconfig('addr4'))
with open('second_boot', 'w') as f:
    f.write('1')
say('resetting', 1)
machine.reset()
