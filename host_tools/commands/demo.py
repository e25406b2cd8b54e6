"""`phonelab demo`: the whole story on a virtual board, live.

Builds the lab (namespaces when root, loopback otherwise), boots the agent on a virtual board
and runs: registered to the call manager, standby TLS to the SRST router on 2443, WAN cut,
failover over the standby link, WAN back, re-home. Ends with the measured figures and where
the report, timeline picture, capture and TLS key log are. `--sip`: the same story for a SIP
phone (issue 15), against the lab's Kamailio registrars on TLS 5061 (REGISTER with digest
over mutual TLS; `[lab] protocol = "sip"`).
"""
from __future__ import annotations

import argparse
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from host_tools import cliargs
from host_tools.events import render
from host_tools.lab.names import MODES, WAN_KINDS
from host_tools.scenario import report, runner, spec

STORY = '''
name = "demo"
description = "Registered to the call manager with standby TLS to the SRST router; WAN cut; failover over the standby link; WAN back; re-home."
until = "rehomed"
timeout = "{timeout}"

[lab]
short_timers = {short}
protocol = "{protocol}"

[[timeline]]
after = "standby_up"
delay = "2s"
action = "wan_cut"
kind = "{kind}"

[[timeline]]
after = "registered:srst"
delay = "3s"
action = "wan_restore"

[expect]
final_state = "PRIMARY"
registered_over_standby = true
events = ["registered:primary", "standby_up", "registered:srst", "rehomed"]
'''


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole Secure SRST story on a virtual board, live")
    p.add_argument("--out", type=cliargs.output_dir, default=Path("out/demo"),
                   help="where the report, picture, capture and key log go (default out/demo)")
    p.add_argument("--real-timers", action="store_true",
                   help="the real defaults (keepalive 30 s, connectionMonitorDuration 120 s): "
                        "takes several minutes")
    p.add_argument("--kind", default="blackhole", choices=WAN_KINDS,
                   help="WAN fault kind (cm_reset with --sip: the HQ Kamailio stopped)")
    p.add_argument("--sip", action="store_true",
                   help="a SIP phone against the lab's Kamailio registrars on TLS 5061 "
                        "(needs Debian kamailio and kamailio-tls-modules)")
    p.add_argument("--mode", choices=MODES, default="auto")
    p.add_argument("--heap", type=cliargs.heap_size(), help=f"virtual board heap (default {runner.DEFAULT_HEAP})")
    p.add_argument("--board", default="virtual", type=cliargs.virtual_board,
                   help="'virtual' (default) or 'virtual:PROFILE', the ESP32-faithful board of a "
                        "hardware profile (docs/vboard.md)")
    p.add_argument("--plain", action="store_true", help="plain event lines, no live view")
    p.set_defaults(func=run)


class View:
    """What the live view shows; updated from the runner's threads."""

    def __init__(self, board: str = "virtual", sip: bool = False) -> None:
        self.board = board
        self.sip = sip
        self.lock = threading.Lock()
        self.state = "BOOT"
        self.primary = "-"
        self.standby = "-"
        self.wan = "up"
        self.mode = "?"
        self.hosts: dict[str, str] = {}
        self.log: deque[str] = deque(maxlen=14)
        self.t0 = time.monotonic()

    def on_event(self, s: runner.Stamped) -> None:
        e = s.event
        with self.lock:
            if e.ev == "state":
                self.state = e.get("state") or self.state
            elif e.ev == "registered":
                if e.get("link") == "primary":
                    self.primary = f"registered {e.get('host')}:{e.get('port')}"
                    self.standby = self.standby if "registered" not in self.standby else "-"
                else:
                    self.standby = (f"registered {e.get('host')}:{e.get('port')}"
                                    f"{' over standby' if e.get('over_standby') else ''}")
            elif e.ev == "standby_up":
                self.standby = f"standby TLS {e.get('host')}:{e.get('port')}"
            elif e.ev == "link_down":
                if e.get("link") == "primary":
                    self.primary = f"down ({e.get('reason')})"
                elif e.get("link") == "srst":
                    self.standby = f"down ({e.get('reason')})"
            elif e.ev == "primary_reachable":
                self.primary = f"reachable again, waiting {e.get('monitor_s')} s"
            self.log.append(f"{s.host - self.t0:6.1f}s  {render(e)[10:120]}")

    def on_action(self, a: runner.Action) -> None:
        with self.lock:
            if a.action == "wan_cut":
                self.wan = f"CUT ({a.args.get('kind', 'blackhole')})"
            elif a.action == "wan_restore":
                self.wan = "up"
            self.log.append(f"{a.host - self.t0:6.1f}s  [bold red]LAB >>> {a.action}[/] "
                            + " ".join(f"{k}={v}" for k, v in a.args.items()))

    def on_lab(self, lab: Any) -> None:
        a = lab.topology.addr
        ep = lab.endpoints
        with self.lock:
            self.mode = lab.mode
            if self.sip:
                br, hq = ep["sip_srst"], ep["sip_callmanager"]
                self.hosts = {
                    "phone": self._phone(a.phone, lab.mode) + ", SIP",
                    "branch router": f"SRST registrar: Kamailio tls:{br[0]}:{br[1]}"
                                     + (", DHCP (dnsmasq, option 150)" if lab.dhcp else ""),
                    "HQ": f"call manager registrar: Kamailio tls:{hq[0]}:{hq[1]}, "
                          f"TFTP {ep['tftp'][0]}",
                }
                return
            self.hosts = {
                "phone": self._phone(a.phone, lab.mode),
                "branch router": f"SRST router sim {lab.endpoints['srst'][0]}:{lab.endpoints['srst'][1]}, "
                                 f"credentials {lab.endpoints['credentials'][1]}"
                                 + (", DHCP (dnsmasq, option 150)" if lab.dhcp else ""),
                "HQ": f"call manager sim {lab.endpoints['callmanager'][0]}:{lab.endpoints['callmanager'][1]}, "
                      f"TFTP {lab.endpoints['tftp'][0]}",
            }

    def _phone(self, addr: str, mode: str) -> str:
        return ((f"{self.board} (ESP32-faithful virtual board)" if self.board != "virtual"
                 else "virtual board (MicroPython unix port)")
                + f", {addr if mode == 'loopback' else 'DHCP on 192.0.2.0/24'}")

    def render(self) -> Group:
        with self.lock:
            hosts = Table(title=f"lab ({self.mode} mode)", expand=True, show_header=False)
            for k, v in self.hosts.items():
                hosts.add_row(f"[bold]{k}[/]", v)
            hosts.add_row("[bold]WAN[/]", f"[red]{self.wan}[/]" if self.wan != "up" else "[green]up[/]")
            links = Table(expand=True, show_header=False)
            colour = {"PRIMARY": "green", "FALLBACK": "yellow", "REHOME": "cyan"}.get(self.state, "blue")
            links.add_row("[bold]phone state[/]", f"[{colour}]{self.state}[/]")
            links.add_row("[bold]primary link[/]", self.primary)
            links.add_row("[bold]SRST link[/]", self.standby)
            return Group(hosts, links, Panel("\n".join(self.log), title="events"))


def run(args: argparse.Namespace) -> int:
    console = Console()
    short = not args.real_timers
    sc = spec.loads(STORY.format(short="true" if short else "false", kind=args.kind,
                                 timeout="90s" if short else "600s",
                                 protocol="sip" if args.sip else "sccp"))
    if args.sip:
        from host_tools.lab.kamailio import KamailioError, available
        why = available()
        if why:                    # the CLI's one line: "phonelab demo: error: ..." (exit 2)
            raise KamailioError(f"--sip: {why}")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    view = View(args.board, args.sip)
    live_ok = console.is_terminal and not args.plain
    if not live_ok:
        def show(s: runner.Stamped) -> None:
            view.on_event(s)
            console.print(f"{s.host - view.t0:6.1f}s board {render(s.event)}", highlight=False)

        def act(a: runner.Action) -> None:
            view.on_action(a)
            console.print(f"{a.host - view.t0:6.1f}s LAB   >>> {a.action} "
                          + " ".join(f"{k}={v}" for k, v in a.args.items()), highlight=False)
        on_event, on_action = show, act
    else:
        on_event, on_action = view.on_event, view.on_action
    opts = runner.RunOptions(pcap=out / "capture.pcap", keylog=out / "tls-keys.log",
                             heap=args.heap, mode=args.mode, on_event=on_event, board=args.board,
                             on_action=on_action, on_lab=view.on_lab)
    console.print(f"[bold]phonelab demo{' --sip' if args.sip else ''}[/]: {sc.description}")
    console.print(f"timers: {'short (keepalive 5 s, connectionMonitorDuration 10 s)' if short else 'real defaults'}"
                  "; building the lab...")
    if live_ok:
        with Live(view.render(), console=console, refresh_per_second=4) as live:
            stop = threading.Event()

            def refresh() -> None:
                while not stop.wait(0.25):
                    live.update(view.render())
            th = threading.Thread(target=refresh, daemon=True)
            th.start()
            try:
                res = runner.run(sc, opts)
            finally:
                stop.set()
                th.join(2)
                live.update(view.render())
    else:
        res = runner.run(sc, opts)
    if res.mode == "loopback":
        console.print("[yellow]loopback mode (not root): the roles share 127.0.0.x and the WAN "
                      "is a relay that blackholes; no DHCP.[/]")
    rpath = report.write(res, out / "report.json")
    try:
        from host_tools.scenario import picture
        res.files["picture"] = str(picture.draw(res, out / "timeline.png"))
        report.write(res, rpath)
    except ImportError:
        pass
    console.print(_figures(res))
    return 0 if res.passed else 1


def _figures(res: runner.Result) -> Table:
    m = res.metrics
    t = Table(title=f"demo {'PASSED' if res.passed else 'FAILED'} ({res.mode} lab)")
    t.add_column("figure")
    t.add_column("measured", justify="right")
    t.add_column("real Cisco phones", justify="right")
    real = {"failover_ms": "30-35 s (cable pulled, 30 s keepalive)",
            "register_over_standby_ms": "10-20 s with standby",
            "rehome_ms": "connectionMonitorDuration (120 s)"}
    for k in ("boot_to_registered_ms", "standby_up_ms", "failover_ms", "register_over_standby_ms",
              "rehome_ms", "peak_heap_bytes"):
        v = m.get(k)
        shown = "-" if v is None else (f"{v:,} bytes" if k.endswith("bytes") else f"{v:,} ms")
        t.add_row(k, shown, real.get(k, ""))
    for e in res.expectations:
        if not e["passed"]:
            t.add_row(f"[red]FAILED {e['name']}[/]", str(e["actual"]), e["message"])
    if res.error:
        t.add_row("[red]error[/]", "", res.error)
    for k, v in res.files.items():
        t.add_row(k, v, "")
    return t
