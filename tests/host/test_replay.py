"""`phonelab replay`: capture reading (pcap, pcapng, VLAN, SLL, fragments, snap length),
DHCP and TFTP extraction (duplicates, missing blocks, errors, retransmitted requests, timing),
the replay plan (address mapping), and end to end in namespaces: a capture recorded by the
lab, replayed to a fresh virtual board, provisions it identically (same files, same hashes);
a field-like capture with private addresses and a cut-off config download reproduces the
failing boot."""
from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from host_tools import ROOT
from host_tools.cli import main as phonelab
from host_tools.lab import netns
from host_tools.replay import bootp, capture, plan as planlib
from host_tools.replay.pcap import PcapError, ReadStats, udp_datagrams
from pcap_builder import Capture, dhcp_boot, fragments, ip4, tftp_file

# captures are read through tshark (host_tools/replay/pcap.py)
pytestmark = pytest.mark.skipif(shutil.which("tshark") is None,
                                reason="tshark not installed (apt-get install tshark)")

MAC = "001122AABBCC"
PHONE, SERVER, TFTP = "10.20.30.57", "10.20.30.1", "172.16.5.10"
CTL = random.Random(1).randbytes(1500)
ITL = random.Random(2).randbytes(1024)        # a multiple of 512: ends with an empty block
CNF = random.Random(3).randbytes(2000)


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def field_boot(cap: Capture, cnf_drop: set[int] = frozenset()) -> None:
    """A phone's boot with private addresses: DHCP (150 and 66), then CTL (a duplicate
    block, a retransmitted RRQ), the per-device ITL missing, ITL, config (maybe cut)."""
    dhcp_boot(cap, MAC, PHONE, SERVER, [(1, ip4("255.255.255.0")), (3, ip4(SERVER)),
                                        (51, (7200).to_bytes(4, "big")), (28, ip4("10.20.30.255")),
                                        (150, ip4(TFTP)), (66, TFTP.encode())],
              siaddr=TFTP, extra_discovers=1)
    tftp_file(cap, PHONE, 40001, TFTP, 50001, "CTLFile.tlv", CTL, blksize=600, window=2,
              dup={2}, rrqs=2, first_answer=0.25)
    tftp_file(cap, PHONE, 40002, TFTP, 50002, f"ITLSEP{MAC}.tlv", None)
    tftp_file(cap, PHONE, 40003, TFTP, 50003, "ITLFile.tlv", ITL, options=False)
    tftp_file(cap, PHONE, 40004, TFTP, 50004, f"SEP{MAC}.cnf.xml.sgn", CNF, blksize=512,
              drop=cnf_drop)


# -- reading --------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["pcap", "pcap-be-nano", "pcapng", "vlan", "sll"])
def test_dhcp_and_tftp_from_every_format(tmp_path: Path, fmt: str) -> None:
    cap = Capture(linktype=113 if fmt == "sll" else 1, vlan=7 if fmt == "vlan" else None)
    field_boot(cap)
    path = tmp_path / "boot.pcap"
    if fmt == "pcapng":
        cap.write_pcapng(path)
    else:
        cap.write_pcap(path, big_endian=fmt == "pcap-be-nano", nano=fmt == "pcap-be-nano")
    a = capture.analyse(path)
    assert a.mac == MAC and a.phone_ip == PHONE
    ack = a.to_dict()["dhcp"]["ack"]
    assert ack["yiaddr"] == PHONE and ack["server_id"] == SERVER and ack["router"] == [SERVER]
    assert ack["option150"] == [TFTP] and ack["option66"] == TFTP and ack["lease_s"] == 7200
    assert ack["siaddr"] == TFTP and ack["subnet_mask"] == "255.255.255.0"
    assert {n: (f.size, f.sha256) for n, f in a.files.items()} == {
        "CTLFile.tlv": (1500, sha(CTL)), "ITLFile.tlv": (1024, sha(ITL)),
        f"SEP{MAC}.cnf.xml.sgn": (2000, sha(CNF))}
    t = a.timing()
    assert t["dhcp"]["unanswered_discovers"] == 1 and t["dhcp"]["offer_delay_ms"] == pytest.approx(2, abs=0.01)
    ctl = a.transfers[0]
    assert ctl.blksize == 600 and ctl.windowsize == 2 and ctl.duplicates == 1
    assert ctl.retransmitted_rrqs == 1 and ctl.first_answer_ms == pytest.approx(250, abs=0.01)
    assert [r["status"] for r in a.requests] == ["complete", "error 1", "complete", "complete"]


def test_missing_block_makes_an_incomplete_transfer_that_gives_no_file(tmp_path: Path) -> None:
    cap = Capture()
    field_boot(cap, cnf_drop={2})
    cap.write_pcap(tmp_path / "cut.pcap")
    a = capture.analyse(tmp_path / "cut.pcap")
    cnf = a.transfers[-1]
    assert not cnf.complete and cnf.missing_blocks == [2] and cnf.status == "incomplete"
    assert f"SEP{MAC}.cnf.xml.sgn" not in a.files and set(a.files) == {"CTLFile.tlv", "ITLFile.tlv"}
    assert a.incomplete == [cnf]
    p = planlib.build(a, "captured")
    assert p.tftp[0].partial == {f"SEP{MAC}.cnf.xml.sgn": (CNF[:512], 2000)}
    assert p.tftp[0].silent == set()
    assert any("incomplete in the capture" in n for n in p.notes)


def test_fragmented_datagram_is_reassembled_and_snaplen_cut_block_is_missing(tmp_path: Path) -> None:
    big = random.Random(4).randbytes(3000)
    cap = Capture()
    cap.udp(PHONE, 40010, TFTP, 69, b"\x00\x01big.bin\x00octet\x00blksize\x004000\x00", True)
    from pcap_builder import data, oack, ack
    cap.udp(TFTP, 50010, PHONE, 40010, oack(blksize=4000), False)
    cap.udp(PHONE, 40010, TFTP, 50010, ack(0), True)
    for frag in reversed(fragments(TFTP, 50010, PHONE, 40010, data(1, big), 1480)):
        cap.ip(frag, False)                 # out of order on purpose
    cap.udp(PHONE, 40010, TFTP, 50010, ack(1), True)
    # a second transfer whose only block the capture cut at 200 bytes
    cap.udp(PHONE, 40011, TFTP, 69, b"\x00\x01cut.bin\x00octet\x00", True)
    cap.udp(TFTP, 50011, PHONE, 40011, data(1, b"x" * 300), False, snap=200)
    cap.write_pcap(tmp_path / "frag.pcap")
    st = ReadStats()
    assert len(list(udp_datagrams(tmp_path / "frag.pcap", st))) == 7 and st.fragments == 3
    a = capture.analyse(tmp_path / "frag.pcap")
    assert a.files["big.bin"].content == big
    cut = a.transfers[1]
    assert not cut.complete and "cut.bin" not in a.files


def test_block_numbers_roll_over_and_conflicting_duplicates_are_counted(tmp_path: Path) -> None:
    from pcap_builder import data
    content = random.Random(5).randbytes(8 * 65540 + 3)
    cap = Capture()
    cap.udp(PHONE, 40020, TFTP, 69, b"\x00\x01huge\x00octet\x00blksize\x008\x00", True)
    from pcap_builder import oack
    cap.udp(TFTP, 50020, PHONE, 40020, oack(blksize=8), False)
    for b in range(1, 65542):
        chunk = content[(b - 1) * 8:b * 8]
        cap.udp(TFTP, 50020, PHONE, 40020, data(b, chunk), False, dt=0)
        if b == 3:
            cap.udp(TFTP, 50020, PHONE, 40020, data(3, b"XXXXXXXX"), False, dt=0)
    cap.write_pcap(tmp_path / "huge.pcap")
    x = capture.analyse(tmp_path / "huge.pcap").transfers[0]
    assert x.complete and x.content == content and x.conflicts == 1 and x.duplicates == 1


def test_not_a_capture_and_a_file_cut_short(tmp_path: Path) -> None:
    (tmp_path / "x.pcap").write_bytes(b"hello world, not a capture")
    with pytest.raises(PcapError):
        capture.analyse(tmp_path / "x.pcap")
    cap = Capture()
    field_boot(cap)
    cap.write_pcap(tmp_path / "ok.pcap")
    raw = (tmp_path / "ok.pcap").read_bytes()
    (tmp_path / "short.pcap").write_bytes(raw[:-100])
    a = capture.analyse(tmp_path / "short.pcap")
    assert a.stats.warnings and a.mac == MAC


# -- the plan -----------------------------------------------------------------------------------
def test_plan_maps_private_addresses_onto_documentation_ranges(tmp_path: Path) -> None:
    cap = Capture()
    field_boot(cap)
    cap.write_pcap(tmp_path / "f.pcap")
    p = planlib.build(capture.analyse(tmp_path / "f.pcap"), "captured")
    assert p.amap.table[PHONE] == "192.0.2.57" and p.amap.table[SERVER] == "192.0.2.1"
    assert p.amap.table[TFTP] == "203.0.113.10"
    ack = p.dhcp.ack
    assert ack.yiaddr == "192.0.2.57" and ack.siaddr == "203.0.113.10"
    assert ack.addresses(bootp.OPT_TFTP_LIST) == ["203.0.113.10"]
    assert ack.addresses(bootp.OPT_ROUTER) == ["192.0.2.1"]
    assert ack.addresses(bootp.OPT_BROADCAST) == ["192.0.2.255"]
    assert ack.text(bootp.OPT_TFTP_NAME) == "203.0.113.10"
    assert [c for c, _ in ack.options] == [c for c, _ in capture.analyse(tmp_path / "f.pcap").dhcp.ack.packet.options]
    assert p.lan_addresses == ["192.0.2.1"] and p.host_addresses == ["203.0.113.10"]
    assert p.expected_lease == {"ip": "192.0.2.57", "mask": "255.255.255.0", "router": "192.0.2.1",
                                "dns": [], "lease_s": 7200, "tftp_servers": ["203.0.113.10"]}
    assert p.dhcp.ignore_discovers == 1 and p.dhcp.offer_delay_s == pytest.approx(0.002)
    t = p.tftp[0]
    assert t.silent_s == {"CTLFile.tlv": pytest.approx(0.5)}      # between the two RRQs
    assert t.delays_s["CTLFile.tlv"] == pytest.approx(0.25)
    assert t.errors == {f"ITLSEP{MAC}.tlv": (1, "File not found")}
    assert any("10.20.30.57 -> 192.0.2.57" in n for n in p.notes)
    fast = planlib.build(capture.analyse(tmp_path / "f.pcap"), "fast")
    assert fast.dhcp.ignore_discovers == 0 and fast.tftp[0].delays_s == {} and fast.tftp[0].silent_s == {}


def test_inform_only_and_tftp_only_captures_get_a_made_up_boot(tmp_path: Path) -> None:
    from pcap_builder import dhcp
    cap = Capture()          # an ESP32 board: its own DHCP is not captured, then an INFORM
    cap.udp(PHONE, 68, "255.255.255.255", 67, dhcp(1, 8, 9, MAC, ciaddr=PHONE), True)
    cap.udp(SERVER, 67, PHONE, 68, dhcp(2, 5, 9, MAC, ciaddr=PHONE, options=[
        (54, ip4(SERVER)), (1, ip4("255.255.255.0")), (150, ip4(TFTP))]), False)
    tftp_file(cap, PHONE, 40001, TFTP, 50001, "CTLFile.tlv", CTL)
    cap.write_pcap(tmp_path / "inform.pcap")
    p = planlib.build(capture.analyse(tmp_path / "inform.pcap"), "captured")
    assert p.dhcp.source == "synthesized from the INFORM answer"
    assert p.dhcp.ack.yiaddr == "192.0.2.57" and p.dhcp.ack.u32(bootp.OPT_LEASE) == planlib.DEFAULT_LEASE_S
    assert p.dhcp.offer.msg_type == bootp.OFFER and p.dhcp.inform_ack.option(bootp.OPT_LEASE) is None
    assert p.expected_lease["tftp_servers"] == ["203.0.113.10"]

    cap = Capture()          # TFTP only (the capture started after DHCP)
    tftp_file(cap, PHONE, 40001, TFTP, 50001, "CTLFile.tlv", CTL)
    cap.write_pcap(tmp_path / "tftp.pcap")
    a = capture.analyse(tmp_path / "tftp.pcap")
    assert a.mac == MAC and a.phone_ip == PHONE
    p = planlib.build(a, "fast")
    assert p.dhcp.source.startswith("synthesized (no DHCP")
    assert p.expected_lease == {"ip": "192.0.2.57", "mask": "255.255.255.0", "router": "192.0.2.1",
                                "dns": [], "lease_s": planlib.DEFAULT_LEASE_S,
                                "tftp_servers": ["203.0.113.10"]}
    assert p.lan_addresses == ["192.0.2.1"] and p.host_addresses == ["203.0.113.10"]


def test_dhcp_responder_answers_like_the_capture(tmp_path: Path) -> None:
    """The responder's answers, without sockets: unanswered DISCOVERs, xid/flags/chaddr
    from the request, NAK for another address, INFORM answered by unicast."""
    from pcap_builder import dhcp
    from host_tools.replay.servers import DhcpResponder
    cap = Capture()
    field_boot(cap)
    cap.write_pcap(tmp_path / "f.pcap")
    p = planlib.build(capture.analyse(tmp_path / "f.pcap"), "captured")
    r = DhcpResponder(p.dhcp, "unused", "eth0")
    other = "02005E000042"
    assert r._answer(dhcp(1, 1, 77, other)) is None                  # the captured server
    delay, pkt, dest, entry = r._answer(dhcp(1, 1, 77, other))         # ignored one DISCOVER
    offer = bootp.parse(pkt)
    assert (offer.msg_type, offer.xid, offer.mac, offer.yiaddr) == (bootp.OFFER, 77, other, "192.0.2.57")
    assert dest == ("255.255.255.255", 68) and delay == pytest.approx(0.002)
    assert offer.options[1:] == p.dhcp.offer.options[1:]
    _, pkt, _, _ = r._answer(dhcp(1, 3, 78, other, options=[(50, ip4("192.0.2.99")), (54, ip4("192.0.2.1"))]))
    assert bootp.parse(pkt).msg_type == bootp.NAK
    assert r._answer(dhcp(1, 3, 78, other, options=[(50, ip4("192.0.2.57")), (54, ip4("192.0.2.9"))])) is None
    _, pkt, _, _ = r._answer(dhcp(1, 3, 79, other, options=[(50, ip4("192.0.2.57")), (54, ip4("192.0.2.1"))]))
    assert bootp.parse(pkt).msg_type == bootp.ACK and bootp.parse(pkt).u32(bootp.OPT_LEASE) == 7200
    _, pkt, dest, _ = r._answer(dhcp(1, 8, 80, other, ciaddr="192.0.2.57"))
    inf = bootp.parse(pkt)
    assert dest == ("192.0.2.57", 68) and inf.msg_type == bootp.ACK and inf.ciaddr == "192.0.2.57"
    assert inf.yiaddr == "0.0.0.0" and inf.option(bootp.OPT_LEASE) is None
    assert inf.addresses(bootp.OPT_TFTP_LIST) == ["203.0.113.10"]


def test_show_and_extract_need_no_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cap = Capture()
    field_boot(cap)
    cap.write_pcapng(tmp_path / "f.pcapng")
    assert phonelab(["replay", str(tmp_path / "f.pcapng"), "--show", "--extract", str(tmp_path / "x")]) == 0
    out = capsys.readouterr().out
    assert "CTLFile.tlv" in out and "203.0.113.10" in out and sha(CTL) in out
    assert (tmp_path / "x" / "CTLFile.tlv").read_bytes() == CTL
    assert phonelab(["replay", str(tmp_path / "nothing.pcap")]) == 2


# -- end to end ----------------------------------------------------------------------------------
def _need_netns() -> None:
    why = netns.unusable_reason()
    if why:
        pytest.skip(why)


@pytest.fixture(scope="module")
def lab_capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(pcap of a lab run of scenarios/registered-standby.toml, the lab's TFTP folder)."""
    _need_netns()
    from host_tools.scenario import runner, spec
    work = tmp_path_factory.mktemp("lab")
    sc = spec.load(ROOT / "scenarios" / "registered-standby.toml")
    # run on for 3 s instead of stopping at standby_up: the recorder (dumpcap) loses the
    # packets of its last fraction of a second when stopped at once
    sc.until, sc.duration = None, 3.0
    res = runner.run(sc, runner.RunOptions(workdir=work, pcap=work / "lab.pcap"))
    assert res.passed and res.mode == "netns", res.console[-20:]
    return work / "lab.pcap", work / "lab" / "tftp"


@pytest.mark.netns
@pytest.mark.slow
@pytest.mark.parametrize("how", [["--timing", "captured"], ["--timing", "fast", "--no-record"]],
                         ids=["captured-recorded", "fast-server-log"])
def test_lab_capture_replayed_provisions_a_fresh_board_identically(
        lab_capture: tuple[Path, Path], tmp_path: Path, how: list[str]) -> None:
    pcap, served = lab_capture
    report = tmp_path / "replay.json"
    rc = phonelab(["replay", str(pcap), "--report", str(report), "--short-timers", "-q", *how])
    rep = json.loads(report.read_text())
    assert rc == 0, rep["differences"]
    assert rep["matched"] and rep["verdict"] == "MATCHED" and rep["replay"]["ended"] == "provisioned"
    want = {f.name: sha(f.read_bytes()) for f in served.iterdir()
            if f.name in ("CTLFile.tlv", "ITLFile.tlv", f"SEP{MAC}.cnf.xml.sgn")}
    assert len(want) == 3
    assert {f["name"]: f["sha256"] for f in rep["captured"]["files"]} == want
    recorded = "--no-record" not in how
    assert rep["replay"]["source"] == ("replay capture" if recorded else "server log")
    assert {f["name"]: f["sha256"] for f in rep["replay"]["files"]} == want
    assert not rep["differences"], rep["differences"]
    assert rep["replay"]["dhcp_lease"]["tftp_servers"] == ["203.0.113.10"]
    evs = [e["ev"] for e in rep["events"]]
    assert "ctl_accepted" in evs and "config_accepted" in evs
    # an independent reader agrees on the files in the replay's own capture
    if recorded and shutil.which("tshark"):
        out = tmp_path / "objects"
        subprocess.run(["tshark", "-r", rep["files"]["replay_pcap"], "-Q", "--export-objects",
                        f"tftp,{out}"], check=True, capture_output=True, timeout=60)
        assert {f.name: sha(f.read_bytes()) for f in out.iterdir()} == want


@pytest.mark.netns
@pytest.mark.slow
def test_field_capture_with_a_cut_config_download_reproduces_the_failing_boot(
        lab_capture: tuple[Path, Path], tmp_path: Path) -> None:
    """Private addresses, an unanswered DISCOVER, a slow first answer, a missing ITLSEP and
    a config download that stops after its first block: the board gets the trust lists,
    its config request goes unanswered, and its provisioning fails like the phone's."""
    _, served = lab_capture
    files = {n: (served / n).read_bytes() for n in ("CTLFile.tlv", "ITLFile.tlv", f"SEP{MAC}.cnf.xml.sgn")}
    cap = Capture()
    dhcp_boot(cap, MAC, PHONE, SERVER, [(1, ip4("255.255.255.0")), (3, ip4(SERVER)),
                                        (51, (3600).to_bytes(4, "big")), (150, ip4(TFTP))],
              extra_discovers=1)
    tftp_file(cap, PHONE, 40001, TFTP, 50001, f"CTLSEP{MAC}.tlv", None)
    tftp_file(cap, PHONE, 40002, TFTP, 50002, "CTLFile.tlv", files["CTLFile.tlv"], blksize=1428,
              window=4, first_answer=0.05)
    tftp_file(cap, PHONE, 40003, TFTP, 50003, f"ITLSEP{MAC}.tlv", None)
    tftp_file(cap, PHONE, 40004, TFTP, 50004, "ITLFile.tlv", files["ITLFile.tlv"], blksize=1428, window=4)
    tftp_file(cap, PHONE, 40005, TFTP, 50005, f"SEP{MAC}.cnf.xml.sgn", files[f"SEP{MAC}.cnf.xml.sgn"],
              blksize=1428, window=4, drop={2, 3})
    cap.write_pcap(tmp_path / "field.pcap")
    report = tmp_path / "field.json"
    rc = phonelab(["replay", str(tmp_path / "field.pcap"), "--report", str(report),
                   "--short-timers", "--timeout", "40", "-q"])
    rep = json.loads(report.read_text())
    assert rc == 0, rep["differences"]
    assert {f["name"] for f in rep["replay"]["files"]} == {"CTLFile.tlv", "ITLFile.tlv"}
    lease = rep["replay"]["dhcp_lease"]
    assert lease["ip"] == "192.0.2.57" and lease["tftp_servers"] == ["203.0.113.10"]
    assert rep["plan"]["addresses_moved"] == {PHONE: "192.0.2.57", SERVER: "192.0.2.1",
                                              TFTP: "203.0.113.10"}
    # the captured phone got no configuration either: reproduced, never MATCHED
    assert rep["verdict"] == "REPRODUCED" and not rep["matched"]
    assert [d for d in rep["differences"] if d["verdict"]] == []
    assert rep["replay"]["ended"] in ("provision_retry", "provision_failed")
    assert rep["replay"]["reason"].startswith("no configuration")
    # the config download stops where the capture's did: one block, then nothing
    assert rep["replay"]["requests"] == [{"file": r["file"], "status": r["status"]}
                                         for r in rep["captured"]["requests"]]
    cnf = [x for x in json.loads(json.dumps(rep["replay"]["tftp_log"]))
           if x["file"] == f"SEP{MAC}.cnf.xml.sgn"]
    assert cnf and cnf[0].get("cut_off") is True
    dl = rep["replay"]["dhcp_log"]
    assert [d["reply"] for d in dl[:2]] == ["none (unanswered in the capture)", "OFFER"]


# -- replay of a lab recording -------------------------------------------------------------------
def test_recording_comparison_names_what_was_not_reproduced() -> None:
    from host_tools.replay.recording import compare
    ev = [{"host_ms": 10, "ev": "state", "state": "PRIMARY"}, {"host_ms": 20, "ev": "registered"}]
    rec = {"scenario": "x", "passed": False, "actions": [{"host_ms": 100, "action": "kill"}],
           "events": ev, "expectations": [{"name": "final_state", "passed": False}]}
    same = compare(rec, {**rec, "actions": [{"host_ms": 130, "action": "kill"}]})
    assert same["reproduced"] and same["max_action_skew_ms"] == 30 and same["differences"] == []
    other = {**rec, "passed": True, "expectations": [{"name": "final_state", "passed": True}],
             "events": [{"host_ms": 10, "ev": "state", "state": "FALLBACK"}]}
    c = compare(rec, other)
    assert not c["reproduced"]
    assert [d["kind"] for d in c["differences"]] == ["expectation", "states", "events"]


SCENARIO = '''name = "replay-srst-killed"
description = "The SRST router is killed after the standby link is up (a recording to replay)."
duration = "4s"
timeout = "40s"

[lab]
short_timers = true

[[timeline]]
after = "standby_up"
delay = "500ms"
action = "kill"
server = "srst"

[expect]
final_state = "PRIMARY"
no_events = ["standby_failed"]
'''


@pytest.mark.netns
@pytest.mark.slow
def test_a_failed_lab_run_replayed_from_its_report_fails_the_same_way(tmp_path: Path) -> None:
    _need_netns()
    from host_tools.scenario import report, runner, spec
    path = tmp_path / "replay-srst-killed.toml"
    path.write_text(SCENARIO)
    res = runner.run(spec.load(path), runner.RunOptions(workdir=tmp_path / "rec"))
    report.write(res, tmp_path / "rec.json")
    assert not res.passed, report.summary(res)      # standby_failed happens: a failed run
    out = tmp_path / "again.json"
    rc = phonelab(["replay", str(tmp_path / "rec.json"), "--scenario", str(path),
                   "--report", str(out), "-q"])
    cmp = json.loads(out.read_text())
    assert rc == 0, cmp["differences"]
    assert cmp["reproduced"] and cmp["recorded_passed"] is False and cmp["replay_passed"] is False
    assert cmp["max_action_skew_ms"] < 500
    assert [a["action"] for a in cmp["replay"]["actions"]] == ["kill"]

