# The checks of the agent's settings (phone/settings.py): names, types and ranges. Loaded by
# Settings.update() and dropped after it, so the running agent does not carry them; the host
# (host_tools.scenario.spec) checks a scenario's [settings] with the same code. It imports
# nothing of phone.settings (which loads it): the defaults are handed in.

# Bounds (lo, hi) of the integer settings. A name not listed: names ending in _ms take _MS
# (0 would be a storm or an instant timeout), other numbers _COUNT. Strings are 1..64 chars.
_MS = (100, 3600000)
_COUNT = (0, 1000000)
LIMITS = {
    'probe_after_ms': (0, 3600000),     # 0: no extra probe
    'max_missed': (1, 100),
    'monitor_s': (0, 86400),
    'tftp_retries': (0, 100),
    'tftp_blksize': (512, 65464),       # RFC 2348
    'tftp_windowsize': (1, 64),         # RFC 7440
    'max_file_bytes': (1024, 1048576),
    'tftp_min_blksize': (8, 65464),
    'provision_deadline_ms': (0, 3600000),  # 0: none
    'tftp_stored_wait_ms': (0, 3600000),    # 0: wait out every retry, as with nothing stored
}


def limits(k):
    return LIMITS.get(k) or (_MS if k.endswith('_ms') else _COUNT)


def check(k, v, defaults):
    """Raise ValueError naming the setting when `v` is not a legal value for `k`
    (`defaults`: phone.settings.DEFAULTS, whose values give the types)."""
    if k not in defaults:
        raise ValueError('unknown setting %r' % k)
    d = defaults[k]
    if d is None or type(d) is int:
        if v is None and d is None:
            return
        if type(v) is not int:
            raise ValueError('setting %s must be an integer, not %r' % (k, v))
        lo, hi = limits(k)
        if v < lo or v > hi:
            raise ValueError('setting %s=%d is out of range %d..%d' % (k, v, lo, hi))
    elif type(d) is float:
        if type(v) is not float and type(v) is not int:
            raise ValueError('setting %s must be a number, not %r' % (k, v))
    elif type(v) is not type(d):
        raise ValueError('setting %s must be %s, not %r' % (k, type(d).__name__, v))
    elif type(d) is str and not 0 < len(v) <= 64:
        raise ValueError('setting %s must be 1..64 characters' % k)


def check_all(s, d, defaults):
    """Check the overrides `d` for the Settings `s` (every one, then retry_min_ms against
    retry_max_ms): ValueError naming the first bad one."""
    if not isinstance(d, dict):
        raise ValueError('settings must be a JSON object, not %s' % type(d).__name__)
    for k in d:
        check(k, d[k], defaults)
    lo = d.get('retry_min_ms', s.retry_min_ms)
    hi = d.get('retry_max_ms', s.retry_max_ms)
    if lo > hi:
        raise ValueError('setting retry_min_ms=%d is above retry_max_ms=%d' % (lo, hi))
