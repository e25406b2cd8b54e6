# Agent timing settings: defaults here, overrides from settings.json on the board (or a dict).
# Every number that decides how fast the agent detects, fails over and re-homes is here.
try:
    import json
except ImportError:
    import ujson as json

DEFAULTS = {
    # dead-peer detection on the primary (docs/failover.md)
    'probe_after_ms': 5000,      # server silent this long -> extra KeepAlive probe (0: off)
    'ack_timeout_ms': 2000,      # a KeepAlive unanswered this long is missed
    'max_missed': 2,             # missed KeepAlives in a row that declare the peer dead
    'standby_keepalive_ms': 30000,  # standby keepalive until RegisterAck gives the secondary one
    'connect_timeout_ms': 5000,  # TCP + TLS + first KeepAlive exchange
    'register_timeout_ms': 5000,
    # retries with exponential backoff (standby to SRST, primary probes in fallback, boot)
    'retry_min_ms': 1000,
    'retry_max_ms': 30000,
    # None: use the config's connectionMonitorDuration (default 120 s)
    'monitor_s': None,
    # provisioning
    'dhcp_timeout_ms': 20000,
    'tftp_timeout_ms': 3000,
    'tftp_retries': 5,
    'tftp_blksize': 1428,
    'tftp_windowsize': 4,
    'max_file_bytes': 262144,
    # provisioning bounded in time (docs/network.md "Bounds in time"; docs/decisions.md)
    'tftp_min_blksize': 512,     # an OACK blksize below this is refused (RFC 1350's block)
    'tftp_silent_retries': 2,    # RRQ resends to a silent server when another follows it
    'tftp_max_servers': 4,       # servers tried, the first in DHCP order (0: all)
    'tftp_min_rate': 2048,       # bytes/s: a file's deadline is its size at this rate plus
                                 # one full retry budget (0: no per-file deadline)
    'provision_deadline_ms': 120000,  # a pass past this uses the stored state (0: none)
    'load_name': 'SCCP11.9-4-2-1S',
}


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
}


def limits(k):
    return LIMITS.get(k) or (_MS if k.endswith('_ms') else _COUNT)


def check(k, v):
    """Raise ValueError naming the setting when `v` is not a legal value for `k`."""
    if k not in DEFAULTS:
        raise ValueError('unknown setting %r' % k)
    d = DEFAULTS[k]
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


class Settings:
    def __init__(self, overrides=None):
        for k in DEFAULTS:
            setattr(self, k, DEFAULTS[k])
        if overrides is not None:
            self.update(overrides)

    def update(self, d):
        """Every value is checked (name, type, range) before any is applied: a bad
        settings.json raises ValueError and the board halts with that reason."""
        if not isinstance(d, dict):
            raise ValueError('settings must be a JSON object, not %s' % type(d).__name__)
        for k in d:
            check(k, d[k])
        lo = d.get('retry_min_ms', self.retry_min_ms)
        hi = d.get('retry_max_ms', self.retry_max_ms)
        if lo > hi:
            raise ValueError('setting retry_min_ms=%d is above retry_max_ms=%d' % (lo, hi))
        for k in d:
            setattr(self, k, d[k])


def load(path='settings.json'):
    """Settings from a JSON file; a missing file means defaults, a bad one raises ValueError
    naming the file (boot.py turns it into the 'halted' event)."""
    try:
        f = open(path)
    except OSError:
        return Settings()
    try:
        try:
            d = json.load(f)
        except ValueError:
            raise ValueError('%s: not valid JSON' % path)
        try:
            return Settings(d)
        except ValueError as e:
            raise ValueError('%s: %s' % (path, e))
    finally:
        f.close()
