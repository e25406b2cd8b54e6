"""`phonelab status`: the command line of host_tools.status (the help text is its docstring)."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from host_tools import cliargs, status
from host_tools.deploy import DeployError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="the agent's state and links, from its event stream",
                       description=status.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", required=True, help="serial device, vboard pty, or URL")
    p.add_argument("--listen", type=cliargs.duration(0, 24 * 3600), default=None, metavar="S",
                   help="seconds to listen (default 3, or 20 with --reset)")
    p.add_argument("--reset", action="store_true", help="restart the agent and follow its boot")
    p.add_argument("--events", action="store_true", help="print the events as they come")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import serial
    listen = args.listen if args.listen is not None else (20.0 if args.reset else 3.0)
    try:
        r = status.status(args.port, listen, reset=args.reset, echo=args.events and not args.json)
    except (serial.SerialException, OSError) as e:
        print(f"error: cannot open {args.port}: {e}", file=sys.stderr)
        return 1
    except DeployError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(asdict(r), indent=1))
    else:
        print_report(r)
    return 0 if r.running is not False else 3


def print_report(r: status.StatusReport) -> None:
    running = {True: "running", False: "not running", None: "unknown"}[r.running]
    print(f"agent on {r.port}: {running}")
    if r.status.events:
        print("\n".join(r.status.lines()))
    if r.note:
        print(f"  ({r.note})")
    if r.board is not None:
        b = r.board
        print(f"  board profile: {b.get('board')}   MAC: {b.get('mac') or 'from the NIC'}   "
              f"store: {b.get('store')}")
        have = [n for n, size in b.get("files", {}).items() if size is not None]
        print(f"  stored: {', '.join(have) or 'nothing'}   deployed: {b.get('deployed')}")
