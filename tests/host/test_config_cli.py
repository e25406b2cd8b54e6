"""`phonelab config show`: the firmware's phone.config on MicroPython, as JSON."""
from __future__ import annotations

import base64
import hashlib
import json
import zlib
from pathlib import Path

from host_tools import ROOT, cli
from host_tools.lab.cnfxml import CallManagerRef, SrstRef, build_cnf_xml

FX = ROOT / "tests" / "firmware" / "fixtures"
SEP = FX / "SEP001122334455.cnf.xml"


def sep_cert() -> bytes:
    text = SEP.read_text()
    b64 = text[text.index("<certificate>") + 13:text.index("</certificate>")]
    return base64.b64decode("".join(b64.split()))


def show(capsys, path: Path) -> tuple[int, dict | None, str]:
    rc = cli.main(["config", "show", str(path)])
    out, err = capsys.readouterr()
    return rc, (json.loads(out) if rc == 0 else None), err


def test_show_sep_file(capsys):
    rc, d, err = show(capsys, SEP)
    assert rc == 0, err
    assert list(d)[:5] == ["root", "security_mode", "connection_monitor_duration",
                           "call_managers", "srst"]
    assert (d["root"], d["security_mode"], d["connection_monitor_duration"]) == ("device", 3, 60)
    assert [(m["priority"], m["name"], m["host"], m["port"]) for m in d["call_managers"]] == [
        (0, "CM_cucm1", "203.0.113.10", 2000), (1, "CM_cucm2", "203.0.113.11", 2000)]
    s = d["srst"]
    assert (s["name"], s["option"], s["secure"], s["servers"]) == (
        "branch-7", "Enable", True, [["192.0.2.1", 2000]])
    der = base64.b64decode(s["cert"])
    assert hashlib.sha256(der).hexdigest() == s["cert_sha256"]
    assert der == sep_cert()        # as CPython reads the base64 text of the file
    assert d["wants_srst_standby"] is True
    assert d["source"] == [SEP.stat().st_size, zlib.crc32(SEP.read_bytes())]


def test_show_large_and_default(capsys):
    rc, d, err = show(capsys, FX / "SEP00112233AABB-large.cnf.xml")
    assert rc == 0, err
    assert [m["priority"] for m in d["call_managers"]] == [0, 1, 2]
    assert d["srst"]["servers"] == [["192.0.2.1", 2000], ["192.0.2.2", 2001]]
    rc, d, err = show(capsys, FX / "XMLDefault.cnf.xml")
    assert rc == 0, err
    assert d["root"] == "Default" and d["srst"] is None and d["connection_monitor_duration"] == 120


def test_reads_what_the_lab_call_manager_writes(capsys, tmp_path):
    der = sep_cert()
    xml = build_cnf_xml("00:11:22:33:44:66",
                        [CallManagerRef("cucm1", "203.0.113.10"),
                         CallManagerRef("cucm2", "203.0.113.11", 2001)],
                        SrstRef("branch", "192.0.2.1", certificate=der),
                        security_mode=2, connection_monitor=30)
    p = tmp_path / "SEP001122334466.cnf.xml"
    p.write_text(xml)
    rc, d, err = show(capsys, p)
    assert rc == 0, err
    assert [(m["name"], m["host"], m["port"]) for m in d["call_managers"]] == [
        ("cucm1", "203.0.113.10", 2000), ("cucm2", "203.0.113.11", 2001)]
    assert base64.b64decode(d["srst"]["cert"]) == der
    assert (d["security_mode"], d["connection_monitor_duration"]) == (2, 30)
    assert d["wants_srst_standby"] is True


def test_signed_file_is_read_past_its_header(capsys, tmp_path):
    header = b"\x01\x00\x02\x01\x00" + b"\x02\x00\x02\x00\x10" + b"\x0d" * 6
    p = tmp_path / "SEP001122334455.cnf.xml.sgn"
    p.write_bytes(header + SEP.read_bytes())
    rc, d, err = show(capsys, p)
    assert rc == 0, err
    assert d["security_mode"] == 3


def test_bad_files_exit_1_with_the_reason(capsys, tmp_path):
    text = SEP.read_text()
    good_hash = text[text.index("<certHash>") + 10:text.index("</certHash>")]
    cases = {
        "unbalanced": ("<device><a></b></device>", "</b> does not close <a>"),
        "truncated": (text[: len(text) // 2], "truncated"),
        "hash": (text.replace(good_hash, base64.b64encode(b"\0" * 32).decode()), "certHash"),
        "empty": ("", "empty"),
    }
    for name, (body, reason) in cases.items():
        p = tmp_path / f"{name}.cnf.xml"
        p.write_text(body)
        rc, d, err = show(capsys, p)
        assert rc == 1, name
        assert err.startswith("error: ") and reason in err, (name, err)
    rc, d, err = show(capsys, tmp_path / "missing.cnf.xml")
    assert rc == 2 and "no such file" in err      # usage error


def test_files_that_are_not_a_configuration_say_what_they_are(capsys, tmp_path):
    """A ring list, an MPP-style <Default> with no call manager, an ITL, a signed firmware
    load: exit 1, one line saying what the file is and why it is not a configuration."""
    from host_tools import ctlbuild, pki
    ring = tmp_path / "Ringlist.xml"
    ring.write_text('<?xml version="1.0"?>\n<!-- rings -->\n<CiscoIPPhoneRingList>\n'
                    '<Ring><DisplayName>Chirp1</DisplayName><FileName>Chirp1.raw</FileName></Ring>\n'
                    '</CiscoIPPhoneRingList>\n')
    mpp = tmp_path / "XMLDefault.cnf.xml"
    mpp.write_text("<Default><loadInformation>sip88xx.14-1-1</loadInformation>"
                   "<authenticationURL></authenticationURL></Default>\n")
    itl = tmp_path / "ITLFile.tlv"
    itl.write_bytes((FX / "data" / "ctl_sha256.tlv").read_bytes())
    signer = pki.make_identity("TFTP1", "TFTP", cn="TFTP1")
    load = tmp_path / "cmterm-88xx.sip.14-1-1.sgn"
    load.write_bytes(ctlbuild.build_sgn(signer, bytes(range(256)) * 8,
                                        filename="cmterm-88xx.sip.14-1-1.loads"))
    cases = {ring: "a ring list (the phone's ring tones, RingList.xml): its root element is "
                   "<CiscoIPPhoneRingList>, a configuration's root element is <device>",
             mpp: "a <Default> with no call manager",
             itl: "a CTL/ITL trust list",
             load: "a signed file ('cmterm-88xx.sip.14-1-1.loads' in its header) whose content "
                   "is not XML"}
    for path, what in cases.items():
        rc, _, err = show(capsys, path)
        assert rc == 1 and err.count("\n") == 1, (path, err)
        assert err.startswith(f"error: {path} is not a phone configuration") and what in err, err
        assert "tag longer" not in err
