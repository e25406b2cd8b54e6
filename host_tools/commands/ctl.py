"""`phonelab ctl build|sign|dump|verify`: trust lists (CTL/ITL .tlv) and signed files (.sgn).

build/sign run on the host (`host_tools.ctlbuild`, with `cryptography`); dump/verify run the
firmware's own `phone.ctl` on the MicroPython unix port (`host_tools/mpscripts/ctltool.py`),
so what they say is what a board would decide.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

from host_tools import MPSCRIPTS, cliargs, fwbuild, micropython, readers

CTLTOOL = MPSCRIPTS / "ctltool.py"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ctl", help="build, sign, dump and verify CTL/ITL and .sgn files")
    acts = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    b = acts.add_parser("build", help="build a CTL (or ITL) signed by a SAST")
    b.add_argument("--sast", required=True, metavar="CERT", type=cliargs.cert_file,
                   help="signer certificate (PEM/DER)")
    b.add_argument("--sast-key", metavar="KEY", type=cliargs.key_file,
                   help="signer private key (default: in CERT, or CERT's <stem>.key.pem)")
    b.add_argument("--record", action="append", default=[], metavar="ROLE:CERT", type=_record,
                   help="a record: SAST, CCM, CCM+TFTP, TFTP, CAPF, APP, TVS (repeatable)")
    b.add_argument("--out", required=True, metavar="FILE", type=cliargs.output_file)
    b.add_argument("--hash", default="sha1", choices=["sha1", "sha256", "sha512"])
    b.add_argument("--itl", action="store_true", help="an ITL (signer version element)")
    b.add_argument("--filename", help="name in the header (default CTLFile.tlv / ITLFile.tlv)")
    b.add_argument("--timestamp", type=_TIMESTAMP, help="header timestamp (default now)")
    b.set_defaults(func=run_build)

    s = acts.add_parser("sign", help="make FILE.sgn signed by a TFTP (or CCM+TFTP) certificate")
    s.add_argument("file", metavar="FILE", type=cliargs.input_file("file"))
    s.add_argument("--tftp-cert", required=True, metavar="CERT", type=cliargs.cert_file)
    s.add_argument("--tftp-key", metavar="KEY", type=cliargs.key_file,
                   help="private key (default: in CERT, or CERT's <stem>.key.pem)")
    s.add_argument("--out", metavar="FILE.sgn", type=cliargs.output_file, help="default FILE.sgn")
    s.add_argument("--hash", default="sha1", choices=["sha1", "sha256", "sha512"])
    s.add_argument("--filename", help="name in the header (default: FILE's name)")
    s.add_argument("--timestamp", type=_TIMESTAMP)
    s.set_defaults(func=run_sign)

    d = acts.add_parser("dump", help="print the header and records as JSON (board's parser)")
    d.add_argument("file", metavar="FILE", type=cliargs.tlv_file)
    _mp_options(d)
    d.set_defaults(func=run_dump)

    v = acts.add_parser("verify", help="check signature and trust rules as a board would; "
                                       "exit 0 valid, 1 invalid")
    v.add_argument("file", metavar="FILE", type=cliargs.tlv_file)
    v.add_argument("--sast", action="append", default=[], metavar="CERT", type=cliargs.cert_file,
                   help="SAST already trusted (provisioned); without it: first use")
    v.add_argument("--trust", action="append", default=[], metavar="TLV", type=cliargs.tlv_file,
                   help="for a .sgn: the CTL/ITL whose TFTP records may sign it")
    v.add_argument("--cert", action="append", default=[], metavar="CERT", type=cliargs.cert_file,
                   help="for a .sgn: a certificate that may sign it")
    v.add_argument("--check-time", action="store_true",
                   help="refuse a signer certificate that is not valid now")
    v.add_argument("--json", action="store_true", help="print the full JSON result")
    _mp_options(v)
    v.set_defaults(func=run_verify)


def _mp_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--heap", default=micropython.DEFAULT_HEAP, type=cliargs.heap_size(),
                   help="MicroPython heap (default %(default)s, a small board's)")


_TIMESTAMP = cliargs.integer(0, 0xFFFFFFFF, "timestamp")


def _record(text: str) -> str:
    """ROLE:CERT with a known role and a readable certificate."""
    from host_tools import ctlbuild
    try:
        _role, path = ctlbuild.parse_role_spec(text)
        cliargs.check_cert(path)
    except (ctlbuild.CtlBuildError, readers.InputError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


_record.kind = "pattern"  # type: ignore[attr-defined]


# -- build / sign (host) ----------------------------------------------------------------------

def _identity(cert: str, key: str | None, role: str):
    from host_tools import pki
    if key is None:
        text = readers.read_bytes(cert, "cert")
        if b"PRIVATE KEY-----" not in text:
            stem = Path(cert).name.split(".")[0]
            guess = Path(cert).with_name(f"{stem}.key.pem")
            if not guess.exists():
                raise pki.PkiError(f"no private key for {cert}: pass the key option")
            key = str(guess)
    ident = pki.load_identity(cert, key, role=role)
    if ident.key is None:
        raise pki.PkiError(f"no private key for {cert}")
    return ident


def run_build(args: argparse.Namespace) -> int:
    from host_tools import ctlbuild, pki
    try:
        signer = _identity(args.sast, args.sast_key, "SAST")
        records = []
        for spec in args.record:
            role, path = ctlbuild.parse_role_spec(spec)
            records.append(ctlbuild.Record(role, pki.load_identity(path, role=role).cert))
        records = ctlbuild.with_signer(signer, records)
        data = ctlbuild.build_trust_list(signer, records, filename=args.filename,
                                         hash_name=args.hash, itl=args.itl,
                                         timestamp=args.timestamp)
        out = ctlbuild.write(args.out, data)
    except (ctlbuild.CtlBuildError, pki.PkiError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({len(data)} bytes, {len(records)} records incl. signer, {args.hash})")
    return 0


def run_sign(args: argparse.Namespace) -> int:
    from host_tools import ctlbuild, pki
    src = Path(args.file)
    try:
        signer = _identity(args.tftp_cert, args.tftp_key, "TFTP")
        data = ctlbuild.build_sgn(signer, readers.read_bytes(src), filename=args.filename or src.name,
                                  hash_name=args.hash, timestamp=args.timestamp)
        out = ctlbuild.write(args.out or f"{src}.sgn", data)
    except (ctlbuild.CtlBuildError, pki.PkiError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({len(data)} bytes, signed by {signer.cn}, {args.hash})")
    return 0


# -- dump / verify (the firmware's code on MicroPython) ---------------------------------------

def run_ctltool(args: list[str], heap: str | int = micropython.DEFAULT_HEAP,
                timeout: float = 120) -> tuple[int, dict]:
    """Run ctltool.py under MicroPython; returns (exit code, its JSON answer)."""
    proc = subprocess.run(micropython.command([str(CTLTOOL), *args], heap=heap),
                          env=fwbuild.environ(), capture_output=True, text=True,
                          timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"ctltool failed (exit {proc.returncode}): "
                           f"{(proc.stdout + proc.stderr).strip()[-2000:]}")
    return proc.returncode, json.loads(lines[-1])


def _abs(paths: list[str]) -> list[str]:
    return [str(Path(p).resolve()) for p in paths]


def run_dump(args: argparse.Namespace) -> int:
    try:
        rc, out = run_ctltool(["dump", *_abs([args.file])], heap=args.heap)
    except (RuntimeError, micropython.MicroPythonNotFound, subprocess.TimeoutExpired) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2, sort_keys=True))
    if rc != 0:
        print(f"phonelab ctl: error: {args.file}: {out.get('reason') or out.get('error')}",
              file=sys.stderr)
    return 0 if rc == 0 else 1


def verify_args(file: str, sast: list[str] = (), trust: list[str] = (), cert: list[str] = (),
                check_time: bool = False) -> list[str]:
    argv = ["verify", *_abs([file])]
    for opt, items in (("--sast", sast), ("--trust", trust), ("--cert", cert)):
        for path in _abs(list(items)):
            argv += [opt, path]
    if check_time:
        now = dt.datetime.now(dt.timezone.utc)
        argv += ["--now", ",".join(str(x) for x in now.timetuple()[:6])]
    return argv


def run_verify(args: argparse.Namespace) -> int:
    if (args.trust or args.cert) and not str(args.file).endswith(".sgn"):
        print(f"phonelab ctl: error: {args.file}: --trust and --cert are for a signed file "
              f"(.sgn); a trust list is checked against --sast", file=sys.stderr)
        return 2
    try:
        rc, out = run_ctltool(verify_args(args.file, args.sast, args.trust, args.cert,
                                          args.check_time), heap=args.heap)
    except (RuntimeError, micropython.MicroPythonNotFound, subprocess.TimeoutExpired) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True))
    elif out.get("valid"):
        extra = " (first use: no SAST given)" if out.get("tofu") else ""
        print(f"valid {out['kind']}: signed by {out.get('signer_cn')} with {out.get('hash')}, "
              f"{out['ms']} ms on MicroPython{extra}")
    else:
        print(f"invalid: {out.get('reason') or out.get('error')} ({args.file})")
    return 0 if out.get("valid") else 1
