import json

from fwtest import raises, eq
from phone import platform


def _write(tmp, obj):
    p = tmp + '/board.json'
    with open(p, 'w') as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def test_profile_loads_and_names_the_device(tmp_path):
    p = _write(tmp_path, {'name': 'virtual', 'chip': 'unix', 'network': {'kind': 'HOST'},
                          'mac': '00:11:22:aa:bb:cc'})
    prof = platform.load_profile(p)
    plat = platform.Platform(prof)
    eq(plat.device_name(), 'SEP001122AABBCC')
    assert plat.network_up() is None  # HOST: the agent runs DHCP itself


def test_bad_profiles_raise_profile_error(tmp_path):
    with raises(platform.ProfileError, match='no board profile'):
        platform.load_profile(tmp_path + '/missing.json')
    with raises(platform.ProfileError, match='not JSON'):
        platform.load_profile(_write(tmp_path, '{oops'))
    with raises(platform.ProfileError, match='network.kind'):
        platform.load_profile(_write(tmp_path, {'name': 'x', 'chip': 'esp32', 'network': {'kind': 'X'}}))
    with raises(platform.ProfileError, match='lacks "chip"'):
        platform.load_profile(_write(tmp_path, {'name': 'x', 'network': {'kind': 'LAN'}}))


def test_parse_mac_forms():
    for text in ('00:11:22:aa:bb:cc', '0011.22aa.bbcc', '001122AABBCC'):
        eq(platform.parse_mac(text), b'\x00\x11\x22\xaa\xbb\xcc')
    with raises(ValueError, match='12 hex'):
        platform.parse_mac('0011')
