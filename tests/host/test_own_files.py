"""Your own PKI and TFTP files (`--pki DIR`, `--tftp-root DIR`): certutils-style certificate
files read (host_tools.pkifolder), the SRST credentials service on them, keys under 2048 bits,
and what a served folder means for the lab (host_tools.lab.served, Lab(tftp_files=...)). The
whole run on a certutils-made cluster: tests/scenarios/test_certutils_cluster.py."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from host_tools import ctlbuild, pkifolder
from host_tools import pki as labpki
from host_tools.commands.lab import _rebuild_argv, register
from host_tools.lab import credentials
from host_tools.lab.lab import DEFAULT_MAC, Lab, LabError
from host_tools.lab.served import TftpFiles

MAC = "00163E5A1B2C"


def certutils_file(folder: Path, stem: str, ident: labpki.Identity, key_first: bool = True,
                   traditional: bool = False) -> Path:
    """What certutils' mkcert writes: the key, then the certificate, in one PEM file."""
    fmt = (serialization.PrivateFormat.TraditionalOpenSSL if traditional
           else serialization.PrivateFormat.PKCS8)
    key = ident.key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
    path = folder / f"{stem}.pem"
    path.write_bytes(key + ident.cert_pem if key_first else ident.cert_pem + key)
    return path


@pytest.fixture(scope="module")
def idents() -> dict[str, labpki.Identity]:
    mk = labpki.make_identity
    capf = mk("capf", "CAPF", cn="CAPF-old", key_size=1024)
    return {"sast": mk("sast", "SAST", cn="SAST-1"), "ccm": mk("ccm", "CCM", cn="cucm-pub"),
            "capf": capf, "srst": mk("srst", "SRST", cn="branch-srst"),
            "phone": mk(f"SEP{MAC}", "PHONE", cn=f"SEP{MAC}", issuer=capf, key_size=1024)}


@pytest.fixture
def folder(tmp_path: Path, idents: dict[str, labpki.Identity]) -> Path:
    d = tmp_path / "pki"
    d.mkdir()
    certutils_file(d, "sast", idents["sast"])
    certutils_file(d, "CallManager", idents["ccm"], traditional=True)      # CUCM's name
    certutils_file(d, "capf", idents["capf"], key_first=False)
    return d


def test_the_credentials_service_reads_a_certutils_file(tmp_path, idents):
    """It crashed on them: the key comes first in the file."""
    path = certutils_file(tmp_path, "srst", idents["srst"])
    assert credentials._der(path) == idents["srst"].cert_der
    (tmp_path / "key.pem").write_bytes(path.read_bytes().split(b"-----BEGIN CERTIFICATE")[0])
    with pytest.raises(credentials.CredentialsError, match="no certificate"):
        credentials._der(tmp_path / "key.pem")


def test_a_certutils_folder_is_a_lab_pki(folder, tmp_path, idents):
    p, notes = pkifolder.load(folder, [MAC], tmp_path / "made", ips={"srst": "192.0.2.1"})
    assert p.sast.cert_der == idents["sast"].cert_der and p.sast.key is not None
    assert p.ccm.cert_der == idents["ccm"].cert_der and p.ccm.key_path == folder / "CallManager.pem"
    assert p.tftp is p.ccm and p.sast2 is None                  # one certificate for both
    assert p.capf.key_size == 1024
    # made in the run's folder, never in the user's: the SRST router's, and the phone's LSC
    assert p.srst.cert.issuer == p.srst_ca.cert.subject
    assert p.srst.cert_path.parent == tmp_path / "made"
    phone = p.phones[MAC]
    assert phone.cert.issuer == p.capf.cert.subject and phone.key_size == 1024
    assert phone.cert_path.parent == tmp_path / "made"
    assert sorted(f.name for f in folder.iterdir()) == ["CallManager.pem", "capf.pem", "sast.pem"]
    assert len(notes) == 3
    assert pkifolder.key_sizes(p, [MAC]) == ([], ["capf (1024 bits)", f"SEP{MAC} (1024 bits)"])


def test_files_with_keys_beside_them_and_the_phone_s_own(folder, tmp_path, idents):
    srst = idents["srst"]
    (folder / "sast.der").write_bytes(idents["sast"].cert_der)     # the .pem is read first
    (folder / "srst.crt").write_bytes(srst.cert_pem)
    (folder / "srst.key").write_bytes(srst.key_pem)
    certutils_file(folder, f"sep{MAC.lower()}", idents["phone"])
    assert pkifolder.macs_in(folder) == [MAC]
    p, notes = pkifolder.load(folder, [MAC], tmp_path / "made")
    assert p.srst.cert_der == srst.cert_der and p.srst.key_path == folder / "srst.key"
    assert p.sast.key is not None and p.sast.cert_path == folder / "sast.pem"
    assert p.phones[MAC].cert_der == idents["phone"].cert_der
    assert notes == ["no tftp.pem: the call manager's certificate signs the configs"]


@pytest.mark.parametrize("what,match", [
    ("no-capf", r"no capf\.pem \(files are named after their role"),
    ("no-ccm-key", r"call manager's certificate \(cucm-pub\) has no private key"),
    ("phone-no-key", r"SEP00163E5A1B2C's certificate has no private key"),
    ("not-a-cert", r"sast\.pem: not a certificate"),
])
def test_a_folder_that_cannot_serve_is_refused_in_one_line(folder, tmp_path, idents, what, match):
    if what == "no-capf":
        (folder / "capf.pem").unlink()
    elif what == "no-ccm-key":
        (folder / "CallManager.pem").write_bytes(idents["ccm"].cert_pem)
    elif what == "phone-no-key":
        (folder / f"SEP{MAC}.pem").write_bytes(idents["phone"].cert_pem)
    else:
        (folder / "sast.pem").write_text("hello\n")
    with pytest.raises(labpki.PkiError, match=match):
        pkifolder.load(folder, [MAC], tmp_path / "made")


def test_keys_under_1024_bits_are_refused(tmp_path):
    p = labpki.make_pki(tmp_path, phone_macs=[MAC], key_size=1024)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:512", "-nodes", "-subj", "/CN=old",
                    "-keyout", str(tmp_path / "k.pem"), "-out", str(tmp_path / "c.pem")],
                   check=True, capture_output=True)
    p.capf = pkifolder.read_identity(tmp_path / "c.pem", "capf", "CAPF")
    refused, weak = pkifolder.key_sizes(p, [MAC])
    assert refused == ["capf (512 bits)"] and len(weak) == 6
    with pytest.raises(LabError, match=r"RSA keys under 1024 bits: capf \(512 bits\)"):
        Lab(tmp_path / "lab", mode="loopback", macs=[MAC], pki=p).start()


def test_a_served_folder_names_the_phones_and_replaces_the_lab_s_files(folder, tmp_path, idents):
    served = tmp_path / "tftpboot"
    served.mkdir()
    other = labpki.make_identity("sast", "SAST", cn="Other-SAST", key_size=1024)
    (served / "CTLFile.tlv").write_bytes(ctlbuild.build_trust_list(
        other, [ctlbuild.Record("CCM", other.cert)]))
    (served / f"SEP{MAC}.cnf.xml").write_text(
        "<device><devicePool><callManagerGroup><members><member priority='0'><callManager>"
        "<name>cucm</name><ports><ethernetPhonePort>2000</ethernetPhonePort></ports>"
        "<processNodeName>10.1.1.1</processNodeName></callManager></member></members>"
        "</callManagerGroup></devicePool><deviceSecurityMode>3</deviceSecurityMode></device>")
    (served / "sub").mkdir()
    (served / "sub" / "ring.raw").write_bytes(b"\0" * 10)
    files = TftpFiles(served)
    assert files.macs() == [MAC] and files.has_trust() and files.has_config(MAC)
    with Lab(tmp_path / "lab", mode="loopback", pki=folder, tftp_files=served) as lab:
        assert lab.macs == [MAC]                                    # from the SEP file
        root = lab.tftp_root
        assert (root / "CTLFile.tlv").read_bytes() == (served / "CTLFile.tlv").read_bytes()
        assert not (root / "ITLFile.tlv").exists()                  # no trust list of the lab's
        assert not (root / f"SEP{MAC}.cnf.xml.sgn").exists()        # no config of the lab's
        assert (root / "sub" / "ring.raw").is_file()
        w = lab.warnings
        assert w[0].startswith("RSA keys under 2048 bits: capf (1024 bits)")
        assert "CTLFile.tlv does not list the call manager's certificate as CCM" in w[1]
        assert w[2].startswith(f"SEP{MAC}.cnf.xml names call manager(s) 10.1.1.1:2000, the lab's")
        assert w[3].startswith(f"SEP{MAC}.cnf.xml: no SRST certificate in it")
        assert w[4].startswith(f"SEP{MAC}.cnf.xml names SRST router(s) none")
        assert len(w) == 5
    # the user's folder is untouched (the lab's faults change its copies)
    assert sorted(str(f.relative_to(served)) for f in served.rglob("*")) == [
        "CTLFile.tlv", f"SEP{MAC}.cnf.xml", "sub", "sub/ring.raw"]


def test_without_files_the_lab_makes_its_own_and_given_macs_win(folder, tmp_path):
    served = tmp_path / "tftpboot"
    served.mkdir()
    (served / "SEP0011223344FF.cnf.xml").write_text("<device/>")
    with Lab(tmp_path / "lab", mode="loopback", macs=[MAC], pki=folder,
             tftp_files=served) as lab:
        assert lab.macs == [MAC]
        names = sorted(f.name for f in lab.tftp_root.iterdir())
        assert names == ["CTLFile.tlv", "ITLFile.tlv", "SEP0011223344FF.cnf.xml",
                         f"SEP{MAC}.cnf.xml", f"SEP{MAC}.cnf.xml.sgn", "XMLDefault.cnf.xml"]
        assert ("SEP0011223344FF.cnf.xml is served but no phone of this lab has that MAC"
                in lab.warnings)
    assert Lab(tmp_path / "lab2", mode="loopback").macs == [DEFAULT_MAC]


def test_a_sast_without_its_key_needs_the_cluster_s_trust_list(folder, tmp_path, idents):
    (folder / "sast.pem").write_bytes(idents["sast"].cert_pem)      # a hardware token's
    with pytest.raises(LabError, match=r"SAST certificate \(SAST-1\) has no private key"):
        Lab(tmp_path / "lab", mode="loopback", macs=[MAC], pki=folder).start()


def test_lab_up_passes_the_folders_to_its_background_self(tmp_path):
    import argparse
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["lab", "up", "--pki", str(tmp_path), "--tftp-root", str(tmp_path),
                              "--detach"])
    argv = _rebuild_argv(args)
    assert argv[argv.index("--pki") + 1] == str(tmp_path.resolve())
    assert argv[argv.index("--tftp-root") + 1] == str(tmp_path.resolve())
