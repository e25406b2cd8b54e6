# The wall clock, as far as the agent knows it. An ESP32's RTC reads 2000-01-01 at every
# power-up; nothing the agent does needs the date (TLS pins are exact, see phone.link), but
# checks and logs want it, so the agent sets it from what it already trusts:
#   floor(t)   the timestamp of a verified trust list or signed config: the time is at least
#              that (a lower bound; the clock is moved forward to it, never back);
#   sntp       one query to the NTP servers of DHCP option 42 at boot (phone.sntp), never
#              below the floor;
#   sccp       DefineTimeDate from the call manager or SRST router the phone registered with
#              over its pinned TLS link (systemTime, UTC).
# now() is None while the time is unknown (a clock before 2020 was never set); utc() is the
# time for date checks: None unless the time is known, not merely a floor. An unknown clock
# makes a date check unknown, never "expired".
# Setting it: machine.RTC().datetime() where the port has it (ESP32: settimeofday, which Mbed
# TLS and time.time() then read); where it has none or it does not take (the unix port), an
# offset kept here that now()/utc() add.
import time

from micropython import const

_SET_AFTER = const(1577836800)   # 2020-01-01T00:00:00Z: a clock before it was never set
_EPOCH = 946684800 if time.gmtime(0)[0] == 2000 else 0   # ports counting from 2000

_offset = 0          # seconds added to the platform clock (where it cannot be set)
source = None        # what the time came from: None, 'platform', 'floor', 'sntp', 'sccp'
floor_s = 0          # the highest signed-file timestamp seen (Unix seconds)


def _platform():
    return int(time.time()) + _EPOCH


def now():
    """UTC seconds since 1970, or None while unknown."""
    global source
    t = _platform() + _offset
    if t < _SET_AFTER:
        return None
    if source is None:
        source = 'platform'          # a host clock or a battery-backed RTC: already set
    return t


def utc():
    """(Y, M, D, h, m, s) UTC for date checks, or None when the time is not known (unset, or
    only a floor: a lower bound proves nothing about "not yet valid")."""
    t = now()
    if t is None or source == 'floor':
        return None
    return tuple(time.gmtime(t - _EPOCH)[:6])


def _stamp(t):
    return '%04d-%02d-%02dT%02d:%02d:%02dZ' % tuple(time.gmtime(t - _EPOCH)[:6])


def _write(t):
    """Set the platform clock to Unix time t; keep an offset for what does not take."""
    global _offset
    try:
        import machine
        y, mo, d, h, mi, s, wd = time.gmtime(t - _EPOCH)[:7]
        machine.RTC().datetime((y, mo, d, wd, h, mi, s, 0))
    except Exception:                 # no machine.RTC (unix port), or it refused
        pass
    _offset = 0
    off = t - _platform()
    if off > 2 or off < -2:
        _offset = off


def set_time(t, src, events=None):
    """Set the clock to Unix time t from `src`; never below the floor. Emits clock_set when the
    time steps by 2 s or more or its source changes. Returns the time set, or None."""
    global source
    if t < _SET_AFTER:
        return None
    if t < floor_s:
        t = floor_s
    before = now()
    step = None if before is None else t - before
    _write(t)
    if events is not None and (src != source or step is None or step >= 2 or step <= -2):
        events.emit('clock_set', source=src, utc=_stamp(t), step_s=step, was=source)
    source = src
    return t


def floor(t, events=None):
    """A signed file's timestamp t: the time is at least t. Moves an unknown or earlier clock
    forward to it (source 'floor'); a later clock stays."""
    global floor_s
    if not t or t < _SET_AFTER:
        return
    if t > floor_s:
        floor_s = t
    cur = now()
    if cur is None or cur < t:
        set_time(t, 'floor', events)


def after_provisioning(prov, events):
    """Boot, once provisioning is unloaded (its heap would not have had room for this): the
    floor from the signed files in force (prov.signed_ts), then SNTP to the servers of DHCP
    option 42 (prov.ntp) in phone.sntp, dropped again: the agent never needs it."""
    floor(prov.signed_ts, events)
    if prov.ntp:
        from phone import drop, sntp
        sntp.query(prov.ntp, set_time, 800, events)
        sntp = None
        drop('sntp')


def define_time_date(body, events=None):
    """DefineTimeDate (body of message 0x0094): systemTime (UTC seconds) at offset 32, else
    the date fields (year, month, weekday, day, hour, minute, second) taken as UTC."""
    if len(body) < 36:
        return None
    f = [body[i] | body[i + 1] << 8 | body[i + 2] << 16 | body[i + 3] << 24
         for i in range(0, 36, 4)]
    t = f[8]
    if t < _SET_AFTER and 2020 <= f[0] < 2100 and 1 <= f[1] <= 12:
        t = _unix(f[0], f[1], f[3], f[4], f[5], f[6])
    return set_time(t, 'sccp', events)


def _unix(y, mo, d, h, mi, s):
    """Unix seconds of a UTC date (proleptic Gregorian; no time zone, unlike the unix port's
    mktime): days from 0000-03-01 by 400-year eras, less those to 1970-01-01."""
    if mo <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (mo - 3 if mo > 2 else mo + 9) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * 86400 + h * 3600 + mi * 60 + s

