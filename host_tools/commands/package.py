"""`phonelab package`: the command line of host_tools.mippkg (the help text is its docstring)."""
from __future__ import annotations

import argparse

from host_tools import FIRMWARE, cliargs, mippkg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("package", help="the agent as a package.json for `mpremote mip install`",
                       description=mippkg.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=cliargs.output_dir, metavar="DIR",
                   help="folder for package.json and its files")
    p.add_argument("--board", default="virtual", metavar="NAME", type=cliargs.board_profile(),
                   help="board profile that goes as board.json (default %(default)s)")
    p.add_argument("--mpy", choices=mippkg.mpy_versions(), metavar="VERSION",
                   help="compile the modules for this .mpy format (the board's "
                        "sys.implementation._mpy; e.g. 6.3 for MicroPython 1.23 and later); "
                        "default: sources")
    p.add_argument("--firmware", type=cliargs.input_dir, default=FIRMWARE, metavar="DIR",
                   help="firmware tree (default: the one shipped with phonelab)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    pkg = mippkg.write_package(args.out, board=args.board, mpy=args.mpy,
                               firmware=args.firmware)
    print(f"{args.out / mippkg.PACKAGE_JSON}: {len(pkg['urls'])} files, version "
          f"{pkg['version']}; install with:\n"
          f"  mpremote connect PORT mip install --target / {args.out / mippkg.PACKAGE_JSON}")
    return 0
