"""Build Cisco trust lists (CTL/ITL `.tlv`) and signed files (`.sgn`) in the public format.

Layout written (the same order Cisco's `show ctl` dumps and usecallmanagernz/certutils use):

    header:  1 version (1.2) | 2 header length | [28 signer version, ITL]
             3 signer info { 4 signer name | 5 serial | 6 CA name }
             7 signature info { 8 hash algorithm | 9 { 10 signature algorithm | 11 modulus } }
             12 signature | 14 filename | 15 timestamp | 13 padding (to a multiple of 4)
    records: 1 record length | 3 subject | 4 role | 5 issuer | 6 serial | 7 public key
             | 8 certificate signature | 9 certificate | [2 DNS name] | [10 IPv4]

The signature is RSA PKCS#1 v1.5 over the whole file with the signature TLV cut out.
"""
from __future__ import annotations

import ipaddress
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from host_tools.pki import Identity

ROLES = {"SAST": 0, "CCM": 1, "CCM+TFTP": 2, "TFTP": 3, "CAPF": 4, "SRST": 5, "APP": 7,
         "TVS": 21}
HASHES = {"sha1": 1, "sha256": 2, "sha512": 3}
_HASH_OBJ = {1: hashes.SHA1, 2: hashes.SHA256, 3: hashes.SHA512}
_MODULUS_INDEX = {64: 0, 128: 1, 256: 2, 512: 3}
_NAME_KEYS = [(NameOID.COMMON_NAME, "CN"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "OU"),
              (NameOID.ORGANIZATION_NAME, "O"), (NameOID.LOCALITY_NAME, "L"),
              (NameOID.STATE_OR_PROVINCE_NAME, "ST"), (NameOID.COUNTRY_NAME, "C")]

CTL_VERSION = (1, 2)
SGN_VERSION = (1, 0)
ITL_SIGNER_VERSION = (1, 1)


class CtlBuildError(ValueError):
    pass


@dataclass
class Record:
    role: str
    cert: x509.Certificate
    dns: str | None = None
    ip: str | None = None

    @classmethod
    def from_identity(cls, ident: Identity, role: str | None = None, **kw) -> "Record":
        return cls(role or ident.role, ident.cert, **kw)


def tlv(tag: int, value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise CtlBuildError(f"element {tag} too long ({len(value)} bytes)")
    return struct.pack(">BH", tag, len(value)) + value


def cstr(text: str) -> bytes:
    return text.encode() + b"\x00"


def name_string(name: x509.Name) -> str:
    """'CN=a;OU=b;O=c' in the certificate's attribute order (the form CTL files carry)."""
    keys = dict(_NAME_KEYS)
    return ";".join(f"{keys[a.oid]}={a.value}" for a in name if a.oid in keys)


def serial_bytes(cert: x509.Certificate) -> bytes:
    n = cert.serial_number
    return n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")


def rsa_public_key_der(cert: x509.Certificate) -> bytes:
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise CtlBuildError("only RSA certificates are supported in records")
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


def build_record(rec: Record) -> bytes:
    if rec.role not in ROLES:
        raise CtlBuildError(f"unknown role {rec.role!r}; one of {', '.join(ROLES)}")
    c = rec.cert
    body = tlv(3, cstr(name_string(c.subject)))
    body += tlv(4, struct.pack(">H", ROLES[rec.role]))
    body += tlv(5, cstr(name_string(c.issuer)))
    body += tlv(6, serial_bytes(c))
    body += tlv(7, rsa_public_key_der(c))
    body += tlv(8, c.signature)
    body += tlv(9, c.public_bytes(serialization.Encoding.DER))
    if rec.dns:
        body += tlv(2, cstr(rec.dns))
    if rec.ip:
        body += tlv(10, ipaddress.IPv4Address(rec.ip).packed)
    total = 5 + len(body)
    if total > 0xFFFF:
        raise CtlBuildError("record too long")
    return tlv(1, struct.pack(">H", total)) + body


def _header(signer: x509.Certificate, sig_len: int, hash_code: int, filename: str,
            timestamp: int, version: tuple[int, int],
            signer_version: tuple[int, int] | None) -> tuple[bytearray, int]:
    """Header without the signature TLV; returns (bytes, where the signature TLV goes)."""
    if sig_len not in _MODULUS_INDEX:
        raise CtlBuildError(f"unsupported RSA key size {sig_len * 8}")
    out = bytearray(tlv(1, bytes(version)) + tlv(2, b"\x00\x00"))
    if signer_version:
        out += tlv(28, bytes(signer_version))
    out += tlv(3, tlv(4, cstr(name_string(signer.subject))) + tlv(5, serial_bytes(signer))
               + tlv(6, cstr(name_string(signer.issuer))))
    out += tlv(7, tlv(8, bytes([hash_code]))
               + tlv(9, tlv(10, b"\x00") + tlv(11, bytes([_MODULUS_INDEX[sig_len]]))))
    sig_at = len(out)
    out += tlv(14, cstr(filename)) + tlv(15, struct.pack(">I", timestamp & 0xFFFFFFFF))
    while (len(out) + 3 + sig_len) % 4:
        out.append(0x0D)
    struct.pack_into(">H", out, 8, len(out) + 3 + sig_len)
    return out, sig_at


def _signed(key: rsa.RSAPrivateKey, header: bytearray, sig_at: int, body: bytes,
            hash_code: int) -> bytes:
    unsigned = bytes(header) + body
    sig = key.sign(unsigned, padding.PKCS1v15(), _HASH_OBJ[hash_code]())
    return unsigned[:sig_at] + tlv(12, sig) + unsigned[sig_at:]


def _hash_code(hash_name: str | int) -> int:
    if isinstance(hash_name, int):
        if hash_name not in _HASH_OBJ:
            raise CtlBuildError(f"unknown hash code {hash_name}")
        return hash_name
    try:
        return HASHES[hash_name.lower()]
    except KeyError:
        raise CtlBuildError(f"unknown hash {hash_name!r}; one of {', '.join(HASHES)}") from None


def with_signer(signer: Identity, records: list[Record | bytes]) -> list[Record | bytes]:
    """The records a trust list signed by `signer` holds: the signer as the first SAST
    record, unless one already holds its certificate (certutils' `tlvfile --sast` gives the
    signer as a record itself)."""
    recs = list(records)
    if not any(isinstance(r, Record) and r.cert == signer.cert and r.role == "SAST"
               for r in recs):
        recs.insert(0, Record("SAST", signer.cert))
    return recs


def build_trust_list(signer: Identity, records: list[Record | bytes], *, filename: str | None = None,
                     hash_name: str | int = "sha1", itl: bool = False,
                     timestamp: int | None = None, add_signer: bool = True) -> bytes:
    """A CTL (or ITL with itl=True) signed by `signer` (a SAST identity with its key).
    The signer is added as the first SAST record unless a record already holds its cert.
    A `bytes` item in `records` is taken as an already encoded record (for odd test files)."""
    if signer.key is None:
        raise CtlBuildError("the signer needs its private key")
    code = _hash_code(hash_name)
    recs = with_signer(signer, records) if add_signer else list(records)
    if not recs:
        raise CtlBuildError("a trust list needs at least one record")
    filename = filename or ("ITLFile.tlv" if itl else "CTLFile.tlv")
    ts = int(time.time()) if timestamp is None else timestamp
    header, sig_at = _header(signer.cert, signer.key.key_size // 8, code, filename, ts,
                             CTL_VERSION, ITL_SIGNER_VERSION if itl else None)
    body = b"".join(r if isinstance(r, bytes) else build_record(r) for r in recs)
    return _signed(signer.key, header, sig_at, body, code)


def build_sgn(signer: Identity, payload: bytes, *, filename: str,
              hash_name: str | int = "sha1", timestamp: int | None = None) -> bytes:
    """A `.sgn` file: the header signed by `signer` (TFTP or CCM+TFTP), then `payload`."""
    if signer.key is None:
        raise CtlBuildError("the signer needs its private key")
    code = _hash_code(hash_name)
    ts = int(time.time()) if timestamp is None else timestamp
    header, sig_at = _header(signer.cert, signer.key.key_size // 8, code, filename, ts,
                             SGN_VERSION, None)
    return _signed(signer.key, header, sig_at, payload, code)


def parse_role_spec(spec: str) -> tuple[str, str]:
    """'CCM:path/ccm.pem' -> ('CCM', 'path/ccm.pem'); role names are case-insensitive and
    'ccm_tftp' means 'CCM+TFTP'."""
    role, sep, path = spec.partition(":")
    role = role.upper().replace("_", "+")
    if not sep or not path:
        raise CtlBuildError(f"--record wants ROLE:CERT, got {spec!r}")
    if role not in ROLES:
        raise CtlBuildError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    return role, path


def write(path: str | Path, data: bytes) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(p)
    return p
