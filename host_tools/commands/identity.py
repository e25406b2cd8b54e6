"""`phonelab identity` (also `phonelab provision`, its name until issue 13): the command line of
host_tools.identity (the help text is its docstring), and the identity options `flash` shares."""
from __future__ import annotations

import argparse
import sys

from host_tools import cliargs, identity


def add_identity_arguments(p: argparse.ArgumentParser, required: bool) -> None:
    g = p.add_argument_group("phone identity" + ("" if required else " (optional)"))
    g.add_argument("--mac", type=cliargs.mac, help="the phone's MAC (device name SEP<MAC>)")
    g.add_argument("--cert", type=cliargs.cert_file, metavar="PEM|DER",
                   help="phone certificate (LSC)")
    g.add_argument("--key", type=cliargs.key_file, metavar="PEM|DER",
                   help="the certificate's private key (unencrypted; never printed)")
    g.add_argument("--sast", type=cliargs.cert_file, metavar="PEM|DER",
                   help="SAST certificate to pin (trust anchor for the first CTL)")
    g.add_argument("--wlan", type=cliargs.input_file("json", utf8=True), metavar="wlan.json",
                   help='WLAN credentials {"ssid": ..., "key": ...} (never commit this file)')


def identity_from_args(args: argparse.Namespace) -> identity.PhoneIdentity | None:
    given = [getattr(args, n) for n in ("mac", "cert", "key", "sast", "wlan")]
    if not any(v is not None for v in given):
        return None
    return identity.load_identity(args.mac, args.cert, args.key, args.sast, args.wlan)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("identity", aliases=["provision"],
                       help="put the phone identity (certificate, key, SAST pin, MAC, WLAN) "
                            "on a board",
                       description=identity.__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", required=True, help="serial device, vboard pty, or URL")
    p.add_argument("--no-reset", action="store_true", help="do not soft reset afterwards")
    add_identity_arguments(p, required=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        ident = identity.load_identity(args.mac, args.cert, args.key, args.sast, args.wlan)
        identity.put_identity(args.port, ident, reset=not args.no_reset)
    except identity.IdentityError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
