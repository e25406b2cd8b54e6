"""Board profiles (boards/*.json): loading and validation with clear errors."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from host_tools import BOARDS, readers

CHIPS = {"unix", "esp32", "esp32s2", "esp32s3", "esp32c3", "esp32c6", "esp32c5", "esp32p4"}
# MicroPython image offsets per chip (docs/boards.md): ESP32/S2 0x1000, S3/C3/C6 0x0, C5/P4 0x2000.
IMAGE_OFFSET = {"esp32": 0x1000, "esp32s2": 0x1000, "esp32s3": 0x0, "esp32c3": 0x0,
                "esp32c6": 0x0, "esp32c5": 0x2000, "esp32p4": 0x2000}
NET_KINDS = {"LAN", "WLAN", "HOST"}
LAN_PINS = ("mdc", "mdio")
# GPIOs a module with PSRAM gives to the PSRAM (docs/boards.md, "Sources"): ESP32-WROVER
# modules use GPIO16 (PSRAM CS) and GPIO17 (PSRAM clock) (Espressif, ESP-WROVER-KIT guide and
# ESP32-WROVER-E datasheet); ESP32-S3 modules with octal PSRAM (N8R8, WROOM-2) use GPIO35-37
# (Espressif, ESP32-S3-DevKitC-1 user guide). A profile that drives one of them is refused.
PSRAM_PINS = {"esp32": {16: "PSRAM CS", 17: "PSRAM clock"},
              "esp32s3": {35: "octal PSRAM", 36: "octal PSRAM", 37: "octal PSRAM"}}
# The ESP32 EMAC's 50 MHz RMII reference clock (ESP-IDF emac_rmii_clock_gpio_t): input only on
# GPIO0; output on GPIO0 (APLL), GPIO16 or GPIO17 (inverted).
ESP32_REF_CLK = {"in": {0}, "out": {0, 16, 17}}


class BoardError(ValueError):
    pass


@dataclass(frozen=True)
class BoardProfile:
    name: str
    data: dict
    path: Path

    @property
    def chip(self) -> str:
        return self.data["chip"]

    @property
    def flash_offset(self) -> int | None:
        off = self.data.get("flash_offset")
        return None if off is None else int(off, 0)

    @property
    def psram(self) -> bool:
        return bool(self.data["psram"])

    @property
    def limited(self) -> bool:
        return bool(self.data.get("limited", False))

    @property
    def agent_in_image(self) -> bool:
        """The agent must run from the board's image (frozen in, docs/firmware-image.md)."""
        return bool(self.data.get("agent_in_image", False))

    @property
    def network_kind(self) -> str:
        return self.data["network"]["kind"]


def validate(data: object, where: str) -> None:
    def fail(msg: str) -> None:
        raise BoardError(f"{where}: {msg}")

    if not isinstance(data, dict):
        fail("a board profile is a JSON object")
    assert isinstance(data, dict)
    for key, typ in (("name", str), ("chip", str), ("network", dict), ("psram", bool)):
        if key not in data:
            fail(f'missing "{key}"')
        if not isinstance(data[key], typ):
            fail(f'"{key}" must be {typ.__name__}, not {type(data[key]).__name__}')
    if data["chip"] not in CHIPS:
        fail(f'unknown chip "{data["chip"]}" (known: {", ".join(sorted(CHIPS))})')
    net = data["network"]
    if "psram" in data and not isinstance(data.get("limited", False), bool):
        fail('"limited" must be true or false')
    if not isinstance(data.get("agent_in_image", False), bool):
        fail('"agent_in_image" must be true or false')
    if "settings" in data:
        _check_settings(data["settings"], fail)
    if net.get("kind") not in NET_KINDS:
        fail(f'network.kind must be one of {sorted(NET_KINDS)}, not {net.get("kind")!r}')
    if net["kind"] == "LAN":
        for pin in LAN_PINS:
            if not isinstance(net.get(pin), int):
                fail(f"LAN board needs integer network.{pin}")
        if "phy" not in net:
            fail("LAN board needs network.phy (e.g. LAN8720)")
        _check_lan(net, data["chip"], fail)
    if data["chip"] != "unix":
        off = data.get("flash_offset")
        if not isinstance(off, str):
            fail('"flash_offset" must be a string like "0x1000"')
        try:
            value = int(off, 0)
        except ValueError:
            fail(f'"flash_offset" {off!r} is not a number')
        if value != IMAGE_OFFSET[data["chip"]]:
            fail(f'flash_offset {off} is wrong for {data["chip"]} (MicroPython images go at '
                 f'{IMAGE_OFFSET[data["chip"]]:#x})')
    led = data.get("led")
    if led is not None and not (isinstance(led, dict) and isinstance(led.get("pin"), int)):
        fail('"led" must be null or {"pin": N, "kind": "plain"|"neopixel"}')
    if not data["psram"] and not data.get("limited"):
        fail('a board without PSRAM cannot hold two TLS links: set "limited": true')
    if "heap" in data:
        # the MicroPython heap the board leaves the agent (the faithful virtual board's -X heapsize)
        from host_tools.micropython import parse_size
        h = data["heap"]
        if not isinstance(h, str):
            fail(f'"heap" must be a size such as "112K", not {h!r}')
        try:
            parse_size(h)
        except ValueError as e:
            fail(f'"heap": {e}')
    sessions = data.get("tls_sessions")
    if sessions is not None and (not isinstance(sessions, int) or isinstance(sessions, bool)
                                 or sessions < 1):
        fail(f'"tls_sessions" must be a whole number of sessions >= 1, not {sessions!r}')
    if data["psram"]:
        reserved = PSRAM_PINS.get(data["chip"], {})
        for what, pin in _pins(data):
            if pin in reserved:
                fail(f"{what} is GPIO{pin}, which the {data['chip']} module with PSRAM uses "
                     f"for the {reserved[pin]} (see docs/boards.md)")


def _check_lan(net: dict, chip: str, fail) -> None:
    addr = net.get("phy_addr", 0)
    if not isinstance(addr, int) or isinstance(addr, bool) or not 0 <= addr <= 31:
        fail(f"network.phy_addr must be an MDIO address 0..31, not {addr!r}")
    for key in ("power", "ref_clk"):
        v = net.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            fail(f"network.{key} must be a GPIO number or null, not {v!r}")
    ref = net.get("ref_clk")
    mode = net.get("ref_clk_mode")
    if ref is None:
        if mode is not None:
            fail("network.ref_clk_mode without network.ref_clk")
        return
    if mode not in ("in", "out"):
        fail(f'network.ref_clk_mode must be "in" or "out", not {mode!r}')
    if chip == "esp32" and ref not in ESP32_REF_CLK[mode]:
        ok = ", ".join(f"GPIO{p}" for p in sorted(ESP32_REF_CLK[mode]))
        fail(f"the ESP32 takes the RMII reference clock {mode} on {ok} only, not GPIO{ref}")


def _pins(data: dict) -> list[tuple[str, int]]:
    """(what, GPIO) of every pin the profile drives."""
    out = []
    net = data.get("network") or {}
    for key in ("mdc", "mdio", "power", "ref_clk"):
        if isinstance(net.get(key), int):
            out.append((f"network.{key}", net[key]))
    led = data.get("led")
    if isinstance(led, dict) and isinstance(led.get("pin"), int):
        out.append(("led.pin", led["pin"]))
    return out


def load(name_or_path: str | Path) -> BoardProfile:
    p = Path(name_or_path)
    if not p.suffix:
        p = BOARDS / f"{name_or_path}.json"
    if not p.exists():
        raise BoardError(f"no board profile {name_or_path!r}; known boards: {', '.join(names())}")
    try:
        data = readers.read_json(p, "board")
    except readers.InputError as e:
        raise BoardError(str(e)) from None
    validate(data, str(p))
    if data["name"] != p.stem:
        raise BoardError(f'{p}: "name" is {data["name"]!r} but the file is {p.stem!r}')
    return BoardProfile(name=data["name"], data=data, path=p)


def names() -> list[str]:
    return sorted(p.stem for p in BOARDS.glob("*.json"))


def all_boards() -> list[BoardProfile]:
    return [load(n) for n in names()]


def _check_settings(settings: object, fail: Callable[[str], None]) -> None:
    """A profile's `settings` (the board's own agent defaults): the firmware's own check."""
    import host_tools.fw  # noqa: F401 - puts firmware/ on sys.path
    from phone import setcheck  # type: ignore[import-not-found]
    from phone.settings import DEFAULTS  # type: ignore[import-not-found]
    if not isinstance(settings, dict):
        fail('"settings" must be an object of agent settings')
    assert isinstance(settings, dict)
    for k, v in settings.items():
        try:
            setcheck.check(k, v, DEFAULTS)
        except ValueError as e:
            known = "" if k in DEFAULTS else f" (known: {', '.join(sorted(DEFAULTS))})"
            fail(f"settings: {e}{known}")
