"""The lab TFTP server (host_tools.lab.tftp_server) and the firmware's TFTP client
(phone.tftp on the MicroPython unix port): an independent client (tftpy) against the lab
server on loopback, then the firmware client against dnsmasq's TFTP server and the lab
server with faults, across a namespace pair."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from host_tools.lab import dnsmasq as dm
from host_tools.lab.tftp_server import Faults, TftpServer
from net_lab_support import (ALT_IP, DOWN_IP, SRV_IP, content, firmware, pair, run_client)

MAC = "02005E100001"
PHONE_IP = "192.0.2.10"


@pytest.fixture(scope="module")
def fw(tmp_path_factory):
    return firmware(tmp_path_factory)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    (r / "big.bin").write_bytes(content(65536, 1))
    (r / "cfg.bin").write_bytes(content(20000, 2))
    (r / "exact.bin").write_bytes(content(4096, 4))
    (r / f"SEP{MAC}.cnf.xml").write_text("<device>generic</device>")
    (r / MAC).mkdir()
    (r / MAC / f"SEP{MAC}.cnf.xml").write_text("<device>per-mac</device>")
    return r


def fetch_args(out: Path, files: list[str], servers: list[str], **tftp) -> dict:
    tftp.setdefault("timeout_ms", 200)
    tftp.setdefault("retries", 4)
    return {"op": "tftp", "servers": servers, "files": files, "out_dir": str(out), "tftp": tftp}


def out_dir(tmp_path: Path) -> Path:
    o = tmp_path / "out"
    o.mkdir(exist_ok=True)
    return o


# -- loopback: no root needed ------------------------------------------------------------------
def test_lab_server_against_an_independent_client(root, tmp_path):
    tftpy = pytest.importorskip("tftpy")
    logging.getLogger("tftpy").setLevel(logging.CRITICAL)
    log = tmp_path / "access.jsonl"
    with TftpServer(root, log_path=log) as srv:
        for opts in ({}, {"blksize": 1400, "tsize": 0}):
            dest = tmp_path / "got.bin"
            tftpy.TftpClient("127.0.0.1", srv.port, options=opts).download("big.bin", str(dest))
            assert dest.read_bytes() == (root / "big.bin").read_bytes()
        tftpy.TftpClient("127.0.0.1", srv.port).download(f"SEP{MAC}.cnf.xml", str(dest))
        assert dest.read_text() == "<device>per-mac</device>"
        with pytest.raises(Exception, match="not found"):
            tftpy.TftpClient("127.0.0.1", srv.port).download("nothing.here", str(dest))
        srv.wait_log(4)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["result"] for x in lines] == ["ok", "ok", "ok", "not_found"]
    assert lines[1]["blksize"] == 1400 and lines[2]["path"] == f"{MAC}/SEP{MAC}.cnf.xml"
    assert {"time", "client", "file", "result", "bytes"} <= set(lines[0])


def test_lab_server_refuses_paths_outside_its_root(root, tmp_path):
    import socket
    with TftpServer(root) as srv:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        for name in (b"../etc/passwd", b"/etc/passwd"):
            s.sendto(b"\0\1" + name + b"\0octet\0", ("127.0.0.1", srv.port))
            data, _ = s.recvfrom(600)
            assert data[:4] in (b"\0\5\0\2", b"\0\5\0\1")
        s.close()
        assert {e["result"] for e in srv.wait_log(2)} <= {"access_violation", "not_found"}


def test_firmware_client_on_loopback_with_faults(fw, root, tmp_path):
    """Blocks lost, duplicated and the first ACK lost, windowed: still byte-identical."""
    faults = Faults(drop_blocks={3, 9}, duplicate_blocks={5}, drop_acks={4}, seed=1)
    with TftpServer(root, faults=faults, timeout_s=0.2, fixed_timeout=True) as srv:
        out = out_dir(tmp_path)
        run = run_client(fw, fetch_args(out, ["cfg.bin"], ["127.0.0.1"], port=srv.port,
                                        blksize=1024, windowsize=4))
        assert run.result["ok"], run.output
        st = run.result["transfers"][0]
        assert (out / "cfg.bin").read_bytes() == (root / "cfg.bin").read_bytes()
        assert st["windowsize"] == 4 and st["blksize"] == 1024
        assert st["ooo"] >= 1 and st["dups"] >= 1
        assert srv.wait_log(1)[0]["result"] == "ok"


def test_exact_multiple_and_plain_rfc1350(fw, root, tmp_path):
    with TftpServer(root, faults=Faults(ignore_options=True)) as srv:
        out = out_dir(tmp_path)
        run = run_client(fw, fetch_args(out, ["exact.bin", "cfg.bin"], ["127.0.0.1"],
                                        port=srv.port))
        assert run.result["ok"], run.output
        for name in ("exact.bin", "cfg.bin"):
            assert (out / name).read_bytes() == (root / name).read_bytes()
        a, b = run.result["transfers"]
        assert not a["negotiated"] and a["blksize"] == 512 and a["blocks"] == 9
        assert "tftp_options_ignored" in run.names()


def test_option_refusal_then_plain_transfer(fw, root, tmp_path):
    with TftpServer(root, faults=Faults(refuse_options=True)) as srv:
        out = out_dir(tmp_path)
        run = run_client(fw, fetch_args(out, ["cfg.bin"], ["127.0.0.1"], port=srv.port))
        assert run.result["ok"], run.output
        assert "tftp_options_refused" in run.names()
        assert (out / "cfg.bin").read_bytes() == (root / "cfg.bin").read_bytes()


def test_error_in_mid_transfer_and_size_limit(fw, root, tmp_path):
    with TftpServer(root, faults=Faults(error_at_block=(3, 2, "pulled the plug"))) as srv:
        run = run_client(fw, fetch_args(out_dir(tmp_path), ["cfg.bin"], ["127.0.0.1"],
                                        port=srv.port, blksize=1024))
        assert not run.result["ok"]
        assert run.result["code"] == 2 and "pulled the plug" in run.result["error"]
    with TftpServer(root) as srv:
        run = run_client(fw, fetch_args(out_dir(tmp_path), ["big.bin"], ["127.0.0.1"],
                                        port=srv.port, max_bytes=30000))
        assert not run.result["ok"] and run.result["code"] == 3
        assert "limit" in run.result["error"]
        log = srv.wait_log(1)[0]
        assert log["result"].startswith("aborted_by_client") and log["bytes"] == 0


def test_drip_fault_blksize_8_is_refused_at_once(fw, root, tmp_path):
    """The lab's drip fault answers blksize 8 whatever was asked: the client refuses the
    OACK (ERROR 8) instead of taking 513 tiny blocks one by one."""
    with TftpServer(root, faults=Faults(drip=(8, 0.05))) as srv:
        run = run_client(fw, fetch_args(out_dir(tmp_path), ["exact.bin"], ["127.0.0.1"],
                                        port=srv.port))
        log = srv.wait_log(1)
    assert not run.result["ok"] and run.result["code"] == 8, run.output
    assert "blksize 8 refused (< 512)" in run.result["error"]
    assert log[0]["blksize"] == 8 and log[0]["result"].startswith("aborted_by_client")
    assert log[0]["bytes"] == 0


def test_drip_fault_at_512_ends_at_the_per_file_deadline(fw, root, tmp_path):
    """512-byte blocks every 0.1 s (5 KB/s) against a 20 KB/s minimum rate: the 64 KB file
    is given up at its deadline (one retry budget + 65536 bytes at 20 KB/s), not fetched."""
    with TftpServer(root, faults=Faults(drip=(512, 0.1))) as srv:
        run = run_client(fw, fetch_args(out_dir(tmp_path), ["big.bin"], ["127.0.0.1"],
                                        port=srv.port, windowsize=1, min_rate=20000))
        log = srv.wait_log(1)
    assert not run.result["ok"] and run.result["code"] is None, run.output
    assert "too slow" in run.result["error"]
    assert log[0]["result"].startswith("aborted_by_client")
    assert 0 < log[0]["bytes"] < 65536


# -- namespaces: the firmware client in the phone namespace, servers next door -----------


@pytest.fixture
def lan():
    with pair("tftp", phone_addr=f"{PHONE_IP}/24") as p:
        yield p


@pytest.mark.netns
@pytest.mark.skipif(dm.available() is not None, reason=str(dm.available()))
def test_dnsmasq_tftp_negotiates_blksize_and_declines_windowsize(fw, lan, root, tmp_path):
    with dm.Dnsmasq(lan.srv, "eth0", tftp_root=root, workdir=tmp_path / "dm") as d:
        out = out_dir(tmp_path)
        run = run_client(fw, fetch_args(out, ["big.bin", f"SEP{MAC}.cnf.xml"], [SRV_IP],
                                        blksize=1428, windowsize=8), ns=lan.phone)
        assert run.result["ok"], run.output
        d.wait_log(r"sent .*big\.bin")
    assert (out / "big.bin").read_bytes() == (root / "big.bin").read_bytes()
    st = run.result["transfers"][0]
    assert st["negotiated"] and st["blksize"] == 1428 and st["tsize"] == 65536
    assert st["windowsize"] == 1      # dnsmasq 2.90 has no RFC 7440: OACK leaves it out
    assert st["blocks"] == 65536 // 1428 + 1
    # dnsmasq does not know per-MAC folders: the generic file comes back
    assert (out / f"SEP{MAC}.cnf.xml").read_text() == "<device>generic</device>"


@pytest.mark.netns
@pytest.mark.parametrize("windowsize", [1, 4])
def test_lab_server_with_20_percent_loss(fw, lan, root, tmp_path, windowsize):
    faults = Faults(loss=0.2, seed=20 + windowsize)
    srv = TftpServer(root, host=SRV_IP, port=69, netns=lan.srv, faults=faults, timeout_s=0.15,
                     fixed_timeout=True, retries=15, log_path=tmp_path / "access.jsonl")
    with srv:
        out = out_dir(tmp_path)
        run = run_client(fw, fetch_args(out, ["cfg.bin"], [SRV_IP], blksize=1024,
                                        windowsize=windowsize, timeout_ms=150, retries=15),
                         ns=lan.phone)
        assert run.result["ok"], run.output
        log = srv.wait_log(1)
    assert (out / "cfg.bin").read_bytes() == (root / "cfg.bin").read_bytes()
    st = run.result["transfers"][0]
    assert st["windowsize"] == windowsize
    assert st["retransmits"] + st["reacks"] + log[0]["retransmits"] > 0, (st, log)
    assert log[0]["result"] in ("ok", "timeout")   # "timeout": only the final ACK was lost
    assert log[0]["client"].startswith(PHONE_IP + ":")


@pytest.mark.netns
def test_missing_file_is_a_clear_error(fw, lan, root, tmp_path):
    with TftpServer(root, host=SRV_IP, port=69, netns=lan.srv) as srv:
        run = run_client(fw, fetch_args(out_dir(tmp_path), ["CTLSEPFFFFFFFFFFFF.tlv"], [SRV_IP]),
                         ns=lan.phone)
        assert srv.wait_log(1)[0]["result"] == "not_found"
    assert not run.result["ok"]
    assert run.result["code"] == 1
    assert "File not found" in run.result["error"] and SRV_IP in run.result["error"]
    err = run.first("tftp_error")
    assert err["code"] == 1 and err["local"] is False


@pytest.mark.netns
def test_server_down_then_next_server(fw, lan, root, tmp_path):
    """A list of three: nothing at DOWN_IP, a lab server that is stopped, then a live one."""
    stopped = TftpServer(root, host=ALT_IP, port=69, netns=lan.srv).start()
    stopped.stop()
    with TftpServer(root, host=SRV_IP, port=69, netns=lan.srv) as live:
        out = out_dir(tmp_path)
        run = run_client(fw, fetch_args(out, [f"SEP{MAC}.cnf.xml"], [DOWN_IP, ALT_IP, SRV_IP],
                                        timeout_ms=150, retries=1), ns=lan.phone)
        assert run.result["ok"], run.output
        assert live.wait_log(1)[0]["path"] == f"{MAC}/SEP{MAC}.cnf.xml"
    assert (out / f"SEP{MAC}.cnf.xml").read_text() == "<device>per-mac</device>"
    st = run.result["transfers"][0]
    assert st["attempt"] == 3 and st["server"] == SRV_IP
    assert [e["failed"] for e in run.all("tftp_next_server")] == [DOWN_IP, ALT_IP]


@pytest.mark.netns
def test_all_servers_fail_reports_the_server_answer(fw, lan, root, tmp_path):
    with TftpServer(root, host=SRV_IP, port=69, netns=lan.srv):
        run = run_client(fw, fetch_args(out_dir(tmp_path), ["missing.xml"], [SRV_IP, DOWN_IP],
                                        timeout_ms=100, retries=1), ns=lan.phone)
    assert not run.result["ok"] and run.result["code"] == 1
    assert run.result["tried"] == [SRV_IP, DOWN_IP]


def test_windowsize_saves_round_trips_on_a_slow_path(fw, root, tmp_path):
    """20 ms per round trip: blksize alone costs a round trip per block (46 for 64 KB),
    windowsize 8 one per 8 blocks."""
    times = {}
    for w in (1, 8):
        with TftpServer(root, faults=Faults(latency_s=0.02)) as srv:
            out = out_dir(tmp_path)
            run = run_client(fw, fetch_args(out, ["big.bin"], ["127.0.0.1"], port=srv.port,
                                            blksize=1428, windowsize=w, timeout_ms=500))
            assert run.result["ok"], run.output
            assert (out / "big.bin").read_bytes() == (root / "big.bin").read_bytes()
            times[w] = run.result["transfers"][0]["ms"]
    assert times[1] >= 46 * 20 * 0.9, times
    assert times[8] * 3 < times[1], times


def _first_answer(port: int, blksize: int | None) -> tuple[int, dict[str, str], int]:
    """(opcode, OACK options, DATA length) of the server's first answer to a read request."""
    import socket
    import struct
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    req = b"\0\1big.bin\0octet\0tsize\0" + b"0\0"
    if blksize is not None:
        req += b"blksize\0" + str(blksize).encode() + b"\0"
    s.sendto(req, ("127.0.0.1", port))
    data, addr = s.recvfrom(70000)
    op = struct.unpack("!H", data[:2])[0]
    f = data[2:].split(b"\0")
    opts = {f[i].decode(): f[i + 1].decode() for i in range(0, len(f) - 1, 2) if f[i]} if op == 6 else {}
    s.sendto(struct.pack("!HH", 5, 0) + b"done\0", addr)        # the test has what it wanted
    s.close()
    return op, opts, len(data) - 4


def test_blksize_follows_rfc_2348_and_the_path_mtu(root):
    """Never more than asked; under 8 not acknowledged (512, as tftp-hpa); never more than
    an unfragmented datagram carries: on a 1500-byte link 1468 (issue 18)."""
    with TftpServer(root) as srv:
        assert _first_answer(srv.port, 1000)[1]["blksize"] == "1000"
        op, opts, n = _first_answer(srv.port, 4)
        assert op == 6 and "blksize" not in opts and opts["tsize"] == "65536"
        assert _first_answer(srv.port, 65464)[1]["blksize"] == "65464"   # loopback: 64 KiB MTU
        srv.wait_log(3)
        assert srv.log[1]["blksize"] == 512 and srv.log[1]["blksize_ignored"] == 4
    from host_tools.lab import netns
    if netns.unusable_reason():
        return
    with netns.NamespaceSet("tftpmtu") as nl:
        ns = nl.namespace("srv")
        ns.ip("link", "set", "lo", "mtu", "1500")
        with TftpServer(root, netns=ns.name) as srv:
            assert ns.call(_first_answer, srv.port, 65464)[1]["blksize"] == "1468"
            assert ns.call(_first_answer, srv.port, 1200)[1]["blksize"] == "1200"
            srv.wait_log(1)
            assert srv.log[0]["blksize_capped"] == "65464 asked, the path carries 1468"
