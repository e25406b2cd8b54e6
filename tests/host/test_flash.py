"""`phonelab flash` without a chip: esptool's real code talks to a simulated ROM bootloader on a
pty (tests/host/esprom_sim.py); image headers and offsets are checked against esptool's own
tables; the full CLI run ends on a virtual board that "boots" after the flash."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from esprom_sim import ChipThenMicroPython, PtyDevice, RomSim, make_image
from host_tools import boards, espimage, flash, pki

BIN = Path(sys.executable).parent
OLIMEX = "olimex-esp32-poe-iso-wrover"
S3 = "esp32-s3-devkitc-n8r8"


# -- image headers and offsets ---------------------------------------------------------------
def test_chip_ids_and_offsets_agree_with_esptool():
    from esptool.targets import CHIP_DEFS
    for chip, offset in boards.IMAGE_OFFSET.items():
        cls = CHIP_DEFS[chip]
        assert espimage.CHIP_ID_OF[chip] == cls.IMAGE_CHIP_ID, chip
        assert offset == cls.BOOTLOADER_FLASH_OFFSET, chip
    for b in boards.all_boards():
        if b.chip != "unix":
            assert b.flash_offset == CHIP_DEFS[b.chip].BOOTLOADER_FLASH_OFFSET, b.name


@pytest.mark.parametrize("chip", sorted(boards.IMAGE_OFFSET))
def test_header_parse_matches_esptools_loader(chip):
    from esptool.bin_image import LoadFirmwareImage
    offset = boards.IMAGE_OFFSET[chip]
    data = make_image(espimage.CHIP_ID_OF[chip], offset=offset)
    ours = espimage.parse(data, offset)
    theirs = LoadFirmwareImage(chip, data)
    assert ours.chip == chip and ours.chip_id == theirs.chip_id
    assert ours.segments == len(theirs.segments) and ours.entry == theirs.entrypoint
    assert ours.has_partition_table and not ours.is_app


def test_wrong_chip_app_image_and_junk_are_refused(tmp_path):
    img = tmp_path / "fw.bin"
    img.write_bytes(make_image(9))
    with pytest.raises(espimage.ImageError, match="built for esp32s3, but this board is an esp32"):
        espimage.check(img, "esp32")
    img.write_bytes(make_image(0, app=True))
    with pytest.raises(espimage.ImageError, match="application-only image"):
        espimage.check(img, "esp32")
    img.write_bytes(b"UF2\n" + bytes(600))
    with pytest.raises(espimage.ImageError, match="first byte is 0x55"):
        espimage.check(img, "esp32")
    img.write_bytes(b"\xe9\x01")
    with pytest.raises(espimage.ImageError, match="too short"):
        espimage.check(img, "esp32")
    with pytest.raises(espimage.ImageError, match="none.bin: no such file"):
        espimage.check(tmp_path / "none.bin", "esp32")
    img.write_bytes(make_image(0, partition_table=False))
    info = espimage.check(img, "esp32", 0x1000)   # accepted, with a note
    assert espimage.notes(info) and "partition table" in espimage.notes(info)[0]


# -- flashing through esptool against the simulated ROM ---------------------------------------
@pytest.fixture
def image(tmp_path: Path) -> Path:
    p = tmp_path / "ESP32_GENERIC-20260101-v1.29.0.bin"
    p.write_bytes(make_image(0))
    return p


def flashed(sim: RomSim, offset: int, data: bytes) -> bool:
    return bytes(sim.flash[offset:offset + len(data)]) == data


def test_flash_writes_the_image_at_the_profile_offset(image):
    sim = RomSim("esp32")
    with PtyDevice(sim.feed) as dev:
        r = flash.flash(dev.path, OLIMEX, image, show=False)
    assert flashed(sim, 0x1000, image.read_bytes())
    assert r.baud == 460800 and r.fallback is None and sim.bauds == [460800]
    assert sim.writes == [(0x1000, len(image.read_bytes()))] and sim.erased == 0
    assert any("Hash of data verified" in line for line in r.log)  # esptool's MD5 check ran


def test_erase_then_s3_at_offset_zero(tmp_path):
    data = make_image(9, offset=0)
    img = tmp_path / "s3.bin"
    img.write_bytes(data)
    sim = RomSim("esp32s3")
    sim.flash[0x300000:0x300004] = b"old!"   # a filesystem from before
    with PtyDevice(sim.feed) as dev:
        r = flash.flash(dev.path, S3, img, erase=True, baud=115200, show=False)
    assert r.erased and sim.erased == 1 and sim.flash[0x300000:0x300004] == b"\xff" * 4
    assert flashed(sim, 0x0, data) and sim.bauds == []  # 115200 asked: no baud change


def test_baud_falls_back_to_115200(image):
    sim = RomSim("esp32", fail_bauds={460800})
    with PtyDevice(sim.feed) as dev:
        r = flash.flash(dev.path, OLIMEX, image, show=False)
    assert r.baud == 115200 and r.fallback and sim.bauds == [460800]
    assert flashed(sim, 0x1000, image.read_bytes())


def test_detected_chip_must_match_the_profile(image):
    sim = RomSim("esp32s3")
    with PtyDevice(sim.feed) as dev:
        with pytest.raises(flash.FlashError, match="is an ESP32-S3, but profile "
                                                   "'olimex-esp32-poe-iso-wrover' is for an esp32"):
            flash.flash(dev.path, OLIMEX, image, show=False)
    assert sim.writes == [] and 0x10 not in sim.ops  # nothing written


def test_wrong_image_is_refused_before_the_port_is_touched(tmp_path):
    img = tmp_path / "s3.bin"
    img.write_bytes(make_image(9, offset=0))
    sim = RomSim("esp32")
    with PtyDevice(sim.feed) as dev:
        with pytest.raises(espimage.ImageError, match="built for esp32s3"):
            flash.flash(dev.path, OLIMEX, img, show=False)
    assert sim.syncs == 0


def test_missing_busy_and_virtual(image):
    with pytest.raises(flash.FlashError, match="no serial port /dev/ttyUSB-phonelab-none"):
        flash.flash("/dev/ttyUSB-phonelab-none", OLIMEX, image, show=False)
    sim = RomSim("esp32")
    with PtyDevice(sim.feed) as dev:
        holder = serial.Serial(dev.path, exclusive=True)   # e.g. a REPL left open
        try:
            with pytest.raises(flash.FlashError, match="is busy: another program has it open"):
                flash.flash(dev.path, OLIMEX, image, show=False)
        finally:
            holder.close()
    assert sim.syncs == 0
    with pytest.raises(flash.FlashError, match="virtual board: nothing to flash"):
        flash.flash("/dev/null", "virtual", image, show=False)


def test_silent_port_says_how_to_enter_the_bootloader(image):
    with PtyDevice(lambda data: b"") as dev:   # a board running its app, deaf to esptool
        t = time.monotonic()
        with pytest.raises(flash.FlashError, match="(?s)no ESP bootloader answered.*Hold BOOT"):
            flash.flash(dev.path, OLIMEX, image, baud=115200, show=False)
    assert time.monotonic() - t < 20


# -- the whole command: flash, "boot", deploy, identity -----------------------------------------
def test_phonelab_flash_then_deploys_and_puts_the_identity(tmp_path, image):
    ident = pki.make_identity("SEP00112233AABB", "PHONE", key_size=1024).write(tmp_path / "pki")
    sast = pki.make_identity("sast", "SAST", key_size=1024).write(tmp_path / "pki")
    board = ChipThenMicroPython(tmp_path / "board")
    try:
        r = subprocess.run([str(BIN / "phonelab"), "flash", "--board", OLIMEX, "--port",
                            board.dev.path, "--firmware", str(image), "--mac", "00:11:22:33:aa:bb",
                            "--cert", str(ident.cert_path), "--key", str(ident.key_path),
                            "--sast", str(sast.cert_path)],
                           capture_output=True, text=True, timeout=120)
    finally:
        board.close()
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert flashed(board.sim, 0x1000, image.read_bytes())
    folder = tmp_path / "board"
    assert (folder / "main.py").exists() and (folder / "phone").is_dir()
    prof = (folder / "board.json").read_text()
    assert '"name": "olimex-esp32-poe-iso-wrover"' in prof and '"mac": "00112233AABB"' in prof
    assert (folder / "state" / "phone.der").read_bytes() == ident.cert_der
    assert (folder / "state" / "phone.key").read_bytes() == ident.key_der
    assert (folder / "state" / "sast.der").read_bytes() == sast.cert_der
    assert "flashed" in out and "identity of SEP00112233AABB" in out
    for secret in (ident.key_pem.decode().splitlines()[1], ident.key_der.hex()[:40]):
        assert secret not in out
