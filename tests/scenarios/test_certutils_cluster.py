"""`phonelab run --pki DIR --tftp-root DIR` on files the lab did not make: a PKI made with the
openssl command line the way certutils' mkcert makes one (certificate and key in one PEM
file, key first), with an older 1024-bit CAPF and the 1024-bit phone certificate it issued,
and a TFTP folder made the way certutils' tlvfile and sgnfile make theirs
(certutils_style.py), with a CUCM-style SEP<MAC>.cnf.xml naming the lab's addresses. The
phone's MAC comes from that file; the phone provisions from the folder, registers, stands
by and fails over to the SRST router. And `--pki` alone: the lab makes the TFTP files from
that PKI. Both runs together take about 12 s."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from certutils_style import issue, mkcert, sgnfile, tlvfile
from host_tools import cli
from host_tools.lab import netns
from host_tools.lab.topology import NETNS_ADDRESSES as ADDR

MAC = "00163E5A1B2C"
DEV = f"SEP{MAC}"

SCENARIO = """
name = "own-files"
description = "A certutils-made cluster: provisions, registers, stands by, fails over."
until = "registered:srst"
timeout = "60s"

[lab]
short_timers = true
mode = "netns"

[[timeline]]
after = "standby_up"
delay = "1s"
action = "wan_cut"
kind = "blackhole"

[expect]
registered_over_standby = true
events = ["ctl_accepted", "config_accepted", "registered:primary", "standby_up",
          "registered:srst"]
no_events = ["ctl_rejected", "config_rejected", "provision_failed"]
"""

# What a CUCM writes for an SCCP phone in a secure device pool, cut to what matters here
# (usecallmanager's SEPMAC.cnf.xml; the SRST router's certificate as a PEM block).
CONFIG = """<?xml version="1.0" encoding="UTF-8"?>
<device xsi:type="axl:XIPPhone" ctiid="94" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<fullConfig>true</fullConfig>
<deviceProtocol>SCCP</deviceProtocol>
<sshUserId></sshUserId>
<devicePool uuid="{{1b1b9eb6-7803-11d3-bdf0-00108302ead1}}">
<name>Branch-7</name>
<dateTimeSetting><name>CMLocal</name><dateTemplate>D/M/Y</dateTemplate></dateTimeSetting>
<callManagerGroup>
<name>Default</name>
<tftpDefault>true</tftpDefault>
<members>
<member priority="0">
<callManager>
<name>cucm-pub</name>
<description>{cm}</description>
<ports><ethernetPhonePort>2000</ethernetPhonePort><sipPort>5060</sipPort>\
<securedSipPort>5061</securedSipPort></ports>
<processNodeName>{cm}</processNodeName>
</callManager>
</member>
</members>
</callManagerGroup>
<srstInfo uuid="{{cd241e11-4a58-4d3d-9661-f06c912a18a3}}">
<name>branch-7-srst</name>
<srstOption>User Specific</srstOption>
<userModifiable>false</userModifiable>
<ipAddr1>{srst}</ipAddr1>
<port1>2000</port1>
<ipAddr2></ipAddr2>
<port2>2000</port2>
<ipAddr3></ipAddr3>
<port3>2000</port3>
<sipIpAddr1></sipIpAddr1>
<sipPort1>5060</sipPort1>
<isSecure>true</isSecure>
<certificate>{srst_cert}</certificate>
</srstInfo>
<connectionMonitorDuration>10</connectionMonitorDuration>
</devicePool>
<commonProfile><phonePassword></phonePassword><backgroundImageAccess>true</backgroundImageAccess></commonProfile>
<loadInformation>SCCP11.9-4-2SR3-1S</loadInformation>
<vendorConfig><disableSpeaker>false</disableSpeaker></vendorConfig>
<userLocale><name>English_United_States</name><langCode>en_US</langCode></userLocale>
<deviceSecurityMode>3</deviceSecurityMode>
<authenticationURL></authenticationURL>
<idleTimeout>0</idleTimeout>
</device>
"""


def _cert_block(pem: Path) -> str:
    text = pem.read_text()
    return text[text.index("-----BEGIN CERTIFICATE-----"):].strip()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(PKI folder, TFTP folder), as a certutils user makes them."""
    pki = tmp_path_factory.mktemp("pki")
    tftp = tmp_path_factory.mktemp("tftpboot")
    sast = mkcert(pki, "sast", "SAST-Token-1", "SAST")
    ccm = mkcert(pki, "ccm", "cucm-pub", "CCM")               # also the TFTP (config) signer
    capf = mkcert(pki, "capf", "CAPF-old", "CAPF", bits=1024)
    srst = mkcert(pki, "srst", "branch-7-srst", "SRST")
    issue(pki, DEV, DEV, capf, bits=1024)                     # the phone's LSC
    tlvfile(tftp / "CTLFile.tlv", [("SAST", sast), ("CCM", ccm), ("TFTP", ccm), ("CAPF", capf)])
    tlvfile(tftp / "ITLFile.tlv", [("SAST", sast), ("TFTP", ccm), ("CAPF", capf)])
    cfg = tftp / f"{DEV}.cnf.xml"
    cfg.write_text(CONFIG.format(cm=ADDR.hq_front, srst=ADDR.srst, srst_cert=_cert_block(srst)))
    sgnfile(cfg, ccm)
    (tftp / "XMLDefault.cnf.xml").write_text("<Default></Default>\n")
    return pki, tftp


@pytest.mark.slow
@pytest.mark.skipif(netns.unusable_reason() is not None,
                    reason="the served config names the namespace lab's fixed addresses")
def test_a_certutils_made_cluster_provisions_registers_and_fails_over(
        cluster: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pki, tftp = cluster
    toml = tmp_path / "own-files.toml"
    toml.write_text(SCENARIO)
    out = tmp_path / "report.json"
    rc = cli.main(["run", str(toml), "--pki", str(pki), "--tftp-root", str(tftp),
                   "--report", str(out), "-q"])
    text = capsys.readouterr()
    assert rc == 0, text.out + text.err
    # the 1024-bit keys are the only thing said; the served files fit the lab
    warnings = [ln for ln in text.err.splitlines() if ln.startswith("warning:")]
    assert warnings == ["warning: RSA keys under 2048 bits: capf (1024 bits), "
                        f"{DEV} (1024 bits); the simulators accept them (OpenSSL security "
                        "level 1)"], text.err
    rep = json.loads(out.read_text())
    evs = rep["events"]
    boot = next(e for e in evs if e["ev"] == "boot")
    assert boot["device"] == DEV                              # the MAC from the SEP file
    ctl = [e for e in evs if e["ev"] == "ctl_accepted"]
    assert [(e["kind"], e["records"]) for e in ctl] == [("CTL", 4), ("ITL", 3)]
    cfg = next(e for e in evs if e["ev"] == "config_accepted")
    assert (cfg["file"], cfg["signed"], cfg["security_mode"]) == (f"{DEV}.cnf.xml.sgn", True,
                                                                  3)
    # what the phone got is the folder's (the lab's own lists have 4 and 4 records here)
    got = {e["file"]: e["bytes"] for e in evs if e["ev"] == "tftp_done"}
    assert got == {n: (tftp / n).stat().st_size
                   for n in ("CTLFile.tlv", "ITLFile.tlv", f"{DEV}.cnf.xml.sgn")}


@pytest.mark.slow
def test_a_certutils_made_pki_alone_runs_the_lab(cluster: tuple[Path, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """`--pki` alone: the lab writes the trust lists and configs from the folder's
    certificates, and the phone's certificate is issued by the 1024-bit CAPF, as a CAPF
    issues an LSC (the folder has none for the default phone)."""
    pki = tmp_path / "pki"
    shutil.copytree(cluster[0], pki, ignore=shutil.ignore_patterns("SEP*"))
    toml = tmp_path / "own-pki.toml"
    toml.write_text(SCENARIO.replace('mode = "netns"', 'mode = "auto"'))
    out = tmp_path / "report.json"
    rc = cli.main(["run", str(toml), "--pki", str(pki), "--report", str(out), "-q"])
    text = capsys.readouterr()
    assert rc == 0, text.out + text.err
    assert "capf (1024 bits), SEP001122AABBCC (1024 bits)" in text.err
    evs = json.loads(out.read_text())["events"]
    assert next(e for e in evs if e["ev"] == "boot")["device"] == "SEP001122AABBCC"
    ctl = [e for e in evs if e["ev"] == "ctl_accepted"]
    assert [(e["kind"], e["records"]) for e in ctl] == [("CTL", 4), ("ITL", 4)]
