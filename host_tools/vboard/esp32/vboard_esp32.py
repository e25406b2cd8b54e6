# Runs under the MicroPython unix port (NOT CPython), on a faithful virtual board only
# (--board virtual:PROFILE): host_tools/vboard/board_main.py calls install() before any board
# code runs, while host paths are still reachable. It puts in sys.modules what the ESP32
# port has and the unix port has not, or has differently (docs/vboard.md, with sources):
#   /rom     the agent in the image (profiles with agent_in_image): a ROMFS, imported in place;
#   gc       mem_alloc() leaves the ROM image's buffer out (it is flash on a board)
#   sys      platform 'esp32'
#   time     the ESP32 port's epoch (2000-01-01): time() is int seconds since 2000
#   machine  Pin (the profile chip's GPIOs; 16/17 absent on a PSRAM ESP32), reset(), WDT,
#            RTC (setting it moves the board's clock: libfaketime's offset file)
#   network  LAN / WLAN over the namespace interface PHONE_IF; the "lwIP" DHCP client is the
#            host process host_tools/vboard/lwip.py (control over UDP on 127.0.0.1)
#   hashlib  md5, sha1, sha256 (no sha512)
#   tls      SSLContext whose wrap_socket refuses a session over the profile's budget with
#            OSError(ENOMEM), what Mbed TLS's MBEDTLS_ERR_SSL_ALLOC_FAILED becomes
# Environment (set by host_tools/vboard/faithful.py): VBOARD_RUN (host folder: clock, lwip
# port, wdt), VBOARD_CHIP, VBOARD_PSRAM, VBOARD_TLS_SESSIONS, VBOARD_NET, PHONE_IF, PHONE_MAC.
import sys
import os

_EPOCH_2000 = 946684800


def _Module(name, base=None):
    # A real module object (`from X import *` needs one): a fresh import of an empty file.
    import vboard_blank as m
    del sys.modules['vboard_blank']
    if base is not None:
        for k in dir(base):
            if not k.startswith('__'):
                setattr(m, k, getattr(base, k))
    m.__name__ = name
    return m


def _days(y, m, d):
    # days since 1970-01-01 of a civil date (proleptic Gregorian)
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _install_time(real):
    t = _Module('time', real)

    def time_():
        return int(real.time()) - _EPOCH_2000

    def time_ns():
        return real.time_ns() - _EPOCH_2000 * 1000000000

    def gmtime(secs=None):
        return real.gmtime(real.time() if secs is None else int(secs) + _EPOCH_2000)

    def mktime(tt):
        return (_days(tt[0], tt[1], tt[2]) * 86400 + tt[3] * 3600 + tt[4] * 60 + tt[5]
                - _EPOCH_2000)

    t.time, t.time_ns, t.gmtime, t.localtime, t.mktime = time_, time_ns, gmtime, gmtime, mktime
    return t


class _Clock:
    # The board's clock is libfaketime's offset from the host clock, in a file that
    # libfaketime re-reads at every call (FAKETIME_NO_CACHE): the C library, and so the
    # unix port's time module and Mbed TLS's certificate date checks, all follow it.
    def __init__(self, path, real_time):
        self.f = open(path, 'r+')    # kept open: the board folder becomes '/' later
        self.real_time = real_time

    def set(self, secs_1970):
        self.f.seek(0)
        off = float(self.f.read())
        off += secs_1970 - self.real_time.time()
        self.f.seek(0)
        self.f.write('%+020.6f' % off)   # fixed width: the file is never truncated
        self.f.flush()


_ESP32_PINS = set(range(0, 24)) | {25, 26, 27} | set(range(32, 40))


def _install_machine(real, chip, psram, clock, wdt_path):
    m = _Module('machine', real)
    real_time = sys.modules['time'] if 'time' in sys.modules else __import__('time')
    if chip == 'esp32':
        valid = set(_ESP32_PINS)
        if psram:          # ports/esp32/machine_pin.h: no GPIO16/17 when CONFIG_SPIRAM
            valid.discard(16)
            valid.discard(17)
    else:
        valid = set(range(0, 49))

    class Pin:
        IN = 1
        OUT = 3
        OPEN_DRAIN = 7
        PULL_UP = 1
        PULL_DOWN = 2
        IRQ_RISING = 1
        IRQ_FALLING = 2

        def __init__(self, id, mode=-1, pull=-1, value=None, **kw):
            if not isinstance(id, int) or id not in valid:
                raise ValueError('invalid pin')
            self.id = id
            self.mode = mode
            self._v = 0 if value is None else (1 if value else 0)

        def value(self, v=None):
            if v is None:
                return self._v
            self._v = 1 if v else 0

        def __call__(self, v=None):
            return self.value(v)

        def on(self):
            self._v = 1

        def off(self):
            self._v = 0

        def init(self, mode=-1, pull=-1, value=None, **kw):
            if value is not None:
                self._v = 1 if value else 0

        def __repr__(self):
            return 'Pin(%d)' % self.id

    def reset():
        # A hard reset: the virtual board restarts the interpreter on exit code 3.
        raise SystemExit(3)

    class WDT:
        # The host resets the board when a feed is overdue (VirtualBoard reads this file).
        def __init__(self, id=0, timeout=5000):
            if timeout <= 0:
                raise ValueError('WDT timeout too short')
            self.timeout = timeout
            self.f = wdt_path
            self.feed()

        def feed(self):
            f = self.f
            f.seek(0)
            f.write('%012d %012d' % (real_time.ticks_ms(), self.timeout))
            f.flush()

    class RTC:
        def __init__(self, id=0):
            pass

        def datetime(self, dt=None):
            if dt is None:
                t = real_time.gmtime(real_time.time())
                return (t[0], t[1], t[2], t[6], t[3], t[4], t[5],
                        int(real_time.time() * 1000000) % 1000000)
            y, mo, d, _wd, h, mi, s = dt[:7]
            us = dt[7] if len(dt) > 7 else 0
            clock.set(_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + s + us / 1000000)

        def init(self, dt):
            self.datetime(dt)

    m.Pin, m.reset, m.WDT, m.RTC = Pin, reset, WDT, RTC
    m.soft_reset = lambda: sys.exit(0)

    def reset_cause():
        return 1      # PWRON_RESET: every start of the interpreter is a power-up or reset
    m.reset_cause = reset_cause
    m.PWRON_RESET, m.HARD_RESET, m.WDT_RESET = 1, 2, 3
    m.unique_id = lambda: _mac()
    m.freq = lambda *a: 240000000 if not a else None
    return m


def _mac():
    h = ''.join(c for c in (os.getenv('PHONE_MAC') or '02005e100001')
                if c in '0123456789abcdefABCDEF')
    return bytes(int(h[i:i + 2], 16) for i in range(0, 12, 2))


def _install_network(kind):
    import socket
    net = _Module('network')
    port = [None]
    ctl = [None, None]
    dns = ['0.0.0.0']

    def ask(cmd):
        # The lwIP process: "STATE IP MASK GW DNS" (or "error ...").
        if port[0] is None:
            return ['stopped', '0.0.0.0', '0.0.0.0', '0.0.0.0', '0.0.0.0']
        s = ctl[0]
        if s is None:
            s = ctl[0] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(2)
            ctl[1] = socket.getaddrinfo('127.0.0.1', port[0])[0][-1]
        s.sendto(cmd.encode(), ctl[1])
        w = s.recv(256).decode().split()
        if w and w[0] == 'error':
            raise OSError(' '.join(w[1:]))
        return w

    net._lwip_port = port
    for i, n in enumerate(('PHY_LAN8710', 'PHY_LAN8720', 'PHY_IP101', 'PHY_RTL8201',
                           'PHY_DP83848', 'PHY_KSZ8041', 'PHY_KSZ8081')):
        setattr(net, n, i)
    net.PHY_KSZ8851SNL, net.PHY_DM9051, net.PHY_W5500 = 100, 101, 102
    (net.ETH_INITIALIZED, net.ETH_STARTED, net.ETH_STOPPED, net.ETH_CONNECTED,
     net.ETH_DISCONNECTED, net.ETH_GOT_IP) = range(6)
    net.STAT_IDLE, net.STAT_CONNECTING, net.STAT_GOT_IP = 1000, 1001, 1010
    net.STA_IF, net.AP_IF = 0, 1
    phys = tuple(range(7)) + (100, 101, 102)

    def _addr(text):
        p = text.split('.')
        if len(p) != 4 or not all(x.isdigit() and int(x) < 256 for x in p):
            raise ValueError('invalid arguments')
        return text

    def _bits_mask(bits):
        v = (0xffffffff << (32 - bits)) & 0xffffffff if bits else 0
        return '%d.%d.%d.%d' % (v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255)

    class _NIC:
        _active = False
        _eth = 0       # ETH_INITIALIZED

        def active(self, on=None):
            if on is not None:
                if on and not self._active:
                    self._active = True
                    self._eth = 3 if port[0] is not None else 1   # link up: CONNECTED
                    ask('start')
                elif not on and self._active:
                    self._active = False
                    self._eth = 2
                    ask('off')
            return self._active

        def isconnected(self):
            return self._active and ask('get')[1] != '0.0.0.0'

        def status(self):
            if self._active and ask('get')[1] != '0.0.0.0':
                return 5
            return self._eth

        def config(self, *args, **kw):
            if args and kw:
                raise TypeError('either pos or kw args are allowed')
            if kw:
                return None
            if len(args) != 1:
                raise TypeError('can query only one param')
            if args[0] == 'mac':
                return _mac()
            if args[0] == 'ifname':
                # lwIP's netif name on a board; here the namespace interface it stands for,
                # so that a socket bound to it (SO_BINDTODEVICE) works the same way.
                return os.getenv('PHONE_IF') or 'en0'
            raise ValueError('unknown config param')

        def ifconfig(self, conf=None):
            if conf is None:
                w = ask('get')
                return (w[1], w[2], w[3], dns[0] if dns[0] != '0.0.0.0' else w[4])
            if isinstance(conf, (tuple, list)):
                ip, mask, gw, d = conf
                if isinstance(mask, int):
                    mask = _bits_mask(mask)
                ask('set %s %s %s' % (_addr(ip), _addr(mask), _addr(gw)))
                dns[0] = _addr(d)
            elif conf == 'dhcp':
                ask('start')
            else:
                raise ValueError('invalid arguments')

        def ipconfig(self, *args, **kw):
            if not kw:
                if len(args) != 1:
                    raise TypeError('must query one param')
                key = args[0]
                w = ask('get')
                if key == 'dhcp4':
                    return w[0] != 'stopped'
                if key == 'addr4':
                    return (w[1], w[2])
                if key == 'gw4':
                    return w[3]
                raise ValueError('unexpected key')
            if args:
                raise TypeError("can't specify pos and kw args")
            w = ask('get')
            ip, mask, gw = w[1], w[2], w[3]
            touched = False
            for key in kw:
                v = kw[key]
                if key == 'dhcp4':
                    if v and w[0] == 'stopped':
                        ask('start')
                    elif not v and w[0] != 'stopped':
                        ask('stop')
                        ip = mask = gw = '0.0.0.0'
                elif key == 'addr4':
                    if isinstance(v, str):
                        if '/' in v:
                            v, bits = v.split('/')
                            mask = _bits_mask(int(bits))
                        ip = _addr(v)
                    elif v is not None:
                        ip, mask = _addr(v[0]), _addr(v[1])
                    touched = True
                elif key == 'gw4':
                    gw = _addr(v)
                    touched = True
                else:
                    raise ValueError('unexpected key')
            if touched:
                ask('set %s %s %s' % (ip, mask, gw))

    lan = [None]

    def LAN(id=None, mdc=None, mdio=None, power=None, phy_addr=None, phy_type=None,
            ref_clk=None, ref_clk_mode=-1, reset=None, spi=None, cs=None, int=None):
        if kind != 'LAN':
            raise ValueError('invalid LAN interface identifier')
        if lan[0] is not None:
            return lan[0]
        if phy_addr is None or phy_type is None:
            raise TypeError("'phy_addr' argument required")
        if not 0 <= phy_addr <= 0x1f:
            raise ValueError('invalid phy address')
        if phy_type not in phys:
            raise ValueError('invalid phy type')
        if mdc is None or mdio is None:
            raise ValueError('mdc and mdio must be specified')
        lan[0] = _NIC()
        return lan[0]

    class WLAN(_NIC):
        def __init__(self, interface_id=0):
            if kind != 'WLAN':
                raise OSError('Wifi Not Initialized')

        def connect(self, ssid=None, key=None, **kw):
            if not self._active:
                raise OSError('Wifi Not Started')
            ask('start')

        def disconnect(self):
            ask('stop')

        def scan(self):
            return []

    def ipconfig(*args, **kw):
        if not kw:
            if len(args) != 1:
                raise TypeError('must query one param')
            if args[0] == 'dns':
                return dns[0] if dns[0] != '0.0.0.0' else ask('get')[4]
            raise ValueError('unexpected key')
        if args:
            raise TypeError("can't specify pos and kw args")
        for key in kw:
            if key != 'dns':
                raise ValueError('unexpected key')
            dns[0] = _addr(kw[key])

    hostname = ['mpy-esp32']

    def hostname_(name=None):
        if name is None:
            return hostname[0]
        hostname[0] = name

    net.LAN, net.WLAN, net.ipconfig, net.hostname = LAN, WLAN, ipconfig, hostname_
    net.country = lambda *a: 'XX' if not a else None
    net.phy_mode = lambda *a: None
    return net


def _install_hashlib(real):
    h = _Module('hashlib')
    for n in ('md5', 'sha1', 'sha256'):   # py/mpconfig.h defaults; the ESP32 port keeps them
        if hasattr(real, n):
            setattr(h, n, getattr(real, n))
    return h


def _install_tls(real, budget):
    import select
    t = _Module('tls', real)
    live = []

    def count():
        # A session ends when its socket is closed or failed (POLLNVAL: mbedtls_ssl_free ran).
        p = select.poll()
        for s in list(live):
            p.register(s, select.POLLIN)
            ev = p.ipoll(0)
            n = 0
            for _o, flags in ev:
                n = flags
            p.unregister(s)
            if n & 0x20:
                live.remove(s)
        return len(live)

    class SSLContext:
        def __init__(self, protocol):
            self._ctx = real.SSLContext(protocol)

        @property
        def verify_mode(self):
            return self._ctx.verify_mode

        @verify_mode.setter
        def verify_mode(self, v):
            self._ctx.verify_mode = v

        @property
        def verify_callback(self):
            return self._ctx.verify_callback

        @verify_callback.setter
        def verify_callback(self, v):
            self._ctx.verify_callback = v

        def load_cert_chain(self, *a):
            return self._ctx.load_cert_chain(*a)

        def load_verify_locations(self, *a, **kw):
            return self._ctx.load_verify_locations(*a, **kw)

        def set_ciphers(self, c):
            return self._ctx.set_ciphers(c)

        def get_ciphers(self):
            return self._ctx.get_ciphers()

        def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True,
                        server_hostname=None, client_id=None):
            if count() >= budget:
                import gc
                gc.collect()     # modtls_mbedtls.c retries mbedtls_ssl_setup after a GC pass
                if count() >= budget:
                    # MBEDTLS_ERR_SSL_ALLOC_FAILED from mbedtls_ssl_setup: mbedtls_raise_error
                    # turns it into OSError(MP_ENOMEM).
                    raise OSError(12)
            s = self._ctx.wrap_socket(sock, server_side=server_side,
                                      do_handshake_on_connect=do_handshake_on_connect,
                                      server_hostname=server_hostname)
            live.append(s)
            return s

    t.SSLContext = SSLContext
    t._live = live
    return t


def _mount_rom(path):
    # The image's ROMFS (host_tools/vboard/faithful.py, take_image): read first, so that its
    # one block lies at the bottom of the heap, and mounted at /rom as a real ROMFS partition
    # is; imports from it run in place.
    # Returns the heap it took, which gc.mem_alloc() then leaves out: a real board's ROM is
    # flash, not heap (gc.mem_free() needs no change: the cap grew by the same amount).
    import vfs
    import gc
    gc.collect()
    a0 = gc.mem_alloc()
    with open(path, 'rb') as f:
        vfs.mount(vfs.VfsRom(f.read()), '/rom')
    gc.collect()
    return gc.mem_alloc() - a0


def _install_gc(real, rom):
    g = _Module('gc', real)
    g.mem_alloc = lambda: real.mem_alloc() - rom
    return g


def install():
    env = os.getenv
    rom = env('VBOARD_ROMFS')
    if rom:
        try:
            rom = _mount_rom(rom)
        except OSError:
            rom = 0     # no image built (no package in the folder): a stock image's board
    run = env('VBOARD_RUN')
    chip = env('VBOARD_CHIP') or 'esp32'
    psram = env('VBOARD_PSRAM') == '1'
    import time as real_time
    import machine as real_machine
    import hashlib as real_hashlib
    import tls as real_tls
    clock = _Clock(run + '/clock', real_time)
    wdt = open(run + '/wdt', 'r+')
    mods = sys.modules
    board_sys = _Module('sys', sys)
    board_sys.platform = 'esp32'
    board_sys.modules = mods
    mods['sys'] = board_sys
    mods['time'] = _install_time(real_time)
    mods['machine'] = _install_machine(real_machine, chip, psram, clock, wdt)
    net = _install_network(env('VBOARD_NET') or 'LAN')
    mods['network'] = net
    try:
        with open(run + '/lwip.port') as f:
            net._lwip_port[0] = int(f.read())
    except (OSError, ValueError):
        pass            # no namespace: the cable is unplugged, DHCP never answers
    mods['hashlib'] = _install_hashlib(real_hashlib)
    mods['tls'] = _install_tls(real_tls, int(env('VBOARD_TLS_SESSIONS') or '1'))
    if rom:
        import gc as real_gc
        mods['gc'] = _install_gc(real_gc, rom)
    if 'ssl' in mods:
        del mods['ssl']      # micropython-lib's ssl imports tls: let it find the board's
    for name in ('time', 'machine', 'hashlib', 'sys'):
        mods['u' + name] = mods[name]     # the old u-names reach the same modules
