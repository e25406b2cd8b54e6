"""`phonelab replay` verdicts an engineer can trust (issue 18): a board that did not provision
is never MATCHED, requests nobody answered are differences, files the agent never asks for
are information; the phone picked with --mac or from its file names on link types without
MAC addresses; FCS bits in the link type; data then ERROR served as captured; DNS seen in
the capture; the n-th captured transfer of a file beside the board's n-th."""
from __future__ import annotations

import hashlib
import random
import shutil
import struct
import time
from pathlib import Path

import pytest

from host_tools.cli import main as phonelab
from host_tools.events import Event
from host_tools.replay import bootp, capture, compare, plan as planlib
from host_tools.replay.session import ReplayRun
from host_tools.scenario.metrics import Stamped
from pcap_builder import Capture, Rec, data, dhcp_boot, error, ip4, rrq, tftp_file

# captures are read through tshark (host_tools/replay/pcap.py)
pytestmark = pytest.mark.skipif(shutil.which("tshark") is None,
                                reason="tshark not installed (apt-get install tshark)")

MAC = "001122AABBCC"
DEV = f"SEP{MAC}"
PHONE, SERVER, TFTP, DNS = "10.20.30.57", "10.20.30.1", "172.16.5.10", "10.20.30.2"
CTL = random.Random(1).randbytes(1500)
ITL = random.Random(2).randbytes(700)
CNF = random.Random(3).randbytes(2000)
RING = b"<CiscoIPPhoneRingList></CiscoIPPhoneRingList>"
OPTS = [(1, ip4("255.255.255.0")), (3, ip4(SERVER)), (51, (7200).to_bytes(4, "big")),
        (150, ip4(TFTP))]


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def cucm_boot(cap: Capture, dhcp: bool = True) -> None:
    """A real phone's boot: its trust lists, its signed config and a ring list."""
    if dhcp:
        dhcp_boot(cap, MAC, PHONE, SERVER, OPTS)
    tftp_file(cap, PHONE, 40001, TFTP, 50001, "CTLFile.tlv", CTL)
    tftp_file(cap, PHONE, 40002, TFTP, 50002, f"ITL{DEV}.tlv", None)
    tftp_file(cap, PHONE, 40003, TFTP, 50003, "ITLFile.tlv", ITL)
    tftp_file(cap, PHONE, 40004, TFTP, 50004, f"{DEV}.cnf.xml.sgn", CNF)
    tftp_file(cap, PHONE, 40005, TFTP, 50005, "Ringlist.xml", RING)


def ev(name: str, **fields: object) -> Stamped:
    return Stamped(0.0, Event(0, name, dict(fields)))


def fake_run(plan: planlib.Plan, ended: str, events: list[Stamped],
             log: list[dict] = ()) -> ReplayRun:  # type: ignore[assignment]
    run = ReplayRun(plan, events=events, ended=ended)
    run.tftp_log = list(log)
    return run


def served(name: str) -> dict:
    return {"file": name, "result": "ok", "time": 1}


def test_a_dhcp_only_capture_whose_board_gets_nothing_differs_naming_the_unanswered(
        tmp_path: Path) -> None:
    cap = Capture()
    dhcp_boot(cap, MAC, PHONE, SERVER, OPTS[:3] + [(150, ip4(TFTP) + ip4("172.16.5.11"))])
    cap.write_pcap(tmp_path / "dhcp.pcap")
    a = capture.analyse(tmp_path / "dhcp.pcap")
    p = planlib.build(a, "fast")
    assert p.tftp == []
    evs = [ev("dhcp_lease", ip="192.0.2.57")]
    for f in (f"CTL{DEV}.tlv", "CTLFile.tlv", f"ITL{DEV}.tlv", "ITLFile.tlv"):
        for s in ("203.0.113.10", "203.0.113.11"):
            evs.append(ev("tftp_error", server=s, file=f, code=None, msg="timeout", bytes=0))
    evs.append(ev("provision_failed", reason="no configuration: TFTP unreachable and none stored"))
    rep = compare.report(a, p, fake_run(p, "provision_failed", evs))
    assert rep["verdict"] == "DIFFERS" and not rep["matched"] and not rep["reproduced"]
    kinds = [(d["kind"], d["what"]) for d in rep["differences"] if d["verdict"]]
    assert ("unanswered", f"CTL{DEV}.tlv from 203.0.113.10") in kinds
    assert ("unanswered", "ITLFile.tlv from 203.0.113.11") in kinds
    assert ("board_end", "the board did not provision") in kinds
    text = compare.summary(rep)
    assert "DIFFERS" in text and "unanswered ITLFile.tlv from 203.0.113.11" in text
    # an OACK and then silence is an answer: not "unanswered"
    oack = [ev("tftp_start", server="203.0.113.10", file="CTLFile.tlv"),
            ev("tftp_oack", server="203.0.113.10", blksize=1428),
            ev("tftp_error", server="203.0.113.10", file="CTLFile.tlv", code=None, bytes=0)]
    assert compare.unanswered(fake_run(p, "provision_failed", oack)) == []
    assert "board ended with: provision_failed (no configuration: TFTP unreachable" in text


def test_a_real_phones_extras_are_information_and_the_verdict_is_matched(tmp_path: Path) -> None:
    cap = Capture()
    cucm_boot(cap)
    cap.write_pcap(tmp_path / "cucm.pcap")
    a = capture.analyse(tmp_path / "cucm.pcap")
    p = planlib.build(a, "fast")
    log = [served("CTLFile.tlv"), served("ITLFile.tlv"), served(f"{DEV}.cnf.xml.sgn")]
    evs = [ev("tftp_error", server="203.0.113.10", file=f"CTL{DEV}.tlv", code=1,
              msg="File not found", bytes=0), ev("provisioned")]
    rep = compare.report(a, p, fake_run(p, "provisioned", evs, log))
    assert rep["verdict"] == "MATCHED" and rep["matched"], rep["differences"]
    info = [d for d in rep["differences"] if d["kind"] == "file_not_fetched"]
    assert [(d["what"], d["verdict"]) for d in info] == [("Ringlist.xml", False)]
    text = compare.summary(rep)
    assert ": MATCHED" in text and "never asks for (information): Ringlist.xml" in text
    assert "info Ringlist.xml" in text
    # the board not fetching its configuration is a verdict difference, and not MATCHED
    rep = compare.report(a, p, fake_run(p, "provision_failed", evs[:1], log[:2]))
    assert rep["verdict"] == "DIFFERS"
    assert ("file_not_fetched", f"{DEV}.cnf.xml.sgn", True) in [
        (d["kind"], d["what"], d["verdict"]) for d in rep["differences"]]


def test_a_failed_capture_reproduced_is_not_matched(tmp_path: Path) -> None:
    cap = Capture()
    dhcp_boot(cap, MAC, PHONE, SERVER, OPTS)
    tftp_file(cap, PHONE, 40001, TFTP, 50001, "CTLFile.tlv", CTL)
    tftp_file(cap, PHONE, 40004, TFTP, 50004, f"{DEV}.cnf.xml.sgn", CNF, drop={2})
    cap.write_pcap(tmp_path / "cut.pcap")
    a = capture.analyse(tmp_path / "cut.pcap")
    p = planlib.build(a, "fast")
    assert compare.captured_failed(a)
    log = [served("CTLFile.tlv"), {"file": f"{DEV}.cnf.xml.sgn", "result": "timeout", "bytes": 512,
                                   "time": 2}]
    evs = [ev("provision_failed", reason="no configuration: config not on TFTP (timeout) and none stored")]
    rep = compare.report(a, p, fake_run(p, "provision_failed", evs, log))
    assert rep["verdict"] == "REPRODUCED" and not rep["matched"] and rep["reproduced"]


def test_mac_selects_a_phone_without_dhcp_and_link_types_without_macs(tmp_path: Path) -> None:
    cap = Capture()
    cucm_boot(cap, dhcp=False)
    cap.write_pcap(tmp_path / "tftp.pcap")
    for mac in (None, MAC, "00:11:22:aa:bb:cc"):
        a = capture.analyse(tmp_path / "tftp.pcap", mac=mac)
        assert (a.mac, a.phone_ip, len(a.files)) == (MAC, PHONE, 4)
    with pytest.raises(capture.CaptureError, match="no TFTP read request from 0200"):
        capture.analyse(tmp_path / "tftp.pcap", mac="020000000001")
    # raw IP (101) and BSD loopback (0, AF_INET in the capturing host's order): no MACs,
    # the phone named by its per-device files
    for link in (101, 0):
        raw = Capture(linktype=link)
        raw.records = []
        for r in cap.records:
            ipp = r.frame[14:]
            raw.frame(ipp if link == 101 else struct.pack("<I", 2) + ipp)
        raw.write_pcap(tmp_path / f"l{link}.pcap")
        a = capture.analyse(tmp_path / f"l{link}.pcap")
        assert (a.mac, a.phone_ip, len(a.files)) == (MAC, PHONE, 4)
        assert capture.analyse(tmp_path / f"l{link}.pcap", mac=MAC).phone_ip == PHONE
        assert planlib.build(a, "fast").mac == MAC
    # no per-device name either: say what to do
    anon = Capture(linktype=101)
    tmp = Capture()
    tftp_file(tmp, PHONE, 40001, TFTP, 50001, "CTLFile.tlv", CTL)
    for r in tmp.records:
        anon.frame(r.frame[14:])
    anon.write_pcap(tmp_path / "anon.pcap")
    with pytest.raises(capture.CaptureError, match="carries no MAC address.*give --mac"):
        capture.analyse(tmp_path / "anon.pcap")
    assert capture.analyse(tmp_path / "anon.pcap", mac=MAC).phone_ip == PHONE


def test_a_link_type_with_fcs_bits_is_read(tmp_path: Path) -> None:
    cap = Capture()
    cucm_boot(cap)
    cap.write_pcap(tmp_path / "fcs.pcap")
    raw = bytearray((tmp_path / "fcs.pcap").read_bytes())
    raw[20:24] = struct.pack("<I", 0x04000001)       # 67108865: the P bit over Ethernet
    (tmp_path / "fcs.pcap").write_bytes(bytes(raw))
    a = capture.analyse(tmp_path / "fcs.pcap")
    assert a.mac == MAC and len(a.files) == 4


def test_data_then_error_is_served_as_captured(tmp_path: Path) -> None:
    cap = Capture()
    dhcp_boot(cap, MAC, PHONE, SERVER, OPTS)
    name = f"{DEV}.cnf.xml.sgn"
    cap.udp(PHONE, 40001, TFTP, 69, rrq(name), True)
    cap.udp(TFTP, 50001, PHONE, 40001, data(1, CNF[:512]), False)
    cap.udp(PHONE, 40001, TFTP, 50001, struct.pack("!HH", 4, 1), True)
    cap.udp(TFTP, 50001, PHONE, 40001, error(3, "Disk full or allocation exceeded"), False)
    cap.write_pcap(tmp_path / "err.pcap")
    a = capture.analyse(tmp_path / "err.pcap")
    p = planlib.build(a, "fast")
    t = p.tftp[0]
    assert t.errors == {} and t.partial[name][0] == CNF[:512]
    assert t.partial_errors == {name: (3, "Disk full or allocation exceeded")}
    note = next(n for n in p.notes if name in n)
    assert "then the server answers ERROR 3 'Disk full" in note and "falls silent" not in note
    # the server: block 1, then the ERROR in place of block 2
    import socket
    from host_tools.replay.servers import ReplayTftp
    srv = ReplayTftp(t, tmp_path / "root", netns=None, port=0)  # type: ignore[arg-type]
    srv.host = "127.0.0.1"
    with srv:
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(3)
        c.sendto(rrq(name), ("127.0.0.1", srv.port))
        d1, addr = c.recvfrom(600)
        assert d1[:4] == struct.pack("!HH", 3, 1) and d1[4:] == CNF[:512]
        c.sendto(struct.pack("!HH", 4, 1), addr)
        e, _ = c.recvfrom(600)
        assert e[:4] == struct.pack("!HH", 5, 3) and b"Disk full" in e
        c.close()
        log = srv.wait_log(1)
    assert log[0]["result"] == "captured_error 3" and log[0]["cut_off"] is True
    assert compare._status(log[0]) == "error 3"


def test_dns_seen_in_the_capture_reaches_the_made_up_lease_and_hosts(tmp_path: Path) -> None:
    cap = Capture()
    q = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x02cm\x03lab\x00" + struct.pack("!HH", 1, 1)
    cap.udp(PHONE, 33000, DNS, 53, q, True)
    ans = (struct.pack("!HHHHHH", 7, 0x8180, 1, 1, 0, 0) + b"\x02cm\x03lab\x00" + struct.pack("!HH", 1, 1)
           + b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + ip4("172.16.5.20"))
    cap.udp(DNS, 53, PHONE, 33000, ans, False)
    cucm_boot(cap, dhcp=False)
    cap.write_pcap(tmp_path / "dns.pcap")
    a = capture.analyse(tmp_path / "dns.pcap")
    assert a.dns_servers == [DNS] and a.dns_names == {"cm.lab": "172.16.5.20"}
    p = planlib.build(a, "fast")
    dns = p.dhcp.ack.addresses(bootp.OPT_DNS)
    assert dns == [p.amap.map(DNS)] and p.expected_lease["dns"] == dns
    assert p.hosts["cm.lab"] == p.amap.map("172.16.5.20")


def test_two_captured_transfers_of_a_file_pair_with_the_boards_one(tmp_path: Path) -> None:
    cap = Capture()
    cucm_boot(cap)
    tftp_file(cap, PHONE, 40009, TFTP, 50009, "CTLFile.tlv", CTL)
    cap.write_pcap(tmp_path / "twice.pcap")
    a = capture.analyse(tmp_path / "twice.pcap")
    p = planlib.build(a, "fast")
    run = fake_run(p, "provisioned", [ev("tftp_done", file="CTLFile.tlv", ms=42)])
    files = [f for f in compare.timing(a, run)["files"] if f["file"] == "CTLFile.tlv"]
    assert [f["replay_ms"] for f in files] == [42, None]


def test_replay_show_of_a_raw_ip_capture_exits_0(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    cap = Capture()
    cucm_boot(cap, dhcp=False)
    raw = Capture(linktype=101)
    for r in cap.records:
        raw.frame(r.frame[14:])
    raw.write_pcap(tmp_path / "raw.pcap")
    assert phonelab(["replay", str(tmp_path / "raw.pcap"), "--show", "--mac", MAC]) == 0
    assert f"phone {MAC}" in capsys.readouterr().out


# -- captures made with real clients and servers (data/captures/README.md) ---------------------
CAPS = Path(__file__).parent / "data" / "captures"


def _relink(src: Path, dst: Path, link: int) -> None:
    """The capture (classic pcap, Ethernet, as tcpdump writes it) with its Ethernet headers
    replaced: raw IP (101) or BSD loopback (0)."""
    raw = src.read_bytes()
    assert struct.unpack("<I", raw[:4])[0] == 0xA1B2C3D4 and struct.unpack("<I", raw[20:24])[0] == 1
    out = Capture(linktype=link)
    i = 24
    while i < len(raw):
        sec, usec, incl, _orig = struct.unpack("<IIII", raw[i:i + 16])
        ipp = raw[i + 16 + 14:i + 16 + incl]
        frame = ipp if link == 101 else struct.pack("<I", 2) + ipp
        out.records.append(Rec(sec + usec / 1e6, frame, len(frame)))
        i += 16 + incl
    out.write_pcap(dst)


def test_real_client_captures_are_read_as_wireshark_reads_them(tmp_path: Path) -> None:
    a = capture.analyse(CAPS / "cucm-like-boot.pcap")
    assert a.mac == MAC and a.phone_ip == "192.0.2.50" and a.dns_servers == []
    assert [r["status"] for r in a.requests] == ["complete", "error 1", "complete", "complete",
                                                 "complete"]
    assert sorted(a.files) == sorted(["CTLFile.tlv", "ITLFile.tlv", f"{DEV}.cnf.xml.sgn",
                                      "Ringlist.xml"])
    import shutil
    import subprocess
    if shutil.which("tshark"):
        out = tmp_path / "objects"
        subprocess.run(["tshark", "-r", str(CAPS / "cucm-like-boot.pcap"), "-Q", "--export-objects",
                        f"tftp,{out}"], check=True, capture_output=True, timeout=60)
        assert {f.name: sha(f.read_bytes()) for f in out.iterdir()} == {
            n: f.sha256 for n, f in a.files.items()}
    for link in (101, 0):           # the same traffic on link types that carry no MAC
        _relink(CAPS / "cucm-like-boot.pcap", tmp_path / f"l{link}.pcap", link)
        b = capture.analyse(tmp_path / f"l{link}.pcap")
        assert (b.mac, b.phone_ip) == (MAC, "192.0.2.50")
        assert {n: f.sha256 for n, f in b.files.items()} == {n: f.sha256 for n, f in a.files.items()}
    d = capture.analyse(CAPS / "tftp-dns-no-dhcp.pcap")
    assert (d.mac, d.phone_ip, d.dns_servers) == (MAC, "192.0.2.57", ["192.0.2.1"])
    assert d.dns_names == {"cucm1.example.test": "192.0.2.20"}
    p = planlib.build(d, "fast")
    assert p.expected_lease["dns"] == ["192.0.2.1"] and p.hosts == {"cucm1.example.test": "192.0.2.20"}
    o = capture.analyse(CAPS / "dhcp-only.pcap")
    assert o.transfers == [] and o.to_dict()["dhcp"]["ack"]["option150"] == ["198.51.100.7", "198.51.100.8"]
    # tcpdump's TFTP capture (public): no DHCP, the phone chosen with --mac or by default
    for mac in (None, "00:0c:29:f3:8f:18"):
        f = capture.analyse(CAPS / "tftp-tcpdump.pcap", mac=mac)
        assert (f.mac, f.phone_ip, [r["status"] for r in f.requests]) == (
            "000C29F38F18", "192.168.1.2", ["complete"])
        assert f.files["file1"].size == 1129 and f.transfers[0].blksize == 512
    if shutil.which("tshark"):
        out = tmp_path / "tcpdump-objects"
        subprocess.run(["tshark", "-r", str(CAPS / "tftp-tcpdump.pcap"), "-Q", "--export-objects",
                        f"tftp,{out}"], check=True, capture_output=True, timeout=60)
        assert (out / "file1").read_bytes() == f.files["file1"].content
    t = capture.analyse(CAPS / "dhcp-rfc5859.pcap")       # tcpdump's (public)
    assert (t.mac, t.phone_ip, t.transfers) == ("000C291F7406", "192.168.1.4", [])
    assert t.to_dict()["dhcp"]["ack"]["option150"] == ["192.168.1.10", "192.168.1.11"]


def _netns() -> None:
    from host_tools.lab import netns
    why = netns.unusable_reason()
    if why:
        pytest.skip(why)


@pytest.mark.netns
@pytest.mark.slow
def test_a_real_clients_boot_with_a_ring_list_is_matched_with_the_extra_as_information(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _netns()
    import json
    report = tmp_path / "cucm.json"
    rc = phonelab(["replay", str(CAPS / "cucm-like-boot.pcap"), "--report", str(report),
                   "--short-timers", "--timing", "fast", "--timeout", "60", "-q"])
    rep = json.loads(report.read_text())
    out = capsys.readouterr().out
    assert rc == 0 and rep["verdict"] == "MATCHED", out
    assert [(d["kind"], d["what"]) for d in rep["differences"] if d["kind"].startswith("file")] == [
        ("file_not_fetched", "Ringlist.xml")]
    assert "never asks for (information): Ringlist.xml" in out


@pytest.mark.netns
@pytest.mark.slow
@pytest.mark.parametrize("name,mac,server", [
    ("dhcp-only.pcap", MAC, "198.51.100.7"),            # udhcpc and dnsmasq, made here
    ("dhcp-rfc5859.pcap", "000C291F7406", "192.0.2.10"),  # tcpdump's test data (public)
])
def test_a_real_dhcp_only_capture_differs_and_names_the_unanswered_requests(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, mac: str,
        server: str) -> None:
    _netns()
    import json
    report = tmp_path / "dhcp.json"
    rc = phonelab(["replay", str(CAPS / name), "--report", str(report),
                   "--no-record", "--short-timers", "--timing", "fast", "--timeout", "60", "-q"])
    rep = json.loads(report.read_text())
    out = capsys.readouterr().out
    assert rc == 1 and rep["verdict"] == "DIFFERS", out
    unanswered = [d["what"] for d in rep["differences"] if d["kind"] == "unanswered" and d["verdict"]]
    assert f"CTLSEP{mac}.tlv from {server}" in unanswered, rep["differences"]
    assert f"unanswered CTLSEP{mac}.tlv from {server}" in out
    assert "board ended with: provision_failed (no configuration: TFTP unreachable" in out


def test_a_slow_file_not_found_is_answered_after_the_captured_silence_not_a_count(
        tmp_path: Path) -> None:
    """A server that ignored the phone's first 7 read requests (one a second) before saying
    "File not found": the replay is silent for as long, not for 7 requests, so a board that
    retransmits less often still gets "File not found" (and not "TFTP unreachable")."""
    import socket
    from host_tools.replay.servers import ReplayTftp
    cap = Capture()
    dhcp_boot(cap, MAC, PHONE, SERVER, OPTS)
    tftp_file(cap, PHONE, 40001, TFTP, 50001, "CTLFile.tlv", None, rrqs=8, options=False)
    cap.write_pcap(tmp_path / "slow.pcap")
    a = capture.analyse(tmp_path / "slow.pcap")
    assert a.transfers[0].retransmitted_rrqs == 7
    t = planlib.build(a, "captured").tftp[0]
    assert t.errors == {"CTLFile.tlv": (1, "File not found")}
    assert t.silent_s == {"CTLFile.tlv": pytest.approx(6.5)}
    t.silent_s["CTLFile.tlv"] = 0.65                      # the same, ten times faster
    srv = ReplayTftp(t, tmp_path / "root", netns=None, port=0)  # type: ignore[arg-type]
    srv.host = "127.0.0.1"
    tries: list[tuple[float, bytes | None]] = []        # (sent after the first, answer)
    with srv:
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(0.3)                                 # a try every 0.3 s
        t0 = time.monotonic()
        while len(tries) < 10:
            sent = time.monotonic() - t0
            c.sendto(rrq("CTLFile.tlv"), ("127.0.0.1", srv.port))
            try:
                tries.append((sent, c.recvfrom(600)[0]))
                break
            except socket.timeout:
                tries.append((sent, None))
        c.close()
    *silent, (sent, answer) = tries
    assert answer is not None and answer[:4] == struct.pack("!HH", 5, 1), tries
    assert len(silent) >= 2 and sent >= 0.65 - 0.02 and all(s < 0.65 + 0.02 for s, _ in silent), tries
    assert {u["why"] for u in srv.unanswered} == {"unanswered for the first 0.650 s in the capture"}
