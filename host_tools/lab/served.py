"""Your own TFTP files (`--tftp-root DIR`): served in place of the lab's (docs/lab.md, "Your
own PKI and TFTP files"; docs/decisions.md).

    files = TftpFiles("my-cucm-files")
    files.macs()            # the phones its SEP<MAC>.cnf.xml(.sgn) files are for
    files.copy_to(root)     # what the lab's TFTP server serves, before the lab writes its own
    files.has_trust()       # a trust list of its own: the lab writes none
    files.has_config(mac)   # a config for this phone: the lab writes none for it
    files.check(...)        # what would make the phone refuse the lab: one warning each

Read with the firmware's own parser (phone.ctl on CPython), so a warning says what a board
would decide.
"""
from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import host_tools.fw  # noqa: F401  (firmware/ on sys.path)
from host_tools.lab import cnfxml
from phone import ctl as fwctl  # type: ignore[import-not-found]

_TRUST = re.compile(r"^(CTL|ITL)(File|SEP[0-9A-F]{12})\.tlv$", re.I)
_CONFIG = re.compile(r"^SEP([0-9A-F]{12})\.cnf\.xml(\.sgn)?$", re.I)


class TftpFiles:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ValueError(f"--tftp-root {self.folder}: not a folder")
        self.names = sorted(str(f.relative_to(self.folder)) for f in self.folder.rglob("*")
                            if f.is_file())

    def macs(self) -> list[str]:
        """The phones it has a configuration for, in name order, each once."""
        out: list[str] = []
        for n in self.names:
            m = _CONFIG.match(n)
            if m and m.group(1).upper() not in out:
                out.append(m.group(1).upper())
        return out

    def has_trust(self) -> bool:
        return any(_TRUST.match(n) for n in self.names)

    def has_config(self, mac: str) -> bool:
        return mac.upper() in self.macs()

    def copy_to(self, root: Path) -> list[str]:
        """Copy every file into the served folder (the lab's faults then change the copies,
        never the user's files); returns the names."""
        shutil.copytree(self.folder, root, dirs_exist_ok=True)
        return list(self.names)

    def check(self, root: Path, macs: list[str], ccm_der: bytes, tftp_der: bytes,
              srst_der: bytes, callmanager: tuple[str, int], srst: tuple[str, int],
              writes_configs: bool) -> list[str]:
        """What in the served files (in `root`) does not fit the lab: a trust list the
        phone's parser refuses, or that does not list the call manager's certificate (or,
        when the lab signs configs, the TFTP one); a phone's config that does not name the
        lab's call manager or carry the SRST router's certificate. One line each."""
        out: list[str] = []
        tl = None
        for name in ("CTLFile.tlv", "ITLFile.tlv"):
            if (root / name).is_file():
                try:
                    tl = fwctl.verify(str(root / name))
                except fwctl.CtlError as e:
                    out.append(f"{name}: the phone's parser refuses it: {e}")
                    continue
                break
        if tl is not None:
            name = Path(tl.path).name
            if ccm_der not in tl.certs(fwctl.ROLE_CCM, fwctl.ROLE_CCM_TFTP):
                out.append(f"{name} does not list the call manager's certificate as CCM: the "
                           f"phone will not register (give the cluster's with --pki)")
            if writes_configs and tftp_der not in tl.certs(fwctl.ROLE_TFTP, fwctl.ROLE_CCM_TFTP):
                out.append(f"{name} does not list the certificate the lab signs configs with "
                           f"as TFTP: the phone will refuse the lab's configs")
        for mac in macs:
            if not self.has_config(mac):
                continue
            out += _check_config(root, mac, tl, srst_der, callmanager, srst)
        return out


def _config_text(root: Path, mac: str, tl: object) -> tuple[str | None, str | None]:
    """(XML text, what is wrong) of the served config: the signed one when there is one."""
    sgn = root / f"SEP{mac}.cnf.xml.sgn"
    if sgn.is_file():
        try:
            sg = fwctl.verify_sgn(str(sgn), [tl]) if tl is not None else fwctl.parse(str(sgn))
        except fwctl.CtlError as e:
            return None, f"{sgn.name}: the phone will refuse it: {e}"
        data = sgn.read_bytes()[sg.payload_off:]
        return data.decode("utf-8", "replace"), None
    return (root / f"SEP{mac}.cnf.xml").read_text(errors="replace"), None


def _check_config(root: Path, mac: str, tl: object, srst_der: bytes,
                  callmanager: tuple[str, int], srst: tuple[str, int]) -> list[str]:
    name = f"SEP{mac}.cnf.xml"
    text, why = _config_text(root, mac, tl)
    if text is None:
        return [why or name]
    try:
        dev = ET.fromstring(text)
    except ET.ParseError as e:
        return [f"{name}: not XML ({e})"]
    out = []
    plain = callmanager[1] - cnfxml.SECURE_OFFSET
    cms = [(c.findtext("processNodeName") or c.findtext("name") or "",
            int(c.findtext("ports/ethernetPhonePort") or cnfxml.DEFAULT_PORT))
           for c in dev.iter("callManager")]
    if (callmanager[0], plain) not in cms:
        named = ", ".join(f"{h}:{p}" for h, p in cms) or "none"
        out.append(f"{name} names call manager(s) {named}, the lab's is {callmanager[0]}:{plain} "
                   f"(TLS {callmanager[1]})")
    try:
        cert = cnfxml.read_srst_certificate(text)
    except ValueError as e:
        cert, why = None, str(e)
    else:
        why = "no SRST certificate in it" if cert is None else "a certificate that is not the lab's"
    if cert != srst_der:
        out.append(f"{name}: {why}: the phone will not stand by with the lab's SRST router "
                   f"(give the router's certificate and key with --pki srst.pem)")
    addrs = [dev.findtext(f"devicePool/srstInfo/ipAddr{i}") for i in (1, 2, 3)]
    if srst[0] not in addrs:
        out.append(f"{name} names SRST router(s) {', '.join(a for a in addrs if a) or 'none'}, "
                   f"the lab's is {srst[0]}")
    return out
