"""`phonelab deploy`: the command line of host_tools.deploy (the help text is its docstring)."""
from __future__ import annotations

import argparse
import sys

from host_tools import FIRMWARE, boards, cliargs, deploy


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deploy", help="copy the firmware to a board (compiled to .mpy), "
                                      "only what changed",
                       description=deploy.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", required=True,
                   help="serial device, vboard pty, or socket://HOST:PORT")
    p.add_argument("--board", default="virtual", metavar="NAME", type=cliargs.board_profile(),
                   help="board profile copied as board.json (default %(default)s)")
    p.add_argument("--source", action="store_true", help="copy .py sources instead of .mpy")
    p.add_argument("--force", action="store_true", help="copy every file, changed or not")
    p.add_argument("--no-reset", action="store_true", help="do not soft reset afterwards")
    p.add_argument("--firmware", type=cliargs.input_dir, default=FIRMWARE, metavar="DIR",
                   help="firmware tree to deploy (default: the repository's firmware/)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        deploy.deploy(args.port, board=args.board, source=args.source, force=args.force,
                      reset=not args.no_reset, firmware=args.firmware)
    except (deploy.DeployError, boards.BoardError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
