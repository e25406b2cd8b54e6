"""`phonelab run SCENARIO.toml`: run a scenario; exit 0 only if every expectation held."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from host_tools import cliargs
from host_tools.events import render
from host_tools.lab.names import MODES, PKI_HELP, TFTP_ROOT_HELP
from host_tools.scenario import report, runner, spec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a scenario file against a virtual board (or a real one)")
    p.add_argument("scenario", type=cliargs.scenario_file,
                   help="scenario TOML, or the name of one of scenarios/ (e.g. wan-blackhole)")
    p.add_argument("--board", default="virtual", type=cliargs.board_spec,
                   help="'virtual' (default), 'virtual:PROFILE' (the ESP32-faithful board of a "
                        "hardware profile, docs/vboard.md) or a serial port")
    p.add_argument("--tftp-root", type=cliargs.input_dir, metavar="DIR", help=TFTP_ROOT_HELP)
    p.add_argument("--pki", type=cliargs.input_dir, metavar="DIR", help=PKI_HELP)
    p.add_argument("--report", type=cliargs.output_file, help="write the JSON report here "
                   "(default out/reports/NAME.json)")
    p.add_argument("--pcap", type=cliargs.output_file, help="capture the phone's interface into this pcap")
    p.add_argument("--keylog", type=cliargs.output_file, help="write the TLS key log (decrypts the capture)")
    p.add_argument("--heap", type=cliargs.heap_size(), help=f"MicroPython heap of the virtual board (default {runner.DEFAULT_HEAP})")
    p.add_argument("--mode", choices=MODES, help="override [lab] mode")
    p.add_argument("--picture", type=cliargs.picture_file, help="timeline picture (PNG or SVG; default beside the report)")
    p.add_argument("-q", "--quiet", action="store_true", help="no live event stream")
    p.add_argument("--check", action="store_true", help="only validate the scenario file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        sc = spec.load(args.scenario)
    except spec.ScenarioError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.check:
        print(f"{args.scenario}: ok ({len(sc.timeline)} steps, {len(sc.expect)} expectations)")
        return 0
    t0 = time.monotonic()

    def show_event(s: runner.Stamped) -> None:
        if not args.quiet:
            print(f"{s.host - t0:7.2f}s board {render(s.event)}", flush=True)

    def show_warnings(lab: object) -> None:
        for w in getattr(lab, "warnings", []):
            print(f"warning: {w}", file=sys.stderr, flush=True)

    def show_action(a: runner.Action) -> None:
        extra = " ".join(f"{k}={v}" for k, v in a.args.items())
        print(f"{a.host - t0:7.2f}s LAB   >>> {a.action} {extra}", flush=True)

    out = args.report or Path("out/reports") / f"{sc.name}.json"
    opts = runner.RunOptions(board=args.board, tftp_root=args.tftp_root, pki=args.pki,
                             pcap=args.pcap, keylog=args.keylog, heap=args.heap, mode=args.mode,
                             on_event=show_event, on_action=show_action, on_lab=show_warnings)
    print(f"running {sc.name}: {sc.description.splitlines()[0] if sc.description else ''}", flush=True)
    try:
        with runner.report_lock(out):      # a concurrent run with this report is refused
            res = runner.run(sc, opts)
            report.write(res, out)
            _picture(res, args.picture or out.with_suffix(".png"))
            report.write(res, out)
    except runner.RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.summary(res))
    return 0 if res.passed else 1


def _picture(res: runner.Result, path: Path) -> None:
    try:
        from host_tools.scenario import picture
    except ImportError:
        return
    try:
        res.files["picture"] = str(picture.draw(res, path))
    except Exception as e:  # a picture that cannot be drawn must not fail the run
        print(f"warning: no timeline picture: {e}", file=sys.stderr)
