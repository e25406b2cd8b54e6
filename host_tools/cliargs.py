"""Checked command-line inputs: argparse `type=` validators.

Every validator raises `argparse.ArgumentTypeError` with a one-line reason, so argparse prints
`phonelab CMD: error: argument --x: REASON` and exits 2 before the command builds anything.
Each carries a `kind` attribute ("input_file", "output_file", "size", ...) that says what it
checks; tests/host/test_cli_badinput.py generates bad values from it. Files are checked and
read with host_tools.readers (bounded reads).
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Callable

from host_tools.readers import MB, InputError, check_file, read_bytes, read_text

def _kind(kind: str, **attrs: Any) -> Callable[[Callable], Callable]:
    def mark(fn: Callable) -> Callable:
        fn.kind = kind                      # type: ignore[attr-defined]
        for k, v in attrs.items():
            setattr(fn, k, v)
        return fn
    return mark


# -- files ----------------------------------------------------------------------------------

def _arg(fn: Callable[[str], Any], text: str,
         errors: type[Exception] | tuple[type[Exception], ...] = InputError) -> Any:
    """fn(text), its `errors` as argparse's (one line, no traceback)."""
    try:
        return fn(text)
    except errors as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def input_file(what: str = "file", utf8: bool = False,
               limit: int | None = None) -> Callable[[str], Path]:
    """An existing regular file within the size cap for `what`; `utf8`: also UTF-8 text."""
    @_kind("input_file", what=what, utf8=utf8)
    def check(text: str) -> Path:
        if not text:
            raise argparse.ArgumentTypeError("empty file name")
        if utf8:
            _arg(lambda t: read_text(t, what, limit), text)
            return Path(text)
        return _arg(lambda t: check_file(t, what, limit), text)
    check.__name__ = f"{what} file"
    return check


_toml_file = input_file("toml", utf8=True)


@_kind("input_file", what="toml", utf8=True)
def scenario_file(text: str) -> Path:
    """A scenario TOML file, or the name of one of the shipped library (`wan-blackhole`:
    scenarios/wan-blackhole.toml of the checkout or of the installed package) when no such
    file is here."""
    from host_tools import SCENARIOS
    if text and "/" not in text and not text.endswith(".toml") and not Path(text).exists() \
            and (SCENARIOS / f"{text}.toml").is_file():
        text = str(SCENARIOS / f"{text}.toml")
    return _toml_file(text)


scenario_file.__name__ = _toml_file.__name__


@_kind("input_dir")
def input_dir(text: str) -> Path:
    """An existing folder."""
    p = Path(text)
    if not text:
        raise argparse.ArgumentTypeError("empty folder name")
    if not p.exists():
        raise argparse.ArgumentTypeError(f"{p}: no such folder")
    if not p.is_dir():
        raise argparse.ArgumentTypeError(f"{p}: not a folder")
    return p


def _creatable_under(p: Path) -> None:
    """The nearest existing ancestor of `p` must be a writable folder."""
    parent = p.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{p}: {parent} is not a folder")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{p}: cannot write in {parent}")


@_kind("output_file")
def output_file(text: str) -> Path:
    """A file to write: not a folder, not a device; its folder exists or can be made."""
    if not text:
        raise argparse.ArgumentTypeError("empty file name")
    p = Path(text)
    if p.is_dir() or text.endswith("/"):
        raise argparse.ArgumentTypeError(f"{p}: is a directory; give a file name")
    if p.exists() and not p.is_file():
        raise argparse.ArgumentTypeError(f"{p}: not a regular file")
    if p.exists() and not os.access(p, os.W_OK):
        raise argparse.ArgumentTypeError(f"{p}: cannot write: permission denied")
    _creatable_under(p)
    return p


@_kind("output_dir")
def output_dir(text: str) -> Path:
    """A folder to write into: an existing folder, or one that can be made."""
    if not text:
        raise argparse.ArgumentTypeError("empty folder name")
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise argparse.ArgumentTypeError(f"{p}: exists and is not a folder")
    if p.is_dir() and not os.access(p, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{p}: cannot write in it: permission denied")
    _creatable_under(p)
    return p


# -- numbers --------------------------------------------------------------------------------

def integer(lo: int | None = None, hi: int | None = None,
            name: str = "integer") -> Callable[[str], int]:
    @_kind("int", lo=lo, hi=hi)
    def check(text: str) -> int:
        try:
            n = int(text, 0) if text.strip().lower().startswith("0x") else int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            raise argparse.ArgumentTypeError(f"{n} is out of range ({_range(lo, hi)})")
        return n
    check.__name__ = name
    return check


def number(lo: float | None = None, hi: float | None = None, lo_open: bool = False,
           name: str = "number") -> Callable[[str], float]:
    """A finite float in [lo, hi] (or (lo, hi] with lo_open)."""
    @_kind("float", lo=lo, hi=hi)
    def check(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if x != x or x in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if (lo is not None and (x < lo or (lo_open and x == lo))) or (hi is not None and x > hi):
            low = f"more than {lo:g}" if lo_open and lo is not None else None
            raise argparse.ArgumentTypeError(f"{text} is out of range ({low or _range(lo, hi)})")
        return x
    check.__name__ = name
    return check


def _range(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"{lo:g} to {hi:g}"
    return f"at least {lo:g}" if lo is not None else f"at most {hi:g}"


_SIZE = re.compile(r"\s*(\d+)\s*([kKmM]?)[bB]?\s*")


def heap_size(lo: int = 8 * 1024, hi: int = 1024 * MB) -> Callable[[str], str]:
    """A MicroPython heap such as 96K, 2M or a byte count; returned as given (validated)."""
    @_kind("size", lo=lo, hi=hi)
    def check(text: str) -> str:
        m = _SIZE.fullmatch(text)
        if not m:
            raise argparse.ArgumentTypeError(f"bad size {text!r}: use e.g. 96K, 2M or a "
                                             f"byte count")
        n = int(m.group(1)) * {"": 1, "k": 1024, "m": MB}[m.group(2).lower()]
        if n < lo or n > hi:
            raise argparse.ArgumentTypeError(f"size {text!r} is out of range "
                                             f"({lo // 1024}K to {hi // MB}M)")
        return text.strip()
    check.__name__ = "size"
    return check


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*")


def duration(lo: float = 0.0, hi: float = 7 * 24 * 3600.0) -> Callable[[str], float]:
    """Seconds: '90', '1.5', '250ms', '2m', '1h'; more than `lo`, at most `hi`."""
    @_kind("duration", lo=lo, hi=hi)
    def check(text: str) -> float:
        m = _DURATION.fullmatch(text)
        if not m:
            raise argparse.ArgumentTypeError(f"bad duration {text!r}: use seconds, e.g. 90, "
                                             f"1.5, 250ms, 2m")
        s = float(m.group(1)) * {None: 1, "s": 1, "ms": 0.001, "m": 60, "h": 3600}[m.group(2)]
        if s <= lo or s > hi:
            raise argparse.ArgumentTypeError(f"duration {text!r} is out of range (more than "
                                             f"{lo:g} s, at most {hi:g} s)")
        return s
    check.__name__ = "duration"
    return check


@_kind("port")
def port(text: str) -> int:
    """A TCP/UDP port 0-65535 (0: pick a free one)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"port {n} is out of range (0 to 65535)")
    return n


_MAC = re.compile(r"(?:SEP)?([0-9A-F]{2}([:.-]?)[0-9A-F]{2}(?:\2[0-9A-F]{2}){4}|[0-9A-F]{4}\.[0-9A-F]{4}\.[0-9A-F]{4})")


@_kind("mac")
def mac(text: str) -> str:
    """A MAC address ('00:11:22:AA:BB:CC', '001122aabbcc', 'SEP001122AABBCC'), as 12 hex digits."""
    if not _MAC.fullmatch(text.strip().upper()):
        raise argparse.ArgumentTypeError(f"bad MAC address {text!r}: want 12 hex digits, "
                                         f"e.g. 00:11:22:AA:BB:CC")
    return "".join(c for c in text.strip().upper().removeprefix("SEP") if c in "0123456789ABCDEF")


def pattern(regex: str, example: str, name: str) -> Callable[[str], str]:
    """A string matching `regex` (whole), e.g. NAME=VALUE pairs; `example` goes in the error."""
    rx = re.compile(regex)

    @_kind("pattern", regex=regex)
    def check(text: str) -> str:
        if not rx.fullmatch(text):
            raise argparse.ArgumentTypeError(f"{text!r} is not {example}")
        return text
    check.__name__ = name
    return check


@_kind("pattern")
def ip_address(text: str) -> str:
    """An IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address") from None
    return text


@_kind("name")
def name(text: str) -> str:
    """A plain name (interface, namespace, profile): printable, no '/', no spaces."""
    if not text or len(text) > 64 or not re.fullmatch(r"[A-Za-z0-9_.:@+-]+", text) or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"bad name {text!r}: letters, digits and ._:@+- only")
    return text


# -- file contents ----------------------------------------------------------------------------

def _load_cert(data: bytes) -> Any:
    from cryptography import x509
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def check_cert(path: str | Path) -> Path:
    """A readable PEM or DER X.509 certificate (InputError naming the file otherwise)."""
    data = read_bytes(path, "cert")
    try:
        _load_cert(data)
    except ValueError:
        raise InputError(f"{path}: not a PEM or DER certificate") from None
    return Path(path)


def check_key(path: str | Path) -> Path:
    """A readable, unencrypted PEM or DER private key."""
    from cryptography.hazmat.primitives import serialization
    data = read_bytes(path, "key")
    try:
        if b"-----BEGIN" in data:
            serialization.load_pem_private_key(data, None)
        else:
            serialization.load_der_private_key(data, None)
    except (ValueError, TypeError):
        raise InputError(f"{path}: not an unencrypted PEM or DER private key") from None
    return Path(path)


def check_tlv(path: str | Path) -> Path:
    """A file that starts like a CTL/ITL/.sgn header (tag 1, length 2, the version)."""
    data = read_bytes(path, "tlv")
    if len(data) < 16 or data[0] != 1 or data[1:3] != b"\x00\x02":
        raise InputError(f"{path}: not a trust list or signed file (no TLV header)")
    return Path(path)


def content_file(what: str, check: Callable[[str | Path], Path]) -> Callable[[str], Path]:
    @_kind("input_file", what=what)
    def typed(text: str) -> Path:
        if not text:
            raise argparse.ArgumentTypeError("empty file name")
        return _arg(check, text)
    typed.__name__ = f"{what} file"
    return typed


cert_file = content_file("cert", check_cert)
key_file = content_file("key", check_key)
tlv_file = content_file("tlv", check_tlv)


def picture_file(text: str) -> Path:
    """An output picture: .png or .svg."""
    p = output_file(text)
    if p.suffix.lower() not in (".png", ".svg"):
        raise argparse.ArgumentTypeError(f"{p}: a picture is .png or .svg (by its suffix)")
    return p


picture_file.kind = "output_file"       # type: ignore[attr-defined]


def _faithful(text: str) -> bool:
    """Whether `text` is `virtual:PROFILE`, the ESP32-faithful board of a hardware profile
    (docs/vboard.md); one whose profile is unknown or unfit is refused."""
    from host_tools.vboard import faithful
    if not faithful.is_faithful(text):
        return False
    _arg(faithful.traits, text, faithful.VBoardError)
    return True


@_kind("board")
def virtual_board(text: str) -> str:
    """'virtual' or 'virtual:PROFILE'."""
    if text != "virtual" and not _faithful(text):
        raise argparse.ArgumentTypeError(f"{text!r}: 'virtual' or 'virtual:PROFILE'")
    return text


@_kind("board_spec")
def board_spec(text: str) -> str:
    """'virtual', 'virtual:PROFILE' or a real board (serial port, rfc2217:// URL...), as the
    HIL plugin takes."""
    from host_tools.hil import specs
    _arg(specs.parse, text, specs.SpecError)
    return text


def board_profile(unix_only: bool = False, faithful: bool = False) -> Callable[[str], str]:
    """A board profile: a name from boards/ or a .json file (checked when read); `faithful`:
    or `virtual:PROFILE`."""
    @_kind("board", unix_only=unix_only, faithful=faithful)
    def check(text: str) -> str:
        from host_tools import boards
        if faithful and _faithful(text):
            return text
        try:
            b = boards.load(text)
        except boards.BoardError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        if unix_only and b.chip != "unix":
            raise argparse.ArgumentTypeError(f"board {text!r} is a {b.chip} board; a virtual "
                                             f"board runs unix-chip profiles such as 'virtual'")
        return text
    check.__name__ = "board profile"
    return check
