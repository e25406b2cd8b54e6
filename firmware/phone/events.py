# One JSON line per event on the console: {"t": ms, "ev": "name", ...}.
# The host tools (host_tools/events.py) pick these lines out of ordinary REPL output.
# Every event the firmware emits, with its fields: docs/events.md (a host test keeps the two
# in step: a new event or field goes there too).
import json
import sys
import time


def why(e):
    """An exception in words, for an event's `reason` (phone.link.why knows links' too)."""
    s = str(e).strip()
    return '%s: %s' % (type(e).__name__, s) if s else type(e).__name__


class Events:
    """An event sink. Agents take one each, so several agents can share one console
    (a fleet) and tell their lines apart by `tag`."""

    def __init__(self, out=None, tag=None, t0=None):
        self.out = out if out is not None else sys.stdout
        self.tag = tag
        self.t0 = time.ticks_ms() if t0 is None else t0
        self.listeners = []
        self.count = 0

    def ms(self):
        return time.ticks_diff(time.ticks_ms(), self.t0)

    def emit(self, ev, **fields):
        t = self.ms()
        self.count += 1
        # "t" and "ev" first so a human scanning the console finds them at once. Written
        # piece by piece: a line joined first is a transient of a few hundred bytes, at moments
        # (a DHCP renewal beside a TLS session) when a board without PSRAM has none to spare.
        w = self.out.write
        w('{"t":%d,"ev":%s' % (t, json.dumps(ev)))
        if self.tag is not None:
            w(',"ph":' + json.dumps(self.tag))
        for k in fields:
            w(',%s:%s' % (json.dumps(k), _dump(fields[k])))
        w('}\n')
        for fn in self.listeners:
            fn(ev, t, fields)
        return t


def _dump(v):
    # bytes are not JSON: show them as hex so nothing is lost and no exception escapes.
    if isinstance(v, (bytes, bytearray, memoryview)):
        return json.dumps(bytes(v).hex())
    # MicroPython's json writes repr() for unknown objects without raising: allow only
    # JSON types through, and show anything else by its repr as a string.
    if v is None or isinstance(v, (bool, int, float, str)):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return '[' + ','.join(_dump(x) for x in v) + ']'
    if isinstance(v, dict):
        return '{' + ','.join(json.dumps(str(k)) + ':' + _dump(v[k]) for k in v) + '}'
    return json.dumps(repr(v))


default = Events()


def emit(ev, **fields):
    return default.emit(ev, **fields)
