"""`phonelab flash`: MicroPython onto an ESP32 board, then the agent and the phone's identity.

1. The image is checked first, before the port is touched: its header must name the chip of
   the board profile (host_tools.espimage), so a wrong download never reaches the board.
2. esptool's Python API (esptool.cmds, never a shell string) connects at 115200 (the ROM's
   rate), and the chip it detects must be the profile's chip. The stub flasher then switches to
   --baud (default 460800); if that fails (long cables, cheap USB bridges) the whole write is
   done again at 115200. Progress is a rich bar; esptool's own chatter shows with --verbose.
3. The board is reset, MicroPython's first boot makes its filesystem, then
   host_tools.deploy copies the agent and the profile, and host_tools.identity the identity
   (phone certificate and key, SAST pin, MAC, WLAN credentials) when those options are given.
"""
from __future__ import annotations

import errno
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from host_tools import boards, espimage

ROM_BAUD = 115200         # every ESP ROM bootloader starts at this rate
DEFAULT_BAUD = 460800
CONNECT_ATTEMPTS = 3
BOOT_WAIT_S = 30.0        # MicroPython's first boot formats the filesystem: give it time
BEFORE = ("default-reset", "usb-reset", "no-reset")


class FlashError(RuntimeError):
    pass


def chip_of(esptool_name: str) -> str:
    """esptool's CHIP_NAME ('ESP32-S3') -> the profile spelling ('esp32s3')."""
    return esptool_name.lower().replace("-", "")


# -- the serial port ------------------------------------------------------------------------
def check_port(port: str) -> None:
    """Fail early, with advice, when the port is missing, busy or not ours to open."""
    import serial
    if "://" not in port and not os.path.exists(port):
        hint = ("is the board plugged in and powered? look at `ls /dev/ttyUSB* /dev/ttyACM*` "
                "(ESP32-S3 boards with native USB show up as /dev/ttyACM0)")
        raise FlashError(f"no serial port {port}: {hint}")
    s = serial.serial_for_url(port, do_not_open=True, exclusive=True)
    # Both lines released: an auto-reset circuit sees no edge, the chip keeps running.
    s.dtr = False
    s.rts = False
    try:
        s.open()
    except serial.SerialException as e:
        raise FlashError(_port_problem(port, e)) from None
    except OSError as e:  # some URL handlers raise plain socket errors
        raise FlashError(f"cannot open {port}: {e.strerror or e}") from None
    finally:
        s.close()


def _port_problem(port: str, e: BaseException) -> str:
    text = str(e)
    code = getattr(e, "errno", None)
    if "exclusively lock" in text or code in (errno.EBUSY, errno.EAGAIN) or "busy" in text:
        return (f"{port} is busy: another program has it open (a `phonelab repl`, mpremote, "
                f"screen/minicom, a running test, or ModemManager); close it and try again")
    if code == errno.EACCES or "Permission denied" in text:
        return (f"no permission to open {port}: add yourself to the dialout group "
                f"(sudo usermod -aG dialout $USER, then log in again)")
    if code == errno.ENOENT or "No such file" in text:
        return f"no serial port {port}: is the board plugged in?"
    return f"cannot open {port}: {text}"


# -- esptool's log, redirected ------------------------------------------------------------------
def _esplog_class() -> type:
    from esp_pylib.logger import EspLogBase

    class EsptoolLog(EspLogBase):
        """esptool's messages go to `lines` (shown with --verbose), its progress to a callback."""

        def __init__(self, say: Callable[[str], None] | None,
                     progress: Callable[[int, int, str], None]) -> None:
            self.lines: list[str] = []
            self._say = say
            self._progress = progress
            self._partial = ""

        def _out(self, text: str, end: str = "\n") -> None:
            text = self._partial + text
            self._partial = ""
            if end != "\n":
                self._partial = text + end
                return
            self.lines.append(text)
            if self._say is not None and text.strip():
                self._say(text)

        def print(self, *args: Any, **kwargs: Any) -> None:
            self._out(" ".join(str(a) for a in args), kwargs.get("end", "\n"))

        def note(self, *args: Any) -> None:
            self._out("note: " + " ".join(map(str, args)))

        def hint(self, *args: Any) -> None:
            self._out("hint: " + " ".join(map(str, args)))

        def debug(self, *args: Any) -> None:
            pass

        def warn(self, *args: Any, suggestion: str | None = None) -> None:
            self._out("warning: " + " ".join(map(str, args)))

        def err(self, *args: Any, suggestion: str | None = None) -> None:
            self._out("error: " + " ".join(map(str, args)))

        warning = warn
        error = err

        def set_verbosity(self, mode: int | str) -> None:
            pass

        def progress_bar(self, cur_iter: int, total_iters: int, prefix: str = "",
                         suffix: str = "", bar_length: int = 30) -> None:
            self._progress(cur_iter, total_iters, prefix.strip())

    return EsptoolLog


@contextmanager
def esptool_log(say: Callable[[str], None] | None,
                progress: Callable[[int, int, str], None]) -> Iterator[Any]:
    from esp_pylib.logger import EspLog
    previous = EspLog.instance
    ours = _esplog_class()(say, progress)
    EspLog.set_logger(ours)
    try:
        yield ours
    finally:
        EspLog.instance = previous


# -- flashing ---------------------------------------------------------------------------------
@dataclass
class FlashResult:
    chip: str
    offset: int
    size: int
    baud: int                     # the rate the image was written at
    erased: bool
    fallback: str | None = None   # why the requested baud was given up
    log: list[str] = field(default_factory=list)


def _connect(port: str, before: str) -> Any:
    from esptool import cmds
    return cmds.detect_chip(port, ROM_BAUD, before, connect_attempts=CONNECT_ATTEMPTS)


def _close(esp: Any) -> None:
    try:
        esp._port.close()
    except Exception:  # closing a port that already failed must not hide the first error
        pass


def _session(port: str, profile: boards.BoardProfile, data: bytes, baud: int, erase: bool,
             before: str) -> None:
    """One esptool session: connect, check the chip, stub, baud, (erase), write, reset."""
    from esptool import cmds
    from esptool.util import FatalError
    try:
        esp = _connect(port, before)
    except FatalError as e:
        raise FlashError(_connect_problem(port, e)) from None
    try:
        found = chip_of(esp.CHIP_NAME)
        if found != profile.chip:
            raise FlashError(f"the board on {port} is an {esp.CHIP_NAME}, but profile "
                             f"{profile.name!r} is for an {profile.chip}: pick the right "
                             f"--board (phonelab boards lists them)")
        esp = cmds.run_stub(esp)
        if baud != ROM_BAUD:
            esp.change_baud(baud)
        cmds.attach_flash(esp)
        if erase:
            cmds.erase_flash(esp)
        cmds.write_flash(esp, [(profile.flash_offset, data)])
        cmds.reset_chip(esp, "hard-reset")
    finally:
        _close(esp)


def _connect_problem(port: str, e: BaseException) -> str:
    text = str(e).strip()
    if "busy or doesn't exist" in text or "could not open" in text.lower():
        return _port_problem(port, e.__context__ or e) if e.__context__ else text
    return (f"no ESP bootloader answered on {port}: {text.splitlines()[0]}\n"
            f"Hold BOOT (IO0) while pressing EN/RESET to enter the bootloader by hand, "
            f"then try again (with --before no-reset if the board has no auto-reset circuit)")


def flash(port: str, board: str, firmware: str | Path, *, baud: int = DEFAULT_BAUD,
          erase: bool = False, before: str = "default-reset", show: bool = True,
          verbose: bool = False) -> FlashResult:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
    from esptool.util import FatalError
    import serial

    profile = boards.load(board)
    if profile.chip == "unix" or profile.flash_offset is None:
        raise FlashError(f"profile {profile.name!r} is a virtual board: nothing to flash "
                         f"(use `phonelab vboard` and `phonelab deploy`)")
    info = espimage.check(firmware, profile.chip, profile.flash_offset)
    data = Path(firmware).read_bytes()
    console = Console(quiet=not show, highlight=False)
    for note in espimage.notes(info):
        console.print(f"[yellow]note:[/] {note}")
    check_port(port)
    console.print(f"flashing {Path(firmware).name} ({len(data)} B, {profile.chip}) to "
                  f"{port} at {profile.flash_offset:#x}, profile {profile.name}")

    result = FlashResult(chip=profile.chip, offset=profile.flash_offset, size=len(data),
                         baud=baud, erased=erase)
    rates = [baud] if baud == ROM_BAUD else [baud, ROM_BAUD]
    with Progress(TextColumn("{task.description:<26}"), BarColumn(), TaskProgressColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("connecting", total=None)

        def progress(cur: int, total: int, what: str) -> None:
            bar.update(task, completed=cur, total=total or None, description=what or "writing")

        say = (lambda line: console.print(f"[dim]{line}[/]", markup=True)) if verbose else None
        with esptool_log(say, progress) as log:
            for i, rate in enumerate(rates):
                try:
                    _session(port, profile, data, rate, erase, before)
                    result.baud = rate
                    break
                except (FatalError, serial.SerialException, OSError) as e:
                    if i + 1 == len(rates):
                        raise FlashError(f"flashing failed at {rate} baud: {e}") from None
                    result.fallback = f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"
                    console.print(f"[yellow]{rate} baud failed[/] ({result.fallback}); "
                                  f"trying again at {ROM_BAUD}")
                    bar.update(task, completed=0, total=None, description="reconnecting")
            result.log = log.lines
    console.print(f"flashed {len(data)} B at {profile.flash_offset:#x} ({result.baud} baud"
                  f"{', flash erased first' if erase else ''}); the board is resetting")
    return result


# -- after the flash: wait for MicroPython (deploy and identity follow) ----------------------------------
def wait_for_micropython(port: str, timeout: float = BOOT_WAIT_S) -> None:
    """Until the board answers in the raw REPL (first boot formats the filesystem)."""
    from host_tools.deploy import DeployError, RawRepl
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            with RawRepl(port):
                return
        except DeployError as e:
            last = str(e)
        if time.monotonic() > deadline:
            raise FlashError(f"MicroPython did not answer on {port} within {timeout:.0f} s "
                             f"after flashing ({last})")
        time.sleep(1.0)
