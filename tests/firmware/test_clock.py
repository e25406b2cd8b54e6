import struct
import time

from fwtest import CaptureOut, eq
from phone import clock, x509
from phone.events import Events

Y2K = 946684800                  # 2000-01-01T00:00:00Z, what a board's RTC reads at power-up
SIGNED = 1767225600              # 2026-01-01T00:00:00Z, a trust list's timestamp
EPOCH = 946684800 if time.gmtime(0)[0] == 2000 else 0


def _power_up():
    """The platform clock of a board that was never set (time.time() cannot be moved here)."""
    base = [Y2K]
    clock._platform = lambda: base[0]
    return base


def _events():
    out = CaptureOut()
    return Events(out=out), out


def _gm(t):
    return tuple(time.gmtime(t - EPOCH)[:6])


def _dtd(system_time, fields=(2026, 3, 4, 5, 6, 7, 8)):
    y, mo, wd, d, h, mi, s = fields
    return struct.pack('<9I', y, mo, wd, d, h, mi, s, 0, system_time)


def test_unset_clock_is_unknown_not_expired():
    _power_up()
    eq(clock.now(), None)
    eq(clock.utc(), None)
    sast = x509.parse(open('fixtures/data/sast.der', 'rb').read())
    eq(sast.valid_at(clock.utc()), None, 'unknown clock')     # not False: unknown
    eq(sast.valid_at(_gm(Y2K)), False, 'a 2000 clock taken at its word')


def test_floor_moves_an_unknown_clock_forward_only():
    base = _power_up()
    ev, out = _events()
    clock.floor(SIGNED, ev)
    eq(clock.now(), SIGNED)
    eq(clock.source, 'floor')
    eq(clock.utc(), None, 'a floor is a lower bound: no date verdicts from it')
    assert '"ev":"clock_set"' in out.text() and '"source":"floor"' in out.text()
    assert '"utc":"2026-01-01T00:00:00Z"' in out.text(), out.text()
    base[0] += 30                                   # time passes on the platform clock
    eq(clock.now(), SIGNED + 30)
    clock.floor(SIGNED - 3600, ev)                  # an older file: the clock stays
    eq(clock.now(), SIGNED + 30)
    clock.floor(SIGNED + 3600, ev)                  # a newer one: moved forward
    eq(clock.now(), SIGNED + 3600)


def test_define_time_date_sets_the_time():
    _power_up()
    ev, out = _events()
    clock.floor(SIGNED, ev)
    t = SIGNED + 86400 * 40 + 123
    eq(clock.define_time_date(_dtd(t), ev), t)
    eq(clock.source, 'sccp')
    eq(clock.now(), t)
    eq(clock.utc(), _gm(t))
    assert '"source":"sccp"' in out.text() and '"was":"floor"' in out.text(), out.text()
    # no systemTime: the date fields (UTC)
    clock.define_time_date(_dtd(0, (2026, 3, 3, 4, 5, 6, 7)), ev)
    eq(clock.utc(), (2026, 3, 4, 5, 6, 7))


def test_define_time_date_never_below_the_floor_and_nonsense_ignored():
    _power_up()
    clock.floor(SIGNED)
    eq(clock.define_time_date(_dtd(SIGNED - 86400)), SIGNED)
    eq(clock.now(), SIGNED)
    eq(clock.define_time_date(_dtd(0, (1999, 1, 1, 1, 0, 0, 0))), None)   # no time in it
    eq(clock.define_time_date(b'\x00' * 8), None)                         # too short
    eq(clock.now(), SIGNED)


def test_a_set_platform_clock_is_known():
    clock._platform = lambda: SIGNED + 5          # a host clock, or a battery-backed RTC
    eq(clock.now(), SIGNED + 5)
    eq(clock.source, 'platform')
    eq(clock.utc(), _gm(SIGNED + 5))
    clock.floor(SIGNED)                           # older than the clock: nothing changes
    eq(clock.source, 'platform')


class _Machine:
    """machine with an RTC (as the ESP32 port has): datetime() moves the platform clock when
    `takes`, as settimeofday does on the board."""

    def __init__(self, base, takes):
        self.calls = []
        outer = self

        class RTC:
            def datetime(self, t):
                outer.calls.append(t)
                if takes:
                    base[0] = clock._unix(t[0], t[1], t[2], t[4], t[5], t[6])

        self.RTC = RTC


def test_the_rtc_is_set_where_there_is_one():
    import sys
    base = _power_up()
    m = _Machine(base, True)
    sys.modules['machine'] = m
    try:
        t = SIGNED + 3 * 86400 + 3723                  # Sunday 2026-01-04 01:02:03Z
        clock.set_time(t, 'sccp')
        eq(m.calls, [(2026, 1, 4, 6, 1, 2, 3, 0)])     # weekday 6: Sunday (Monday is 0)
        eq(clock._offset, 0, 'the RTC took it: no offset')
        eq(clock.now(), t)
        # an RTC that does not take (or none): the offset carries the time
        sys.modules['machine'] = _Machine(base, False)
        clock.set_time(t + 100, 'sccp')
        eq(clock.now(), t + 100)
        assert clock._offset != 0
    finally:
        del sys.modules['machine']


def test_dates_to_unix_seconds():
    for t in (0, 951782400, 1709164800, SIGNED, SIGNED + 86400 * 59 + 1, 4102444799):
        g = time.gmtime(t - EPOCH)
        eq(clock._unix(g[0], g[1], g[2], g[3], g[4], g[5]), t, str(g[:6]))


class _Prov:
    signed_ts = SIGNED
    ntp = ('127.0.0.1',)        # nothing answers NTP there


def test_after_provisioning_floor_then_sntp_module_dropped():
    import sys
    _power_up()
    e, out = _events()
    p = _Prov()
    p.ntp = ()
    clock.after_provisioning(p, e)
    eq((clock.now(), clock.source), (SIGNED, 'floor'))
    assert 'phone.sntp' not in sys.modules
    clock.after_provisioning(_Prov(), e)          # a silent server: bounded, an event, gone
    assert '"ev":"sntp_failed"' in out.text(), out.text()
    eq(clock.source, 'floor')
    assert 'phone.sntp' not in sys.modules
    import phone
    assert not hasattr(phone, 'sntp')
