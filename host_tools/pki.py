"""The lab's PKI: every certificate and key the Secure SRST lab needs, made with `cryptography`.

    pki = make_pki("out/pki", phone_macs=["001122334455"], key_size=2048)
    pki.sast.cert_der, pki.ccm.key_pem, pki.phones["001122334455"].cert_path, ...

Identities (file stem, CTL role):

    sast      SAST        self-signed signer of CTL/ITL files
    sast2     SAST        the second SAST (a cluster holds two, so one can be replaced)
    ccm       CCM         call manager (TLS server on 2443); self-signed, as CUCM's default
                          certificate is, or issued by ccm_ca (make_pki(ca_signed=["ccm"]))
    tftp      TFTP        signs SEP<MAC>.cnf.xml.sgn
    ccm_tftp  CCM+TFTP    call manager and TFTP in one certificate
    srst      SRST        the SRST router (TLS server on 2443, pinned from cnf.xml), issued
                          by srst_ca, as an IOS CA server on the router issues it
    capf      CAPF        the lab CA that issues the phones' certificates (LSCs)
    SEP<MAC>  PHONE       one per phone, issued by capf
    srst_ca   CA          the router's own CA (an IOS CA server's root)
    ccm_ca    CA          an enterprise CA, for call manager certificates it is asked to sign

Every identity is written as `<stem>.pem` / `<stem>.der` (certificate) and `<stem>.key.pem` /
`<stem>.key.der` (unencrypted PKCS#8 private key), plus `pki.json` listing them. A server
certificate issued by a CA also gets `<stem>.chain.pem` (itself, then its CA): what the
server presents (Identity.server_cert); the credentials service hands out the leaf alone.
`make_identity()` makes single extra ones (expired, other CN, other issuer) for tests.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_KEY_SIZE = 2048
DEFAULT_DAYS = 3650
ORG = "SRST Phone Lab"

# stem -> (role, default CN); all self-signed except the phones (issued by capf)
STANDARD: dict[str, tuple[str, str]] = {
    "sast": ("SAST", "SAST-ADMIN-1"),
    "sast2": ("SAST", "SAST-ADMIN-2"),
    "ccm": ("CCM", "cucm1"),
    "tftp": ("TFTP", "tftp1"),
    "ccm_tftp": ("CCM+TFTP", "cucm-tftp1"),
    "srst": ("SRST", "srst-branch-7"),
    "capf": ("CAPF", "CAPF-lab"),
}
# The CAs behind issued server certificates (not in STANDARD: a PKI made before them, e.g. a
# bench's lasting one, still loads; its srst is then self-signed).
CAS: dict[str, tuple[str, str]] = {
    "srst_ca": ("CA", "srst-branch-7-ca"),
    "ccm_ca": ("CA", "lab-enterprise-ca"),
}
NAMES = (*STANDARD, *CAS)
ISSUED = {"srst": "srst_ca"}                  # always issued by a CA
CA_SIGNABLE = {"ccm": "ccm_ca", "tftp": "ccm_ca", "ccm_tftp": "ccm_ca"}  # on request
ROLES = ("SAST", "CCM", "CCM+TFTP", "TFTP", "CAPF", "SRST", "PHONE", "CA")
SERVER_ROLES = ("CCM", "CCM+TFTP", "TFTP", "SRST")


class PkiError(ValueError):
    pass


@dataclass
class Identity:
    """One certificate and its private key, in memory and (once written) on disk."""
    name: str
    role: str
    cert_der: bytes = field(repr=False)
    key_der: bytes = field(repr=False)
    cert_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)
    cert: x509.Certificate = field(repr=False)
    key: rsa.RSAPrivateKey = field(repr=False)
    cert_path: Path | None = None
    key_path: Path | None = None
    chain_pem: bytes = field(default=b"", repr=False)   # issuer certificates, leaf excluded
    chain_path: Path | None = None                      # <stem>.chain.pem: leaf + chain_pem

    @property
    def server_cert(self) -> Path | None:
        """The file a server loads: its certificate and the CA chain above it, if any."""
        return self.chain_path or self.cert_path

    @property
    def cn(self) -> str:
        attrs = self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(attrs[0].value) if attrs else ""

    @property
    def serial(self) -> int:
        return self.cert.serial_number

    @property
    def serial_bytes(self) -> bytes:
        """The serial as minimal big-endian bytes (the form CTL headers and records carry)."""
        n = self.cert.serial_number
        return n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")

    @property
    def key_size(self) -> int:
        return self.key.key_size

    @property
    def expired(self) -> bool:
        return self.cert.not_valid_after_utc < dt.datetime.now(dt.timezone.utc)

    def write(self, out_dir: str | Path, stem: str | None = None) -> "Identity":
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = stem or self.name
        self.cert_path = out / f"{stem}.pem"
        self.key_path = out / f"{stem}.key.pem"
        self.cert_path.write_bytes(self.cert_pem)
        (out / f"{stem}.der").write_bytes(self.cert_der)
        self.key_path.write_bytes(self.key_pem)
        (out / f"{stem}.key.der").write_bytes(self.key_der)
        self.key_path.chmod(0o600)
        (out / f"{stem}.key.der").chmod(0o600)
        if self.chain_pem:
            self.chain_path = out / f"{stem}.chain.pem"
            self.chain_path.write_bytes(self.cert_pem + self.chain_pem)
        return self

    def summary(self) -> dict:
        c = self.cert
        return {
            "name": self.name, "role": self.role, "cn": self.cn,
            "serial": format(c.serial_number, "x"),
            "issuer": c.issuer.rfc4514_string(), "subject": c.subject.rfc4514_string(),
            "not_before": c.not_valid_before_utc.isoformat(),
            "not_after": c.not_valid_after_utc.isoformat(),
            "key_size": self.key_size,
            "cert": str(self.cert_path) if self.cert_path else None,
            "key": str(self.key_path) if self.key_path else None,
            "chain": str(self.chain_path) if self.chain_path else None,
        }


@dataclass
class Pki:
    out_dir: Path
    sast: Identity
    sast2: Identity | None          # a folder of files may hold one SAST (pkifolder)
    ccm: Identity
    tftp: Identity
    ccm_tftp: Identity
    srst: Identity
    capf: Identity
    phones: dict[str, Identity] = field(default_factory=dict)
    srst_ca: Identity | None = None
    ccm_ca: Identity | None = None

    def identities(self) -> list[Identity]:
        cas = [c for c in (self.srst_ca, self.ccm_ca) if c is not None]
        return [i for i in (self.sast, self.sast2, self.ccm, self.tftp, self.ccm_tftp, self.srst,
                            self.capf) if i is not None] + [*self.phones.values(), *cas]

    def __getitem__(self, name: str) -> Identity:
        for ident in self.identities():
            if ident.name == name:
                return ident
        mac = normalize_mac(name) if len(name.replace(":", "").replace("-", "")) == 12 else None
        if mac and mac in self.phones:
            return self.phones[mac]
        raise KeyError(name)


def normalize_mac(mac: str) -> str:
    """'00:11:22:aa:bb:cc' / '0011.22aa.bbcc' / 'SEP0011...' -> '001122AABBCC'."""
    m = mac.upper()
    if m.startswith("SEP"):
        m = m[3:]
    m = m.replace(":", "").replace("-", "").replace(".", "")
    if len(m) != 12 or any(ch not in "0123456789ABCDEF" for ch in m):
        raise PkiError(f"bad MAC address {mac!r}: want 12 hex digits")
    return m


def new_key(key_size: int = DEFAULT_KEY_SIZE) -> rsa.RSAPrivateKey:
    if key_size not in (512, 1024, 2048, 3072, 4096):
        raise PkiError(f"unsupported RSA key size {key_size}")
    return rsa.generate_private_key(public_exponent=65537, key_size=key_size)


def _name(cn: str, unit: str | None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG))
    return x509.Name(attrs)


def make_identity(
    name: str,
    role: str,
    *,
    cn: str | None = None,
    issuer: Identity | None = None,
    key_size: int = DEFAULT_KEY_SIZE,
    key: rsa.RSAPrivateKey | None = None,
    days: int = DEFAULT_DAYS,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    expired: bool = False,
    serial: int | None = None,
    hash_alg: str = "sha256",
    ip: str | None = None,
) -> Identity:
    """One certificate + key. Self-signed unless `issuer` is given. `expired=True` makes a
    certificate that ended yesterday (valid for a year before that)."""
    if role not in ROLES:
        raise PkiError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    key = key or new_key(key_size)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    if expired:
        not_after = not_after or now - dt.timedelta(days=1)
        not_before = not_before or not_after - dt.timedelta(days=365)
    not_before = not_before or now - dt.timedelta(hours=1)
    not_after = not_after or not_before + dt.timedelta(days=days)
    if not_after <= not_before:
        raise PkiError("notAfter must be later than notBefore")
    cn = cn or name
    subject = _name(cn, role)
    if issuer is not None:
        issuer_name, signing_key = issuer.cert.subject, issuer.key
    else:
        issuer_name, signing_key = subject, key
    # Self-signed certificates are their own trust anchors (as CUCM's are): CA:TRUE.
    is_ca = (issuer is None and role != "PHONE") or role == "CA"
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None),
                       critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if role == "CA":
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False)
    usages = []
    if role in SERVER_ROLES:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if role in ("PHONE", "SRST", "CCM", "CCM+TFTP"):
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if role in SERVER_ROLES:
        sans: list[x509.GeneralName] = [x509.DNSName(cn)]
        if ip:
            sans.append(x509.IPAddress(ipaddress.ip_address(ip)))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    algorithm = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256(), "sha512": hashes.SHA512()}[hash_alg]
    cert = builder.sign(signing_key, algorithm)
    # A server presents its CA chain (the issuer's own chain included); phones present the leaf.
    chain = issuer.cert_pem + issuer.chain_pem if issuer is not None and role in SERVER_ROLES else b""
    return Identity(
        name=name, role=role, chain_pem=chain,
        cert_der=cert.public_bytes(serialization.Encoding.DER),
        key_der=key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
        cert=cert, key=key,
    )


def make_pki(
    out_dir: str | Path,
    phone_macs: Iterable[str] = (),
    key_size: int = DEFAULT_KEY_SIZE,
    *,
    days: int = DEFAULT_DAYS,
    cns: dict[str, str] | None = None,
    expired: Iterable[str] = (),
    ips: dict[str, str] | None = None,
    ca_signed: Iterable[str] = (),
) -> Pki:
    """Create the whole lab PKI under `out_dir` (PEM + DER files and pki.json).

    cns:       override CNs by stem, e.g. {"ccm": "cucm1.lab"}
    expired:   stems (or phone MACs) to create already expired, for tests
    ips:       IP address SANs by stem, e.g. {"srst": "192.0.2.1"}
    ca_signed: stems of CA_SIGNABLE (ccm, tftp, ccm_tftp) to have issued by ccm_ca instead of
               self-signed (a CUCM whose certificate the enterprise CA signed)
    """
    out = Path(out_dir)
    cns = dict(cns or {})
    ips = dict(ips or {})
    unknown = set(cns) - set(NAMES)
    if unknown:
        raise PkiError(f"unknown identity names in cns: {', '.join(sorted(unknown))}")
    signed = set(ca_signed)
    if signed - set(CA_SIGNABLE):
        raise PkiError(f"ca_signed {', '.join(sorted(signed - set(CA_SIGNABLE)))}: "
                       f"one of {', '.join(CA_SIGNABLE)}")
    macs = [normalize_mac(m) for m in phone_macs]
    expired_set: set[str] = set()
    for e in expired:
        if e in NAMES:
            expired_set.add(e)
            continue
        try:
            expired_set.add(normalize_mac(e))
        except PkiError:
            raise PkiError(f"--expired {e!r}: not one of {', '.join(NAMES)} or a phone MAC")

    made: dict[str, Identity] = {}
    for stem, (role, default_cn) in CAS.items():
        made[stem] = make_identity(
            stem, role, cn=cns.get(stem, default_cn), key_size=key_size, days=days,
            expired=stem in expired_set).write(out)
    issuers = {**ISSUED, **{k: CA_SIGNABLE[k] for k in signed}}
    for stem, (role, default_cn) in STANDARD.items():
        ca = made[issuers[stem]] if stem in issuers else None
        made[stem] = make_identity(
            stem, role, cn=cns.get(stem, default_cn), key_size=key_size, days=days,
            expired=stem in expired_set, ip=ips.get(stem), issuer=ca).write(out)
    phones: dict[str, Identity] = {}
    for mac in macs:
        phones[mac] = make_identity(
            f"SEP{mac}", "PHONE", cn=f"SEP{mac}", issuer=made["capf"], key_size=key_size,
            days=days, expired=mac in expired_set).write(out)
    pki = Pki(out_dir=out, phones=phones, **made)
    (out / "pki.json").write_text(json.dumps([i.summary() for i in pki.identities()], indent=2) + "\n")
    return pki


def load_identity(cert_path: str | Path, key_path: str | Path | None = None,
                  name: str | None = None, role: str = "CCM") -> Identity:
    """Read back a certificate (PEM or DER) and optionally its key (PEM or DER; a PEM
    certificate file may also hold the key, as certutils' files do)."""
    cert_path = Path(cert_path)
    data = cert_path.read_bytes()
    cert = (x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data
            else x509.load_der_x509_certificate(data))
    key = None
    kdata = Path(key_path).read_bytes() if key_path else (data if b"PRIVATE KEY-----" in data else None)
    if kdata is not None:
        loaded = (serialization.load_pem_private_key(kdata, None) if b"-----BEGIN" in kdata
                  else serialization.load_der_private_key(kdata, None))
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise PkiError(f"{key_path or cert_path}: only RSA keys are supported")
        key = loaded
    stem = cert_path.name.split(".")[0]
    chain_path = cert_path.with_name(f"{stem}.chain.pem")
    chain_pem = b""
    if chain_path.is_file():       # written by Identity.write(): this certificate, then its CAs
        own = cert.public_bytes(serialization.Encoding.PEM)
        text = chain_path.read_bytes()
        chain_pem = text[len(own):] if text.startswith(own) else b""
    return Identity(
        name=name or stem, role=role,
        chain_pem=chain_pem, chain_path=chain_path if chain_pem else None,
        cert_der=cert.public_bytes(serialization.Encoding.DER),
        key_der=key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()) if key else b"",
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()) if key else b"",
        cert=cert, key=key,  # type: ignore[arg-type]
        cert_path=cert_path, key_path=Path(key_path) if key_path else None,
    )


def load_pki(out_dir: str | Path) -> Pki:
    """Read back a PKI that make_pki() wrote (its pki.json index), e.g. a bench's lasting one."""
    out = Path(out_dir)
    try:
        index = json.loads((out / "pki.json").read_text())
    except (OSError, ValueError) as e:
        raise PkiError(f"{out}: no readable pki.json ({e})") from e
    made: dict[str, Identity] = {}
    phones: dict[str, Identity] = {}
    for entry in index:
        ident = load_identity(entry["cert"], entry["key"], name=entry["name"], role=entry["role"])
        if entry["role"] == "PHONE":
            phones[normalize_mac(entry["name"])] = ident
        else:
            made[entry["name"]] = ident
    missing = set(STANDARD) - set(made)
    if missing:
        raise PkiError(f"{out}: pki.json lacks {', '.join(sorted(missing))}")
    return Pki(out_dir=out, phones=phones, **{k: made[k] for k in STANDARD},
               **{k: made.get(k) for k in CAS})
