"""What `phonelab --version` says: the package version and the firmware commit.

An installed wheel carries host_tools/data/build.json, written by setup.py when the wheel
(or the sdist it came from) was built: the commit of the checkout and whether firmware/ had
local changes. A checkout asks git each time. Built outside git, the commit is "unknown"."""
from __future__ import annotations

import json
import subprocess
from importlib import metadata

from host_tools import INSTALLED, PACKAGE, ROOT

DIST = "srst-phonelab"
BUILD_INFO = PACKAGE / "data" / "build.json"
UNKNOWN = "unknown"


def package_version() -> str:
    try:
        return metadata.version(DIST)
    except metadata.PackageNotFoundError:
        return UNKNOWN


def git_commit(root=ROOT) -> str:
    """`root`'s HEAD commit (short), '+dirty' when firmware/ has local changes; UNKNOWN
    outside git."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, text=True,
                             capture_output=True, timeout=10)
        if rev.returncode != 0 or not rev.stdout.strip():
            return UNKNOWN
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "firmware"], cwd=root,
                               text=True, capture_output=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    return rev.stdout.strip() + ("+dirty" if dirty else "")


def firmware_commit() -> str:
    if INSTALLED or BUILD_INFO.is_file():
        try:
            return str(json.loads(BUILD_INFO.read_text())["firmware_commit"])
        except (OSError, ValueError, KeyError):
            return UNKNOWN
    return git_commit()


def describe() -> str:
    commit = firmware_commit()
    where = "installed" if INSTALLED else f"checkout {ROOT}"
    note = " (built outside a git checkout)" if commit == UNKNOWN else ""
    return f"phonelab {package_version()}, firmware commit {commit}{note} [{where}]"
