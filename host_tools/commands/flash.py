"""`phonelab flash`: the command line of host_tools.flash (the help text is its docstring)."""
from __future__ import annotations

import argparse
import sys

from host_tools import boards, cliargs, deploy, espimage, flash, identity
from host_tools.commands.identity import add_identity_arguments, identity_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flash", help="flash MicroPython to an ESP32 board, then deploy the agent "
                                     "and the phone identity",
                       description=flash.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--board", required=True, metavar="NAME", type=cliargs.board_profile(),
                   help="board profile (boards/NAME.json): chip and flash offset")
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0 or rfc2217://HOST:PORT")
    p.add_argument("--firmware", required=True, type=cliargs.input_file("firmware"),
                   metavar="IMAGE.bin",
                   help="MicroPython firmware image for the board's chip (from micropython.org)")
    p.add_argument("--erase", action="store_true", help="erase the whole flash first "
                   "(first flash of a board, or to wipe its filesystem)")
    p.add_argument("--baud", type=cliargs.integer(9600, 5000000), default=flash.DEFAULT_BAUD,
                   help=f"write speed (default %(default)s; falls back to {flash.ROM_BAUD} on failure)")
    p.add_argument("--before", choices=flash.BEFORE, default="default-reset",
                   help="how to enter the bootloader (esptool's --before; default %(default)s)")
    p.add_argument("--no-deploy", action="store_true",
                   help="only flash MicroPython; do not deploy the agent or an identity")
    p.add_argument("--source", action="store_true", help="deploy .py sources instead of .mpy")
    p.add_argument("-v", "--verbose", action="store_true", help="show esptool's messages")
    add_identity_arguments(p, required=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        ident = identity_from_args(args)  # read and checked before flashing
        flash.flash(args.port, args.board, args.firmware, baud=args.baud, erase=args.erase,
                    before=args.before, verbose=args.verbose)
        if args.no_deploy:
            return 0
        flash.wait_for_micropython(args.port)
        deploy.deploy(args.port, board=args.board, source=args.source, reset=ident is None)
        if ident is not None:
            identity.put_identity(args.port, ident)
    except (flash.FlashError, espimage.ImageError, boards.BoardError, deploy.DeployError,
            identity.IdentityError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
