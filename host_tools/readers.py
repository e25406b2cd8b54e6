"""Bounded reads of the files people give the tools (command-line arguments, board profiles,
reports): the size is capped per format before anything is read, only regular files are
read (/dev/zero, a FIFO or a folder is refused first), text that is not UTF-8 is an error
naming the byte, offset and line instead of UnicodeDecodeError, JSON nested too deeply is an
input error instead of RecursionError. Everything raises `InputError` with a one-line
message, which `cli.main` prints like every other error type of the project."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

# Size caps for what the tools read: far above any real file, far below a memory problem.
MB = 1024 * 1024
LIMITS = {
    "report": 64 * MB, "json": 16 * MB, "toml": 1 * MB, "pem": 1 * MB, "cert": 1 * MB,
    "tlv": 4 * MB, "config": 4 * MB, "pcap": 512 * MB, "file": 64 * MB, "board": 1 * MB,
    "firmware": 32 * MB,
}


class InputError(ValueError):
    """A file or value given on the command line that cannot be used (one-line message)."""


def check_file(path: str | Path, what: str = "file", limit: int | None = None) -> Path:
    """`path` as a Path if it is a readable regular file within `limit` bytes, else InputError."""
    p = Path(path)
    limit = LIMITS.get(what, LIMITS["file"]) if limit is None else limit
    try:
        st = p.stat()
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except OSError as e:
        raise InputError(f"{p}: cannot read: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{p}: is a directory, not a {what} file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{p}: not a regular file (a device or pipe cannot be a {what} file)")
    if st.st_size > limit:
        raise InputError(f"{p}: {st.st_size:,} bytes is too big for a {what} file "
                         f"(at most {limit:,})")
    if not os.access(p, os.R_OK):
        raise InputError(f"{p}: cannot read: permission denied")
    return p


def read_bytes(path: str | Path, what: str = "file", limit: int | None = None) -> bytes:
    p = check_file(path, what, limit)
    cap = LIMITS.get(what, LIMITS["file"]) if limit is None else limit
    try:
        with open(p, "rb") as f:
            data = f.read(cap + 1)
    except OSError as e:
        raise InputError(f"{p}: cannot read: {e.strerror}") from None
    if len(data) > cap:                     # grew while reading
        raise InputError(f"{p}: too big for a {what} file (at most {cap:,} bytes)")
    return data


def decode(data: bytes, where: str | Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputError(f"{where}: not UTF-8 text (byte {data[e.start]:#04x} at offset "
                         f"{e.start}, line {line})") from None


def read_text(path: str | Path, what: str = "file", limit: int | None = None) -> str:
    return decode(read_bytes(path, what, limit), path)


def read_json(path: str | Path, what: str = "json", limit: int | None = None) -> Any:
    text = read_text(path, what, limit)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except RecursionError:
        raise InputError(f"{path}: not JSON this tool reads (nested too deeply)") from None
