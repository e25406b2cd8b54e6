"""`phonelab repl` (mpremote's terminal loop with event lines rendered) and `phonelab status`
(the agent's state and links from its event stream), on virtual boards."""
from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_tools.events import parse_line
from host_tools.repl import EventLineFilter
from host_tools.status import AgentStatus
from host_tools.vboard import VirtualBoard

BIN = Path(sys.executable).parent
EV = b'{"t":1500,"ev":"state","state":"PRIMARY","prev":"PROVISION"}'


def run_filter(chunks: list[bytes], **kw: object) -> list[bytes]:
    out: list[bytes] = []
    f = EventLineFilter(out.append, **kw)  # type: ignore[arg-type]
    for c in chunks:
        f.feed(c)
    f.flush()
    return out


def test_filter_renders_event_lines_and_never_holds_prompts():
    text = b">>> print(1)\r\n1\r\n" + EV + b"\r\n>>> "
    whole = b"".join(run_filter([text]))
    assert b'{"t"' not in whole
    assert b"    1.500s state            state=PRIMARY prev=PROVISION\r\n>>> " in whole
    assert whole.startswith(b">>> print(1)\r\n1\r\n")
    # byte by byte: the prompt and echo go out at once, only the event line waits
    out = run_filter([bytes([b]) for b in text])
    assert out[0] == b">" and out[-1] == b" "
    assert b"".join(out) == whole
    # not events: other JSON, a broken event, a '{' mid-line, a huge line
    for line in (b'{"x":1}', b'{"t":1,"ev":', b'a {"t":1,"ev":"x"}', b'{"t":' + b"9" * 9000):
        assert b"".join(run_filter([line + b"\r\n"])) == line + b"\r\n"
    both = b"".join(run_filter([EV + b"\n"], keep_raw=True))
    assert both.startswith(EV) and b"state=PRIMARY" in both


def test_status_follows_failover():
    st = AgentStatus()
    lines = [
        '{"t":10,"ev":"boot","board":"virtual","device":"SEP00112233AABB"}',
        '{"t":20,"ev":"state","state":"PROVISION","prev":"BOOT"}',
        '{"t":900,"ev":"registered","link":"primary","cm":"cucm1","host":"203.0.113.10","port":2443}',
        '{"t":950,"ev":"standby_up","host":"192.0.2.1","port":2443,"ms":40}',
        '{"t":951,"ev":"state","state":"PRIMARY","prev":"PROVISION"}',
        '{"t":5000,"ev":"primary_lost","reason":"keepalive timeout"}',
        '{"t":5100,"ev":"registered","link":"srst","host":"192.0.2.1","port":2443,"over_standby":true}',
        '{"t":5101,"ev":"state","state":"FALLBACK","prev":"PRIMARY"}',
    ]
    for line in lines:
        e = parse_line(line)
        assert e is not None
        st.update(e)
    assert st.state == "FALLBACK" and st.device == "SEP00112233AABB"
    assert st.links["primary"].mode == "down" and st.links["primary"].reason == "keepalive timeout"
    assert st.links["srst"].mode == "registered" and st.links["srst"].host == "192.0.2.1"
    text = "\n".join(st.lines())
    assert "state: FALLBACK" in text and "srst     registered 192.0.2.1:2443" in text


# -- on virtual boards --------------------------------------------------------------------------
AGENT = """\
import time
def ev(t, name, **kw):
    kw['t'] = t
    kw['ev'] = name
    print('{"t":%d,"ev":"%s"' % (t, name) + ''.join(',"%s":%s' % (k, repr(v).replace("'", '"'))
          for k, v in kw.items() if k not in ('t', 'ev')) + '}')
ev(1, 'boot', board='virtual', device='SEP00112233AABB')
ev(2, 'state', state='PROVISION', prev='BOOT')
ev(300, 'registered', link='primary', cm='cucm1', host='127.0.0.10', port=2443)
ev(310, 'standby_up', host='127.0.0.20', port=2443)
ev(311, 'state', state='PRIMARY', prev='PROVISION')
n = 0
while True:
    time.sleep_ms(100)
    n += 1
    if CHATTY and n % 5 == 0:
        ev(311 + n * 100, 'state', state='PRIMARY', prev='PRIMARY')
"""


def make_board(folder: Path, chatty: bool | None) -> VirtualBoard:
    folder.mkdir(parents=True)
    (folder / "board.json").write_text(json.dumps({"name": "virtual", "chip": "unix",
                                                    "network": {"kind": "HOST"}}))
    if chatty is not None:
        (folder / "main.py").write_text(f"CHATTY = {chatty}\n" + AGENT)
    return VirtualBoard(folder, tcp_port=0)


def phonelab(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "phonelab"), *args], capture_output=True, text=True,
                          timeout=timeout)


def test_status_of_a_running_agent_from_its_events(tmp_path):
    with make_board(tmp_path / "b", chatty=False) as b:
        r = phonelab("status", "--port", b.pty_path, "--reset", "--listen", "2")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "agent on" in r.stdout and ": running" in r.stdout
        assert "state: PRIMARY   (SEP00112233AABB on virtual)" in r.stdout
        assert "primary  registered 127.0.0.10:2443 cm=cucm1" in r.stdout
        assert "srst     standby    127.0.0.20:2443" in r.stdout
        # without --reset a quiet, stable agent is "probably running": nothing is disturbed
        boots = b.boots
        r = phonelab("status", "--port", b.pty_path, "--listen", "1", "--json")
        report = json.loads(r.stdout)
        assert r.returncode == 0 and report["running"] is None and "quiet" in report["note"]
        assert b.boots == boots


def test_status_of_a_chatty_agent_and_of_an_idle_board(tmp_path):
    with make_board(tmp_path / "chatty", chatty=True) as b:
        r = phonelab("status", "--port", b.url, "--listen", "1.5", "--json")
        report = json.loads(r.stdout)
        assert report["running"] is True and report["status"]["state"] == "PRIMARY"
    with make_board(tmp_path / "idle", chatty=None) as b:
        r = phonelab("status", "--port", b.pty_path, "--listen", "0.5")
        assert r.returncode == 3, r.stdout + r.stderr
        assert "not running" in r.stdout and "board profile: virtual" in r.stdout
    r = phonelab("status", "--port", "/dev/ttyUSB-phonelab-none")
    assert r.returncode == 1 and "cannot open" in r.stderr


def read_until(fd: int, want: bytes, timeout: float = 15) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while want not in got:
        left = deadline - time.monotonic()
        assert left > 0, f"no {want!r} in {got[-400:]!r}"
        if select.select([fd], [], [], min(left, 0.2))[0]:
            try:
                got += os.read(fd, 4096)
            except OSError:
                break
    return got


@pytest.mark.parametrize("via", ["pty", "socket"])
def test_repl_renders_events_and_passes_the_rest(tmp_path, via):
    with make_board(tmp_path / "b", chatty=None) as b:
        port = b.pty_path if via == "pty" else b.url
        pid, fd = pty.fork()   # the REPL needs a terminal on its side
        if pid == 0:
            os.execv(str(BIN / "phonelab"), [str(BIN / "phonelab"), "repl", "--port", port])
        try:
            read_until(fd, b"Ctrl-X leaves")
            os.write(fd, b"\r")
            read_until(fd, b">>> ")
            os.write(fd, b"print('" + EV + b"'); print(6*7)\r")
            out = read_until(fd, b"42")
            assert b"1.500s state            state=PRIMARY prev=PROVISION" in out
            assert b'\n{"t":1500' not in out   # the event line itself is not shown
            os.write(fd, b"\x1d")             # Ctrl-]: leave
            _, status = os.waitpid(pid, 0)
            assert os.WEXITSTATUS(status) == 0
        finally:
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            os.close(fd)
