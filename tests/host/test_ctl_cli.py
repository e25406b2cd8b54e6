"""`phonelab ctl build|sign|dump|verify` end to end; dump/verify run the firmware's phone.ctl
on the MicroPython unix port, including files bigger than the board's heap."""
from __future__ import annotations

import json
import os

import pytest

from host_tools import cli, ctlbuild, pki
from host_tools.commands.ctl import run_ctltool


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return pki.make_pki(tmp_path_factory.mktemp("pki"), phone_macs=["001122334455"],
                        key_size=1024)


def _build(lab, out, *extra):
    d = lab.out_dir
    return cli.main(["ctl", "build", "--sast", str(d / "sast.pem"),
                     "--record", f"SAST:{d / 'sast2.pem'}", "--record", f"ccm:{d / 'ccm.pem'}",
                     "--record", f"TFTP:{d / 'tftp.pem'}", "--record", f"ccm+tftp:{d / 'ccm_tftp.pem'}",
                     "--out", str(out), *extra])


@pytest.mark.parametrize("hash_name", ["sha1", "sha256", "sha512"])
def test_build_then_verify_and_dump(lab, tmp_path, capsys, hash_name):
    out = tmp_path / "CTLFile.tlv"
    assert _build(lab, out, "--hash", hash_name) == 0
    capsys.readouterr()
    assert cli.main(["ctl", "verify", str(out)]) == 0
    assert "valid CTL: signed by SAST-ADMIN-1" in capsys.readouterr().out
    assert cli.main(["ctl", "verify", str(out), "--sast", str(lab.sast.cert_path)]) == 0
    assert cli.main(["ctl", "verify", str(out), "--sast", str(lab.sast2.cert_path)]) == 1
    assert "invalid: signed by an unknown SAST" in capsys.readouterr().out
    assert cli.main(["ctl", "dump", str(out)]) == 0
    dump = json.loads(capsys.readouterr().out)
    assert dump["hash"] == hash_name and dump["kind"] == "CTL"
    assert [r["role_name"] for r in dump["records"]] == ["SAST", "SAST", "CCM", "TFTP", "CCM+TFTP"]
    assert dump["records"][2]["cn"] == "cucm1"
    assert dump["records"][0]["not_after"].endswith("Z")


def test_build_counts_the_signer_once(lab, tmp_path, capsys):
    """certutils' way: the signer given as a SAST record too is one record, not two."""
    d = lab.out_dir
    out = tmp_path / "CTLFile.tlv"
    for records, want in (([f"SAST:{d / 'sast.pem'}", f"CCM:{d / 'ccm.pem'}"], 2),
                          ([f"CCM:{d / 'ccm.pem'}"], 2),
                          ([f"SAST:{d / 'sast2.pem'}", f"CCM:{d / 'ccm.pem'}"], 3)):
        argv = ["ctl", "build", "--sast", str(d / "sast.pem"), "--out", str(out)]
        for r in records:
            argv += ["--record", r]
        assert cli.main(argv) == 0
        assert f"{want} records incl. signer" in capsys.readouterr().out
        assert cli.main(["ctl", "dump", str(out)]) == 0
        assert len(json.loads(capsys.readouterr().out)["records"]) == want


def test_itl_and_verify_json(lab, tmp_path, capsys):
    out = tmp_path / "ITLFile.tlv"
    assert _build(lab, out, "--itl", "--timestamp", "1767225600") == 0
    capsys.readouterr()
    assert cli.main(["ctl", "verify", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["valid"] and res["kind"] == "ITL" and res["tofu"] and res["records"] == 5
    assert res["timestamp"] == 1767225600 and res["signer_version"] == "1.1"


def test_tampered_and_truncated_refused_with_reason(lab, tmp_path, capsys):
    out = tmp_path / "CTLFile.tlv"
    _build(lab, out)
    data = out.read_bytes()
    for bad in (data[:-1], data[:200], data + b"\x00", data[:500] + bytes([data[500] ^ 1]) + data[501:]):
        out.write_bytes(bad)
        capsys.readouterr()
        assert cli.main(["ctl", "verify", str(out)]) == 1
        assert capsys.readouterr().out.startswith("invalid: ")
    assert cli.main(["ctl", "verify", str(tmp_path / "missing.tlv")]) == 2      # usage error


def test_sign_and_verify_sgn(lab, tmp_path, capsys):
    ctl_path = tmp_path / "CTLFile.tlv"
    _build(lab, ctl_path)
    cnf = tmp_path / "SEP001122334455.cnf.xml"
    cnf.write_bytes(b"<device><deviceSecurityMode>3</deviceSecurityMode></device>\n")
    assert cli.main(["ctl", "sign", str(cnf), "--tftp-cert", str(lab.tftp.cert_path),
                     "--hash", "sha256"]) == 0
    sgn = tmp_path / "SEP001122334455.cnf.xml.sgn"
    assert cli.main(["ctl", "verify", str(sgn), "--trust", str(ctl_path),
                     "--sast", str(lab.sast.cert_path), "--check-time"]) == 0
    assert cli.main(["ctl", "verify", str(sgn), "--cert", str(lab.tftp.cert_path)]) == 0
    capsys.readouterr()
    assert cli.main(["ctl", "verify", str(sgn), "--cert", str(lab.ccm.cert_path)]) == 1
    assert "unknown certificate" in capsys.readouterr().out
    # signed with the call manager's key: not a TFTP record of the CTL
    assert cli.main(["ctl", "sign", str(cnf), "--tftp-cert", str(lab.ccm.cert_path),
                     "--tftp-key", str(lab.ccm.key_path), "--out", str(tmp_path / "x.sgn")]) == 0
    assert cli.main(["ctl", "verify", str(tmp_path / "x.sgn"), "--trust", str(ctl_path)]) == 1
    assert cli.main(["ctl", "dump", str(sgn)]) == 0


def test_expired_signer_refused_with_check_time(tmp_path, capsys):
    old = pki.make_identity("old", "SAST", cn="SAST-OLD", key_size=1024, expired=True)
    old.write(tmp_path)
    ccm = pki.make_identity("ccm", "CCM", cn="cucm1", key_size=1024).write(tmp_path)
    out = tmp_path / "CTLFile.tlv"
    assert cli.main(["ctl", "build", "--sast", str(old.cert_path), "--record",
                     f"CCM:{ccm.cert_path}", "--out", str(out)]) == 0
    assert cli.main(["ctl", "verify", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["ctl", "verify", str(out), "--check-time"]) == 1
    assert "expired" in capsys.readouterr().out


def test_build_errors(lab, tmp_path, capsys):
    d = lab.out_dir
    assert cli.main(["ctl", "build", "--sast", str(d / "sast.pem"), "--record",
                     f"BOSS:{d / 'ccm.pem'}", "--out", str(tmp_path / "x.tlv")]) == 2
    assert "unknown role" in capsys.readouterr().err
    assert cli.main(["ctl", "build", "--sast", str(d / "sast.der"), "--sast-key",
                     str(tmp_path / "nokey.pem"), "--out", str(tmp_path / "x.tlv")]) == 2


def test_files_bigger_than_the_heap_verify_at_96k(tmp_path):
    """A 4096-bit SAST and 50 records (~130 KB), and a 300 KB signed file, verified by the
    firmware code on MicroPython with a 96K heap: nothing is read whole."""
    sast = pki.make_identity("sast", "SAST", cn="SAST-BIG", key_size=4096)
    ccm = pki.make_identity("ccm", "CCM", cn="cucm1", key_size=4096)
    tftp = pki.make_identity("tftp", "TFTP", cn="tftp1", key_size=1024)
    recs = [ctlbuild.Record("CCM", ccm.cert, ip=f"203.0.113.{i + 1}") for i in range(50)]
    recs.append(ctlbuild.Record("TFTP", tftp.cert))
    big = tmp_path / "CTLFile.tlv"
    big.write_bytes(ctlbuild.build_trust_list(sast, recs, hash_name="sha256"))
    assert big.stat().st_size > 120 * 1024          # the heap is 96K
    rc, out = run_ctltool(["verify", str(big)], heap="96K")
    assert rc == 0 and out["valid"] and out["records"] == 52 and out["modulus_index"] == 3, out
    data = bytearray(big.read_bytes())
    data[-100] ^= 1
    big.write_bytes(bytes(data))
    rc, out = run_ctltool(["verify", str(big)], heap="96K")
    assert rc == 1 and out["reason"] == "bad signature"

    sgn = tmp_path / "SEP001122334455.cnf.xml.sgn"
    sgn.write_bytes(ctlbuild.build_sgn(tftp, os.urandom(300 * 1024), filename="big.xml",
                                       hash_name="sha256"))
    rc, out = run_ctltool(["verify", str(sgn), "--cert", str(tftp.write(tmp_path).cert_path)],
                          heap="96K")
    assert rc == 0 and out["payload_length"] == 300 * 1024, out
