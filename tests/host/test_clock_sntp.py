"""phone.sntp's query (the NTP servers of DHCP option 42) under MicroPython, at a board's
power-up clock (libfaketime, 2000-01-01), against a real UDP server: a good answer sets the
clock; an answer that does not echo the request, an unsynchronized server or silence leave it
unknown, each with an `sntp_failed` event, within the time allowed."""
from __future__ import annotations

import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from host_tools import fwbuild, micropython
from net_lab_support import at_clock

SCRIPT = Path(__file__).parent / "mp" / "sntp_check.py"
NTP_1900 = 2208988800
SERVER_TIME = 1798761600 + 12345          # 2027-01-01T03:25:45Z: not the host's clock either


class Sntp:
    """A UDP server answering each request as `mode` says: good, foreign (does not echo the
    client's transmit time), unsynced (leap 3, stratum 0), silent."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.asked = 0
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop:
            try:
                req, peer = self.sock.recvfrom(512)
            except OSError:
                continue
            self.asked += 1
            if self.mode == "silent" or len(req) < 48:
                continue
            first, stratum = (0x24, 2) if self.mode != "unsynced" else (0xE4, 0)
            origin = req[40:48] if self.mode != "foreign" else b"\x01" * 8
            tx = struct.pack(">II", SERVER_TIME + NTP_1900, 0)
            ans = bytes((first, stratum, 6, 0xEC)) + bytes(20) + origin + tx + tx
            self.sock.sendto(ans, peer)

    def close(self) -> None:
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def run(port: int, *servers: str) -> str:
    cmd = micropython.command([str(SCRIPT), str(port), *servers])
    out = subprocess.run(cmd, env={**fwbuild.environ(), **at_clock("2000-01-01 00:00:00")},
                         capture_output=True, text=True, timeout=30)
    text = out.stdout + out.stderr
    assert "START 2000" in text and "CLOCK" in text, text
    return text


def test_a_good_answer_sets_the_clock():
    srv = Sntp("good")
    try:
        out = run(srv.port, "127.0.0.1")
        g = time.gmtime(SERVER_TIME)
        assert f"CLOCK sntp ({g.tm_year}, {g.tm_mon}, {g.tm_mday}, {g.tm_hour}, " in out, out
        assert '"ev":"clock_set"' in out and '"source":"sntp"' in out, out
    finally:
        srv.close()


@pytest.mark.parametrize("mode,why", [("foreign", "not to our request"),
                                      ("unsynced", "not synchronized"),
                                      ("silent", "no answer within 600 ms")])
def test_a_bad_or_missing_answer_leaves_the_clock_unknown(mode, why):
    srv = Sntp(mode)
    try:
        out = run(srv.port, "127.0.0.1")
        assert "CLOCK None None None" in out, out
        assert '"ev":"sntp_failed"' in out and why in out, out
        assert srv.asked == 1
    finally:
        srv.close()


def test_the_second_server_is_asked_when_the_first_is_silent():
    bad, good = Sntp("silent"), Sntp("good")
    try:
        # both on the same port number is not possible: the script asks PORT on each host,
        # so the silent one is an address nothing answers on
        out = run(good.port, "127.0.0.2", "127.0.0.1")
        assert '"ev":"sntp_failed"' in out and '"server":"127.0.0.2"' in out, out
        assert "CLOCK sntp (" in out, out
    finally:
        bad.close()
        good.close()


def test_the_lab_router_ntp_service_sets_a_power_up_clock():
    """The lab's branch router answers SNTP with the host's clock (host_tools.lab.ntp)."""
    import asyncio

    from host_tools.lab import ntp

    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    try:
        srv = asyncio.run_coroutine_threadsafe(ntp.start("127.0.0.1", 0), loop).result(5)
        port = srv.transport.get_extra_info("sockname")[1]
        out = run(port, "127.0.0.1")
        assert f"CLOCK sntp ({time.gmtime().tm_year}, " in out, out
        assert srv.answered == 1
        assert ntp.answer(b"\x1b" + bytes(47)) is not None          # a version 3 client
        assert ntp.answer(b"\x24" + bytes(47)) is None              # a server's packet
        loop.call_soon_threadsafe(srv.close)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        t.join(5)
