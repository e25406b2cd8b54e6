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
    # The WROVER module's PSRAM takes GPIO16 (CS) and GPIO17 (clock): the profile's clock pin
    # before the fix was GPIO17.
    ({"network": {"kind": "LAN", "phy": "LAN8720", "phy_addr": 0, "mdc": 23, "mdio": 18,
                  "power": 12, "ref_clk": 17, "ref_clk_mode": "out"}}, "GPIO17.*PSRAM clock"),
    ({"led": {"pin": 16, "kind": "plain"}}, "led.pin is GPIO16.*PSRAM CS"),
    ({"network": {"kind": "LAN", "phy": "LAN8720", "mdc": 23, "mdio": 18, "ref_clk": 5,
                  "ref_clk_mode": "out"}}, "RMII reference clock out on GPIO0, GPIO16, GPIO17"),
    ({"network": {"kind": "LAN", "phy": "LAN8720", "mdc": 23, "mdio": 18, "ref_clk": 17,
                  "ref_clk_mode": "in"}}, "RMII reference clock in on GPIO0 only"),
    ({"network": {"kind": "LAN", "phy": "LAN8720", "mdc": 23, "mdio": 18, "ref_clk": 0,
                  "ref_clk_mode": "sideways"}}, "ref_clk_mode"),
    ({"network": {"kind": "LAN", "phy": "LAN8720", "mdc": 23, "mdio": 18, "phy_addr": 32}},
     "phy_addr"),
    ({"heap": 110}, '"heap" must be a size'),
    ({"heap": "lots"}, '"heap": bad size'),
    ({"tls_sessions": 0}, '"tls_sessions"'),
    ({"settings": [1]}, '"settings" must be an object'),
    ({"settings": {"probe_after": 5}}, "settings: .*unknown setting.*known: "),
    ({"settings": {"probe_after_ms": "10 s"}}, "settings: .*probe_after_ms.*integer"),
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


def test_olimex_wrover_clock_is_gpio0_out():
    # Olimex's configuration for the ESP32-POE-ISO WROVER (docs/boards.md, "Sources"): the
    # 50 MHz clock is output on GPIO0, since GPIO16/17 belong to the PSRAM.
    net = boards.load("olimex-esp32-poe-iso-wrover").data["network"]
    assert (net["ref_clk"], net["ref_clk_mode"]) == (0, "out")
    assert (net["phy_addr"], net["mdc"], net["mdio"], net["power"]) == (0, 23, 18, 12)
    wt = boards.load("wt32-eth01").data["network"]
    assert (wt["phy_addr"], wt["mdc"], wt["mdio"], wt["power"], wt["ref_clk"], wt["ref_clk_mode"]) \
        == (1, 23, 18, 16, 0, "in")


def test_other_profile_keys_are_kept(tmp_path):
    # "heap" (the MicroPython heap the board leaves) and "tls_sessions" are read by the
    # faithful virtual board; a profile carrying them loads.
    data = json.loads(boards.load("wt32-eth01").path.read_text())
    data.update({"heap": "112K", "tls_sessions": 1})
    p = tmp_path / "wt32-eth01.json"
    p.write_text(json.dumps(data))
    assert boards.load(p).data["heap"] == "112K"


def test_s3_octal_psram_pins_are_refused(tmp_path):
    data = json.loads(boards.load("esp32-s3-devkitc-n8r8").path.read_text())
    data["led"] = {"pin": 36, "kind": "neopixel"}
    p = tmp_path / "esp32-s3-devkitc-n8r8.json"
    p.write_text(json.dumps(data))
    with pytest.raises(boards.BoardError, match="GPIO36.*octal PSRAM"):
        boards.load(p)
