"""`phonelab replay CAPTURE.pcap`: serve a capture's DHCP answers and TFTP files back to a
fresh virtual board and report where its behaviour differs from the capture. Exit 0 when the
board did what the captured phone did: MATCHED (it provisioned, with the capture's trust
and configuration files, same hashes, every request answered) or REPRODUCED (the captured
phone got no configuration and the board failed the same way); 1 when it DIFFERS (among
others: a board that did not provision, requests nobody answered), 2 when the replay could
not run.

`phonelab replay REPORT.json`: run a recorded `phonelab run` again with its faults at the
recorded times; exit 0 when the recorded outcome was reproduced."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import host_tools.fw  # noqa: F401  (firmware/ on sys.path)
from host_tools import cliargs, readers
from host_tools.events import render
from host_tools.scenario import report as reportlib, runner, spec
from host_tools.replay import capture as caplib
from host_tools.replay import compare, plan as planlib, recording, session
from phone.store import PHONE_CERT, PHONE_KEY  # type: ignore[import-not-found]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="serve a capture's DHCP answers and TFTP files back to a "
                       "virtual board and compare (needs root: network namespaces)")
    p.add_argument("capture", type=cliargs.input_file("capture", limit=readers.LIMITS["pcap"]), help="pcap or pcapng of a phone's boot, or the JSON "
                   "report of a `phonelab run` (a lab recording) to run again")
    p.add_argument("--timing", choices=planlib.TIMINGS, default="captured",
                   help="answer with the captured delays (default) or as fast as possible")
    p.add_argument("--mac", type=cliargs.mac, help="the phone in the capture (default: the first DHCP client "
                   "that got an ACK)")
    p.add_argument("--report", type=cliargs.output_file, help="JSON report (default out/replay/NAME.json)")
    p.add_argument("--record", type=cliargs.output_file, help="the replay's own capture (default: beside the "
                   "report, NAME.replay.pcap)")
    p.add_argument("--no-record", action="store_true", help="do not capture the replay (the "
                   "board's files then come from the servers' logs)")
    p.add_argument("--workdir", type=cliargs.output_dir, help="keep the replay's files here (board folder, "
                   "served files, logs, plan.json)")
    p.add_argument("--timeout", type=cliargs.duration(0, 24 * 3600), default=90.0, help="seconds to wait for the board's "
                   "first provisioning pass (default 90)")
    p.add_argument("--until", default=",".join(session.END_EVENTS),
                   type=cliargs.pattern(r"[a-z_]+(?::[a-z_]+)?(?:,[a-z_]+(?::[a-z_]+)?)*",
                                        "board event names separated by commas", "events"),
                   help="board events that end the run (comma separated; default %(default)s)")
    p.add_argument("--heap", type=cliargs.heap_size(), help="MicroPython heap of the virtual board")
    p.add_argument("--short-timers", action="store_true",
                   help="the lab's short agent timers (TFTP timeout 1 s, ...) instead of the defaults")
    p.add_argument("--identity", type=_identity_dir, help="folder with the phone's phone.der/phone.key "
                   "(default: a new self-signed one; provisioning does not use it)")
    p.add_argument("--show", action="store_true", help="only show what the capture holds and "
                   "what a replay would serve (no root needed)")
    p.add_argument("--extract", type=cliargs.output_dir, metavar="DIR",
                   help="write the capture's complete files into DIR (with --show: and stop)")
    p.add_argument("--scenario", type=cliargs.input_file("toml", utf8=True), help="recording replay: the scenario file "
                   "(default scenarios/NAME.toml)")
    p.add_argument("-q", "--quiet", action="store_true", help="no live event stream")
    p.set_defaults(func=run)


@cliargs._kind("input_dir")
def _identity_dir(text: str) -> Path:
    """A folder with phone.der and phone.key (or state/ with them), each a readable file."""
    folder = cliargs.input_dir(text)
    for d in (folder, folder / "state"):
        if (d / PHONE_CERT).exists() and (d / PHONE_KEY).exists():
            for name in (PHONE_CERT, PHONE_KEY):
                cliargs._arg(lambda t: readers.check_file(t, "cert"), str(d / name))
            return folder
    raise argparse.ArgumentTypeError(f"{folder}: no phone.der and phone.key (nor in state/)")


def run(args: argparse.Namespace) -> int:
    if args.capture.suffix.lower() == ".json":
        return run_recording(args)
    if args.scenario is not None:
        print(f"phonelab replay: error: --scenario {args.scenario}: only for a recording "
              f"(a `phonelab run` report, .json), not for the capture {args.capture}",
              file=sys.stderr)
        return 2
    try:
        cap = caplib.analyse(args.capture, mac=args.mac)
        plan = planlib.build(cap, args.timing)
    except (OSError, ValueError) as e:           # CaptureError, PcapError, PlanError
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.extract:
        for path in extract(cap, args.extract):
            print(f"extracted {path}")
    if args.show:
        print(show(cap, plan))
        return 0
    report_path = args.report or Path("out/replay") / f"{args.capture.stem}.json"
    record = None if args.no_record else (args.record or report_path.with_suffix(".replay.pcap"))
    t0 = time.monotonic()

    def on_event(s: session.Stamped) -> None:
        if not args.quiet:
            print(f"{s.host - t0:7.2f}s board {render(s.event)}", flush=True)

    opts = session.ReplayOptions(workdir=args.workdir, heap=args.heap, timeout_s=args.timeout,
                                 until=tuple(u.strip() for u in args.until.split(",") if u.strip()),
                                 short_timers=args.short_timers, identity=args.identity,
                                 record=record, on_event=on_event, keep=args.workdir is not None)
    print(f"replaying {args.capture} to a fresh virtual board (phone {plan.mac}, "
          f"timing {plan.timing})", flush=True)
    for n in plan.notes:
        print(f"note: {n}", flush=True)
    try:
        res = session.run(plan, opts)
    except session.ReplayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rep = compare.report(cap, plan, res)
    compare.write(rep, report_path)
    print(compare.summary(rep))
    return 0 if rep["reproduced"] else 1


def run_recording(args: argparse.Namespace) -> int:
    try:
        rep = recording.load_report(args.capture)
        t0 = time.monotonic()

        def on_event(s: session.Stamped) -> None:
            if not args.quiet:
                print(f"{s.host - t0:7.2f}s board {render(s.event)}", flush=True)

        def on_action(a: runner.Action) -> None:
            print(f"{a.host - t0:7.2f}s LAB   >>> {a.action} "
                  + " ".join(f"{k}={v}" for k, v in a.args.items()), flush=True)

        opts = runner.RunOptions(workdir=args.workdir, heap=args.heap, on_event=on_event,
                                 on_action=on_action, keep=args.workdir is not None)
        print(f"running the recording of {rep['scenario']} again ({len(rep['actions'])} "
              f"actions at their recorded times)", flush=True)
        res, cmp = recording.replay_recording(rep, opts, args.scenario)
    except (recording.RecordingError, spec.ScenarioError, runner.RunError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.report or Path("out/replay") / f"{args.capture.stem}.recording.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"recording": str(args.capture), **cmp,
                               "replay": reportlib.to_dict(res)}, indent=2, default=str) + "\n")
    print(recording.summary(cmp, rep))
    print(f"  report: {out}")
    return 0 if cmp["reproduced"] else 1


def extract(cap: caplib.Analysis, folder: Path) -> list[Path]:
    """The capture's complete files, under their requested names (made safe)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for f in cap.files.values():
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in f.name).lstrip(".") or "file"
        p = folder / safe
        p.write_bytes(f.content)
        out.append(p)
    return out


def show(cap: caplib.Analysis, plan: planlib.Plan) -> str:
    d = cap.to_dict()
    lines = [f"{cap.path}: {d['frames']} frames, {d['udp']} UDP datagrams; phone {cap.mac} "
             f"at {cap.phone_ip}"]
    for w in d["warnings"]:
        lines.append(f"  warning: {w}")
    if d["other_clients"]:
        lines.append(f"  other DHCP clients (use --mac): {', '.join(d['other_clients'])}")
    for key in ("offer", "ack", "inform_ack"):
        v = d["dhcp"].get(key)
        if v:
            lines.append(f"  DHCP {key}: " + ", ".join(f"{k}={v[k]}" for k in v if v[k] not in (None, [])))
    t = d["timing"].get("dhcp")
    if t:
        lines.append(f"  DHCP timing: offer after {t['offer_delay_ms']} ms "
                     f"({t['unanswered_discovers']} DISCOVER unanswered), ack after "
                     f"{t['ack_delay_ms']} ms ({t['unanswered_requests']} REQUEST unanswered)")
    lines.append("  TFTP read requests:")
    for x in cap.transfers:
        s = x.summary()
        lines.append(f"    {s['file']:34} {s['status']:12} from {s['server']}  size {s['size']}  "
                     f"blksize {s['blksize']}  first answer {s['first_answer_ms']} ms  "
                     f"rrqs {s['rrqs']}  dups {s['duplicates']}")
    lines.append("  complete files:")
    for f in cap.files.values():
        lines.append(f"    {f.name:34} {f.size:>8} B  sha256 {f.sha256}")
    lines.append("  the replay would serve:")
    pd = plan.to_dict()
    lines.append(f"    DHCP from {pd['dhcp_server']} ({pd['dhcp_source']}), expected lease "
                 f"{pd['expected_lease']}")
    for tp in pd["tftp"]:
        lines.append(f"    TFTP {tp['address']} (captured {tp['captured_address']}): "
                     f"files {tp['files']}, errors {list(tp['errors'])}, silent {tp['silent']}")
    for n in plan.notes:
        lines.append(f"  note: {n}")
    return "\n".join(lines)
