"""`phonelab report show|picture REPORT.json`: read a saved scenario report (docs/reports.md)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="show a saved scenario report or redraw its timeline picture")
    cmds = p.add_subparsers(dest="report_command", metavar="SUBCOMMAND", required=True)
    show = cmds.add_parser("show", help="the human summary (exit 1 if the run failed)")
    show.add_argument("report", type=Path,
                      help="report JSON (phonelab run writes out/reports/NAME.json)")
    show.set_defaults(func=show_cmd)
    pic = cmds.add_parser("picture", help="draw the timeline picture (PNG or SVG by suffix)")
    pic.add_argument("report", type=Path, help="report JSON")
    pic.add_argument("-o", "--output", type=Path,
                     help="picture file, .png or .svg (default: the report's name with .png)")
    pic.set_defaults(func=picture_cmd)


def load(path: Path) -> dict[str, Any]:
    """A report dict, or ValueError saying what is wrong with the file."""
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise ValueError(f"{path}: cannot read: {e.strerror}") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON: {e}") from e
    if not isinstance(data, dict) or "scenario" not in data or "events" not in data:
        raise ValueError(f"{path}: not a scenario report (no 'scenario' and 'events')")
    return data


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
        print(picture.draw(data, out))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
