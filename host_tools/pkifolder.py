"""A lab PKI read from a folder, for `phonelab run --pki DIR` and `phonelab lab up --pki DIR`
(docs/lab.md, "Your own PKI and TFTP files").

    pki, notes = load("my-pki", macs=["001122AABBCC"], out="run/pki", ips={"srst": "192.0.2.1"})

A folder `phonelab certs` wrote (its pki.json) is read as it is. Any other folder holds
certificate files the way certutils' `mkcert` and openssl write them: `NAME.pem` with the
private key and the certificate in one file (either order; PKCS#8 or PKCS#1 key), or the
certificate alone with its key beside it in `NAME.key` or `NAME.key.pem` (`.crt` and `.der`
certificates too). Each file's name says its role, case ignored (FILES). What the folder lacks
and the lab can make is made in `out`, never in the folder: the phones' certificates (issued
by the CAPF's key, as a CAPF issues LSCs), the SRST router's (with its own CA, as an IOS
router has); the TFTP role falls to the call manager's certificate (one certificate for
both, as certutils' examples have it).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from host_tools import pki as labpki
from host_tools.pki import Identity, Pki, PkiError

# file stem (lower case) -> (identity name, role)
FILES: dict[str, tuple[str, str]] = {
    "sast": ("sast", "SAST"), "sast2": ("sast2", "SAST"),
    "ccm": ("ccm", "CCM"), "callmanager": ("ccm", "CCM"),
    "tftp": ("tftp", "TFTP"), "capf": ("capf", "CAPF"), "srst": ("srst", "SRST"),
}
REQUIRED = ("sast", "ccm", "capf")
CERT_SUFFIXES = (".pem", ".crt", ".der")
KEY_SUFFIXES = (".key", ".key.pem")
MIN_BITS = 1024        # refused below
WEAK_BITS = 2048       # accepted with a warning below (an older cluster's CAPF has 1024)
_SEP = re.compile(r"^SEP([0-9A-F]{12})$", re.I)


def _files(folder: Path) -> dict[str, Path]:
    """stem (lower case, SEP names upper case) -> certificate file (a .pem before a .crt
    before a .der of the same stem)."""
    out: dict[str, Path] = {}
    files = [f for f in sorted(folder.iterdir())
             if f.is_file() and not f.name.lower().endswith(KEY_SUFFIXES)]
    for suffix in CERT_SUFFIXES:
        for f in files:
            if f.name.lower().endswith(suffix):
                stem = f.name[: -len(suffix)]
                sep = _SEP.match(stem)
                key = f"SEP{sep.group(1).upper()}" if sep else stem.lower()
                if key in FILES or sep:
                    out.setdefault(key, f)
    return out


def macs_in(folder: str | Path) -> list[str]:
    """The phones a folder holds certificates for (SEP<MAC>.pem), in name order."""
    d = Path(folder)
    if not d.is_dir():
        return []
    return [k[3:] for k in _files(d) if k.startswith("SEP")]


def read_identity(path: Path, name: str, role: str) -> Identity:
    """One certificate file with its key (in the file, or NAME.key / NAME.key.pem beside
    it); an identity without a key when there is none (the SAST of a cluster whose trust
    list is served as it is needs none)."""
    data = path.read_bytes()
    key_file: Path | None = path if b"PRIVATE KEY-----" in data else None
    if key_file is None:
        stem = path.name.rsplit(".", 1)[0]
        for suffix in KEY_SUFFIXES:
            if (path.with_name(stem + suffix)).is_file():
                key_file = path.with_name(stem + suffix)
                break
    try:
        ident = labpki.load_identity(path, key_file, name=name, role=role)
    except (ValueError, TypeError) as e:
        raise PkiError(f"{path}: not a certificate with its key ({e})") from None
    ident.key_path = key_file
    return ident


def load(folder: str | Path, macs: Iterable[str], out: str | Path,
         ips: dict[str, str] | None = None) -> tuple[Pki, list[str]]:
    """The PKI in `folder` for phones `macs`; what is missing and can be made is made in
    `out`. Returns it with notes for the lab's log (what was made, which files stood in)."""
    d = Path(folder)
    if not d.is_dir():
        raise PkiError(f"--pki {d}: not a folder")
    macs = [labpki.normalize_mac(m) for m in macs]
    ips = dict(ips or {})
    notes: list[str] = []
    if (d / "pki.json").is_file():
        p = labpki.load_pki(d)
    else:
        files = _files(d)
        have = {FILES[k][0] for k in files if k in FILES}
        missing = [s for s in REQUIRED if s not in have]
        if missing:
            raise PkiError(f"--pki {d}: no {', '.join(m + '.pem' for m in missing)} "
                           f"(files are named after their role: {', '.join(sorted(FILES))}, "
                           f"SEP<MAC>)")
        made: dict[str, Identity] = {}
        for stem, path in files.items():
            if stem in FILES:
                name, role = FILES[stem]
                made.setdefault(name, read_identity(path, name, role))
        if "tftp" not in made:
            made["tftp"] = made["ccm"]
            notes.append("no tftp.pem: the call manager's certificate signs the configs")
        if "srst" not in made:
            ca = labpki.make_identity("srst_ca", "CA", cn=labpki.CAS["srst_ca"][1]).write(out)
            made["srst_ca"] = ca
            made["srst"] = labpki.make_identity(
                "srst", "SRST", cn=labpki.STANDARD["srst"][1], issuer=ca,
                ip=ips.get("srst")).write(out)
            notes.append("no srst.pem: the SRST router's certificate made, with its own CA")
        phones = {k[3:]: read_identity(f, k, "PHONE") for k, f in files.items()
                  if k.startswith("SEP")}
        p = Pki(out_dir=d, sast=made["sast"], sast2=made.get("sast2"), ccm=made["ccm"],
                tftp=made["tftp"], ccm_tftp=made["ccm"], srst=made["srst"], capf=made["capf"],
                phones=phones, srst_ca=made.get("srst_ca"))
    for mac in macs:
        if mac not in p.phones:
            if p.capf.key is None:
                raise PkiError(f"--pki {d}: no SEP{mac}.pem and no key in the CAPF's file "
                               f"to issue the phone's certificate with")
            p.phones[mac] = labpki.make_identity(
                f"SEP{mac}", "PHONE", cn=f"SEP{mac}", issuer=p.capf,
                key_size=min(p.capf.key_size, labpki.DEFAULT_KEY_SIZE)).write(out)
            notes.append(f"SEP{mac}'s certificate issued by the CAPF ({p.capf.cn})")
        elif p.phones[mac].key is None:
            raise PkiError(f"--pki {d}: SEP{mac}'s certificate has no private key beside it "
                           f"(the phone needs it)")
    for name, ident in (("the call manager", p.ccm), ("the SRST router", p.srst)):
        if ident.key is None:
            raise PkiError(f"--pki {d}: {name}'s certificate ({ident.cn}) has no private key "
                           f"(its simulator presents it)")
    return p, notes


def key_sizes(p: Pki, macs: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """(refused, weak): the identities the lab uses whose RSA keys are under MIN_BITS, and
    those under WEAK_BITS, as 'NAME (N bits)'."""
    idents = [p.sast, p.sast2, p.ccm, p.tftp, p.capf, p.srst, *(p.phones[m] for m in macs
                                                                if m in p.phones)]
    seen: set[int] = set()
    refused: list[str] = []
    weak: list[str] = []
    for ident in idents:
        if ident is None or id(ident) in seen:
            continue
        seen.add(id(ident))
        bits = ident.cert.public_key().key_size       # type: ignore[union-attr]
        what = f"{ident.name} ({bits} bits)"
        if bits < MIN_BITS:
            refused.append(what)
        elif bits < WEAK_BITS:
            weak.append(what)
    return refused, weak
