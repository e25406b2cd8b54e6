"""`phonelab repl`: the command line of host_tools.repl (the help text is its docstring)."""
from __future__ import annotations

import argparse

from host_tools import repl


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("repl", help="serial REPL of a board (mpremote's) with event lines rendered",
                       description=repl.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", required=True, help="serial device, vboard pty, or URL")
    p.add_argument("--raw-events", action="store_true",
                   help="also show each event's JSON line as the board wrote it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return repl.repl(args.port, args.raw_events)
