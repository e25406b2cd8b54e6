"""The ESP32-faithful virtual board (`--board virtual:PROFILE`): the host side.

What it adds to a VirtualBoard, each trait read from the hardware profile (docs/vboard.md):

- clock: libfaketime (Debian package `faketime`) preloaded into the interpreter, its offset
  from the host clock in a file it re-reads at every call; at every power-up and reset the
  offset is put back so that the board's clock reads 2000-01-01 00:00:00 UTC. The board's
  machine.RTC().datetime(...) rewrites the offset (host_tools/vboard/esp32/vboard_esp32.py);
- network: the "lwIP" DHCP client, host_tools/vboard/lwip.py, run in the board's namespace for
  the board's life; a reset takes its lease away without a RELEASE, as a power cut does;
- TLS session budget, heap, hashlib, Pin set, sys.platform, the 2000 epoch: the MicroPython
  modules of host_tools/vboard/esp32/, put on the board only for a faithful board;
- CPU speed: cpu_limit(pid) is called with every interpreter the board starts (part of the
  profile's traits, implemented by host_tools/vboard/cpuquota.py when that module exists).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from host_tools import PACKAGE, boards, micropython
from host_tools.vboard.errors import VBoardError

PREFIX = "virtual:"
ESP32_DIR = Path(__file__).with_name("esp32")
EPOCH_2000 = 946684800.0
LIBFAKETIME = ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
               "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
               "/usr/lib/faketime/libfaketime.so.1",
               "/usr/local/lib/faketime/libfaketime.so.1")
# MicroPython heap taken by the board's own modules (vboard_esp32: network, machine, tls...):
# on a real board they are C in flash; here they are bytecode in the capped heap, so the cap
# is the profile's heap plus this (measured: tests/host/test_vboard_faithful.py).
MODULES_ALLOWANCE = 28 * 1024
# Mbed TLS sessions the IDF heap holds beside the MicroPython heap (docs/vboard.md).
TLS_SESSIONS_PSRAM = 3
TLS_SESSIONS_NO_PSRAM = 1


def is_faithful(board: str | None) -> bool:
    return bool(board) and str(board).startswith(PREFIX)


def profile_name(board: str) -> str:
    return board[len(PREFIX):]


def libfaketime() -> str:
    env = os.environ.get("VBOARD_LIBFAKETIME")
    for path in ((env,) if env else LIBFAKETIME):
        if Path(path).exists():
            return path
    raise VBoardError("a faithful virtual board needs libfaketime: install the Debian "
                      "package faketime (scripts/bootstrap.sh does, as root)")


@dataclass
class Traits:
    """What a hardware profile says about the board the virtual board stands in for."""
    profile: str
    chip: str
    psram: bool
    limited: bool
    network: str          # LAN or WLAN
    heap: int             # the profile's MicroPython heap, bytes
    tls_sessions: int
    agent_in_image: bool  # the agent runs from the image: emulated with a ROMFS (below)
    data: dict[str, Any]
    path: Path

    @property
    def board_heap(self) -> int:
        """The -X heapsize the interpreter gets: the profile's heap + the modules' share."""
        return self.heap + MODULES_ALLOWANCE


def traits(board: str) -> Traits:
    """`virtual:NAME` (or NAME) -> its traits; VBoardError naming what is wrong."""
    name = profile_name(board) if is_faithful(board) else board
    try:
        b = boards.load(name)
    except boards.BoardError as e:
        raise VBoardError(str(e)) from None
    if b.chip == "unix":
        raise VBoardError(f"virtual:{name}: {name!r} is the unix port itself; a faithful "
                          f"board stands in for a hardware profile "
                          f"({', '.join(n for n in boards.names() if boards.load(n).chip != 'unix')})")
    heap = b.data.get("heap")
    if heap is None:
        heap = "4M" if b.psram else "112K"
    try:
        heap_bytes = micropython.parse_size(heap)
    except ValueError as e:
        raise VBoardError(f"board {name!r}: heap: {e}") from None
    sessions = b.data.get("tls_sessions")
    if sessions is None:
        sessions = TLS_SESSIONS_NO_PSRAM if (b.limited or not b.psram) else TLS_SESSIONS_PSRAM
    return Traits(profile=name, chip=b.chip, psram=b.psram, limited=b.limited,
                  network=b.network_kind, heap=heap_bytes, tls_sessions=int(sessions),
                  agent_in_image=b.agent_in_image, data=dict(b.data), path=b.path)


def heap_for(board: str | None, default: str | int | None) -> str | int | None:
    """The heap a command should give a board: the faithful profile's, else `default`."""
    if is_faithful(board):
        return traits(str(board)).board_heap
    return default


def cpu_limit(pid: int, t: Traits) -> Any:
    """Hold interpreter `pid` (and what it starts) to the profile's CPU speed: the cgroup
    quota of host_tools/vboard/cpuquota.py, calibrated against published ESP32 figures, for
    the profile's chip and `cpu_mhz`. Returns its handle, or None when that module is not
    there or PHONELAB_CPU_QUOTA=0 (host speed). A quota that cannot be had is a warning from
    cpuquota (the board then runs at host speed), never a failed start."""
    if os.environ.get("PHONELAB_CPU_QUOTA", "1") == "0":
        return None
    try:
        from host_tools.vboard import cpuquota
    except ImportError:
        return None
    try:
        return cpuquota.limit(pid, cpuquota.profile_for_board(t.data))
    except cpuquota.CpuQuotaError as e:
        import logging
        logging.getLogger(__name__).warning("virtual:%s runs at host speed: %s", t.profile, e)
        return None


class Faithful:
    """The per-board host state of a faithful board: run folder (clock and watchdog files,
    the lwIP control port), the lwIP process. VirtualBoard calls power_up() before every
    interpreter start, started(pid) after it, check() from its loop and close() at the end."""

    def __init__(self, t: Traits, prefix: Sequence[str], env: dict[str, str]) -> None:
        self.traits = t
        self.prefix = list(prefix)
        self.preload = libfaketime()
        self.run = Path(tempfile.mkdtemp(prefix="vboard-esp32-"))
        self.clock_file = self.run / "clock"
        self.wdt_file = self.run / "wdt"
        self.ifname = env.get("PHONE_IF")
        self.mac = env.get("PHONE_MAC") or "02:00:5e:10:00:01"
        self.lwip: subprocess.Popen[bytes] | None = None
        self.powerups = 0
        self.cpu: Any = None
        self.image = self.run / "romfs.img"
        self.image_size = 0         # bytes of the ROM image in the capped heap (0: none)

    def env(self) -> dict[str, str]:
        t = self.traits
        preload = os.environ.get("LD_PRELOAD")
        return {
            "LD_PRELOAD": self.preload + (f":{preload}" if preload else ""),
            "FAKETIME_TIMESTAMP_FILE": str(self.clock_file),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",   # ticks_ms stays the host's monotonic clock
            "VBOARD_ESP32": str(ESP32_DIR),
            "VBOARD_RUN": str(self.run),
            "VBOARD_CHIP": t.chip,
            "VBOARD_PSRAM": "1" if t.psram else "0",
            "VBOARD_TLS_SESSIONS": str(t.tls_sessions),
            "VBOARD_NET": t.network,
            "VBOARD_ROMFS": str(self.image) if t.agent_in_image else "",
        }

    # -- the agent in the image (profiles with "agent_in_image") ---------------------------
    def take_image(self, folder: Path) -> None:
        """A board that runs the agent from its image: the folder's top-level packages
        (`phone/`, as a deploy or the scenario runner put them there) become the board's
        ROM, as if the image built from them had been flashed, and leave the filesystem
        (on a board '' comes first on sys.path: copies would be imported instead).

        The unix port has no image to freeze into; it has VfsRom, which imports an .mpy in
        place (bytecode and names stay in the buffer, only the objects the module makes take
        heap: py/persistentcode.c, mp_reader_try_read_rom). The buffer itself is read into the
        board's heap at power-up, so the heap cap grows by its size (image_size). A frozen
        module costs a real board less still (its raw code is in flash too)."""
        if not self.traits.agent_in_image:
            return
        pkgs = [p for p in sorted(folder.iterdir())
                if p.is_dir() and any((p / n).exists() for n in ("__init__.py", "__init__.mpy"))]
        if pkgs:
            src = self.run / "image-src"
            shutil.rmtree(src, ignore_errors=True)
            src.mkdir()
            for p in pkgs:
                shutil.move(str(p), str(src / p.name))
            r = subprocess.run([sys.executable, "-m", "mpremote", "romfs", "--no-mpy",
                                "-o", str(self.image), "build", str(src)],
                               capture_output=True, text=True, check=False)
            if r.returncode != 0 or not self.image.exists():
                raise VBoardError(f"virtual:{self.traits.profile}: cannot build the board's "
                                  f"ROM image: {(r.stderr or r.stdout).strip()[-300:]}")
        self.image_size = self.image.stat().st_size if self.image.exists() else 0

    # -- every power-up and reset ----------------------------------------------------------
    def power_up(self, folder: Path) -> None:
        self.powerups += 1
        self.take_image(folder)
        self.set_clock(EPOCH_2000)
        self.wdt_file.write_text(" " * 25)
        self._lwip_ctl("off")

    def set_clock(self, epoch: float) -> None:
        """The board's clock reads `epoch` (seconds since 1970) now, and runs on from there."""
        tmp = self.clock_file.with_suffix(".tmp")
        tmp.write_text("%+020.6f" % (epoch - time.time()))
        os.replace(tmp, self.clock_file)

    def started(self, pid: int) -> None:
        """An interpreter started: the CPU quota hook (a new group per run; cpuquota removes
        the old one when its process exits)."""
        self.cpu = cpu_limit(pid, self.traits)

    def release_cpu(self) -> None:
        """The interpreter runs at host speed again (before it is killed)."""
        handle, self.cpu = self.cpu, None
        if handle is not None:
            try:
                handle.close()
            except Exception:  # noqa: BLE001 - a group already gone: nothing to lift
                pass

    def watchdog_expired(self) -> bool:
        """A machine.WDT the board armed and has not fed within its timeout."""
        try:
            text = self.wdt_file.read_text().split()
            fed, timeout = int(text[0]), int(text[1])
        except (OSError, ValueError, IndexError):
            return False
        now = int(time.monotonic() * 1000) & ((1 << 30) - 1)   # time.ticks_ms() on the unix port
        return ((now - fed) & ((1 << 30) - 1)) > timeout

    # -- the lwIP process ------------------------------------------------------------------
    def start_network(self) -> None:
        """Start the DHCP client process in the board's namespace (only with PHONE_IF: no
        interface, no cable)."""
        if self.ifname is None or self.lwip is not None:
            return
        portfile = self.run / "lwip.port"
        cmd = [*self.prefix, sys.executable, "-m", "host_tools.vboard.lwip", self.ifname,
               self.mac, str(portfile)]
        self.lwip = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True,
                                     cwd=str(PACKAGE.parent))
        deadline = time.monotonic() + 10
        while not portfile.exists():
            if self.lwip.poll() is not None:
                err = (self.lwip.stderr.read() if self.lwip.stderr else b"").decode(errors="replace")
                self.lwip = None
                raise VBoardError(f"the board's DHCP client did not start: {err.strip()[-300:]}")
            if time.monotonic() > deadline:
                self._stop_lwip()
                raise VBoardError("the board's DHCP client did not start within 10 s")
            time.sleep(0.02)

    def _lwip_ctl(self, cmd: str) -> None:
        if self.lwip is None or self.lwip.poll() is not None:
            return
        # The control port lives in the board's namespace: ask through the same prefix.
        port = (self.run / "lwip.port").read_text().strip()
        code = ("import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
                "s.settimeout(3);s.sendto(sys.argv[1].encode(),('127.0.0.1',int(sys.argv[2])));"
                "s.recv(256)")
        subprocess.run([*self.prefix, sys.executable, "-c", code, cmd, port],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10,
                       check=False)

    def _stop_lwip(self) -> None:
        p, self.lwip = self.lwip, None
        if p is None:
            return
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        if p.stderr is not None:
            p.stderr.close()

    def close(self) -> None:
        try:
            self._lwip_ctl("quit")
        except (OSError, subprocess.SubprocessError):
            pass
        self._stop_lwip()
        shutil.rmtree(self.run, ignore_errors=True)
