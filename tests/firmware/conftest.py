"""Collects tests/firmware/test_*.py and runs each test function under the MicroPython unix
port (never CPython), one interpreter per test, under a heap cap (default 96K; a module can
say `# heap: 256K` or `# timeout: 120` in its first lines).

The firmware under test is loaded as .mpy compiled by mpy-cross, as on a board after
`phonelab deploy`: compiling the sources inside the capped heap would measure the compiler,
not the agent. Set FWTEST_SOURCE=1 to run against the .py sources instead."""
from __future__ import annotations

import ast
import os
import re
import subprocess
from pathlib import Path

import pytest

from host_tools import FIRMWARE, fwbuild, micropython

HERE = Path(__file__).parent
RUNNER = HERE / "support" / "fwrun.py"


def _directive(text: str, name: str, default: str) -> str:
    m = re.search(rf"^#\s*{name}:\s*(\S+)", text[:2000], re.M)
    return m.group(1) if m else default


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent):
    if module_path.parent == HERE and module_path.name.startswith("test_"):
        return MicroPythonFile.from_parent(parent, path=module_path)
    return None


class MicroPythonFailure(Exception):
    pass


def firmware_path() -> Path:
    """Folder holding `phone/` as a board has it (.mpy), or the sources with FWTEST_SOURCE=1."""
    if os.environ.get("FWTEST_SOURCE"):
        return FIRMWARE
    from host_tools import fwbuild
    return fwbuild.compiled()


class MicroPythonFile(pytest.File):
    def collect(self):
        text = self.path.read_text()
        heap = _directive(text, "heap", micropython.DEFAULT_HEAP)
        timeout = float(_directive(text, "timeout", "60"))
        for node in ast.parse(text).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
                wants_tmp = bool(node.args.args) and node.args.args[0].arg == "tmp_path"
                yield MicroPythonItem.from_parent(
                    self, name=f"{node.name}[micropython]", fn=node.name,
                    heap=heap, timeout=timeout, wants_tmp=wants_tmp)


class MicroPythonItem(pytest.Item):
    def __init__(self, *, fn: str, heap: str, timeout: float, wants_tmp: bool, **kw):
        super().__init__(**kw)
        self.fn, self.heap, self.timeout, self.wants_tmp = fn, heap, timeout, wants_tmp
        self.fixturenames: list[str] = []  # no pytest fixtures; other plugins look for this
        self.add_marker(pytest.mark.micropython)

    def runtest(self):
        args = [str(RUNNER), str(self.path.parent), self.path.stem, self.fn]
        if self.wants_tmp:
            tmp = self.config._tmp_path_factory.mktemp(self.fn)  # type: ignore[attr-defined]
            args.append(str(tmp))
        env = fwbuild.environ(HERE / "support", source=True)
        env["MICROPYPATH"] = ":".join([".frozen", str(firmware_path()), str(HERE / "support")])
        proc = subprocess.run(
            micropython.command(args, heap=self.heap),
            env=env, cwd=self.path.parent,
            capture_output=True, text=True, timeout=self.timeout)
        out = proc.stdout + proc.stderr
        if proc.returncode == 4:
            pytest.skip(out.split("@@SKIP", 1)[-1].strip())
        if proc.returncode != 0 or "@@PASS" not in proc.stdout:
            raise MicroPythonFailure(out.strip() or f"exit code {proc.returncode}")

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, MicroPythonFailure):
            return f"MicroPython (heap {self.heap}) says:\n{excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}::{self.name} (MicroPython, heap {self.heap})"
