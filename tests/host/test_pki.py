"""The lab PKI (host_tools.pki) and `phonelab certs`."""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from host_tools import cli, pki


def test_make_pki_writes_every_identity(tmp_path):
    p = pki.make_pki(tmp_path, phone_macs=["00:11:22:aa:bb:cc"], key_size=1024)
    names = [i.name for i in p.identities()]
    assert names == ["sast", "sast2", "ccm", "tftp", "ccm_tftp", "srst", "capf", "SEP001122AABBCC"]
    for ident in p.identities():
        for suffix in (".pem", ".der", ".key.pem", ".key.der"):
            assert (tmp_path / f"{ident.name}{suffix}").is_file()
        assert ident.key_size == 1024 and not ident.expired
        assert ident.cert_der.startswith(b"\x30\x82")
    phone = p.phones["001122AABBCC"]
    assert phone.cn == "SEP001122AABBCC" and phone.role == "PHONE"
    assert phone.cert.issuer == p.capf.cert.subject
    # the phone certificate really is signed by the CAPF key
    p.capf.key.public_key().verify(phone.cert.signature, phone.cert.tbs_certificate_bytes,
                                   padding.PKCS1v15(), hashes.SHA256())
    assert p.sast.cert.issuer == p.sast.cert.subject
    assert p["ccm"].cn == "cucm1" and p["SEP001122AABBCC"] is phone
    index = json.loads((tmp_path / "pki.json").read_text())
    assert [r["name"] for r in index] == names


def test_cn_override_expired_and_reload(tmp_path):
    p = pki.make_pki(tmp_path, key_size=1024, cns={"srst": "srst.lab"}, expired=["sast2"],
                     ips={"srst": "192.0.2.1"})
    assert p.srst.cn == "srst.lab"
    assert p.sast2.expired and not p.sast.expired
    back = pki.load_identity(p.srst.cert_path, p.srst.key_path)
    assert back.cert_der == p.srst.cert_der and back.key_der == p.srst.key_der
    assert back.serial_bytes[0] != 0
    with pytest.raises(pki.PkiError):
        pki.make_pki(tmp_path / "x", key_size=1024, expired=["nobody"])
    with pytest.raises(pki.PkiError):
        pki.make_identity("x", "BOSS")


def test_cli_certs(tmp_path, capsys):
    rc = cli.main(["certs", "--out", str(tmp_path), "--phone", "001122334455",
                   "--key-size", "1024", "--cn", "ccm=cucm1.lab", "--json"])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"]: r["cn"] for r in rows}["ccm"] == "cucm1.lab"
    assert (tmp_path / "SEP001122334455.der").is_file()
    assert cli.main(["certs", "--out", str(tmp_path / "y"), "--phone", "zz"]) == 2
