"""`phonelab config show FILE`: the parsed SEP<MAC>.cnf.xml (or XMLDefault.cnf.xml, or a signed
.cnf.xml.sgn) as JSON. The parsing is done by the firmware's own `phone.config` running on the
MicroPython unix port (`host_tools/mpscripts/config_show.py`), so what you see is what the
board reads. Exit 1 with the reason when the file is rejected, and, in one line, what the file
is when it is not a phone configuration at all (a ring list or another XML object, a CTL or
ITL, a signed firmware load, a configuration without a call manager: `what_it_is`)."""
from __future__ import annotations

import argparse
import json
import re
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


ROOTS = ("device", "Default")       # SEP<MAC>.cnf.xml, XMLDefault.cnf.xml
# root elements of other XML a TFTP server holds, and what they are
OTHER_ROOTS = {
    "CiscoIPPhoneRingList": "a ring list (the phone's ring tones, RingList.xml)",
    "CiscoIPPhoneImage": "an XML service object (an image)",
    "CiscoIPPhoneMenu": "an XML service object (a menu)",
    "CiscoIPPhoneText": "an XML service object (a text)",
    "CiscoIPPhoneDirectory": "an XML service object (a directory)",
    "CiscoIPPhoneExecute": "an XML service object (an execute request)",
    "DIALTEMPLATE": "a dial plan (dialplan.xml)",
    "flat-profile": "a multiplatform (MPP/3PCC) phone profile",
}
_ROOT = re.compile(rb"<([A-Za-z_][\w.:-]*)")
_PROLOG = re.compile(rb"\s*(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>)", re.S)
_NOT_CONFIG = " is not a phone configuration"
_ROOTS_ARE = "a configuration's root element is <device> (SEP<MAC>.cnf.xml) or <Default> (XMLDefault.cnf.xml)"


def what_it_is(data: bytes) -> str | None:
    """Why `data` is not a phone configuration (what it is instead), None when it looks
    like one: a .sgn header is read past; a CTL/ITL (TLV records after the header), a signed
    file whose content is not XML (a firmware load), binary data, or XML whose root element
    is not <device> / <Default>."""
    body, name = data, None
    if len(data) >= 10 and data[0] == 1 and data[1:3] == b"\x00\x02" and data[5] == 2:
        hlen = int.from_bytes(data[8:10], "big")
        name = _header_name(data[:hlen])
        body = data[hlen:]
        signed = f"a signed file{f' ({name!r} in its header)' if name else ''}"
        if body[:3] == b"\x01\x00\x02":
            return (f"a CTL/ITL trust list{f' ({name!r} in its header)' if name else ''}: TLV "
                    "records after the signed header, not XML (`phonelab ctl dump` reads it)")
    else:
        signed = None
    text = body.lstrip(b"\xef\xbb\xbf")
    while True:
        m = _PROLOG.match(text)
        if not m or not m.group(0).strip():
            break
        text = text[m.end():]
    text = text.lstrip()
    m = _ROOT.match(text)
    if not text.startswith(b"<") or m is None:
        if not text:
            return None          # empty: phone.config says so
        what = f"{signed} whose content is not XML (a firmware load?)" if signed else \
            f"binary data, not XML (it starts with {body[:8].hex()})"
        return what
    root = m.group(1).decode("ascii", "replace")
    if root in ROOTS:
        return None
    what = OTHER_ROOTS.get(root, "an XML document")
    return f"{what}: its root element is <{root}>, {_ROOTS_ARE}"


def _header_name(header: bytes) -> str | None:
    """The file name (tag 14) of a .sgn/CTL header."""
    i = 0
    while i + 3 <= len(header):
        tag, n = header[i], int.from_bytes(header[i + 1:i + 3], "big")
        if tag == 14:
            return header[i + 3:i + 3 + n].split(b"\0")[0].decode("ascii", "replace") or None
        i += 3 + (0 if tag in (3, 7, 9) else n)   # tags 3, 7, 9 hold TLVs: step inside
    return None


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
    why = what_it_is(p.read_bytes())
    if why is not None:
        raise ValueError(f"{p}{_NOT_CONFIG}: {why}")
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
    if not data["call_managers"] and not data.get("sip"):
        raise ValueError(f"{p}{_NOT_CONFIG} the agent can use: a <{data['root']}> with no call "
                         "manager (no <callManagerGroup><members>, no <sipLines>), nothing to "
                         "register with (an MPP-style or placeholder default?)")
    return data


def run_show(args: argparse.Namespace) -> int:
    try:
        data = show(args.file, args.heap)
    except (ValueError, micropython.MicroPythonNotFound, subprocess.TimeoutExpired) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(data, indent=None if args.compact else 2))
    return 0
