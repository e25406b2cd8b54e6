"""ESP firmware image headers: which chip an image is for, before anything touches a board.

A MicroPython `firmware.bin` for an ESP32-family chip is a merged flash image that starts with
the second-stage bootloader, and it is written at the chip's bootloader offset (0x1000 on ESP32
and S2, 0x0 on S3/C3/C6, 0x2000 on C5/P4). Every ESP-IDF image (bootloader or application)
starts with the same 24-byte header (ESP-IDF `esp_image_header_t`):

    0  magic 0xE9          1  segment count     2  SPI mode     3  SPI speed/size
    4  entry address (u32) 8  WP pin            9  SPI pin drive (3 bytes)
    12 chip id (u16)       14 min chip rev (u8) 15 min rev full (u16) 17 max rev full (u16)
    19 reserved (4)        23 hash appended (u8)

followed by segments, each an 8-byte header (load address, length) and its data. An
application image (what goes at 0x10000) carries its `esp_app_desc_t` (magic 0xABCD5432) at the
start of its first segment; a full image does not, which is how a misplaced app is caught.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from host_tools.boards import IMAGE_OFFSET
from host_tools.readers import InputError, read_bytes

ESP_IMAGE_MAGIC = 0xE9
APP_DESC_MAGIC = 0xABCD5432
HEADER = struct.Struct("<BBBBIB3sHBHH4sB")
SEGMENT = struct.Struct("<II")
PARTITION_TABLE_OFFSET = 0x8000  # default ESP-IDF layout; entries start with 0xAA 0x50
PARTITION_MAGIC = b"\xaa\x50"
MAX_SEGMENTS = 16

# esp_chip_id_t (ESP-IDF components/bootloader_support/include/esp_app_format.h)
CHIP_IDS: dict[int, str] = {
    0x0000: "esp32", 0x0002: "esp32s2", 0x0005: "esp32c3", 0x0009: "esp32s3",
    0x000C: "esp32c2", 0x000D: "esp32c6", 0x0010: "esp32h2", 0x0012: "esp32p4",
    0x0014: "esp32c61", 0x0017: "esp32c5", 0x0019: "esp32h21", 0x001C: "esp32h4",
}
CHIP_ID_OF = {name: cid for cid, name in CHIP_IDS.items()}


class ImageError(ValueError):
    pass


@dataclass(frozen=True)
class ImageInfo:
    chip_id: int
    segments: int
    entry: int
    min_rev_full: int
    max_rev_full: int
    is_app: bool          # an application image (belongs at 0x10000), not a full flash image
    has_partition_table: bool | None  # None: the file is too short to tell
    size: int

    @property
    def chip(self) -> str:
        return CHIP_IDS.get(self.chip_id, f"unknown chip id {self.chip_id}")


def parse(data: bytes, offset: int | None = None) -> ImageInfo:
    """Read the image header at the start of `data`; ImageError when it is not an ESP image.
    `offset` (where the file goes in flash) lets the partition table be looked for."""
    if len(data) < HEADER.size:
        raise ImageError(f"{len(data)} bytes is too short for an ESP image (header: {HEADER.size})")
    (magic, nseg, _mode, _speed_size, entry, _wp, _drv, chip_id, _min_rev, min_full, max_full,
     _res, _hash) = HEADER.unpack_from(data)
    if magic != ESP_IMAGE_MAGIC:
        raise ImageError(f"not an ESP firmware image: first byte is {magic:#04x}, not 0xe9 "
                         f"(is this a .uf2, .elf, .hex or a zip? flash the .bin)")
    if not 0 < nseg <= MAX_SEGMENTS:
        raise ImageError(f"implausible image header: {nseg} segments")
    is_app = False
    pos = HEADER.size
    if len(data) >= pos + SEGMENT.size + 4:
        _load, length = SEGMENT.unpack_from(data, pos)
        if length >= 4:
            (first_word,) = struct.unpack_from("<I", data, pos + SEGMENT.size)
            is_app = first_word == APP_DESC_MAGIC
    has_pt: bool | None = None
    if offset is not None and offset <= PARTITION_TABLE_OFFSET:
        at = PARTITION_TABLE_OFFSET - offset
        if len(data) >= at + 2:
            has_pt = data[at:at + 2] == PARTITION_MAGIC
    return ImageInfo(chip_id=chip_id, segments=nseg, entry=entry, min_rev_full=min_full,
                     max_rev_full=max_full, is_app=is_app, has_partition_table=has_pt,
                     size=len(data))


def check(path: str | Path, chip: str, offset: int | None = None) -> ImageInfo:
    """The image at `path` must be a full flash image for `chip`; ImageError says why not.
    The chip id decides (a wrong-chip image never boots); see notes() for softer doubts."""
    p = Path(path)
    try:
        data = read_bytes(p, "firmware")
    except InputError as e:
        raise ImageError(str(e)) from None
    if offset is None:
        offset = IMAGE_OFFSET.get(chip)
    try:
        info = parse(data, offset)
    except ImageError as e:
        raise ImageError(f"{p.name}: {e}") from None
    if info.chip_id != CHIP_ID_OF.get(chip):
        raise ImageError(f"{p.name} is built for {info.chip}, but this board is an {chip}: "
                         f"download the MicroPython image for {chip}")
    if info.is_app:
        raise ImageError(f"{p.name} is an application-only image (it belongs at 0x10000 after a "
                         f"bootloader); flash the full MicroPython firmware .bin for {chip}")
    return info


def notes(info: ImageInfo) -> list[str]:
    """Doubts that do not justify refusing the image (custom layouts exist)."""
    out = []
    if info.has_partition_table is False:
        out.append(f"no partition table at flash offset {PARTITION_TABLE_OFFSET:#x} in the "
                   f"image: is this a full MicroPython firmware .bin?")
    return out
