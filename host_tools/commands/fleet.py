"""`phonelab fleet --phones N [--procs P] [--sip] [--target lab|HOST:PORT] [--fail-over]`: a
fleet of virtual phones booting (and failing over) at once, as a load test of an SRST router:
the lab's simulator, or a real router at HOST:PORT. With --sip the phones are SIP phones
against the lab's Kamailio registrars at both ends (or, with --target, a real router's SIP TLS
port, 5061), and Kamailio's own count of registrations must agree with theirs. Prints the
figures, writes them as JSON; exit 0 only when every phone got where the run asked
(registered + standby, and on the SRST router after the WAN cut with --fail-over). See
docs/fleet.md."""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from host_tools import WORK, cliargs
from host_tools.lab.names import MODES, WAN_KINDS

DEFAULT_JSON = WORK / "out" / "fleet"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fleet", help="N virtual phones booting and failing over at once "
                                     "(load test of an SRST router)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--phones", "-n", type=cliargs.integer(1, 100000), required=True, help="how many phones")
    p.add_argument("--procs", "-p", type=cliargs.integer(0, 1024), default=0,
                   help="MicroPython processes (default: one per core, and at least one per "
                        "500 phones)")
    p.add_argument("--sip", action="store_true",
                   help="SIP phones (REGISTER over TLS 5061) against the lab's Kamailio "
                        "registrars, call manager's and SRST router's (Debian kamailio, "
                        "kamailio-tls-modules)")
    p.add_argument("--target", default="lab", metavar="lab|HOST:PORT", type=_target,
                   help="the SRST router: the lab's simulator (default) or a real one's TLS "
                        "port (SCCP 2443; with --sip its SIP TLS port, 5061)")
    p.add_argument("--srst-cert", type=cliargs.cert_file, metavar="FILE",
                   help="with --target HOST:PORT: the router certificate to pin (PEM or DER; "
                        "default: the one it presents)")
    p.add_argument("--fail-over", action="store_true",
                   help="after boot, cut the WAN and measure until every phone is on the SRST router")
    p.add_argument("--cut", default="blackhole",
                   choices=WAN_KINDS, help="WAN fault")
    p.add_argument("--mode", default="auto", choices=MODES,
                   help="lab topology (namespaces when root)")
    p.add_argument("--timers", default="short", choices=["short", "long"],
                   help="lab timers: short (keepalive 5 s, as the demo) or long (30 s, real defaults)")
    p.add_argument("--ramp", type=cliargs.number(0, 100000, name="rate"), default=0.0,
                   metavar="PHONES_PER_S",
                   help="start phones at this rate (default: all at once)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   type=cliargs.pattern(r"[a-z_][a-z0-9_]*=.*", "KEY=VALUE (an agent setting)",
                                        "KEY=VALUE"),
                   help="agent setting (phone/settings.py), e.g. --set connect_timeout_ms=10000")
    p.add_argument("--boot-timeout", type=cliargs.duration(0, 24 * 3600), help="seconds (default 30 + 0.1 per phone)")
    p.add_argument("--failover-timeout", type=cliargs.duration(0, 24 * 3600), help="seconds (default 30 + 0.05 per phone)")
    p.add_argument("--heap-per-phone", type=cliargs.integer(8, 4096), default=40, metavar="KB",
                   help="MicroPython heap per phone (+256 KB per process; measured use ~21 KB)")
    p.add_argument("--max-connecting", type=cliargs.integer(0, 100000), default=16, metavar="K",
                   help="links in TCP/TLS connect at once per process (0: no limit)")
    p.add_argument("--stock-poll", action="store_true",
                   help="asyncio's own I/O wait (1 ms sleep per poll on the unix port) instead "
                        "of the fleet's (measures the difference)")
    p.add_argument("--agent-gc", action="store_true",
                   help="let every agent run its own gc.collect() (slow with big fleets)")
    p.add_argument("--backlog", type=cliargs.integer(0, 65535), default=4096,
                   help="listen backlog of the simulators (0: asyncio's 100)")
    p.add_argument("--nice", type=cliargs.integer(-20, 19), metavar="N",
                   help="niceness of the phones' processes (default 10: the simulators and "
                        "Kamailio, the servers under test, get the CPU first; 0: none)")
    p.add_argument("--json", type=cliargs.output_file, metavar="FILE",
                   help=f"write the figures here (default {DEFAULT_JSON.relative_to(WORK)}/fleet-N.json)")
    p.add_argument("--keep", type=cliargs.output_dir, metavar="DIR", help="keep the lab and process folders here")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def _target(text: str) -> str:
    """'lab' or HOST:PORT with a port 1-65535."""
    if text == "lab":
        return text
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 \
            or not cliargs.re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", host):
        raise argparse.ArgumentTypeError(f"{text!r} is not 'lab' or HOST:PORT")
    return text


_target.kind = "pattern"  # type: ignore[attr-defined]


def _settings(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _check_settings(settings: dict[str, Any]) -> None:
    import host_tools.fw  # noqa: F401  (firmware/ on sys.path)
    from phone.settings import DEFAULTS  # type: ignore[import-not-found]
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown agent setting(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(DEFAULTS))}")


def run(args: argparse.Namespace) -> int:
    from host_tools.fleet import report
    from host_tools.fleet.run import FleetError, FleetOptions
    from host_tools.fleet.run import run as run_fleet
    try:
        settings = _settings(args.set)
        _check_settings(settings)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t0 = time.monotonic()

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"{time.monotonic() - t0:7.1f}s {msg}", flush=True)

    opts = FleetOptions(phones=args.phones, procs=args.procs, target=args.target,
                        protocol="sip" if args.sip else "sccp",
                        fail_over=args.fail_over, cut=args.cut, mode=args.mode,
                        timers=args.timers, ramp=args.ramp, settings=settings,
                        boot_timeout=args.boot_timeout, failover_timeout=args.failover_timeout,
                        heap_per_phone_kb=args.heap_per_phone, max_connecting=args.max_connecting,
                        fast_poll=not args.stock_poll, gc_every_ms=0 if args.agent_gc else 1000,
                        backlog=args.backlog, srst_cert=args.srst_cert, workdir=args.keep,
                        keep=args.keep is not None, progress=progress,
                        **({} if args.nice is None else {"nice": args.nice}))
    try:
        res = run_fleet(opts)
    except FleetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.json or DEFAULT_JSON / f"fleet-{'sip-' if args.sip else ''}{args.phones}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    _show(res, report)
    print(f"figures: {out}")
    return 0 if res.get("ok") else 1


def _show(res: dict[str, Any], report: Any) -> None:
    from rich.console import Console
    from rich.table import Table
    t = Table(title="phonelab fleet", show_header=False)
    t.add_column("", style="bold")
    t.add_column("")
    for label, value in report.lines(res):
        t.add_row(label, value)
    console = Console()
    console.print(t)
    for line in report.notes(res):
        console.print(f"  {line}", highlight=False)
