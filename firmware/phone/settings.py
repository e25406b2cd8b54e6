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
    'load_name': 'SCCP11.9-4-2-1S',
}


class Settings:
    def __init__(self, overrides=None):
        for k in DEFAULTS:
            setattr(self, k, DEFAULTS[k])
        if overrides:
            self.update(overrides)

    def update(self, d):
        for k in d:
            if k not in DEFAULTS:
                raise ValueError('unknown setting %r' % k)
            setattr(self, k, d[k])


def load(path='settings.json'):
    """Settings from a JSON file; a missing file means defaults, a bad one raises."""
    try:
        with open(path) as f:
            return Settings(json.load(f))
    except OSError:
        return Settings()
