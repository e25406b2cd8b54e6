# Settings.update checks every name, type and range before applying any (a bad settings.json
# halts the board with the reason instead of a register storm or a crash later).
from fwtest import eq
from phone import settings


def _refused(d, words):
    try:
        settings.Settings(d)
    except ValueError as e:
        for w in words:
            assert w in str(e), (w, str(e))
        return
    raise AssertionError('accepted %r' % (d,))


def test_good_overrides_apply():
    s = settings.Settings({'retry_min_ms': 500, 'retry_max_ms': 4000, 'monitor_s': 0,
                           'probe_after_ms': 0, 'load_name': 'X'})
    eq(s.retry_min_ms, 500)
    eq(s.monitor_s, 0)
    eq(settings.Settings({'monitor_s': None}).monitor_s, None)


def test_unknown_name_is_refused():
    _refused({'probe_after': 5}, ['unknown setting', 'probe_after'])


def test_wrong_types_are_refused():
    _refused({'retry_min_ms': '1000'}, ['retry_min_ms', 'integer'])
    _refused({'retry_min_ms': 1000.0}, ['retry_min_ms', 'integer'])
    _refused({'max_missed': True}, ['max_missed', 'integer'])
    _refused({'load_name': 5}, ['load_name', 'str'])
    _refused({'ack_timeout_ms': None}, ['ack_timeout_ms'])
    _refused([1, 2], ['JSON object'])


def test_ranges_are_refused():
    _refused({'retry_min_ms': 0}, ['retry_min_ms', 'range'])
    _refused({'ack_timeout_ms': -5}, ['ack_timeout_ms', 'range'])
    _refused({'connect_timeout_ms': 10 ** 9}, ['connect_timeout_ms', 'range'])
    _refused({'tftp_blksize': 8}, ['tftp_blksize', 'range'])
    _refused({'max_missed': 0}, ['max_missed', 'range'])
    _refused({'retry_min_ms': 5000, 'retry_max_ms': 1000}, ['retry_min_ms', 'retry_max_ms'])
    _refused({'load_name': ''}, ['load_name'])


def test_nothing_is_applied_when_one_value_is_bad():
    s = settings.Settings()
    try:
        s.update({'retry_min_ms': 700, 'max_missed': 'x'})
    except ValueError:
        pass
    eq(s.retry_min_ms, settings.DEFAULTS['retry_min_ms'])


def test_load_names_the_file(tmp_path):
    p = tmp_path + '/settings.json' if isinstance(tmp_path, str) else str(tmp_path) + '/settings.json'
    with open(p, 'w') as f:
        f.write('{"retry_min_ms": "fast"}')
    try:
        settings.load(p)
    except ValueError as e:
        assert p in str(e) and 'retry_min_ms' in str(e), str(e)
    else:
        raise AssertionError('accepted')
    with open(p, 'w') as f:
        f.write('{not json')
    try:
        settings.load(p)
    except ValueError as e:
        assert 'not valid JSON' in str(e), str(e)
    else:
        raise AssertionError('accepted')
    eq(settings.load(p + '.missing').retry_min_ms, settings.DEFAULTS['retry_min_ms'])


def test_a_board_profile_sets_its_own_defaults_under_settings_json(tmp_path):
    # boards/NAME.json "settings": the board's defaults; settings.json still decides
    p = (tmp_path if isinstance(tmp_path, str) else str(tmp_path)) + '/settings.json'
    s = settings.load(p, board={'probe_after_ms': 10000})      # no file yet
    eq(s.probe_after_ms, 10000)
    eq(s.ack_timeout_ms, settings.DEFAULTS['ack_timeout_ms'])
    with open(p, 'w') as f:
        f.write('{"probe_after_ms": 3000}')
    eq(settings.load(p, board={'probe_after_ms': 10000}).probe_after_ms, 3000)
    eq(settings.load(p).probe_after_ms, 3000)
    try:
        settings.load(p, board={'probe_after_ms': 'x'})
        raise AssertionError('bad board settings accepted')
    except ValueError as e:
        assert str(e).startswith('board profile settings: '), str(e)
