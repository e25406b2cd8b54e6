"""`phonelab lab up|down|status|cut|restore|kill|restart`: the lab alone, for a virtual board
started by hand or a real board on the bench.

`lab up` runs in the foreground until Ctrl-C, SIGTERM or `phonelab lab down` (or detaches with
--detach). It writes DIR/lab-state.json (what to clean up) and serves DIR/control.sock, which
the other subcommands use from another terminal.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from host_tools import WORK, cliargs, readers
from host_tools.signals import pid_alive
from host_tools.lab.names import MODES, PKI_HELP, SERVERS, TFTP_KINDS, TFTP_ROOT_HELP, WAN_KINDS

DEFAULT_DIR = WORK / "build" / "lab"
STATE = "lab-state.json"
CONTROL = "control.sock"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lab", help="start/stop the lab (DHCP, TFTP, call manager, SRST router)")
    acts = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    up = acts.add_parser("up", help="build the lab and run it until Ctrl-C or `lab down`",
                         description="Build the lab: namespaces (root) or loopback, PKI, trust "
                                     "lists, phone configs, and the servers. With --interface, "
                                     "serve a real board on that Ethernet interface.")
    _dir(up, output=True)
    up.add_argument("--mode", default="auto", choices=MODES,
                    help="namespaces (root) or loopback; auto picks namespaces when it can")
    up.add_argument("--interface", metavar="IF", type=cliargs.name,
                    help="bridge this real Ethernet interface into the lab's branch LAN (bench)")
    up.add_argument("--yes-serve-dhcp", action="store_true",
                    help="confirm serving DHCP on --interface (a real network)")
    up.add_argument("--no-dhcp", action="store_true", help="no DHCP server")
    up.add_argument("--force", action="store_true",
                    help="take --interface even though it has IPv4 addresses (restored on down)")
    up.add_argument("--mac", action="append", default=[], metavar="MAC", type=cliargs.mac,
                    help="a phone (repeatable; default: the phones --tftp-root has configs "
                         "for, else --pki has certificates for, else 00:11:22:AA:BB:CC)")
    up.add_argument("--pki", type=cliargs.input_dir, metavar="DIR", help=PKI_HELP)
    up.add_argument("--tftp-root", type=cliargs.input_dir, metavar="DIR", help=TFTP_ROOT_HELP)
    up.add_argument("--tftp", default="auto", choices=TFTP_KINDS,
                    help="TFTP server: the lab's (fault injection) or dnsmasq's")
    up.add_argument("--short-timers", action="store_true",
                    help="keepalive 5 s, re-home after 10 s (demos)")
    up.add_argument("--record", action="store_true", help="capture the phone side into DIR/phone.pcap")
    up.add_argument("--key-size", type=int, default=2048, choices=(1024, 2048, 3072, 4096),
                    help="RSA key size of the lab PKI (not with --pki)")
    up.add_argument("--detach", action="store_true", help="run in the background")
    up.set_defaults(func=run_up)

    down = acts.add_parser("down", help="stop a lab started with `lab up` and clean up")
    _dir(down)
    down.set_defaults(func=run_down)

    st = acts.add_parser("status", help="servers, WAN and phones of the running lab")
    _dir(st)
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=run_status)

    cut = acts.add_parser("cut", help=f"cut the WAN: {', '.join(WAN_KINDS)}")
    _dir(cut)
    cut.add_argument("kind", nargs="?", default="blackhole",
                     choices=WAN_KINDS)
    cut.set_defaults(func=lambda a: _control(a, "wan_cut", kind=a.kind))

    rs = acts.add_parser("restore", help="restore the WAN")
    _dir(rs)
    rs.set_defaults(func=lambda a: _control(a, "wan_restore"))

    fl = acts.add_parser("flap", help="cut and restore the WAN COUNT times every PERIOD seconds")
    _dir(fl)
    fl.add_argument("period_s", type=cliargs.number(0, 3600, lo_open=True, name="seconds"))
    fl.add_argument("count", type=cliargs.integer(1, 100000))
    fl.add_argument("--kind", default="blackhole",
                    choices=WAN_KINDS)
    fl.set_defaults(func=lambda a: _control(a, "flap", period_s=a.period_s, count=a.count,
                                            kind=a.kind))

    for name, what in (("kill", "stop a server as if it died"), ("restart", "start a server again")):
        k = acts.add_parser(name, help=f"{what}: {', '.join(SERVERS)}")
        _dir(k)
        k.add_argument("server", choices=SERVERS)
        k.set_defaults(func=lambda a, n=name: _control(a, n, name=a.server))


def _dir(p: argparse.ArgumentParser, output: bool = False) -> None:
    """--dir: a folder `lab up` can make, or (other subcommands) an existing one."""
    p.add_argument("--dir", type=cliargs.output_dir if output else cliargs.input_dir,
                   default=DEFAULT_DIR,
                   help=f"the lab's folder (default {DEFAULT_DIR.relative_to(WORK)})")


# -- up ----------------------------------------------------------------------------------------

def run_up(args: argparse.Namespace) -> int:
    from host_tools.lab.topology import TopologyError, check_bench_interface
    workdir: Path = args.dir.resolve()
    state_path = workdir / STATE
    if state_path.exists():
        old = _read_state(state_path)
        if old and pid_alive(old.get("pid", 0)):
            print(f"error: a lab already runs from {workdir} (pid {old['pid']}); "
                  f"`phonelab lab down --dir {args.dir}` first", file=sys.stderr)
            return 1
    if args.interface:
        if os.geteuid() != 0:
            print("error: --interface needs root (namespaces)", file=sys.stderr)
            return 2
        if args.mode == "loopback":
            print("error: --interface needs namespace mode", file=sys.stderr)
            return 2
        if not (args.yes_serve_dhcp or args.no_dhcp):
            print(f"error: --interface {args.interface} would run a DHCP server on a real "
                  f"network.\n  Add --yes-serve-dhcp (a dedicated bench segment only) or "
                  f"--no-dhcp (boards with a configured tftp_server).", file=sys.stderr)
            return 2
        if not (args.mac or args.tftp_root or args.pki):
            print(f"error: --interface {args.interface} needs the board's MAC (--mac, from its "
                  f"label or `phonelab boards`): the lab makes its certificate and its "
                  f"configuration for that MAC, and no virtual phone of the lab may use it. "
                  f"(Other devices get XMLDefault.cnf.xml, as from CUCM.)", file=sys.stderr)
            return 2
        try:
            saved = check_bench_interface(args.interface)
        except TopologyError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if saved["addresses"] and not args.force:
            print(f"error: {args.interface} has addresses {', '.join(saved['addresses'])}; the "
                  f"lab takes the whole interface. Add --force to take it anyway (they are "
                  f"restored by `lab down`).", file=sys.stderr)
            return 2
    if args.detach:
        return _detach(args, workdir)
    return _serve(args, workdir)


def _serve(args: argparse.Namespace, workdir: Path) -> int:
    from host_tools.lab.control import ControlServer
    from host_tools.lab.lab import Lab, LabError

    workdir.mkdir(parents=True, exist_ok=True)
    try:
        lab = Lab(workdir, mode=args.mode, macs=args.mac or None, interface=args.interface,
                  short_timers=args.short_timers, dhcp=not args.no_dhcp, tftp=args.tftp,
                  record=args.record, key_size=args.key_size, pki=args.pki,
                  tftp_files=args.tftp_root)
    except LabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    state_path = workdir / STATE
    control: ControlServer | None = None
    try:
        if args.interface:
            _bench_warning(args)
        lab.start()
        for mac in lab.macs:
            lab.prepare_board_folder(workdir / "boards" / mac, mac)
        control = ControlServer(lab, _control_path(workdir)).start()
        _write_state(state_path, lab, control.path, ready=True)
        _print_summary(lab, args, control.path)
        for w in lab.warnings:
            print(f"warning: {w}", file=sys.stderr)
        sys.stdout.flush()
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping the lab")
    except SystemExit:               # SIGTERM / SIGHUP (`lab down`)
        print("stopping the lab")
    except LabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        if control is not None:
            control.stop()
        lab.stop()
        state_path.unlink(missing_ok=True)
    return 0


def _control_path(workdir: Path) -> Path:
    p = workdir / CONTROL
    if len(str(p)) > 100:             # AF_UNIX path limit (108 bytes)
        p = Path(f"/tmp/phonelab-lab-{os.getpid()}.sock")
    return p


def _write_state(path: Path, lab: Any, control: Path, ready: bool) -> None:
    st = {"pid": os.getpid(), "ready": ready, "started": time.time(),
          "control": str(control), "topology": lab.topology.state() if lab.topology else None,
          "lab": lab.describe()}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(st, indent=2, default=str) + "\n")
    tmp.replace(path)


def _bench_warning(args: argparse.Namespace) -> None:
    w = [f"WARNING: {args.interface} is moved into the lab's branch namespace while the lab runs;"
         f" this machine cannot use it until `phonelab lab down`."]
    if not args.no_dhcp:
        w.append(f"WARNING: a DHCP server will answer EVERY client on the {args.interface} "
                 f"segment (192.0.2.100-199, router 192.0.2.1, option 150 = 203.0.113.10). "
                 f"Use a dedicated bench cable or switch, never an office network.")
    for line in w:
        print(line, file=sys.stderr)


def _print_summary(lab: Any, args: argparse.Namespace, control: Path) -> None:
    d = lab.describe()
    ep = {k: f"{v['host']}:{v['port']}" for k, v in d["endpoints"].items()}
    print(f"lab up ({d['mode']} mode) in {d['workdir']}")
    if d["mode"] == "netns":
        ns = d["namespaces"]
        print(f"  phone namespace:  {', '.join(ns['phone'])}   (eth0, DHCP client state set)")
        print(f"  branch namespace: {ns['branch']}   LAN 192.0.2.1/24, WAN 198.51.100.1")
        print(f"  hq namespace:     {ns['hq']}   WAN 198.51.100.2, services 203.0.113.10")
    where = f" on {args.interface}" if args.interface else ""
    if "dhcp" in ep:
        label = f"DHCP{where}:"
        print(f"  {label:<18}192.0.2.100-199, router 192.0.2.1, "
              f"option 150 = {ep['tftp'].split(':')[0]}")
    print(f"  TFTP:             {ep['tftp']}  ({lab.tftp_kind}; root {lab.tftp_root}; "
          f"XMLDefault.cnf.xml for unknown devices)")
    print(f"  call manager:     {ep['callmanager']}  (SCCP over TLS)")
    print(f"  SRST router:      {ep['srst']}  credentials service {ep['credentials']}")
    print(f"  events:           {d['events']}   TLS key log: {d['keylog']}")
    for mac in lab.macs:
        folder = Path(d["workdir"]) / "boards" / mac
        env = " ".join(f"{k}={v}" for k, v in lab.phone_env(mac).items())
        if args.interface:
            print(f"  bench board:      SEP{mac} on {args.interface}  (its folder {folder}; no "
                  f"virtual phone of this lab uses its MAC: the phone namespace keeps its own)")
        elif d["mode"] == "netns":
            ns = lab.phone_prefix(mac)[-1]
            print(f"  virtual board:    {env} phonelab vboard --netns {ns} --dir {folder}")
        else:
            print(f"  virtual board:    {env} phonelab vboard --dir {folder}")
    if d["mode"] == "loopback":
        o = lab.profile_overrides()
        print(f"  (loopback: no DHCP; board.json gets tftp_server={o['tftp_server']}"
              f"{', tftp_port=' + str(o['tftp_port']) if 'tftp_port' in o else ''})")
    dflag = f" --dir {args.dir}" if args.dir.resolve() != DEFAULT_DIR.resolve() else ""
    print(f"  faults:           phonelab lab cut blackhole|unreachable|link_down|cm_reset{dflag}; "
          f"phonelab lab restore{dflag}")
    print(f"  stop:             Ctrl-C here, or phonelab lab down{dflag}")


def _detach(args: argparse.Namespace, workdir: Path) -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    argv = _rebuild_argv(args)
    log = (workdir / "lab.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "host_tools.cli", *argv], cwd=WORK,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    state_path = workdir / STATE
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        st = _read_state(state_path)
        if st and st.get("ready") and st.get("pid") == proc.pid:
            print((workdir / "lab.log").read_text(), end="")
            print(f"  (running in the background, pid {proc.pid}; log {workdir / 'lab.log'})")
            return 0
        if proc.poll() is not None:
            print((workdir / "lab.log").read_text(), end="", file=sys.stderr)
            return proc.returncode or 1
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGTERM)
    print("error: the lab did not come up within 120 s", file=sys.stderr)
    return 1


def _rebuild_argv(args: argparse.Namespace) -> list[str]:
    argv = ["lab", "up", "--dir", str(args.dir), "--mode", args.mode, "--tftp", args.tftp,
            "--key-size", str(args.key_size)]
    for flag in ("yes_serve_dhcp", "no_dhcp", "force", "short_timers", "record"):
        if getattr(args, flag):
            argv.append("--" + flag.replace("_", "-"))
    if args.interface:
        argv += ["--interface", args.interface]
    for flag in ("pki", "tftp_root"):
        if getattr(args, flag):
            argv += ["--" + flag.replace("_", "-"), str(Path(getattr(args, flag)).resolve())]
    for m in args.mac:
        argv += ["--mac", m]
    return argv


# -- down / status / control ---------------------------------------------------------------------

def run_down(args: argparse.Namespace) -> int:
    from host_tools.lab import netns
    from host_tools.lab.topology import cleanup_from_state
    workdir: Path = args.dir.resolve()
    state_path = workdir / STATE
    st = _read_state(state_path)
    if st is None:
        swept = netns.sweep_stale() if os.geteuid() == 0 else []
        print(f"no lab running from {workdir}" + (f"; removed stale {', '.join(swept)}" if swept else ""))
        return 0
    pid = int(st.get("pid", 0))
    if pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, 30):
            print(f"lab process {pid} did not stop within 30 s: killing it", file=sys.stderr)
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5)
        print(f"stopped the lab (pid {pid})")
    done = cleanup_from_state(st.get("topology") or {}) if os.geteuid() == 0 else []
    for line in done:
        print(f"  cleaned up: {line}")
    state_path.unlink(missing_ok=True)
    if st.get("control"):
        Path(st["control"]).unlink(missing_ok=True)
    return 0


def _request(args: argparse.Namespace, cmd: str, **kw: Any) -> tuple[bool, Any]:
    """(True, the running lab's result for `cmd`), or (False, None) after saying why not."""
    st = _read_state(args.dir.resolve() / STATE)
    if st is None or not pid_alive(st.get("pid", 0)):
        print(f"phonelab lab: error: no lab running from {args.dir.resolve()} "
              f"(start one with `phonelab lab up`)", file=sys.stderr)
        return False, None
    from host_tools.lab.control import ControlError, request
    try:
        return True, request(st["control"], cmd, **kw)
    except ControlError as e:
        print(f"error: {e}", file=sys.stderr)
        return False, None


def run_status(args: argparse.Namespace) -> int:
    ok, result = _request(args, "status")
    if not ok:
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"mode {result['mode']}, WAN {result['wan']}")
    for name, s in result["servers"].items():
        extra = {k: v for k, v in s.items() if k != "running" and v}
        print(f"  {name:12} {'running' if s['running'] else 'STOPPED':8} "
              f"{json.dumps(extra) if extra else ''}")
    for mac, ph in result["phones"].items():
        print(f"  SEP{mac}: call manager {ph['callmanager'] or '-'}, SRST {ph['srst'] or '-'}")
    return 0


def _control(args: argparse.Namespace, cmd: str, **kw: Any) -> int:
    ok, result = _request(args, cmd, **kw)
    if not ok:
        return 1
    print(f"ok: {cmd} {' '.join(f'{k}={v}' for k, v in kw.items())}".rstrip()
          + (f" -> {result}" if result else ""))
    return 0


def _read_state(path: Path) -> dict | None:
    try:
        return readers.read_json(path, "json")
    except (OSError, ValueError):
        return None


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        try:       # our child (tests, --detach from this process): reap it
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return not pid_alive(pid)
