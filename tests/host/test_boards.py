import json

import pytest

from host_tools import boards


def test_all_shipped_profiles_are_valid():
    names = boards.names()
    for required in ("virtual", "olimex-esp32-poe-iso-wrover", "wt32-eth01", "esp32-s3-devkitc-n8r8"):
        assert required in names
    for b in boards.all_boards():
        assert b.name
    assert boards.load("wt32-eth01").limited and not boards.load("wt32-eth01").psram
    assert boards.load("olimex-esp32-poe-iso-wrover").flash_offset == 0x1000
    assert boards.load("esp32-s3-devkitc-n8r8").flash_offset == 0x0


@pytest.mark.parametrize("patch,msg", [
    ({"chip": "esp8266"}, "unknown chip"),
    ({"flash_offset": "0x0"}, "wrong for esp32"),
    ({"network": {"kind": "LAN", "phy": "LAN8720", "mdc": 23}}, "network.mdio"),
    ({"network": {"kind": "CAN"}}, "network.kind"),
    ({"psram": False, "limited": False}, "without PSRAM"),
    ({"psram": "yes"}, '"psram" must be bool'),
    ({"led": 5}, '"led"'),
])
def test_bad_profiles_get_clear_errors(tmp_path, patch, msg):
    data = json.loads(boards.load("olimex-esp32-poe-iso-wrover").path.read_text())
    data.update(patch)
    p = tmp_path / "olimex-esp32-poe-iso-wrover.json"
    p.write_text(json.dumps(data))
    with pytest.raises(boards.BoardError, match=msg):
        boards.load(p)


def test_unknown_board_and_bad_json(tmp_path):
    with pytest.raises(boards.BoardError, match="known boards"):
        boards.load("no-such-board")
    p = tmp_path / "x.json"
    p.write_text("{\n  nope")
    with pytest.raises(boards.BoardError, match="line 2"):
        boards.load(p)
