"""`phonelab`: the command line. Each subcommand lives in its own module, which exposes
`register(subparsers)`; the parser it adds sets `func(args) -> int`."""
from __future__ import annotations

import argparse
import importlib
import sys

# One line per command module; order is the order of `phonelab --help`.
COMMANDS = [
    "host_tools.commands.demo",
    "host_tools.commands.boards",
    "host_tools.commands.certs",
    "host_tools.commands.config",
    "host_tools.commands.ctl",
    "host_tools.vboard.cli",
    "host_tools.deploy",
    "host_tools.flash",
    "host_tools.provision",
    "host_tools.repl",
    "host_tools.status",
    "host_tools.commands.lab",
    "host_tools.commands.run",
    "host_tools.commands.replay",
    "host_tools.commands.report",
    "host_tools.commands.fleet",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phonelab",
        description="Secure SRST phone agent: virtual boards, lab, flashing and tests.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
