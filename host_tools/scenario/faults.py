"""Scenario actions on the lab's TFTP side: replacing files with bad ones, TFTP faults (the
user's own files, --tftp-root, are the lab's: host_tools.lab.served)."""
from __future__ import annotations

import dataclasses
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
    if how == "plain":
        if which != "config":
            raise FaultError("plain is a config replacement (an unsigned non-secure config)")
        _plain_config(lab, path)
        return path
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


def _plain_config(lab: Any, sgn: Path) -> None:
    """A plain-TCP offer: the signed config withdrawn (kept as NAME.sgn.good) and served
    unsigned with deviceSecurityMode 1 (non-secure), as a rogue TFTP server would. A phone
    that has trust must refuse it and keep to TLS."""
    xml = sgn.with_name(sgn.name[: -len(".sgn")])
    good = sgn.with_name(sgn.name + ".good")
    if sgn.exists():
        sgn.replace(good)
    text = _sgn_payload(good.read_bytes()).decode()
    for m in (2, 3):
        text = text.replace(f"<deviceSecurityMode>{m}</deviceSecurityMode>",
                            "<deviceSecurityMode>1</deviceSecurityMode>")
    tmp = xml.with_name(xml.name + ".new")
    tmp.write_text(text)
    tmp.replace(xml)
    lab.log("file_replaced", file=xml.name, how="plain")


def replace_cert(lab: Any, server: str, workdir: Path) -> Any:
    """The server presents a certificate the phone never pinned, then restarts with it: the
    SRST router one re-issued by its own CA (same CN, another key: not the one the config
    carries), the call manager a self-signed one with its CN that no trust list holds. For
    SIP phones the Kamailio registrar's (lab.protocol "sip"). Returns the new identity."""
    p = lab.pki
    if server == "srst":
        old = p.srst
        new = labpki.make_identity("srst-renewed", "SRST", cn=old.cn, issuer=p.srst_ca)
    elif server == "callmanager":
        old = p.ccm
        new = labpki.make_identity("ccm-rogue", "CCM", cn=old.cn)
    else:
        raise FaultError(f"replace_cert: callmanager or srst, not {server!r}")
    new = new.write(workdir / f"{server}-replaced")
    sip = getattr(lab, "sip", None)
    if getattr(lab, "protocol", "sccp") == "sip" and sip is not None:
        k = sip.servers[server]
        k.config = dataclasses.replace(k.config, cert=new.server_cert, key=new.key_path)
    else:
        srv = getattr(lab, server)
        srv.cert, srv.key = new.server_cert, new.key_path
        cred = getattr(srv, "credentials", None)
        if server == "srst" and cred is not None:     # the router hands out its new one
            cred.cert, cred.key, cred.cert_der = new.server_cert, new.key_path, new.cert_der
    lab.restart(server)
    lab.log("cert_replaced", server=server, cn=new.cn)
    return new


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
