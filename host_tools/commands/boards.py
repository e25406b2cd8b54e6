"""`phonelab boards`: list and check the board profiles."""
from __future__ import annotations

import argparse

from host_tools import boards, cliargs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("boards", help="list supported boards and validate their profiles")
    p.add_argument("profile", nargs="?", type=cliargs.board_profile(),
                   help="check one profile file or board name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        items = [boards.load(args.profile)] if args.profile else boards.all_boards()
    except boards.BoardError as e:
        print(f"error: {e}")
        return 1
    for b in items:
        note = "LIMITED: one TLS link only" if b.limited else "two TLS links (PSRAM)"
        off = "-" if b.flash_offset is None else f"{b.flash_offset:#x}"
        print(f"{b.name:32} {b.chip:8} {b.network_kind:5} offset {off:7} {note}")
    return 0
