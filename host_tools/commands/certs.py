"""`phonelab certs`: create the lab's PKI (SASTs, call manager, TFTP, SRST router, CAPF and
phone certificates) as PEM + DER files."""
from __future__ import annotations

import argparse
import json

from host_tools import cliargs, pki

_NAMES = "|".join(pki.NAMES)
_MAC = r"(?:SEP)?[0-9A-Fa-f]{12}"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("certs", help="create the lab PKI (SAST, CCM, TFTP, SRST, CAPF, phones)")
    p.add_argument("--out", required=True, metavar="DIR", type=cliargs.output_dir,
                   help="folder for the PEM/DER files")
    p.add_argument("--phone", action="append", default=[], metavar="MAC", type=cliargs.mac,
                   help="add a phone certificate (SEP<MAC>, issued by the lab CAPF); repeatable")
    p.add_argument("--key-size", type=int, default=pki.DEFAULT_KEY_SIZE, metavar="N",
                   choices=(512, 1024, 2048, 3072, 4096),
                   help="RSA key size in bits (default %(default)s; 1024 is quicker for tests)")
    p.add_argument("--days", type=cliargs.integer(1, 36500), default=pki.DEFAULT_DAYS,
                   help="validity in days")
    p.add_argument("--cn", action="append", default=[], metavar="NAME=CN",
                   type=cliargs.pattern(rf"(?:{_NAMES})=[^\x00-\x1f]{{1,64}}",
                                        f"NAME=CN with NAME one of {', '.join(pki.NAMES)}",
                                        "NAME=CN"),
                   help="override a CN, e.g. --cn ccm=cucm1.lab; repeatable")
    p.add_argument("--ip", action="append", default=[], metavar="NAME=ADDR", type=_ip_pair,
                   help="add an IP address SAN, e.g. --ip srst=192.0.2.1; repeatable")
    p.add_argument("--expired", action="append", default=[], metavar="NAME",
                   type=cliargs.pattern(rf"(?:{_NAMES}|{_MAC})",
                                        f"one of {', '.join(pki.NAMES)} or a phone's MAC",
                                        "NAME"),
                   help="make this identity already expired (for tests); repeatable")
    p.add_argument("--ca-signed", action="append", default=[], metavar="NAME",
                   choices=tuple(pki.CA_SIGNABLE),
                   help="have this certificate issued by the lab's enterprise CA (ccm_ca) "
                        "instead of self-signed: one of %(choices)s; repeatable (the SRST "
                        "router's is always issued by its own CA, srst_ca)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def _ip_pair(text: str) -> str:
    name, sep, addr = text.partition("=")
    if not sep or name not in pki.STANDARD:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not NAME=ADDR with NAME one of {', '.join(pki.STANDARD)}")
    cliargs.ip_address(addr)
    return text


_ip_pair.kind = "pattern"  # type: ignore[attr-defined]


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise pki.PkiError(f"--{what} wants NAME=VALUE, got {item!r}")
        out[name] = value
    return out


def run(args: argparse.Namespace) -> int:
    try:
        result = pki.make_pki(
            args.out, phone_macs=args.phone, key_size=args.key_size, days=args.days,
            cns=_pairs(args.cn, "cn"), ips=_pairs(args.ip, "ip"), expired=args.expired,
            ca_signed=args.ca_signed)
    except (pki.PkiError, ValueError, OSError) as e:
        print(f"error: {e}")
        return 1
    rows = [i.summary() for i in result.identities()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(f"{r['name']:18} {r['role']:9} CN={r['cn']:18} serial {r['serial'][:16]:16} "
              f"until {r['not_after'][:10]}  {r['cert']}")
    print(f"wrote {len(rows)} identities to {result.out_dir} (index: pki.json)")
    return 0
