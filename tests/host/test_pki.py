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
    assert names == ["sast", "sast2", "ccm", "tftp", "ccm_tftp", "srst", "capf", "SEP001122AABBCC",
                     "srst_ca", "ccm_ca"]
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


def _signed_by(cert, issuer) -> bool:
    try:
        issuer.key.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                                       padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return False
    return cert.issuer == issuer.cert.subject


def _is_ca(ident) -> bool:
    from cryptography import x509
    return ident.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_router_certificate_is_issued_by_the_router_ca(tmp_path):
    """As on real gear: an IOS CA server on the router issues the router certificate; the
    router presents it with that CA; the call manager's is self-signed (CUCM default)."""
    p = pki.make_pki(tmp_path, key_size=1024)
    assert _signed_by(p.srst.cert, p.srst_ca) and not _is_ca(p.srst) and _is_ca(p.srst_ca)
    assert p.srst.chain_path == tmp_path / "srst.chain.pem"
    assert p.srst.server_cert.read_bytes() == p.srst.cert_pem + p.srst_ca.cert_pem
    assert p.ccm.cert.issuer == p.ccm.cert.subject and p.ccm.server_cert == p.ccm.cert_path
    assert _signed_by(p.ccm.cert, p.ccm)
    # read back (the bench's lasting PKI, the fleet's cache): chain and CAs come back
    back = pki.load_pki(tmp_path)
    assert back.srst.server_cert == p.srst.chain_path and back.srst.chain_pem == p.srst_ca.cert_pem
    assert back.srst_ca.cert_der == p.srst_ca.cert_der


def test_ca_signed_call_manager(tmp_path):
    p = pki.make_pki(tmp_path, key_size=1024, ca_signed=["ccm"])
    assert _signed_by(p.ccm.cert, p.ccm_ca) and not _is_ca(p.ccm)
    assert p.ccm.server_cert.read_bytes() == p.ccm.cert_pem + p.ccm_ca.cert_pem
    assert p.tftp.cert.issuer == p.tftp.cert.subject
    with pytest.raises(pki.PkiError, match="ca_signed"):
        pki.make_pki(tmp_path / "x", key_size=1024, ca_signed=["srst_ca"])


def test_a_pki_made_before_the_cas_still_loads(tmp_path):
    pki.make_pki(tmp_path, key_size=1024)
    index = json.loads((tmp_path / "pki.json").read_text())
    (tmp_path / "pki.json").write_text(json.dumps([r for r in index if r["role"] != "CA"]))
    back = pki.load_pki(tmp_path)
    assert back.srst_ca is None and back.ccm_ca is None
    assert [i.name for i in back.identities()][-1] == "capf"


def test_cli_certs_ca_signed(tmp_path, capsys):
    assert cli.main(["certs", "--out", str(tmp_path), "--key-size", "1024", "--ca-signed", "ccm",
                     "--cn", "srst_ca=branch-ca", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["ccm"]["issuer"] == rows["ccm_ca"]["subject"]
    assert rows["srst"]["issuer"] == rows["srst_ca"]["subject"] and rows["srst_ca"]["cn"] == "branch-ca"
    assert rows["srst"]["chain"].endswith("srst.chain.pem")
    assert cli.main(["certs", "--out", str(tmp_path / "y"), "--ca-signed", "srst"]) == 2
