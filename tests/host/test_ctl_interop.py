"""Independent-path check of the trust-list format.

The writer and reader below are written from the format description (the TLV format of
usecallmanagernz/certutils' tlvfile), separately from host_tools/ctlbuild.py and firmware/phone/ctl.py:
a file built here must be accepted by the firmware's parser (on CPython and on MicroPython),
ctlbuild's output must read the same through this reader (with the signature checked by
`cryptography`) and through the firmware, and both writers must agree byte for byte.
"""
from __future__ import annotations

import hashlib
import os
import struct

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from host_tools import ctlbuild, fw, pki  # noqa: F401  (fw puts firmware/ on sys.path)
from host_tools.commands.ctl import run_ctltool
from phone import ctl as fwctl
from phone import pkcs1 as fwpkcs1
from phone import sha512 as fwsha512

TS = 1767225600
HASH_CODE = {"sha1": 1, "sha256": 2, "sha512": 3}
ROLE_CODE = {"SAST": 0, "CCM": 1, "CCM+TFTP": 2, "TFTP": 3, "CAPF": 4, "TVS": 21}
ABBREV = {"commonName": "CN", "organizationalUnitName": "OU", "organizationName": "O",
          "localityName": "L", "stateOrProvinceName": "ST", "countryName": "C"}


# -- an independent minimal writer -------------------------------------------------------------

def el(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + len(value).to_bytes(2, "big") + value


def zstr(s: str) -> bytes:
    return s.encode() + b"\0"


def dn(name: x509.Name) -> str:
    parts = []
    for attr in name:
        key = ABBREV.get(attr.oid._name)
        if key:
            parts.append(key + "=" + str(attr.value))
    return ";".join(parts)


def serial_of(cert: x509.Certificate) -> bytes:
    s = cert.serial_number
    return s.to_bytes((s.bit_length() + 7) // 8 or 1, "big")


def hand_record(role: str, cert: x509.Certificate) -> bytes:
    pub = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.PKCS1)
    inner = (el(3, zstr(dn(cert.subject))) + el(4, ROLE_CODE[role].to_bytes(2, "big"))
             + el(5, zstr(dn(cert.issuer))) + el(6, serial_of(cert)) + el(7, pub)
             + el(8, cert.signature) + el(9, cert.public_bytes(serialization.Encoding.DER)))
    return el(1, (len(inner) + 5).to_bytes(2, "big")) + inner


def hand_file(signer_cert, signer_key, body: bytes, filename: str, hash_name: str,
              version=(1, 2), itl=False) -> bytes:
    siglen = signer_key.key_size // 8
    modulus = {64: 0, 128: 1, 256: 2, 512: 3}[siglen]
    signer = (el(4, zstr(dn(signer_cert.subject))) + el(5, serial_of(signer_cert))
              + el(6, zstr(dn(signer_cert.issuer))))
    siginfo = el(8, bytes([HASH_CODE[hash_name]])) + el(9, el(10, b"\0") + el(11, bytes([modulus])))
    before = el(3, signer) + el(7, siginfo)
    if itl:
        before = el(28, b"\x01\x01") + before
    after = el(14, zstr(filename)) + el(15, TS.to_bytes(4, "big"))
    fixed = 5 + 5 + len(before) + 3 + siglen + len(after)
    pad = (-fixed) % 4
    hlen = fixed + pad
    head = el(1, bytes(version)) + el(2, hlen.to_bytes(2, "big")) + before
    tail = after + b"\x0d" * pad + body
    algo = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256(), "sha512": hashes.SHA512()}[hash_name]
    sig = signer_key.sign(head + tail, padding.PKCS1v15(), algo)
    return head + el(12, sig) + tail


# -- an independent minimal reader -------------------------------------------------------------

def hand_read(data: bytes) -> dict:
    assert data[0] == 1 and data[5] == 2
    hlen = struct.unpack(">H", data[8:10])[0]
    out: dict = {"records": []}
    i = 10
    while i < hlen:
        tag = data[i]
        if tag == 13:
            i += 1
            continue
        ln = struct.unpack(">H", data[i + 1:i + 3])[0]
        val = data[i + 3:i + 3 + ln]
        if tag in (3, 7, 9):
            i += 3
            continue
        if tag == 12:
            out["sig_at"], out["sig"] = i, val
        elif tag == 5:
            out["serial"] = val.hex()
        elif tag == 8:
            out["hash"] = val[0]
        elif tag == 14:
            out["filename"] = val[:-1].decode()
        elif tag == 15:
            out["timestamp"] = int.from_bytes(val, "big")
        i += 3 + ln
    i = hlen
    while i < len(data):
        rlen = struct.unpack(">H", data[i + 3:i + 5])[0]
        rec, j = {}, i + 5
        while j < i + rlen:
            tag, ln = data[j], struct.unpack(">H", data[j + 1:j + 3])[0]
            val = data[j + 3:j + 3 + ln]
            if tag == 4:
                rec["role"] = int.from_bytes(val, "big")
            elif tag in (3, 5):
                rec["subject" if tag == 3 else "issuer"] = val[:-1].decode()
            elif tag == 6:
                rec["serial"] = val.hex()
            elif tag == 9:
                rec["cert"] = val
            j += 3 + ln
        out["records"].append(rec)
        i += rlen
    return out


def hand_verify(data: bytes, view: dict) -> None:
    signed = data[:view["sig_at"]] + data[view["sig_at"] + 3 + len(view["sig"]):]
    signer = next(r for r in view["records"] if r["role"] == 0 and r["serial"] == view["serial"])
    cert = x509.load_der_x509_certificate(signer["cert"])
    algo = {1: hashes.SHA1(), 2: hashes.SHA256(), 3: hashes.SHA512()}[view["hash"]]
    cert.public_key().verify(view["sig"], signed, padding.PKCS1v15(), algo)


# -- tests ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return pki.make_pki(tmp_path_factory.mktemp("pki"), key_size=1024)


def _records(lab):
    return [("SAST", lab.sast), ("SAST", lab.sast2), ("CCM", lab.ccm), ("TFTP", lab.tftp),
            ("CCM+TFTP", lab.ccm_tftp), ("CAPF", lab.capf)]


def _firmware_view(path) -> list[tuple[int, str, str]]:
    tl = fwctl.load_trust(str(path))
    return [(r.role, r.cn, r.serial.hex()) for r in tl.records]


@pytest.mark.parametrize("hash_name", ["sha1", "sha256", "sha512"])
def test_hand_built_file_accepted_by_the_firmware(lab, tmp_path, hash_name):
    body = b"".join(hand_record(role, i.cert) for role, i in _records(lab))
    data = hand_file(lab.sast.cert, lab.sast.key, body, "CTLFile.tlv", hash_name)
    path = tmp_path / "CTLFile.tlv"
    path.write_bytes(data)
    want = [(ROLE_CODE[role], i.cn, serial_of(i.cert).hex()) for role, i in _records(lab)]
    assert _firmware_view(path) == want                               # firmware on CPython
    rc, out = run_ctltool(["verify", str(path), "--sast", str(lab.sast.cert_path)])
    assert rc == 0 and out["valid"] and out["hash_code"] == HASH_CODE[hash_name]
    rc, out = run_ctltool(["dump", str(path)])                         # firmware on MicroPython
    assert [(r["role"], r["cn"], r["serial"]) for r in out["records"]] == want
    # and one flipped byte in the body is refused by both
    bad = bytearray(data)
    bad[len(data) - 300] ^= 0x10
    path.write_bytes(bytes(bad))
    with pytest.raises(fwctl.CtlError):
        fwctl.load_trust(str(path))
    assert run_ctltool(["verify", str(path)])[0] == 1


@pytest.mark.parametrize("hash_name,itl", [("sha1", False), ("sha512", False), ("sha256", True)])
def test_ctlbuild_matches_the_independent_writer_and_reader(lab, tmp_path, hash_name, itl):
    recs = _records(lab)
    built = ctlbuild.build_trust_list(
        lab.sast, [ctlbuild.Record(role, i.cert) for role, i in recs[1:]],
        hash_name=hash_name, itl=itl, timestamp=TS)
    name = "ITLFile.tlv" if itl else "CTLFile.tlv"
    body = b"".join(hand_record(role, i.cert) for role, i in recs)
    assert built == hand_file(lab.sast.cert, lab.sast.key, body, name, hash_name, itl=itl)
    view = hand_read(built)
    hand_verify(built, view)                                           # cryptography agrees
    assert view["filename"] == name and view["timestamp"] == TS
    path = tmp_path / name
    path.write_bytes(built)
    rc, out = run_ctltool(["dump", str(path)])
    assert rc == 0
    assert out["serial"] == view["serial"] and out["hash_code"] == view["hash"]
    assert out["filename"] == name and out["timestamp"] == TS
    assert out["kind"] == ("ITL" if itl else "CTL")
    assert [(r["role"], r["subject"], r["issuer"], r["serial"]) for r in out["records"]] == \
        [(r["role"], r["subject"], r["issuer"], r["serial"]) for r in view["records"]]
    cn = lambda der: x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(  # noqa
        NameOID.COMMON_NAME)[0].value
    assert _firmware_view(path) == [(r["role"], cn(r["cert"]), r["serial"]) for r in view["records"]]


def test_sgn_from_ctlbuild_reads_and_verifies_independently(lab, tmp_path):
    payload = b"<device><deviceSecurityMode>3</deviceSecurityMode></device>\n"
    built = ctlbuild.build_sgn(lab.tftp, payload, filename="SEP001122334455.cnf.xml",
                               hash_name="sha256", timestamp=TS)
    assert built == hand_file(lab.tftp.cert, lab.tftp.key, payload, "SEP001122334455.cnf.xml",
                              "sha256", version=(1, 0))
    hlen = struct.unpack(">H", built[8:10])[0]
    assert built[hlen:] == payload
    path = tmp_path / "SEP001122334455.cnf.xml.sgn"
    path.write_bytes(built)
    sg = fwctl.verify_sgn(str(path), [lab.tftp.cert_der])
    assert (sg.payload_off, sg.payload_len) == (hlen, len(payload))


@pytest.mark.parametrize("bits", [1024, 2048, 4096])
def test_firmware_pkcs1_and_sha512_agree_with_cryptography(bits):
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pub = key.public_key().public_numbers()
    msg = os.urandom(3000)
    for code, algo, hfn in ((1, hashes.SHA1(), hashlib.sha1), (2, hashes.SHA256(), hashlib.sha256),
                            (3, hashes.SHA512(), hashlib.sha512)):
        sig = key.sign(msg, padding.PKCS1v15(), algo)
        assert fwpkcs1.check(pub.n, pub.e, sig, code, hfn(msg).digest()) is None
        bad = bytearray(sig)
        bad[-1] ^= 1
        assert fwpkcs1.check(pub.n, pub.e, bytes(bad), code, hfn(msg).digest()) is not None
        assert fwpkcs1.check(pub.n, pub.e, sig, code, hfn(msg + b"x").digest()) is not None
        with pytest.raises(InvalidSignature):
            key.public_key().verify(bytes(bad), msg, padding.PKCS1v15(), algo)
    assert fwsha512.sha512(msg).digest() == hashlib.sha512(msg).digest()
