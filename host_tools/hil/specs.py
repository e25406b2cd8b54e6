"""`--board` values and which pytest-xdist worker drives which board.

    virtual                    a fresh virtual board per worker (any number of workers)
    /dev/ttyUSB0               a real board; its profile is read from the board's board.json
    olimex-esp32-poe-iso-wrover@/dev/ttyUSB0     ... with the profile named (first deploy)
    socket://HOST:PORT, rfc2217://HOST:PORT      a board behind a network serial port
    labgrid:PLACE, PROFILE@labgrid:PLACE         a labgrid place (serial port, optional power)
    labgrid, PROFILE@labgrid   the target of labgrid's --lg-env (the default with --lg-env)
    auto                       every ESP32 board attached (host_tools.hil.detect: esptool)

Worker gwN takes board N (mod the number of boards). A real board is never shared: more
workers than boards is only allowed when every board is virtual.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from host_tools import boards

VIRTUAL = "virtual"
LABGRID = "labgrid:"
AUTO = "auto"


class SpecError(ValueError):
    pass


@dataclass(frozen=True)
class BoardSpec:
    text: str
    kind: str                  # "virtual", "serial", "labgrid", "lgenv" (--lg-env), "auto"
    target: str | None = None  # serial port / URL, or the labgrid place
    profile: str | None = None
    chip: str | None = None    # as detected (--board auto): the profile must be for it

    @property
    def shareable(self) -> bool:
        return self.kind == "virtual"


def parse(text: str) -> BoardSpec:
    t = text.strip()
    if not t:
        raise SpecError("empty --board value")
    if t == VIRTUAL:
        return BoardSpec(t, "virtual", profile="virtual")
    if t == AUTO:
        return BoardSpec(t, "auto")
    if t.startswith(VIRTUAL + ":"):         # the ESP32-faithful board of a hardware profile
        from host_tools.vboard import faithful
        try:
            tr = faithful.traits(t)
        except faithful.VBoardError as e:
            raise SpecError(f"--board {text}: {e}") from None
        return BoardSpec(t, "virtual", profile=tr.profile)
    profile = None
    m = re.fullmatch(r"([A-Za-z0-9_.-]+)@(.+)", t)
    if m and "://" not in m.group(1):
        profile, rest = m.group(1), m.group(2)
        if profile not in boards.names():
            raise SpecError(f"--board {text}: no board profile {profile!r} "
                            f"(known: {', '.join(boards.names())})")
    else:
        rest = t
    if rest == VIRTUAL:
        raise SpecError(f"--board {text}: write just 'virtual' for a virtual board")
    if rest == LABGRID[:-1]:
        return BoardSpec(t, "lgenv", None, profile)
    if rest.startswith(LABGRID):
        place = rest[len(LABGRID):]
        if not place:
            raise SpecError(f"--board {text}: labgrid:PLACE needs a place name")
        return BoardSpec(t, "labgrid", place, profile)
    if "://" in rest or rest.startswith("/dev/") or rest.startswith("COM"):
        return BoardSpec(t, "serial", rest, profile)
    raise SpecError(f"--board {text}: not 'virtual', 'virtual:PROFILE', a serial port (/dev/..., socket://, "
                    f"rfc2217://), 'auto', 'labgrid' (--lg-env) or labgrid:PLACE")


def parse_all(texts: list[str] | None, default: str = VIRTUAL) -> list[BoardSpec]:
    return check_distinct([parse(t) for t in (texts or [default])])


def expand_auto(specs: list[BoardSpec], patterns: list[str] | None = None) -> list[BoardSpec]:
    """`auto` replaced by a serial board per attached ESP32 (detect.DetectError if none)."""
    if not any(s.kind == "auto" for s in specs):
        return specs
    from host_tools.hil import detect
    try:
        found = detect.detect(patterns)
    except detect.DetectError as e:
        raise SpecError(str(e)) from None
    out: list[BoardSpec] = []
    for s in specs:
        out += [BoardSpec(f.port, "serial", f.port, chip=f.chip) for f in found] \
            if s.kind == "auto" else [s]
    return check_distinct(out)


def check_distinct(specs: list[BoardSpec]) -> list[BoardSpec]:
    seen: dict[tuple[str, str | None], str] = {}
    for s in specs:
        if s.kind == "virtual":
            continue
        key = (s.kind, s.target)
        if key in seen:
            raise SpecError(f"--board {s.text} and --board {seen[key]} are the same board")
        seen[key] = s.text
    return specs


def check_workers(specs: list[BoardSpec], workers: int) -> None:
    """workers: pytest-xdist's -n (0 without xdist). Raises SpecError on a bad combination."""
    if workers == 0:
        if len(specs) > 1:
            raise SpecError(f"{len(specs)} boards need one pytest-xdist worker each: add "
                            f"-n {len(specs)} (and --dist each to run every test on every board)")
        return
    if workers > len(specs) and not all(s.shareable for s in specs):
        raise SpecError(f"-n {workers} but only {len(specs)} board(s): a real board cannot be "
                        f"shared between workers; use -n {len(specs)}")


def worker_index() -> int:
    """0 for gw0 (and without xdist), 1 for gw1, ..."""
    m = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    return int(m.group(1)) if m else 0


def for_worker(specs: list[BoardSpec], index: int | None = None) -> BoardSpec:
    i = worker_index() if index is None else index
    return specs[i % len(specs)]
