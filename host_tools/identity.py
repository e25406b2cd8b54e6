"""`phonelab identity`: put a phone's identity on a board that runs the agent (not to be
confused with the agent's provisioning, firmware/phone/provision.py: CTL, ITL and configuration
from TFTP at boot, which this feeds).

What goes where (the names are phone.store's):

    <store>/phone.der      the phone certificate (LSC), DER      <store> is the profile's
    <store>/phone.key      its private key, PKCS#8 DER           "store" ('/state' by default)
    <store>/sast.der       SAST certificate pinned at flash time (optional)
    <store>/identity.json  MAC and certificate fingerprints, for people and tools
    /board.json            gets "mac" (phone.platform reads the MAC from the profile)
    /wlan.json             WLAN credentials (optional; WLAN boards)

PEM or DER in, DER on the board. The key must belong to the certificate. Every file goes to
NAME.tmp and is renamed over NAME (as phone.store does), and is checked by its SHA-256 on the
board afterwards. Secrets (the private key, the WLAN key) are never printed, logged, put in an
exception message or shown in progress output: errors while writing them say which file, not why.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import host_tools.fw  # noqa: F401  (firmware/ on sys.path)
from phone.store import (  # type: ignore[import-not-found]  # the store's names
    BASE as STORE_DEFAULT, PHONE_CERT, PHONE_KEY, SAST_PIN)

IDENTITY = "identity.json"
WLAN_FILE = "/wlan.json"     # firmware/phone/platform.py reads wlan.json from the root


class IdentityError(RuntimeError):
    pass


def normalize_mac(text: str) -> str:
    from host_tools.pki import PkiError, normalize_mac as pki_mac
    try:
        return pki_mac(text.strip())
    except PkiError as e:
        raise IdentityError(str(e)) from None


@dataclass(frozen=True)
class PhoneIdentity:
    """What `phonelab identity` puts on a board. repr() never shows the secrets."""
    mac: str | None = None
    cert_der: bytes | None = None
    cn: str | None = None
    key_der: bytes | None = field(default=None, repr=False)
    sast_der: bytes | None = None
    sast_cn: str | None = None
    wlan: bytes | None = field(default=None, repr=False)

    @property
    def device(self) -> str | None:
        return f"SEP{self.mac}" if self.mac else None


def _load_cert(path: Path, what: str) -> tuple[bytes, object]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    try:
        data = path.read_bytes()
    except OSError as e:
        raise IdentityError(f"cannot read the {what} {path}: {e.strerror}") from None
    try:
        cert = (x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data
                else x509.load_der_x509_certificate(data))
    except ValueError:
        raise IdentityError(f"{path} is not a certificate (PEM or DER)") from None
    return cert.public_bytes(serialization.Encoding.DER), cert


def _cn(cert: object) -> str | None:
    from cryptography.x509.oid import NameOID
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)  # type: ignore[attr-defined]
    return str(attrs[0].value) if attrs else None


def _load_key(path: Path) -> tuple[bytes, object]:
    """PKCS#8 DER of the key at `path`. Error messages never quote the file's content."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    try:
        data = path.read_bytes()
    except OSError as e:
        raise IdentityError(f"cannot read the key file {path}: {e.strerror}") from None
    try:
        key = (serialization.load_pem_private_key(data, None) if b"-----BEGIN" in data
               else serialization.load_der_private_key(data, None))
    except TypeError:
        raise IdentityError(f"{path} is an encrypted key: the board needs it unencrypted "
                            f"(openssl pkey -in KEY -out plain.key.pem)") from None
    except Exception:  # never chain: a parser's message could quote bytes
        raise IdentityError(f"{path} is not a private key (PEM or DER)") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise IdentityError(f"{path}: only RSA and EC keys work with the board's TLS")
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return der, key


def load_identity(mac: str | None = None, cert: str | Path | None = None,
                  key: str | Path | None = None, sast: str | Path | None = None,
                  wlan: str | Path | None = None) -> PhoneIdentity:
    """Read and check everything before a board is touched."""
    from cryptography.hazmat.primitives import serialization
    if (cert is None) != (key is None):
        raise IdentityError("--cert and --key go together (the phone certificate and its key)")
    if cert is not None and mac is None:
        raise IdentityError("--mac is needed with --cert (the phone's MAC, as in SEP<MAC>)")
    if not any(x is not None for x in (mac, cert, sast, wlan)):
        raise IdentityError("no identity given: give --mac/--cert/--key, --sast or --wlan")
    out: dict[str, object] = {}
    if mac is not None:
        out["mac"] = normalize_mac(mac)
    if cert is not None and key is not None:
        cert_der, c = _load_cert(Path(cert), "phone certificate")
        key_der, k = _load_key(Path(key))
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if c.public_key().public_bytes(*spki) != k.public_key().public_bytes(*spki):  # type: ignore[attr-defined]
            raise IdentityError(f"the key in {key} does not belong to the certificate {cert}")
        cn = _cn(c)
        if cn and re.fullmatch(r"SEP[0-9A-Fa-f]{12}", cn) and cn[3:].upper() != out["mac"]:
            raise IdentityError(f"the certificate is for {cn}, but --mac says "
                                f"SEP{out['mac']}: wrong certificate or wrong MAC?")
        out.update(cert_der=cert_der, cn=cn, key_der=key_der)
    if sast is not None:
        sast_der, s = _load_cert(Path(sast), "SAST certificate")
        out.update(sast_der=sast_der, sast_cn=_cn(s))
    if wlan is not None:
        out["wlan"] = _load_wlan(Path(wlan))
    return PhoneIdentity(**out)  # type: ignore[arg-type]


def _load_wlan(path: Path) -> bytes:
    try:
        obj = json.loads(path.read_text())
    except OSError as e:
        raise IdentityError(f"cannot read {path}: {e.strerror}") from None
    except (ValueError, RecursionError):
        raise IdentityError(f'{path} is not JSON: want {{"ssid": "...", "key": "..."}}') from None
    if not (isinstance(obj, dict) and isinstance(obj.get("ssid"), str) and obj["ssid"]
            and isinstance(obj.get("key", ""), str)):
        raise IdentityError(f'{path}: want {{"ssid": "...", "key": "..."}} (strings)')
    return json.dumps({"ssid": obj["ssid"], "key": obj.get("key", "")}).encode()


# -- the board side ----------------------------------------------------------------------------
@dataclass
class IdentityResult:
    port: str
    store: str
    written: list[str] = field(default_factory=list)


def _put(b: object, path: str, data: bytes, secret: bool) -> None:
    from host_tools.deploy import DeployError
    try:
        b.write(path, data, lambda n: None)  # type: ignore[attr-defined]
    except DeployError as e:
        if secret:  # the board's error text is not ours to vouch for: say which file only
            raise IdentityError(f"writing {path} to the board failed; the board's message "
                                f"is withheld because the file is secret") from None
        raise IdentityError(f"writing {path} to the board failed: {e}") from None


def put_identity(port: str, ident: PhoneIdentity, reset: bool = True,
                 show: bool = True) -> IdentityResult:
    from rich.console import Console
    from host_tools.deploy import DeployError, RawRepl

    console = Console(quiet=not show, highlight=False)
    try:
        with RawRepl(port) as b:
            text = b.read_text("/board.json")
            if text is None:
                raise IdentityError(f"no /board.json on the board at {port}: deploy the agent "
                                    f"first (phonelab deploy --port {port} --board NAME)")
            try:
                profile = json.loads(text)
            except ValueError:
                raise IdentityError("/board.json on the board is not JSON: deploy again") from None
            store = str(profile.get("store", STORE_DEFAULT)).rstrip("/") or STORE_DEFAULT
            result = IdentityResult(port=port, store=store)
            files: list[tuple[str, bytes, bool, str]] = []   # path, data, secret, what
            if ident.cert_der is not None and ident.key_der is not None:
                files.append((f"{store}/{PHONE_CERT}", ident.cert_der, False,
                              f"phone certificate CN={ident.cn}"))
                files.append((f"{store}/{PHONE_KEY}", ident.key_der, True, "private key"))
            if ident.sast_der is not None:
                files.append((f"{store}/{SAST_PIN}", ident.sast_der, False,
                              f"SAST pin CN={ident.sast_cn}"))
            if ident.wlan is not None:
                if profile.get("network", {}).get("kind") != "WLAN":
                    console.print(f"[yellow]note:[/] profile {profile.get('name')!r} is not a "
                                  f"WLAN board; writing {WLAN_FILE} anyway")
                files.append((WLAN_FILE, ident.wlan, True, "WLAN credentials"))
            if ident.mac is not None:
                profile["mac"] = ident.mac
                files.append(("/board.json", json.dumps(profile, indent=1).encode(), False,
                              f"MAC {ident.mac} in the board profile"))
            record = {"mac": ident.mac, "device": ident.device, "cn": ident.cn,
                      "cert_sha256": _sha(ident.cert_der), "sast_cn": ident.sast_cn,
                      "sast_sha256": _sha(ident.sast_der)}
            old = b.read_text(f"{store}/{IDENTITY}")
            if old:
                try:
                    record = {**json.loads(old), **{k: v for k, v in record.items() if v}}
                except ValueError:
                    pass
            files.append((f"{store}/{IDENTITY}", json.dumps(record, indent=1).encode(), False,
                          "identity record"))

            b.makedirs(store)
            for path, data, secret, what in files:
                _put(b, path, data, secret)
                result.written.append(path)
                console.print(f"  wrote {path} ({what}, {len(data)} B)")
            on_board = b.hashes([f[0] for f in files], [])
            bad = [p for p, data, _s, _w in files if on_board.get(p) != hashlib.sha256(data).hexdigest()]
            if bad:
                raise IdentityError(f"read-back check failed for {', '.join(bad)}: the board's "
                                    f"filesystem may be full or damaged")
            console.print(f"identity of {ident.device or 'the board'} on {port} "
                          f"({len(files)} file(s), checked)")
            if reset:
                b.soft_reset()
                console.print("soft reset: the agent starts with its identity")
    except DeployError as e:
        raise IdentityError(str(e)) from None
    return result


def _sha(data: bytes | None) -> str | None:
    return hashlib.sha256(data).hexdigest() if data is not None else None
