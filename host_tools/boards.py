"""Board profiles (boards/*.json): loading and validation with clear errors."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from host_tools import BOARDS, cliargs

CHIPS = {"unix", "esp32", "esp32s2", "esp32s3", "esp32c3", "esp32c6", "esp32c5", "esp32p4"}
# MicroPython image offsets per chip (platform.md): ESP32/S2 0x1000, S3/C3/C6 0x0, C5/P4 0x2000.
IMAGE_OFFSET = {"esp32": 0x1000, "esp32s2": 0x1000, "esp32s3": 0x0, "esp32c3": 0x0,
                "esp32c6": 0x0, "esp32c5": 0x2000, "esp32p4": 0x2000}
NET_KINDS = {"LAN", "WLAN", "HOST"}
LAN_PINS = ("mdc", "mdio")


class BoardError(ValueError):
    pass


@dataclass(frozen=True)
class Board:
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
    if net.get("kind") not in NET_KINDS:
        fail(f'network.kind must be one of {sorted(NET_KINDS)}, not {net.get("kind")!r}')
    if net["kind"] == "LAN":
        for pin in LAN_PINS:
            if not isinstance(net.get(pin), int):
                fail(f"LAN board needs integer network.{pin}")
        if "phy" not in net:
            fail("LAN board needs network.phy (e.g. LAN8720)")
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


def load(name_or_path: str | Path) -> Board:
    p = Path(name_or_path)
    if not p.suffix:
        p = BOARDS / f"{name_or_path}.json"
    if not p.exists():
        raise BoardError(f"no board profile {name_or_path!r}; known boards: {', '.join(names())}")
    try:
        data = cliargs.read_json(p, "board")
    except cliargs.InputError as e:
        raise BoardError(str(e)) from None
    validate(data, str(p))
    if data["name"] != p.stem:
        raise BoardError(f'{p}: "name" is {data["name"]!r} but the file is {p.stem!r}')
    return Board(name=data["name"], data=data, path=p)


def names() -> list[str]:
    return sorted(p.stem for p in BOARDS.glob("*.json"))


def all_boards() -> list[Board]:
    return [load(n) for n in names()]
