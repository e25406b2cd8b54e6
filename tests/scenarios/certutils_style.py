"""A PKI and a TFTP folder made the way certutils makes them, with none of the lab's code.

certutils (https://github.com/usecallmanagernz/certutils) makes certificates with `mkcert`
(openssl: an RSA key, a self-signed certificate with CA:true, both in one PEM file, key
first), trust lists with `tlvfile` and signed files with `sgnfile`. Here the certificates
come from the openssl command line the same way, and the trust list and .sgn writers below
follow certutils' layout (docs/protocols.md, "CTL and ITL files", "Signed files"):

- names as certutils writes them: each attribute in the certificate's order as
  `TYPE=value`, joined by commas (the lab's own writer joins CN, OU, O... by semicolons);
- header: version 1.2 (1.0 for a .sgn), header length, signer version 1.0 (.tlv only, in
  every .tlv, not only ITLs), signer information as signer name, issuer name, serial,
  signature information, signature, file name, timestamp, one-byte padding to a multiple of 4;
- records: length, subject, issuer, serial, role, public key (PKCS#1), the certificate's
  signature, the certificate; no DNS name, no address; the signer is given as a SAST record
  itself, as `tlvfile --sast` does.

host_tools.ctlbuild is not used: the point is a second, independent maker of these files.
"""
from __future__ import annotations

import struct
import subprocess
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

ROLES = {"SAST": 0, "CCM": 1, "CCM+TFTP": 2, "TFTP": 3, "CAPF": 4}
HASHES = {"sha1": (1, hashes.SHA1), "sha512": (3, hashes.SHA512)}


# -- certificates: openssl, as mkcert runs it ---------------------------------------------------

def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def mkcert(folder: Path, stem: str, cn: str, unit: str, bits: int = 2048) -> Path:
    """`stem.pem`: a new RSA key, then a self-signed CA:true certificate for it (mkcert)."""
    _openssl("genrsa", "-out", f"{stem}.key.tmp", str(bits), cwd=folder)
    _openssl("req", "-new", "-x509", "-key", f"{stem}.key.tmp", "-out", f"{stem}.crt.tmp",
             "-days", "3650", "-sha256", "-subj", f"/CN={cn}/O=Certutils Test/OU={unit}",
             "-addext", "basicConstraints=critical,CA:true,pathlen:0",
             "-addext", "keyUsage=keyCertSign,cRLSign,digitalSignature,keyEncipherment",
             "-addext", "extendedKeyUsage=serverAuth,clientAuth",
             "-addext", f"subjectAltName=DNS:{cn.lower()}", cwd=folder)
    return _combine(folder, stem)


def issue(folder: Path, stem: str, cn: str, issuer: Path, bits: int = 1024) -> Path:
    """`stem.pem`: a key and a certificate issued by `issuer` (a combined PEM): what a CAPF
    hands a phone (an LSC), made with openssl's CA commands."""
    _openssl("genrsa", "-out", f"{stem}.key.tmp", str(bits), cwd=folder)
    _openssl("req", "-new", "-key", f"{stem}.key.tmp", "-out", f"{stem}.csr.tmp",
             "-subj", f"/CN={cn}/O=Certutils Test/OU=PHONE", cwd=folder)
    _openssl("x509", "-req", "-in", f"{stem}.csr.tmp", "-CA", str(issuer), "-CAkey", str(issuer),
             "-CAcreateserial", "-days", "3650", "-sha256", "-out", f"{stem}.crt.tmp", cwd=folder)
    (folder / f"{stem}.csr.tmp").unlink()
    return _combine(folder, stem)


def _combine(folder: Path, stem: str) -> Path:
    out = folder / f"{stem}.pem"
    key, crt = folder / f"{stem}.key.tmp", folder / f"{stem}.crt.tmp"
    out.write_bytes(key.read_bytes() + crt.read_bytes())
    key.unlink()
    crt.unlink()
    out.chmod(0o600)
    return out


def load(pem: Path) -> tuple[x509.Certificate, object]:
    data = pem.read_bytes()
    return (x509.load_pem_x509_certificate(data),
            serialization.load_pem_private_key(data, None))


# -- trust lists and signed files, as tlvfile and sgnfile lay them out ---------------------------

def _el(tag: int, value: bytes) -> bytes:
    return struct.pack(">BH", tag, len(value)) + value


def _name(name: x509.Name) -> bytes:
    return ",".join(a.rfc4514_string() for a in name).encode() + b"\0"


def _serial(cert: x509.Certificate) -> bytes:
    n = cert.serial_number
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def _header(cert: x509.Certificate, siglen: int, version: tuple[int, int], tlv: bool,
            hash_code: int, filename: str, ts: int) -> tuple[bytes, bytes]:
    """(header before the signature, header after it, padding included) with the header
    length filled in."""
    signer = (_el(4, _name(cert.subject)) + _el(6, _name(cert.issuer))
              + _el(5, _serial(cert)))
    before = (_el(28, bytes([1, 0])) if tlv else b"") + _el(3, signer) + _el(7, (
        _el(8, bytes([hash_code]))
        + _el(9, _el(10, b"\0") + _el(11, bytes([[64, 128, 256, 512].index(siglen)])))))
    after = _el(14, filename.encode() + b"\0") + _el(15, struct.pack(">I", ts))
    size = 5 + 5 + len(before) + 3 + siglen + len(after)
    after += b"\x0d" * (-size % 4)
    size += -size % 4
    return _el(1, bytes(version)) + _el(2, struct.pack(">H", size)) + before, after


def _signed(pem: Path, version: tuple[int, int], tlv: bool, hash_name: str, filename: str,
            body: bytes, ts: int | None) -> bytes:
    cert, key = load(pem)
    siglen = key.key_size // 8                                       # type: ignore[attr-defined]
    code, algo = HASHES[hash_name]
    head, tail = _header(cert, siglen, version, tlv, code, filename,
                         int(time.time()) if ts is None else ts)
    sig = key.sign(head + tail + body, padding.PKCS1v15(), algo())  # type: ignore[attr-defined]
    return head + _el(12, sig) + tail + body


def record(role: str, pem: Path) -> bytes:
    cert = x509.load_pem_x509_certificate(pem.read_bytes())
    pub = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.PKCS1)
    inner = (_el(3, _name(cert.subject)) + _el(5, _name(cert.issuer)) + _el(6, _serial(cert))
             + _el(4, struct.pack(">H", ROLES[role])) + _el(7, pub) + _el(8, cert.signature)
             + _el(9, cert.public_bytes(serialization.Encoding.DER)))
    return _el(1, struct.pack(">H", 5 + len(inner))) + inner


def tlvfile(out: Path, records: list[tuple[str, Path]], hash_name: str = "sha1",
            ts: int | None = None) -> Path:
    """`tlvfile --build`: signed by the first SAST record's file (key in it)."""
    signer = next(pem for role, pem in records if role == "SAST")
    body = b"".join(record(role, pem) for role, pem in records)
    out.write_bytes(_signed(signer, (1, 2), True, hash_name, out.name, body, ts))
    return out


def sgnfile(src: Path, signer: Path, hash_name: str = "sha1", ts: int | None = None) -> Path:
    """`sgnfile --build`: SRC.sgn, the header naming SRC's base name plus .sgn."""
    out = src.with_name(src.name + ".sgn")
    out.write_bytes(_signed(signer, (1, 0), False, hash_name, out.name, src.read_bytes(), ts))
    return out
