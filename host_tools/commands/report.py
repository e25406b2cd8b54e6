"""`phonelab report show|picture REPORT.json`: read a saved scenario report (docs/reports.md)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from host_tools import cliargs, readers


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="show a saved scenario report or redraw its timeline picture")
    cmds = p.add_subparsers(dest="report_command", metavar="SUBCOMMAND", required=True)
    show = cmds.add_parser("show", help="the human summary (exit 1 if the run failed)")
    show.add_argument("report", type=cliargs.input_file("report"),
                      help="report JSON (phonelab run writes out/reports/NAME.json)")
    show.set_defaults(func=show_cmd)
    pic = cmds.add_parser("picture", help="draw the timeline picture (PNG or SVG by suffix)")
    pic.add_argument("report", type=cliargs.input_file("report"), help="report JSON")
    pic.add_argument("-o", "--output", type=cliargs.picture_file,
                     help="picture file, .png or .svg (default: the report's name with .png)")
    pic.set_defaults(func=picture_cmd)


def load(path: Path) -> dict[str, Any]:
    """A report dict, or ValueError saying what is wrong with the file."""
    from host_tools.scenario import report
    return report.check(readers.read_json(path, "report"), path)


def show_cmd(args: argparse.Namespace) -> int:
    from host_tools.scenario import report
    try:
        data = load(args.report)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.summary(data))
    return 0 if data.get("passed") else 1


def picture_cmd(args: argparse.Namespace) -> int:
    from host_tools.scenario import picture
    out = args.output or args.report.with_suffix(".png")
    try:
        data = load(args.report)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        print(picture.draw(data, out))
    except (ValueError, TypeError, KeyError, AttributeError) as e:   # a value of the wrong kind
        print(f"error: {args.report}: cannot draw this report: {type(e).__name__}: {e}",
              file=sys.stderr)
        return 2
    return 0
