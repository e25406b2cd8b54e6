"""`--board auto`: the ESP32 boards attached to this host, found with esptool's public API.

Every candidate serial port (by default the USB serial ports pyserial lists, as esptool's
own port scan does; `--board-ports GLOB` names others) is asked with
`esptool.cmds.detect_chip` (the ROM bootloader, entered by the usual DTR/RTS reset), then
hard reset so MicroPython boots again. A port where no ESP ROM answers is not a board. Each
found board becomes a serial --board whose profile comes from its board.json (or must be
named, PROFILE@PORT), and whose chip must match that profile.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass

from host_tools import boards

CONNECT_ATTEMPTS = 2


@dataclass(frozen=True)
class Found:
    port: str
    chip: str          # the profile spelling: esp32, esp32s3


class DetectError(RuntimeError):
    pass


def candidate_ports(patterns: list[str] | None = None) -> list[str]:
    if patterns:
        return sorted({p for pat in patterns for p in glob.glob(pat)})
    from serial.tools import list_ports
    return sorted(p.device for p in list_ports.comports() if p.vid is not None)


def probe(port: str) -> Found | None:
    """The chip on `port`, or None when no ESP ROM bootloader answers there."""
    import serial
    from esptool import cmds
    from esptool.util import FatalError

    from host_tools.flash import ROM_BAUD, chip_of, esptool_log
    with esptool_log(None, lambda *a: None):
        try:
            with cmds.detect_chip(port, ROM_BAUD, "default-reset",
                                  connect_attempts=CONNECT_ATTEMPTS) as esp:
                found = Found(port, chip_of(esp.CHIP_NAME))
                cmds.reset_chip(esp, "hard-reset")       # back to MicroPython
        except (FatalError, serial.SerialException, OSError):
            return None
    return found


def detect(patterns: list[str] | None = None) -> list[Found]:
    """Every attached ESP32 board; DetectError saying where it looked when there is none."""
    ports = candidate_ports(patterns)
    found = [f for f in map(probe, ports) if f is not None]
    if not found:
        where = (", ".join(ports) if ports else
                 "no serial port" + (f" matches {' '.join(patterns)}" if patterns
                                     else " with a USB bridge is listed by pyserial"))
        raise DetectError(f"--board auto: no ESP32 board answered (looked at: {where}). Plug "
                          f"one in (hold BOOT while pressing RESET if it has no auto-reset "
                          f"circuit), or name its port: --board /dev/ttyUSB0")
    known = {boards.load(n).chip for n in boards.names()}
    for f in found:
        if f.chip not in known:
            raise DetectError(f"--board auto: {f.port} is an {f.chip}, which no board profile "
                              f"is for (phonelab boards lists them)")
    return found
