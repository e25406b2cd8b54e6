"""A lab capture of a run, decrypted with the simulators' TLS key log, decodes in tshark as
valid SKINNY: Register with the phone's device name, KeepAlive/KeepAliveAck, no malformed
frames; DHCP and TFTP decode too. A SIP phone's run (issue 15) decodes as SIP over TLS on
5061 with the key log (the phone's side of it, written by the agent's TLS stack: Kamailio
writes none), no malformed frames."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from host_tools import ROOT
from host_tools.lab.lab import DEFAULT_MAC
from host_tools.scenario import runner, spec

TSHARK = shutil.which("tshark")


def _tshark(pcap: Path, keylog: Path, *args: str) -> str:
    out = subprocess.run([TSHARK, "-r", str(pcap), "-o", f"tls.keylog_file:{keylog}",
                          "-d", "tcp.port==2443,tls", *args],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.slow
@pytest.mark.skipif(TSHARK is None, reason="tshark not installed (make setup installs it as root)")
def test_capture_decodes_as_skinny(tmp_path: Path) -> None:
    sc = spec.load(ROOT / "scenarios" / "wan-blackhole.toml")
    pcap, keylog = tmp_path / "run.pcap", tmp_path / "keys.log"
    res = runner.run(sc, runner.RunOptions(workdir=tmp_path / "w", pcap=pcap, keylog=keylog))
    assert res.passed, res.expectations
    assert pcap.exists() and keylog.exists()

    rows = _tshark(pcap, keylog, "-Y", "skinny", "-T", "fields", "-e", "skinny.messageId",
                   "-e", "skinny.DeviceName").splitlines()
    ids = [r.split("\t") for r in rows]
    names = {int(i[0].split(",")[0], 0) for i in ids if i[0]}
    assert 0x0001 in names, "no Register decoded"            # Register
    assert 0x0000 in names and 0x0100 in names                # KeepAlive, KeepAliveAck
    assert 0x0081 in names                                    # RegisterAck
    devices = {i[1] for i in ids if len(i) > 1 and i[1]}
    assert devices == {f"SEP{DEFAULT_MAC}"}

    malformed = _tshark(pcap, keylog, "-Y", "_ws.malformed || _ws.expert.severity >= error")
    assert malformed.strip() == "", malformed[:2000]
    other = _tshark(pcap, keylog, "-Y", "dhcp || tftp", "-T", "fields", "-e", "frame.protocols")
    protos = other.splitlines()
    assert any("tftp" in p for p in protos)
    if res.mode == "netns":
        assert any("dhcp" in p for p in protos)


@pytest.mark.slow
@pytest.mark.skipif(TSHARK is None, reason="tshark not installed (make setup installs it as root)")
def test_sip_capture_decodes_as_sip_over_tls(tmp_path: Path) -> None:
    from host_tools.lab.kamailio import available
    why = available()
    if why:
        pytest.skip(f"the SIP scenario needs the lab's Kamailio: {why}")
    sc = spec.load(ROOT / "scenarios" / "sip-wan-blackhole.toml")
    pcap, keylog = tmp_path / "run.pcap", tmp_path / "keys.log"
    res = runner.run(sc, runner.RunOptions(workdir=tmp_path / "w", pcap=pcap, keylog=keylog))
    assert res.passed, res.expectations
    assert pcap.exists() and keylog.exists()

    # every TLS stream is on 5061 (the call manager's and the router's SIP TLS port)
    ports = _tshark(pcap, keylog, "-Y", "tls.handshake.type == 1", "-T", "fields",
                    "-e", "tcp.dstport").split()
    assert ports and set(ports) == {"5061"}, ports
    rows = _tshark(pcap, keylog, "-Y", "sip && tls", "-T", "fields", "-E", "separator=|",
                   "-e", "sip.Method", "-e", "sip.Status-Code", "-e", "sip.CSeq.method",
                   "-e", "tcp.port").splitlines()
    msgs = [r.split("|") for r in rows]
    assert any(m[0] == "REGISTER" for m in msgs), rows[:20]
    codes = {m[1] for m in msgs if m[1]}
    assert {"401", "200"} <= codes, codes          # the digest challenge, then accepted
    assert all(m[2] == "REGISTER" for m in msgs), rows[:20]
    assert all("5061" in m[3].split(",") for m in msgs), rows[:20]
    # both registrars answered: HQ's, then the branch's over the standby session
    peers = _tshark(pcap, keylog, "-Y", "sip.Status-Code == 200", "-T", "fields",
                    "-e", "ip.src").split()
    assert len(set(peers)) == 2, peers
    malformed = _tshark(pcap, keylog, "-Y", "_ws.malformed || _ws.expert.severity >= error")
    assert malformed.strip() == "", malformed[:2000]
