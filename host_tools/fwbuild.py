"""The firmware as a board runs it: the modules firmware/manifest.py lists, compiled with
mpy-cross for the unix port's .mpy format, cached under out/fwcache/<hash of the sources>/
(phone/*.mpy), plus the lab's side of SCCP (phone/sccp_lab.py: never on a board, but the
firmware tests and the fuzz harness run it under MicroPython beside the agent).

Every host path that runs firmware code on the MicroPython unix port (firmware tests, the
`phonelab ctl/config` tools, scenario boards, benchmarks) loads this build, through
`environ()` (MICROPYPATH) beside `micropython.command(...)`: compiling the
sources inside a capped heap would measure the compiler, not the agent. The cache key covers
the sources and the compiler, so it is never stale; builds go to a temporary folder and are
renamed into place, so parallel test workers cannot see half a build."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from host_tools import FIRMWARE, WORK, manifest, micropython

CACHE = WORK / "out" / "fwcache"
LAB_MODULES = ("phone/sccp_lab.py",)   # run under MicroPython by tests, not on a board
_format: list[object] = []


def unix_format():
    """The .mpy format of the unix port we run (asked once per process)."""
    from host_tools import deploy
    if not _format:
        out = subprocess.run(micropython.command(["-c", "import sys;print(sys.implementation._mpy)"],
                                                 heap=None), capture_output=True, text=True,
                             timeout=30, env=environ(source=True))
        if out.returncode != 0 or not out.stdout.strip().isdigit():
            raise RuntimeError(f"cannot ask {micropython.interpreter()} for its .mpy format: "
                               f"{(out.stderr or out.stdout).strip()}")
        _format.append(deploy.MpyFormat.from_sys(int(out.stdout)))
    return _format[0]


def _sources(firmware: Path) -> list[tuple[Path, str]]:
    """(source, path in the build) of the manifest's importable modules and LAB_MODULES."""
    entries = [(e.source, e.target)
               for e in manifest.files(firmware / "manifest.py", scripts=False)]
    return entries + [(firmware / t, t) for t in LAB_MODULES if (firmware / t).exists()]


def compiled(firmware: Path = FIRMWARE) -> Path:
    """A folder holding phone/*.mpy for `firmware` (built on first use)."""
    from host_tools import deploy
    cmd = deploy.mpy_cross_command(unix_format())
    h = hashlib.sha256(" ".join(cmd).encode())
    sources = _sources(firmware)
    for src, target in sources:
        h.update(target.encode() + b"\0" + src.read_bytes())
    out = CACHE / h.hexdigest()[:16]
    if out.is_dir():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=CACHE))
    try:
        for src, target in sources:
            deploy.compile_file(cmd, src, target, tmp / (target[:-3] + ".mpy"))
        try:
            os.rename(tmp, out)
        except OSError:          # another process finished the same build first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def module_path(*extra: str | Path, source: bool = False) -> str:
    """MICROPYPATH for firmware code: this build unless `source` or PHONELAB_FW_SOURCE=1.
    '.frozen' stays first: the port's asyncio is frozen."""
    fw = FIRMWARE if source or os.environ.get("PHONELAB_FW_SOURCE") else compiled()
    return ":".join([".frozen", str(fw), *map(str, extra)])


def environ(*extra_path: str | Path, source: bool = False, **more: str) -> dict[str, str]:
    """The environment that runs firmware code on the unix port (micropython.command)."""
    env = dict(os.environ)
    env["MICROPYPATH"] = module_path(*extra_path, source=source)
    env.update(more)
    return env
