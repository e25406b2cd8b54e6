from host_tools.events import Event, EventReader, Text, events_only, parse_line, parse_stream, render


def test_event_lines_are_picked_out_of_repl_output():
    stream = [
        b"MPY: soft reboot\r\n",
        b'{"t":12,"ev":"state","state":"BOOT","prev":null}\r\n>>> ',
        b'print(1)\r\n1\r\n{"t":40,"ev":"regis',
        b'tered","server":"cucm1","port":2443}\r\n',
    ]
    items = list(parse_stream(stream))
    evs = events_only(items)
    assert [e.ev for e in evs] == ["state", "registered"]
    assert evs[1]["server"] == "cucm1" and evs[1].t == 40
    texts = [i.line for i in items if isinstance(i, Text)]
    assert "MPY: soft reboot" in texts and "1" in texts


def test_not_events():
    for line in ['{"ev":"x"}', '{"t":"1","ev":"x"}', '{"t":1,"ev":2}', "{not json",
                 '{"t":true,"ev":"x"}', "[1,2]", ""]:
        assert parse_line(line) is None, line


def test_raw_repl_framing_and_phone_tag():
    e = parse_line('OK{"t":5,"ev":"boot","ph":"SEP0011","heap_free":1000}')
    assert e == Event(t=5, ev="boot", fields={"heap_free": 1000}, phone="SEP0011",
                      raw='{"t":5,"ev":"boot","ph":"SEP0011","heap_free":1000}')
    assert "SEP0011" in render(e) and "boot" in render(e)


def test_reader_keeps_partial_line_until_flush():
    r = EventReader()
    assert r.feed('{"t":1,"ev":"a"}\n{"t":2,') == [r.events[0]]
    assert r.flush() == [Text('{"t":2,')]  # incomplete JSON is text, not an event
    assert len(r.events) == 1
