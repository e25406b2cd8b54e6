"""Scenario actions on the lab's TFTP side: replacing files with bad ones, TFTP faults (the
user's own files, --tftp-root, are the lab's: host_tools.lab.served)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from host_tools import ctlbuild, pki as labpki


class FaultError(RuntimeError):
    pass


def _target(lab: Any, which: str) -> Path:
    root = Path(lab.tftp_root)
    if which == "ctl":
        return root / "CTLFile.tlv"
    if which == "itl":
        return root / "ITLFile.tlv"
    signed = [Path(p) for p in lab.files.get("signed_configs", [])]
    if not signed:
        raise FaultError("the lab wrote no signed configuration to replace")
    return signed[0]


def replace_file(lab: Any, which: str, how: str) -> Path:
    """Swap a served file for a bad variant; the good one is kept as NAME.good."""
    path = _target(lab, which)
    good = path.with_name(path.name + ".good")
    if not good.exists():
        shutil.copyfile(path, good)
    data = bytearray(good.read_bytes())
    if how == "tampered":
        data[len(data) // 2] ^= 0x01              # one flipped bit in the signed body
    elif how == "truncated":
        data = data[: len(data) * 2 // 3]
    elif how == "garbage":
        data = bytearray(b"\x00\x01garbage" * 64)
    elif how in ("unknown_sast", "bad_signature"):
        data = bytearray(_resigned(lab, which, good, how))
    else:
        raise FaultError(f"unknown replacement {how!r}")
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(bytes(data))
    tmp.replace(path)
    lab.log("file_replaced", file=path.name, how=how)
    return path


def _resigned(lab: Any, which: str, good: Path, how: str) -> bytes:
    """The same content signed by a stranger: a SAST the phone never saw (trust list), or a
    TFTP certificate that is not in the trust list (.sgn)."""
    role = "SAST" if which in ("ctl", "itl") else "TFTP"
    stranger = labpki.make_identity("stranger", role, cn=f"stranger-{role.lower()}", key_size=1024)
    if which in ("ctl", "itl"):
        p = lab.pki
        R = ctlbuild.Record
        recs = [R("CCM", p.ccm.cert), R("TFTP", p.tftp.cert), R("CAPF", p.capf.cert)]
        return ctlbuild.build_trust_list(stranger, recs, itl=which == "itl",
                                         hash_name=lab.hash_name)
    payload = _sgn_payload(good.read_bytes())
    return ctlbuild.build_sgn(stranger, payload, filename=good.name[: -len(".good")],
                              hash_name=lab.hash_name)


def _sgn_payload(data: bytes) -> bytes:
    # header length is the u16 value of tag 2, which follows the 5-byte version element
    if len(data) < 10 or data[5] != 2:
        raise FaultError("not a .sgn file")
    hlen = int.from_bytes(data[8:10], "big")
    return data[hlen:]


def restore_file(lab: Any, which: str) -> None:
    path = _target(lab, which)
    good = path.with_name(path.name + ".good")
    if good.exists():
        good.replace(path)


def tftp_fault(lab: Any, args: dict[str, Any]) -> None:
    """loss (0..1, seeded), missing (file names), clear (all faults off)."""
    srv = lab.tftp
    faults = getattr(srv, "faults", None)
    if faults is None:
        raise FaultError("TFTP faults need the lab's own TFTP server ([lab] tftp = \"lab\")")
    if args.get("clear"):
        from host_tools.lab.tftp_server import Faults
        srv.faults = Faults()
        return
    if "loss" in args:
        faults.loss = float(args["loss"])
        if "seed" in args:
            srv.reseed(args["seed"])
    if "missing" in args:
        faults.missing = set(args["missing"])
    lab.log("tftp_fault", **{k: v for k, v in args.items()})
