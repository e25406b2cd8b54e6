"""The lab's topology and the Lab object: namespaces and routing through the branch router,
each WAN fault (cut towards HQ, SRST still reachable, restore), flapping, cleanup; the loopback
WAN relay (pass / blackhole / refuse); the files the Lab builds (trust lists checked by the
firmware's own parser, cnf.xml with the SRST certificate from the credentials service); and
`phonelab lab up|status|cut|down`, including a SIGKILLed lab process and a bench interface."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from host_tools import ROOT
from host_tools import pki as labpki
from host_tools.commands.ctl import run_ctltool, verify_args
from host_tools.lab import cnfxml, netns
from host_tools.lab.lab import Lab
from host_tools.lab.probe import tcp_probe
from host_tools.lab.sccp_client import SccpClient
from host_tools.lab.topology import (NetnsTopology, TopologyError, check_bench_interface,
                                     make_topology)
from host_tools.lab.wanrelay import BLACKHOLE, PASS, REFUSE, WanRelay
from host_tools.signals import pid_alive

MAC = "001122AABBCC"
PHONE_IP = "192.0.2.100"
PROBE_S = 0.5


def need_netns() -> None:
    why = netns.unusable_reason()
    if why:
        pytest.skip(why)


@pytest.fixture(scope="module")
def lab_pki(tmp_path_factory) -> labpki.Pki:
    # 2048-bit: OpenSSL's default security level refuses smaller keys in TLS
    return labpki.make_pki(tmp_path_factory.mktemp("pki"), [MAC])


def _our_namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines()
            if line.startswith(f"{netns.PREFIX}{os.getpid()}-")}


def _listener(host: str, port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(16)
    return s


def tftp_first_block(host: str, port: int, name: str, timeout: float = 1.0) -> bytes | str:
    """A bare RFC 1350 read request: the first DATA block, or why there is none."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(struct.pack("!H", 1) + name.encode() + b"\0octet\0", (host, port))
        data, peer = s.recvfrom(2048)
        op, blk = struct.unpack("!HH", data[:4])
        if op != 3 or blk != 1:
            return f"opcode {op}"
        s.sendto(struct.pack("!HH", 4, 1), peer)       # ACK, so the server is not left waiting
        return data[4:]
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return f"error: {e}"
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------
# namespace topology
# ---------------------------------------------------------------------------------------------
@pytest.mark.netns
def test_netns_topology_routes_faults_and_cleanup():
    need_netns()
    events: list[tuple[str, dict]] = []
    topo = make_topology("netns", phone_macs=[MAC], emit=lambda ev, **f: events.append((ev, f)))
    assert isinstance(topo, NetnsTopology)
    with topo:
        names = set(topo.namespaces()["phone"]) | {topo.namespaces()["branch"], topo.namespaces()["hq"]}
        assert names <= _our_namespaces()
        assert topo.phone_prefix() == ["ip", "netns", "exec", topo.namespaces()["phone"][0]]
        topo.set_phone_address(PHONE_IP)
        a = topo.addr
        # listeners: HQ service, branch SRST port, and one on the phone (the reverse direction)
        keep = [topo.run_in("hq", _listener, a.hq_bind, 2443),
                topo.run_in("branch", _listener, a.srst, 2443),
                topo.run_in("phone", _listener, PHONE_IP, 5000)]
        try:
            def reach() -> tuple[str, str, str]:
                return (topo.run_in("phone", tcp_probe, a.hq_front, 2443, PROBE_S),
                        topo.run_in("phone", tcp_probe, a.srst, 2443, PROBE_S),
                        topo.run_in("hq", tcp_probe, PHONE_IP, 5000, PROBE_S))

            assert reach() == ("open", "open", "open")
            # nothing outside the lab is routable from the phone
            assert topo.run_in("phone", tcp_probe, "198.18.0.1", 80, PROBE_S) != "open"
            expected = {"blackhole": {"timeout"}, "unreachable": {"unreachable"},
                        "link_down": {"unreachable", "timeout"}}
            for kind, results in expected.items():
                topo.wan_cut(kind)
                assert topo.wan == kind
                to_hq, to_srst, from_hq = reach()
                assert to_hq in results, (kind, to_hq)
                assert to_srst == "open", kind          # the SRST router stays reachable
                assert from_hq != "open", kind          # and the cut holds both ways
                topo.wan_restore()
                assert topo.wan == "up"
                assert reach() == ("open", "open", "open"), kind
            with pytest.raises(TopologyError):
                topo.wan_cut("cm_reset")                # needs the Lab's call manager
            # flap: two cut/restore cycles of 0.3 s, then up again
            t = topo.flap(0.3, 2, "unreachable")
            seen = set()
            deadline = time.monotonic() + 5
            while t.is_alive() and time.monotonic() < deadline:
                seen.add(topo.run_in("phone", tcp_probe, a.hq_front, 2443, 0.1))
                time.sleep(0.02)
            t.join(5)
            # ICMP answers are rate limited by the kernel (a burst, then 1/s): a probe may time out
            assert "open" in seen and seen & {"unreachable", "timeout"}
            assert topo.wan == "up" and reach()[0] == "open"
        finally:
            for s in keep:
                s.close()
    cuts = [f["kind"] for ev, f in events if ev == "wan_cut"]
    assert cuts == ["blackhole", "unreachable", "link_down", "unreachable", "unreachable"]
    assert [ev for ev, _ in events][-1] == "topology_down"
    # cleanup: namespaces (and the veths inside them) are gone, loop threads ended
    assert not (names & _our_namespaces())
    assert not any(t.name in ("lab:branch", "lab:hq") for t in threading.enumerate())
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f"v{os.getpid()}x" not in links


# ---------------------------------------------------------------------------------------------
# loopback WAN relay
# ---------------------------------------------------------------------------------------------
async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _read(reader: asyncio.StreamReader, n: int, timeout: float) -> bytes | str:
    try:
        return await asyncio.wait_for(reader.readexactly(n), timeout)
    except asyncio.TimeoutError:
        return "timeout"
    except (ConnectionError, asyncio.IncompleteReadError) as e:
        return type(e).__name__


def test_wan_relay_tcp_pass_blackhole_refuse():
    front, back = "127.0.0.251", "127.0.0.252"

    async def main() -> None:
        srv = await asyncio.start_server(_echo, back, 0)
        port = srv.sockets[0].getsockname()[1]
        relay = WanRelay()
        r = relay.add_tcp("echo", (front, 0), (back, port))
        await relay.start()
        fport = r.port
        # pass
        rd, wr = await asyncio.open_connection(front, fport)
        wr.write(b"ping")
        assert await _read(rd, 4, 2) == b"ping"
        # blackhole: the open connection goes silent, a new one connects but gets nothing
        await relay.set_mode(BLACKHOLE)
        wr.write(b"held")
        assert await _read(rd, 4, 0.3) == "timeout"
        rd2, wr2 = await asyncio.wait_for(asyncio.open_connection(front, fport), 2)
        wr2.write(b"new!")
        assert await _read(rd2, 4, 0.3) == "timeout"
        assert r.status()["held_bytes"] >= 4
        # back to pass: what was held flows, as TCP would retransmit it
        await relay.set_mode(PASS)
        assert await _read(rd, 4, 2) == b"held"
        assert await _read(rd2, 4, 2) == b"new!"
        # refuse: established connections are reset, new ones refused
        await relay.set_mode(REFUSE)
        assert await _read(rd, 4, 2) in ("ConnectionResetError", "IncompleteReadError")
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(front, fport)
        await relay.set_mode(PASS)
        rd3, wr3 = await asyncio.open_connection(front, fport)
        wr3.write(b"back")
        assert await _read(rd3, 4, 2) == b"back"
        for w in (wr, wr2, wr3):
            w.close()
        await relay.stop()
        srv.close()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_wan_relay_udp_carries_tftp_and_cuts(tmp_path):
    from host_tools.lab.tftp_server import TftpServer
    front, back = "127.0.0.248", "127.0.0.249"
    payload = bytes(range(256)) * 8
    (tmp_path / "CTLFile.tlv").write_bytes(payload)
    with TftpServer(tmp_path, host=back, port=0) as tftp:
        relay = WanRelay()

        async def setup() -> int:
            r = relay.add_udp("tftp", (front, 0), (back, tftp.port))
            await relay.start()
            return r.port

        loop = asyncio.new_event_loop()
        t = threading.Thread(target=loop.run_forever, daemon=True)
        t.start()
        try:
            def run(coro, timeout=5):
                return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)
            fport = run(setup())
            assert tftp_first_block(front, fport, "CTLFile.tlv") == payload[:512]
            run(relay.set_mode(BLACKHOLE))
            assert tftp_first_block(front, fport, "CTLFile.tlv", 0.3) == "timeout"
            run(relay.set_mode(REFUSE))
            assert tftp_first_block(front, fport, "CTLFile.tlv", 0.3) != payload[:512]
            run(relay.set_mode(PASS))
            assert tftp_first_block(front, fport, "CTLFile.tlv") == payload[:512]
            run(relay.stop())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            t.join(5)


# ---------------------------------------------------------------------------------------------
# the Lab object
# ---------------------------------------------------------------------------------------------
def _sccp_register(lab: Lab, keep: dict) -> dict:
    """A scripted phone (CPython) with the lab phone's certificate registers with the call
    manager as a phone would (same addresses, same trust)."""
    p = lab.pki
    assert p is not None
    host, port = lab.endpoints["callmanager"]

    async def main() -> dict:
        c = await SccpClient.connect(host, port, cert=p.phones[MAC].cert_path,
                                     key=p.phones[MAC].key_path, server_ca=p.ccm.cert_der,
                                     server_hostname=p.ccm.cn, timeout=5)
        keep["client"] = c
        ack = await asyncio.wait_for(c.register(f"SEP{MAC}", PHONE_IP), 5)
        # registered, for the call manager, once the whole dialogue is done (issue 14)
        await asyncio.wait_for(c.finish_registration(), 5)
        return ack
    loop = asyncio.new_event_loop()
    keep["loop"] = loop
    if lab.mode == "netns":
        return lab.topology.run_in("phone", loop.run_until_complete, main())  # type: ignore[union-attr]
    return loop.run_until_complete(main())


def _read_after(lab: Lab, keep: dict) -> str:
    c, loop = keep["client"], keep["loop"]

    async def read() -> str:
        try:
            data = await asyncio.wait_for(c.reader.read(65536), 3)
            while data:
                data = await asyncio.wait_for(c.reader.read(65536), 3)
            return "eof"
        except (ConnectionError, OSError) as e:
            return type(e).__name__
        except asyncio.TimeoutError:
            return "timeout"
    return loop.run_until_complete(read())


@pytest.mark.netns
def test_lab_netns_builds_serves_and_cleans_up(tmp_path, lab_pki):
    need_netns()
    before = _our_namespaces()
    with Lab(tmp_path / "lab", mode="netns", macs=[MAC], pki=lab_pki, short_timers=True) as lab:
        assert lab.mode == "netns"
        topo = lab.topology
        assert isinstance(topo, NetnsTopology)
        assert lab.endpoints["callmanager"] == ("203.0.113.10", 2443)
        assert lab.endpoints["srst"] == ("192.0.2.1", 2443)
        assert lab.endpoints["credentials"] == ("192.0.2.1", 2445)
        assert lab.endpoints["tftp"] == ("203.0.113.10", 69)
        assert lab.phone_prefix()[:3] == ["ip", "netns", "exec"]
        assert lab.phone_env() == {"PHONE_MAC": MAC, "PHONE_IF": "eth0"}
        # the SRST certificate in the config came from the credentials service, across the WAN
        xml = (lab.tftp_root / f"SEP{MAC}.cnf.xml").read_text()
        assert cnfxml.read_srst_certificate(xml) == lab_pki.srst.cert_der
        answered = [e for e in lab.events.snapshot() if e["ev"] == "credentials_answered"]
        assert answered and answered[0]["peer"].startswith("198.51.100.2:")
        # DHCP in the branch (option 150 = the TFTP server in HQ), TFTP through the router
        dnsmasq_pid = lab.dhcp.proc.pid  # type: ignore[union-attr]
        assert "--dhcp-option=150,203.0.113.10" in lab.dhcp.argv()  # type: ignore[union-attr]
        topo.set_phone_address(PHONE_IP)
        ctl = (lab.tftp_root / "CTLFile.tlv").read_bytes()
        assert topo.run_in("phone", tftp_first_block, "203.0.113.10", 69, "CTLFile.tlv") == ctl[:512]
        lab.wan_cut("blackhole")
        assert topo.run_in("phone", tftp_first_block, "203.0.113.10", 69, "CTLFile.tlv", 0.3) == "timeout"
        lab.wan_restore()
        # a phone registers; cm_reset resets it (RST) and refuses new connections meanwhile
        keep: dict = {}
        ack = _sccp_register(lab, keep)
        assert ack["msg"] == "RegisterAck" and ack["keepalive"] == 5
        end = time.monotonic() + 5      # the server reads the dialogue's last step
        while (lab.status()["phones"].get(MAC, {}).get("callmanager") != "registered"
               and time.monotonic() < end):
            time.sleep(0.05)
        assert lab.status()["phones"][MAC]["callmanager"] == "registered", lab.status()["phones"]
        lab.wan_cut("cm_reset")
        assert topo.run_in("phone", _read_after, lab, keep) == "ConnectionResetError"
        assert topo.run_in("phone", tcp_probe, "203.0.113.10", 2443, PROBE_S) == "refused"
        assert topo.run_in("phone", tcp_probe, "192.0.2.1", 2443, PROBE_S) == "open"
        lab.wan_restore()
        assert topo.run_in("phone", tcp_probe, "203.0.113.10", 2443, PROBE_S) == "open"
        keep["loop"].close()
        # kill / restart
        lab.kill("callmanager")
        assert topo.run_in("phone", tcp_probe, "203.0.113.10", 2443, PROBE_S) == "refused"
        lab.restart("callmanager")
        assert topo.run_in("phone", tcp_probe, "203.0.113.10", 2443, PROBE_S) == "open"
        lab.kill("dhcp")
        assert not lab.server_running("dhcp")
        lab.restart("dhcp")
        assert lab.server_running("dhcp")
        dnsmasq_pid = lab.dhcp.proc.pid  # type: ignore[union-attr]
        st = lab.status()
        assert st["wan"] == "up" and all(s["running"] for s in st["servers"].values())
        folder = lab.prepare_board_folder(tmp_path / "board")
        assert (folder / "state" / "phone.der").read_bytes() == lab_pki.phones[MAC].cert_der
        assert json.loads((folder / "board.json").read_text())["store"] == "state"
        assert json.loads((folder / "settings.json").read_text())["probe_after_ms"] == 1500
    assert _our_namespaces() == before
    with pytest.raises(ProcessLookupError):
        os.kill(dnsmasq_pid, 0)
    log = [json.loads(line) for line in (tmp_path / "lab" / "events.jsonl").read_text().splitlines()]
    evs = [e["ev"] for e in log]
    assert evs[0] == "lab_starting" and evs[-1] == "lab_stopped"
    assert {"wan_cut", "wan_restored", "cm_reset", "server_killed", "server_restarted",
            "registered", "credentials_answered", "topology_down"} <= set(evs)
    assert all({"t", "mono", "wall", "src", "ev"} <= set(e) for e in log)
    assert [e["t"] for e in log] == sorted(e["t"] for e in log)


def test_lab_loopback_files_verify_with_firmware_parser(tmp_path, lab_pki):
    with Lab(tmp_path / "lab", mode="loopback", macs=[MAC], pki=lab_pki) as lab:
        a = lab.topology.addr  # type: ignore[union-attr]
        assert lab.mode == "loopback" and lab.phone_prefix() == []
        root = lab.tftp_root
        # the trust lists as a board decides: CTL by first use and with the SAST provisioned,
        # the ITL against the CTL's SAST, the signed config against the CTL's TFTP record
        rc, out = run_ctltool(verify_args(str(root / "CTLFile.tlv"), sast=[str(lab_pki.sast.cert_path)]))
        assert rc == 0 and out["valid"] and out["records"] == 5 and out["signer_cn"] == lab_pki.sast.cn
        rc, out = run_ctltool(verify_args(str(root / "ITLFile.tlv"), sast=[str(lab_pki.sast.cert_path)]))
        assert rc == 0 and out["valid"]
        rc, out = run_ctltool(verify_args(str(root / f"SEP{MAC}.cnf.xml.sgn"),
                                          trust=[str(root / "CTLFile.tlv")]))
        assert rc == 0 and out["valid"] and out["signer_cn"] == lab_pki.tftp.cn
        rc, out = run_ctltool(["dump", str(root / "CTLFile.tlv")])
        roles = {r["role_name"] for r in out["records"]}
        assert {"SAST", "CCM", "TFTP", "CAPF"} <= roles
        ccm = next(r for r in out["records"] if r["role_name"] == "CCM")
        assert ccm["ip"] == a.hq_front and ccm["cn"] == lab_pki.ccm.cn
        # the config: call manager behind the WAN relay, SRST certificate from the service
        xml = (root / f"SEP{MAC}.cnf.xml").read_text()
        assert cnfxml.read_srst_certificate(xml) == lab_pki.srst.cert_der
        host, port = lab.endpoints["callmanager"]
        assert host == a.hq_front and f"<processNodeName>{host}</processNodeName>" in xml
        assert f"<ethernetPhonePort>{port - 443}</ethernetPhonePort>" in xml
        assert lab.status()["servers"]["srst"]["credentials"]["answered"] == 1
        # no DHCP: the profile tells the phone its TFTP server
        o = lab.profile_overrides()
        assert o["dhcp"] is False and o["tftp_server"] == a.hq_front
        thost, tport = lab.endpoints["tftp"]
        assert o.get("tftp_port", 69) == tport
        ctl = (root / "CTLFile.tlv").read_bytes()
        assert tftp_first_block(thost, tport, "CTLFile.tlv") == ctl[:512]
        # the WAN relay cuts HQ, not the branch
        keep: dict = {}
        assert _sccp_register(lab, keep)["msg"] == "RegisterAck"
        lab.wan_cut("unreachable")
        assert _read_after(lab, keep) in ("ConnectionResetError", "eof")
        assert tcp_probe(host, port, PROBE_S) == "refused"
        assert tcp_probe(*lab.endpoints["srst"], PROBE_S) == "open"
        assert tftp_first_block(thost, tport, "CTLFile.tlv", 0.3) != ctl[:512]
        lab.wan_cut("blackhole")
        assert tftp_first_block(thost, tport, "CTLFile.tlv", 0.3) == "timeout"
        lab.wan_restore()
        assert tftp_first_block(thost, tport, "CTLFile.tlv") == ctl[:512]
        keep["loop"].close()


def test_lab_loopback_falls_back_to_free_ports(tmp_path, lab_pki, monkeypatch):
    """Standard ports taken (another lab) or forbidden (no root): free ones, and the board
    profile says which."""
    from host_tools.lab import topology
    orig = topology.loopback_addresses
    a = orig(16 + 3 * (os.getpid() % 70))
    monkeypatch.setattr(topology, "loopback_addresses", lambda base=None: a)
    taken = [_listener(h, 2443) for h in (a.srst, a.hq_front, a.hq_bind)]
    for h in (a.hq_front, a.hq_bind):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind((h, 69))
        except PermissionError:           # not root: 69 is refused anyway
            u.close()
            continue
        taken.append(u)
    try:
        with Lab(tmp_path / "lab", mode="loopback", macs=[MAC], pki=lab_pki) as lab:
            assert all(p != 2443 for _, p in (lab.endpoints[k] for k in ("srst", "callmanager")))
            thost, tport = lab.endpoints["tftp"]
            assert tport != 69 and lab.profile_overrides()["tftp_port"] == tport
            ctl = (lab.tftp_root / "CTLFile.tlv").read_bytes()
            assert tftp_first_block(thost, tport, "CTLFile.tlv") == ctl[:512]
    finally:
        for s in taken:
            s.close()


# ---------------------------------------------------------------------------------------------
# phonelab lab up / down
# ---------------------------------------------------------------------------------------------
def _phonelab(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "host_tools.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.netns
def test_lab_up_down_cli_survives_sigkill(tmp_path):
    need_netns()
    d = str(tmp_path / "lab")
    r = _phonelab("lab", "up", "--detach", "--dir", d, "--mode", "netns", "--short-timers")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "phonelab vboard --netns" in r.stdout and "203.0.113.10:2443" in r.stdout
    state = json.loads((tmp_path / "lab" / "lab-state.json").read_text())
    pid = state["pid"]
    names = [*state["topology"]["namespaces"]["phone"], state["topology"]["namespaces"]["branch"],
             state["topology"]["namespaces"]["hq"]]
    try:
        r = _phonelab("lab", "status", "--dir", d, "--json")
        assert r.returncode == 0, r.stderr
        st = json.loads(r.stdout)
        assert st["mode"] == "netns" and st["servers"]["dhcp"]["running"]
        assert _phonelab("lab", "cut", "link_down", "--dir", d).returncode == 0
        assert json.loads(_phonelab("lab", "status", "--dir", d, "--json").stdout)["wan"] == "link_down"
        assert _phonelab("lab", "kill", "nonsense", "--dir", d).returncode != 0
        ns_pids = subprocess.run(["ip", "netns", "pids", state["topology"]["namespaces"]["branch"]],
                                 capture_output=True, text=True).stdout.split()
        assert ns_pids                           # dnsmasq runs in the branch
        # the lab process dies without cleaning up; `lab down` still removes everything
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if not pid_alive(pid):
                break
            time.sleep(0.05)
    finally:
        r = _phonelab("lab", "down", "--dir", d)
    assert r.returncode == 0, r.stderr
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(n in listed for n in names)
    assert not any(pid_alive(int(p)) for p in ns_pids)
    assert not (tmp_path / "lab" / "lab-state.json").exists()


def test_lab_up_down_cli_loopback(tmp_path):
    d = str(tmp_path / "lab")
    r = _phonelab("lab", "up", "--detach", "--dir", d, "--mode", "loopback")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "loopback: no DHCP" in r.stdout
    pid = json.loads((tmp_path / "lab" / "lab-state.json").read_text())["pid"]
    board = json.loads((tmp_path / "lab" / "boards" / MAC / "board.json").read_text())
    assert board["dhcp"] is False and board["tftp_server"].startswith("127.0.0.")
    assert _phonelab("lab", "cut", "--dir", d).returncode == 0
    r = _phonelab("lab", "down", "--dir", d)
    assert r.returncode == 0 and "stopped the lab" in r.stdout
    assert not pid_alive(pid)
    log = (tmp_path / "lab" / "events.jsonl").read_text()
    assert '"wan_cut"' in log and '"lab_stopped"' in log


def test_lab_up_interface_needs_consent_and_refuses_the_default_route():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    routes = json.loads(subprocess.run(["ip", "-j", "route", "show", "default"],
                                       capture_output=True, text=True).stdout or "[]")
    if not routes or "dev" not in routes[0]:
        pytest.skip("no default route here")
    dev = routes[0]["dev"]
    # only read-only checks against the machine's own uplink
    with pytest.raises(TopologyError, match="default route"):
        check_bench_interface(dev)
    r = _phonelab("lab", "up", "--interface", dev)
    assert r.returncode == 2 and "--yes-serve-dhcp" in r.stderr
    r = _phonelab("lab", "up", "--interface", dev, "--yes-serve-dhcp")
    assert r.returncode == 2 and "needs the board's MAC (--mac" in r.stderr
    r = _phonelab("lab", "up", "--interface", dev, "--yes-serve-dhcp", "--mac", "001122AABBCC")
    assert r.returncode == 2 and "default route" in r.stderr


@pytest.mark.netns
def test_lab_bench_interface_serves_a_board_and_is_given_back(tmp_path, lab_pki):
    need_netns()
    with netns.NamespaceSet("bench") as nl:
        board = nl.namespace("board")
        dev = f"pb{os.getpid() % 100000}"
        # a veth stands in for the bench NIC: one end in the host, the board behind the other
        netns.ip("link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", board.name)
        try:
            board.up("eth0")
            board.add_addr("eth0", "192.0.2.50/24")
            board.add_route("default", via="192.0.2.1")
            with Lab(tmp_path / "lab", mode="netns", macs=[MAC], pki=lab_pki,
                     interface=dev) as lab:
                host_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
                # the board's MAC is the board's alone: not the lab's phone namespace's
                ph = lab.topology.phone_ns[0]
                link = json.loads(ph.run(["ip", "-j", "link", "show", "eth0"]).stdout)[0]
                assert link["address"].replace(":", "").upper() != MAC
                # an unknown device gets XMLDefault.cnf.xml, which the agent reads
                from host_tools.commands import config as configcmd
                d = configcmd.show(lab.tftp_root / "XMLDefault.cnf.xml")
                assert d["root"] == "Default" and d["srst"] is None
                assert [(m["host"], m["port"]) for m in d["call_managers"]] == [("203.0.113.10", 2000)]
                assert f": {dev}@" not in host_links and f": {dev}:" not in host_links
                assert board.call(tcp_probe, "192.0.2.1", 2443, PROBE_S) == "open"
                assert board.call(tcp_probe, "203.0.113.10", 2443, PROBE_S) == "open"
                lab.wan_cut("blackhole")
                assert board.call(tcp_probe, "203.0.113.10", 2443, PROBE_S) == "timeout"
                assert board.call(tcp_probe, "192.0.2.1", 2443, PROBE_S) == "open"
                lab.wan_restore()
            assert netns.ip("link", "show", "dev", dev, check=False).returncode == 0
        finally:
            netns.ip("link", "del", dev, check=False)


def test_lab_up_summary_names_the_bench_board_and_no_vboard_for_its_mac(tmp_path, capsys):
    """With --interface the summary says the board's MAC is its own, with no `vboard`
    command for it (issue 18)."""
    import argparse
    from types import SimpleNamespace
    from host_tools.commands import lab as labcmd
    ep = {k: {"host": "203.0.113.10", "port": p} for k, p in
          (("dhcp", 67), ("tftp", 69), ("callmanager", 2443), ("srst", 2443), ("credentials", 2444))}
    fake = SimpleNamespace(
        macs=[MAC], tftp_kind="lab", tftp_root=tmp_path, profile_overrides=dict,
        phone_env=lambda m=None: {"PHONE_IF": "eth0"}, phone_prefix=lambda m=None: ["ns", "x"],
        describe=lambda: {"mode": "netns", "workdir": str(tmp_path), "endpoints": ep,
                          "events": "e", "keylog": "k",
                          "namespaces": {"phone": ["p"], "branch": "b", "hq": "h"}})
    args = argparse.Namespace(interface="enx0", dir=tmp_path)
    labcmd._print_summary(fake, args, tmp_path / "c.sock")
    out = capsys.readouterr().out
    assert f"bench board:      SEP{MAC} on enx0" in out and "no virtual phone" in out
    assert "phonelab vboard" not in out and "XMLDefault.cnf.xml for unknown devices" in out
