"""Build steps pyproject.toml cannot say: the wheel carries the project's data (firmware/,
boards/, scenarios/) as host_tools/data/, and host_tools/data/build.json with the firmware
commit the build came from (`phonelab --version`). An sdist carries the same build.json, so
a wheel built from it still names the commit; built outside git it says "unknown"."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
DATA_DIRS = ("firmware", "boards", "scenarios")
BUILD_JSON = Path("host_tools") / "data" / "build.json"
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.mpy", "wlan.json")


def build_info() -> dict:
    """The commit of this checkout; else what an sdist's build.json says; else unknown."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=HERE, text=True,
                             capture_output=True, timeout=10)
        if rev.returncode == 0 and rev.stdout.strip() and (HERE / ".git").exists():
            dirty = subprocess.run(["git", "status", "--porcelain", "--", "firmware"],
                                   cwd=HERE, text=True, capture_output=True, timeout=10)
            return {"firmware_commit": rev.stdout.strip() + ("+dirty" if dirty.stdout.strip()
                                                             else "")}
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return json.loads((HERE / BUILD_JSON).read_text())
    except (OSError, ValueError):
        return {"firmware_commit": "unknown"}


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:          # an editable install reads the checkout itself
            return
        data = Path(self.build_lib) / "host_tools" / "data"
        for name in DATA_DIRS:
            shutil.rmtree(data / name, ignore_errors=True)
            shutil.copytree(HERE / name, data / name, ignore=SKIP)
        (data / "build.json").write_text(json.dumps(build_info()) + "\n")


class Sdist(sdist):
    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        target = Path(base_dir) / BUILD_JSON
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            os.unlink(target)           # may be a hard link to the source tree's
        target.write_text(json.dumps(build_info()) + "\n")


if __name__ == "__main__":        # setuptools runs this file as __main__
    setup(cmdclass={"build_py": BuildPy, "sdist": Sdist})
