import json

from fwtest import CaptureOut, eq
from phone.events import Events


def test_event_line_is_json_with_t_and_ev_first():
    out = CaptureOut()
    ev = Events(out=out)
    ev.emit('registered', server='cucm1', port=2443)
    line = out.lines()[0]
    assert line.startswith('{"t":'), line
    obj = json.loads(line)
    eq(obj['ev'], 'registered')
    eq(obj['server'], 'cucm1')
    eq(obj['port'], 2443)
    assert isinstance(obj['t'], int)


def test_bytes_and_odd_values_never_raise():
    out = CaptureOut()
    ev = Events(out=out, tag='SEP001122334455')
    ev.emit('raw', data=b'\x00\xff', obj=object(), none=None, lst=[1, 'a'])
    obj = json.loads(out.lines()[0])
    eq(obj['data'], '00ff')
    eq(obj['ph'], 'SEP001122334455')
    assert obj['none'] is None
    assert 'object' in obj['obj']


def test_listeners_see_every_event():
    seen = []
    ev = Events(out=CaptureOut())
    ev.listeners.append(lambda name, t, f: seen.append((name, f)))
    ev.emit('a', x=1)
    ev.emit('b')
    eq([s[0] for s in seen], ['a', 'b'])
    eq(seen[0][1]['x'], 1)
    eq(ev.count, 2)
