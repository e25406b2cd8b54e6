# Agent timing settings: defaults here, overrides from settings.json on the board (or a dict).
# Every number that decides how fast the agent detects, fails over and re-homes is here.
# The checks of names, types and ranges are in phone.setcheck, loaded only to check.
import json

DEFAULTS = {
    # dead-peer detection on the primary (docs/failover.md)
    'probe_after_ms': 15000,     # server silent this long -> extra KeepAlive probe (0: off);
                                 # 4 messages/min, twice a real phone's (docs/failover.md)
    'ack_timeout_ms': 1000,      # a KeepAlive unanswered this long is missed
    'max_missed': 2,             # missed KeepAlives in a row that declare the peer dead
    'standby_keepalive_ms': 30000,  # standby keepalive until RegisterAck gives the secondary one
    'connect_timeout_ms': 5000,  # TCP + TLS + first KeepAlive exchange (standby, probe);
                                 # opened to register: TCP, what is left + register_timeout_ms
                                 # for TLS, Register and its answer
    'register_timeout_ms': 5000,
    # retries with exponential backoff (standby to SRST, primary probes in fallback, boot)
    'boot_race_ms': 1500,         # offline boot: the call manager's TCP silent this long -> SRST
    'retry_min_ms': 1000,
    'retry_max_ms': 30000,
    # None: use the config's connectionMonitorDuration (default 120 s)
    'monitor_s': None,
    # provisioning
    'dhcp_timeout_ms': 20000,
    'tftp_timeout_ms': 3000,
    'tftp_stored_wait_ms': 1500,  # a stored config: no TFTP answer this long, boot from the store
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


class Settings:
    def __init__(self, overrides=None):
        for k in DEFAULTS:
            setattr(self, k, DEFAULTS[k])
        if overrides is not None:
            self.update(overrides)

    def update(self, d):
        """Every value is checked (name, type, range) before any is applied: a bad
        settings.json raises ValueError and the board halts with that reason. The checks
        (phone.setcheck) are loaded for this and dropped after: the agent never needs them."""
        from phone import drop, setcheck
        try:
            setcheck.check_all(self, d, DEFAULTS)
        finally:
            setcheck = None
            drop('setcheck')
        for k in d:
            setattr(self, k, d[k])


def load(path='settings.json', board=None):
    """Settings from a JSON file over the board profile's `settings` (`board`: a board's own
    defaults, e.g. a faster probe where failover costs a TLS handshake); a missing file
    means those, a bad one raises ValueError naming the file (boot.py turns it into the
    'halted' event)."""
    try:
        s = Settings(board)
    except ValueError as e:
        raise ValueError('board profile settings: %s' % e)
    try:
        f = open(path)
    except OSError:
        return s
    try:
        try:
            d = json.load(f)
        except ValueError:
            raise ValueError('%s: not valid JSON' % path)
        try:
            s.update(d)
            return s
        except ValueError as e:
            raise ValueError('%s: %s' % (path, e))
    finally:
        f.close()
