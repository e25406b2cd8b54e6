"""A lab capture of a run, decrypted with the simulators' TLS key log, decodes in tshark as
valid SKINNY: Register with the phone's device name, KeepAlive/KeepAliveAck, no malformed
frames; DHCP and TFTP decode too."""
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
