"""Outside check: Wireshark's skinny dissector (tshark) reads the bytes of phone.sccp.

The test writes a pcap of one plain-SCCP TCP conversation (port 2000) built in Python
(Ethernet/IPv4/TCP with correct lengths and checksums, a real three-way handshake), then asks
tshark to dissect it and checks message names, fields, and that nothing is malformed.
"""
from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

import host_tools.fw  # noqa: F401  (puts firmware/ on sys.path)
from phone import sccp_lab as sccp  # type: ignore[import-not-found]

TSHARK = shutil.which("tshark")
pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed (apt-get install tshark)")

PHONE = ("192.0.2.50", 51000, bytes.fromhex("001122aabbcc"))
CUCM = ("203.0.113.10", 2000, bytes.fromhex("02000000cc01"))
NAME = "SEP001122AABBCC"


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _ip4(a: str) -> bytes:
    return bytes(int(x) for x in a.split("."))


def packet(src: tuple, dst: tuple, seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    """Ethernet + IPv4 + TCP (no options) + payload."""
    sip, sport, smac = src
    dip, dport, dmac = dst
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    pseudo = _ip4(sip) + _ip4(dip) + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
    c = _csum(pseudo + tcp + payload)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0x4000, 64, 6, 0, _ip4(sip), _ip4(dip))
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    return dmac + smac + b"\x08\x00" + ip + tcp + payload


class Conversation:
    """Tracks sequence numbers of one TCP connection and collects its packets."""
    SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01

    def __init__(self, client: tuple, server: tuple) -> None:
        self.c, self.s = client, server
        self.cseq, self.sseq = 1000, 5000
        self.packets: list[bytes] = []
        self.packets.append(packet(client, server, self.cseq, 0, self.SYN))
        self.cseq += 1
        self.packets.append(packet(server, client, self.sseq, self.cseq, self.SYN | self.ACK))
        self.sseq += 1
        self.packets.append(packet(client, server, self.cseq, self.sseq, self.ACK))

    def send(self, from_client: bool, payload: bytes) -> None:
        if from_client:
            self.packets.append(packet(self.c, self.s, self.cseq, self.sseq, self.PSH | self.ACK, payload))
            self.cseq += len(payload)
        else:
            self.packets.append(packet(self.s, self.c, self.sseq, self.cseq, self.PSH | self.ACK, payload))
            self.sseq += len(payload)


def pcap_bytes(packets: list[bytes]) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, p in enumerate(packets):
        out.append(struct.pack("<IIII", 1795766400 + i, 0, len(p), len(p)) + p)
    return b"".join(out)


PHONE_SIDE = True
SERVER_SIDE = False

# (direction, frames sent in one TCP segment, tshark 4.0's names for them)
EXCHANGE = [
    (PHONE_SIDE, [sccp.register(NAME, PHONE[0], load_name="SCCP11.9-4-2SR3-1S")], ["RegisterReq"]),
    (SERVER_SIDE, [sccp.register_ack(30, 60)], ["RegisterAck"]),
    (SERVER_SIDE, [sccp.capabilities_req()], ["CapabilitiesReq"]),
    # the registration dialogue (phone.sccplink), several messages in one segment as the agent
    # writes them
    (PHONE_SIDE, [sccp.ip_port(), sccp.capabilities_res()], ["IpPort", "CapabilitiesRes"]),
    (PHONE_SIDE, [sccp.button_template_req(), sccp.frame(sccp.SOFT_KEY_TEMPLATE_REQ),
                  sccp.frame(sccp.SOFT_KEY_SET_REQ)],
     ["ButtonTemplateReq", "SoftKeyTemplateReq", "SoftKeySetReq"]),
    (SERVER_SIDE, [sccp.button_template(((1, 9),))], ["ButtonTemplateRes"]),
    (SERVER_SIDE, [sccp.soft_key_template_res(), sccp.soft_key_set_res(), sccp.select_soft_keys()],
     ["SoftKeyTemplateRes", "SoftKeySetRes", "SelectSoftKeys"]),
    (PHONE_SIDE, [sccp.frame(sccp.CONFIG_STAT_REQ)], ["ConfigStatReq"]),
    (SERVER_SIDE, [sccp.config_stat(NAME, server="cucm1", lines=1)], ["ConfigStatRes"]),
    (PHONE_SIDE, [sccp.line_stat_req(1), sccp.time_date_req(), sccp.register_available_lines(1)],
     ["LineStatReq", "TimeDateReq", "RegisterAvailableLines"]),
    (SERVER_SIDE, [sccp.line_stat(1, "1001", "Line 1")], ["LineStatRes"]),
    (SERVER_SIDE, [sccp.define_time_date(2026, 11, 27, 6, 5, 4, 0, 5, 1795766704)], ["TimeDateRes"]),
    (SERVER_SIDE, [sccp.set_lamp()], ["SetLamp"]),
    (PHONE_SIDE, [sccp.keepalive()], ["KeepAliveReq"]),
    (SERVER_SIDE, [sccp.keepalive_ack()], ["KeepAliveAck"]),
    (SERVER_SIDE, [sccp.display_notify(sccp.FALLBACK_TEXT, 0)], ["DisplayNotify"]),
    (SERVER_SIDE, [sccp.display_prompt_status("Waiting To Rehome")], ["DisplayPromptStatus"]),
    (PHONE_SIDE, [sccp.register_token_req(NAME, PHONE[0])], ["RegisterTokenReq"]),
    (SERVER_SIDE, [sccp.register_token_ack()], ["RegisterTokenAck"]),
    (SERVER_SIDE, [sccp.register_token_reject(5)], ["RegisterTokenReject"]),
    (SERVER_SIDE, [sccp.reset(sccp.RESET_RESTART)], ["Reset"]),
    (PHONE_SIDE, [sccp.unregister()], ["UnregisterReq"]),
    (SERVER_SIDE, [sccp.unregister_ack()], ["UnregisterAck"]),
    (SERVER_SIDE, [sccp.register_reject("Unknown device")], ["RegisterReject"]),
]


def _write(tmp_path: Path, split_register: bool = False) -> Path:
    conv = Conversation(PHONE, CUCM)
    for i, (from_phone, frames, _) in enumerate(EXCHANGE):
        data = b"".join(frames)
        if split_register and i == 0:   # one message over two segments: reassembly
            conv.send(from_phone, data[:40])
            conv.send(from_phone, data[40:])
        else:
            conv.send(from_phone, data)
    path = tmp_path / "sccp.pcap"
    path.write_bytes(pcap_bytes(conv.packets))
    return path


def _tshark(*args: str) -> str:
    proc = subprocess.run([TSHARK, "-o", "tcp.check_checksum:TRUE", *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_tshark_decodes_every_message(tmp_path):
    pcap = _write(tmp_path)
    text = _tshark("-r", str(pcap), "-V", "-Y", "skinny")
    assert "Skinny Client Control Protocol" in text
    for bad in ("Malformed", "Exception", "Bad checksum", "[Expert Info (Error", "[Expert Info (Warning"):
        assert bad not in text, f"tshark reports {bad!r}:\n{text}"
    for _, _, names in EXCHANGE:
        for n in names:
            assert f"Message ID: {n} (" in text, f"{n} not in tshark output"
    # fields, one row per skinny PDU
    fields = _tshark("-r", str(pcap), "-Y", "skinny", "-T", "fields", "-E", "occurrence=a",
                     "-E", "aggregator=|", "-e", "skinny.messageId")
    ids = [int(x, 0) for line in fields.split() for x in line.split("|")]
    want = [sccp.split(f)[0][0] for _, frames, _ in EXCHANGE for f in frames]
    assert ids == want
    # the expert system has nothing beyond the TCP handshake "chats"
    expert = _tshark("-r", str(pcap), "-q", "-z", "expert")
    for level in ("Errors", "Warns", "Notes"):
        assert f"\n{level} (" not in expert, expert


def test_tshark_register_fields(tmp_path):
    pcap = _write(tmp_path, split_register=True)
    out = _tshark("-r", str(pcap), "-Y", "skinny.messageId == 0x0001", "-T", "fields",
                  "-e", "skinny.DeviceName", "-e", "skinny.stationIpAddr", "-e", "skinny.deviceType",
                  "-e", "skinny.maxStreams", "-e", "skinny.macAddress", "-e", "skinny.firmwareLoadName",
                  "-e", "skinny.maxNumberOfLines", "-e", "skinny.data_length")
    row = out.strip().split("\t")
    assert row[0] == NAME
    assert row[1] == PHONE[0]
    assert int(row[2], 0) == 307
    assert row[3] == "5"
    assert row[4] == "00:11:22:aa:bb:cc"
    assert row[5] == "SCCP11.9-4-2SR3-1S"
    assert row[6] == "1"
    assert row[7] == "128"


def test_tshark_server_fields(tmp_path):
    pcap = _write(tmp_path)
    out = _tshark("-r", str(pcap), "-Y", "skinny", "-T", "fields", "-E", "occurrence=f",
                  "-e", "skinny.keepAliveInterval", "-e", "skinny.secondaryKeepAliveInterval",
                  "-e", "skinny.notify", "-e", "skinny.promptStatus", "-e", "skinny.resetType",
                  "-e", "skinny.text", "-e", "skinny.wYear", "-e", "skinny.waitTimeBeforeNextReq")
    rows = [line.split("\t") for line in out.splitlines()]
    assert ["30", "60"] == [c for c in (r[0] for r in rows) if c] + \
        [c for c in (r[1] for r in rows) if c]
    assert [r[2] for r in rows if r[2]] == [sccp.FALLBACK_TEXT]
    assert [r[3] for r in rows if r[3]] == ["Waiting To Rehome"]
    assert [int(r[4], 0) for r in rows if r[4]] == [2]
    assert [r[5] for r in rows if r[5]] == ["Unknown device"]
    assert [r[6] for r in rows if r[6]] == ["2026"]
    assert [r[7] for r in rows if r[7]] == ["5"]


# The phone's side of the registration dialogue, in order (docs/protocols.md, "The
# registration dialogue"); CapabilitiesRes answers CapabilitiesReq, wherever it falls.
DIALOGUE = [0x0001, 0x0002, 0x000E, 0x0028, 0x0025, 0x000C, 0x000B, 0x000D, 0x002D]


@pytest.mark.slow
def test_lab_capture_shows_the_dialogue_on_both_links(tmp_path):
    """`phonelab run scenarios/wan-blackhole.toml --pcap --keylog`, decoded by tshark: every
    TLS session the phone registers on (the call manager, then the SRST router after the
    cut, then the call manager again) carries the whole dialogue, and nothing is malformed.
    The session opened to register at boot starts with Register, as a phone's does; the
    standby session (failover) and the probe (re-home) start with a KeepAlive, and their
    Register comes later (docs/protocols.md, "Register first, KeepAlive first")."""
    from host_tools import ROOT
    from host_tools.scenario import runner, spec
    sc = spec.load(ROOT / "scenarios" / "wan-blackhole.toml")
    pcap, keylog = tmp_path / "run.pcap", tmp_path / "keys.log"
    res = runner.run(sc, runner.RunOptions(workdir=tmp_path / "w", pcap=pcap, keylog=keylog))
    assert res.passed, res.expectations
    # a capture of the lab's veth: checksums are offloaded, so not checked here
    tls = ("-o", "tcp.check_checksum:FALSE", "-o", f"tls.keylog_file:{keylog}",
           "-d", "tcp.port==2443,tls")
    rows = _tshark("-r", str(pcap), *tls, "-Y", "skinny", "-T", "fields", "-E", "occurrence=a",
                   "-E", "aggregator=,", "-e", "tcp.stream", "-e", "ip.src", "-e", "ip.dst",
                   "-e", "tcp.dstport", "-e", "skinny.messageId").splitlines()
    sent: dict[tuple, list[int]] = {}
    for row in rows:
        stream, src, dst, dport, ids = (row.split("\t") + [""] * 5)[:5]
        if dport == "2443":                       # the phone's side
            sent.setdefault((stream, dst), []).extend(int(x, 0) for x in ids.split(",") if x)
    registered = {k: v for k, v in sent.items() if 0x0001 in v}
    servers = {dst for _, dst in registered}
    assert len(servers) >= 2, f"registrations seen with {servers} only"
    for (stream, dst), ids in registered.items():
        steps = [x for x in ids[ids.index(0x0001):] if x in DIALOGUE]
        assert steps[:len(DIALOGUE)] == DIALOGUE, (stream, dst, [hex(x) for x in ids])
        assert 0x0010 in ids, (stream, dst, "no CapabilitiesRes")
    cm = next(s.event.get("host") for s in res.events
              if s.event.ev == "registered" and s.event.get("link") == "primary")
    boot = min((k for k in registered if k[1] == cm), key=lambda k: int(k[0]), default=None)
    assert boot is not None, f"no registration with the call manager {cm} in {list(registered)}"
    firsts = {k: hex(ids[0]) for k, ids in registered.items()}
    assert firsts[boot] == "0x1", f"the boot session did not start with Register: {firsts}"
    later = {k: v for k, v in firsts.items() if k != boot}
    assert later and set(later.values()) == {"0x0"}, \
        f"the standby and probe sessions did not start with KeepAlive: {firsts}"
    bad = _tshark("-r", str(pcap), *tls, "-Y", "_ws.malformed || _ws.expert.severity >= error")
    assert bad.strip() == "", bad[:2000]
