"""The lab's SIP phone configuration (issue 15): cnfxml's protocol="sip" form, as the lab
fills it from its Kamailio registrars and sip-lines.json, read back by the firmware's parser
under MicroPython (phone.config, the .mpy build). No lab is started: the registrars'
endpoints are set as Lab.start() would set them."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from host_tools import fwbuild, micropython
from host_tools.lab import cnfxml
from host_tools.lab.lab import Lab, LabError
from host_tools.lab.sipservers import SipServers

MACS = ["001122AABBCC", "001122AABBCD"]
SRST_DER = Path(__file__).parents[1] / "firmware" / "fixtures" / "data" / "trust" / "srst.der"


def _der() -> bytes:
    return SRST_DER.read_bytes()


def mp_parse(path: Path) -> dict:
    """phone.config.parse_file() of `path` on the MicroPython unix port: Config.to_dict()."""
    try:
        micropython.interpreter()
    except micropython.MicroPythonNotFound as e:
        pytest.skip(str(e))
    code = ("import sys\nfrom phone import config\n"
            "print(config.parse_file(sys.argv[1]).dumps())\n")
    script = path.with_name("parse.py")
    script.write_text(code)
    out = subprocess.run(micropython.command([str(script), str(path)], heap="96K"),
                         env=fwbuild.environ(fwbuild.compiled()), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def lab_configs(tmp_path: Path, sip_srst: tuple[str, int],
                sip_cm: tuple[str, int]) -> tuple[Lab, list[Path]]:
    """What Lab.write_configs() writes for protocol="sip" (before signing), with the
    registrars at these endpoints."""
    lab = Lab(tmp_path / "lab", macs=MACS, protocol="sip")
    assert lab.want_sip
    lab.sip = SipServers(lab.workdir, lab.macs)
    lab.endpoints = {"sip_srst": sip_srst, "sip_callmanager": sip_cm}
    srst = cnfxml.SrstRef("branch-1", "10.0.2.1", 2000, _der())
    cms = [cnfxml.CallManagerRef("CM_hq", "192.0.2.10", 2000)]
    srst, cms, kw = lab._sip_refs(srst, cms, lab.macs)
    lines = kw.pop("sip_lines")
    paths = [cnfxml.write_cnf_xml(tmp_path / "tftp", m, cms, srst, sip_lines=lines[m], **kw)
             for m in MACS]
    return lab, paths


@pytest.mark.parametrize("ports", [(5061, 5061), (40123, 40999)])
def test_lab_sip_config_read_back_by_the_firmware(tmp_path, ports):
    s_port, c_port = ports
    lab, paths = lab_configs(tmp_path, ("10.0.2.1", s_port), ("192.0.2.10", c_port))
    for mac, path in zip(MACS, paths):
        line = lab.sip.lines[mac]
        c = mp_parse(path)
        sip = c["sip"]
        assert sip["lines"] == [{"name": line.user, "authName": line.user,
                                 "authPassword": line.password, "displayName": line.user,
                                 "proxy": "USECALLMANAGER", "port": 5061}]
        assert (sip["transportLayerProtocol"], sip["timerRegisterExpires"]) == (3, 3600)
        assert [(m["host"], m["sip"]) for m in c["call_managers"]] == [
            ("192.0.2.10", [5060, c_port])]
        # the router's SIP port, to which the phone adds 1 for TLS: the registrar's port
        assert c["srst"]["sip"] == [["10.0.2.1", s_port - 1]]
        assert c["srst"]["cert_sha256"] and c["security_mode"] == 3
        assert "authPassword" in path.read_text()


def test_sccp_config_unchanged_by_the_sip_form(tmp_path):
    srst = cnfxml.SrstRef("branch-1", "10.0.2.1", 2000, _der())
    text = cnfxml.build_cnf_xml(MACS[0], [cnfxml.CallManagerRef("CM_hq", "192.0.2.10")], srst)
    assert "<deviceProtocol>SCCP</deviceProtocol>" in text
    assert "SCCP11.9-4-2SR3-1S" in text and "<sipIpAddr1 />" in text
    for absent in ("sipProfile", "securedSipPort", "transportLayerProtocol", "<sipPort>"):
        assert absent not in text
    path = tmp_path / "SEP.cnf.xml"
    path.write_text(text)
    assert "sip" not in mp_parse(path)


def test_bad_sip_requests_refused(tmp_path):
    cm = [cnfxml.CallManagerRef("CM_hq", "192.0.2.10")]
    with pytest.raises(ValueError, match="at least one line"):
        cnfxml.build_cnf_xml(MACS[0], cm, protocol="sip")
    with pytest.raises(ValueError, match="protocol is one of sccp, sip"):
        cnfxml.build_cnf_xml(MACS[0], cm, protocol="h323")
    with pytest.raises(LabError, match="protocol='h323'"):
        Lab(tmp_path / "lab", macs=MACS, protocol="h323")
    lab = Lab(tmp_path / "lab", macs=MACS, protocol="sip")
    with pytest.raises(LabError, match="SIP registrars"):
        lab._sip_refs(cnfxml.SrstRef("b", "10.0.2.1"), cm, MACS)
