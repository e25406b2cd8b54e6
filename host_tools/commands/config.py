"""`phonelab config show FILE`: the parsed SEP<MAC>.cnf.xml (or XMLDefault.cnf.xml, or a signed
.cnf.xml.sgn) as JSON. The parsing is done by the firmware's own `phone.config` running on the
MicroPython unix port (`host_tools/mpscripts/config_show.py`), so what you see is what the
board reads. Exit 1 with the reason when the file is rejected."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from host_tools import MPSCRIPTS, cliargs, fwbuild, micropython, readers

CONFIG_SHOW = MPSCRIPTS / "config_show.py"
# MicroPython's dicts come back in hash order; print in reading order.
_ORDER = ["root", "security_mode", "connection_monitor_duration", "call_managers", "srst",
          "wants_srst_standby", "source"]
_CM_ORDER = ["priority", "name", "host", "port"]
_SRST_ORDER = ["name", "option", "secure", "servers", "cert_sha256", "cert"]


def _ordered(d: dict, keys: list[str]) -> dict:
    return {**{k: d[k] for k in keys if k in d}, **{k: v for k, v in d.items() if k not in keys}}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="phone configuration files (SEP<MAC>.cnf.xml)")
    actions = p.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    s = actions.add_parser(
        "show", help="parse a cnf.xml with the firmware's reader (on MicroPython), print JSON")
    s.add_argument("file", metavar="FILE", type=cliargs.input_file("config"), help="SEP<MAC>.cnf.xml, XMLDefault.cnf.xml or .sgn")
    s.add_argument("--heap", default=micropython.DEFAULT_HEAP, type=cliargs.heap_size(),
                   help="MicroPython heap cap, as on a board (default %(default)s)")
    s.add_argument("--compact", action="store_true", help="one line of JSON")
    s.set_defaults(func=run_show)


def show(path: str | Path, heap: str = micropython.DEFAULT_HEAP) -> dict:
    """Parse `path` with phone.config on MicroPython; ValueError(reason) when rejected."""
    try:
        p = readers.check_file(path, "config")
    except readers.InputError as e:
        raise ValueError(str(e)) from None
    proc = subprocess.run(
        micropython.command([str(CONFIG_SHOW), str(p.resolve())], heap=heap),
        env=fwbuild.environ(), capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        msg = proc.stderr.strip() or proc.stdout.strip() or f"exit code {proc.returncode}"
        raise ValueError(f"{p}: {msg.removeprefix('error: ')}")
    data = _ordered(json.loads(proc.stdout), _ORDER)
    data["call_managers"] = [_ordered(m, _CM_ORDER) for m in data.get("call_managers", [])]
    if data.get("srst"):
        data["srst"] = _ordered(data["srst"], _SRST_ORDER)
    return data


def run_show(args: argparse.Namespace) -> int:
    try:
        data = show(args.file, args.heap)
    except (ValueError, micropython.MicroPythonNotFound, subprocess.TimeoutExpired) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(data, indent=None if args.compact else 2))
    return 0
