"""The virtual board, driven by the real mpremote CLI (and pyserial) like a board on a cable."""
from __future__ import annotations

import errno
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from host_tools.vboard import VBoardError, VirtualBoard
from host_tools.vboard import stream

BIN = Path(sys.executable).parent
MPREMOTE = str(BIN / "mpremote")


def mpremote(port: str, *args: str, timeout: float = 20, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([MPREMOTE, "connect", port, *args], capture_output=True, text=True,
                       timeout=timeout)
    if check:
        assert r.returncode == 0, f"mpremote {' '.join(args)}: {r.stdout}{r.stderr}"
    return r


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(") ", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "board"
    d.mkdir()
    return d


@pytest.fixture
def board(folder: Path):
    with VirtualBoard(folder, heap="96K", tcp_port=0) as b:
        yield b


class Serial:
    """pyserial on the board's pty, with reads that always end."""

    def __init__(self, port: str) -> None:
        self.s = serial.Serial(port, 115200, timeout=0.1)
        self.seen = b""

    def send(self, data: bytes) -> None:
        self.s.write(data)

    def expect(self, what: bytes, timeout: float = 10) -> bytes:
        deadline = time.monotonic() + timeout
        while what not in self.seen:
            assert time.monotonic() < deadline, f"no {what!r} in {self.seen[-300:]!r}"
            self.seen += self.s.read(256)
        before, _, self.seen = self.seen.partition(what)
        return before

    def close(self) -> None:
        self.s.close()


def talk(port: str, *steps: tuple[bytes | float, ...]) -> None:
    """A dialogue on the board's pty: each step sends its first item, then expects each
    bytes item in turn (a number: wait that many seconds instead)."""
    s = Serial(port)
    try:
        for send, *then in steps:
            assert isinstance(send, bytes)
            s.send(send)
            for x in then:
                if isinstance(x, bytes):
                    s.expect(x)
                else:
                    time.sleep(x)
    finally:
        s.close()


# -- the byte-stream helpers ----------------------------------------------------------------------
def test_sentinels_split_across_chunks():
    s = stream.SentinelSplitter()
    out = []
    for chunk in (b"boot\n\x00vbo", b"ard:up\x00main\n\x00", b"vboard:exit:3\x00x\x00y"):
        out += s.feed(chunk)
    text = b"".join(i for i in out if isinstance(i, bytes))
    assert [i for i in out if isinstance(i, stream.Sentinel)] == [
        stream.Sentinel("up"), stream.Sentinel("exit", "3")]
    assert text == b"boot\nmain\nx\x00y"


def test_crlf_and_repl_mode():
    c = stream.CrLf()
    assert c.feed(b"a\nb\r") + c.feed(b"\nc\n") == b"a\r\nb\r\nc\r\n"
    m = stream.ReplMode()
    m.feed(b"\r\nraw REPL; CTRL-B to exit\r\n>")
    assert m.mode == stream.RAW
    m.feed(b'MicroPython x\r\nType "help()" for more information.\r\n>>> ')
    assert m.mode == stream.FRIENDLY


# -- mpremote against the board ---------------------------------------------------------------------
def test_cp_ls_run_exec_over_pty_and_socket(board, folder, tmp_path):
    assert board.pty_path.startswith("/dev/pts/") and board.url.startswith("socket://127.0.0.1:")
    assert board.port_for_mpremote == board.pty_path
    src = tmp_path / "hello.py"
    src.write_text("print('hello from', __name__)\nANSWER = 6 * 7\n")
    mpremote(board.pty_path, "fs", "cp", str(src), ":hello.py")
    assert (folder / "hello.py").read_text() == src.read_text()
    mpremote(board.url, "fs", "mkdir", ":lib")
    mpremote(board.url, "fs", "cp", str(src), ":/lib/greet.py")
    assert (folder / "lib" / "greet.py").exists()
    assert "hello.py" in mpremote(board.pty_path, "fs", "ls").stdout
    assert "greet.py" in mpremote(board.url, "fs", "ls", ":/lib").stdout
    assert "hello from __main__" in mpremote(board.pty_path, "run", str(src)).stdout
    out = mpremote(board.url, "exec", "import hello, greet; print(hello.ANSWER, greet.ANSWER)").stdout
    assert "hello from hello" in out and "42 42" in out
    # the board's '/' is the folder; nothing outside it is reachable
    assert mpremote(board.pty_path, "exec", "import os; print(os.getcwd())").stdout.strip() == "/"
    mpremote(board.pty_path, "fs", "cp", str(src), ":../../escape.py")
    assert (folder / "escape.py").exists()
    assert not (folder.parent / "escape.py").exists() and not (folder.parent.parent / "escape.py").exists()
    assert "hello.py" in mpremote(board.pty_path, "fs", "ls", ":/../..").stdout


def test_soft_reset_clears_state_keeps_files(board, folder):
    mpremote(board.pty_path, "exec", "X = 123; open('keep.txt', 'w').write('kept')")
    assert mpremote(board.pty_path, "resume", "exec", "print(X)").stdout.strip() == "123"
    mpremote(board.pty_path, "soft-reset")
    assert board.console().count(b"MPY: soft reboot\r\n") >= 2
    out = mpremote(board.url, "resume", "exec", "print('X' in globals(), open('keep.txt').read())")
    assert out.stdout.strip() == "False kept"
    assert (folder / "keep.txt").read_text() == "kept"


def test_boot_and_main_run_like_a_board(folder):
    (folder / "boot.py").write_text("print('BOOT-RAN')\n")
    (folder / "main.py").write_text("print('MAIN-RAN')\nM = 1\n")
    with VirtualBoard(folder, tcp_port=None) as b:
        b.wait_output(b"MAIN-RAN\r\n")
        assert b.console().index(b"BOOT-RAN") < b.console().index(b"MAIN-RAN")
        # a soft reset in the raw REPL runs boot.py but skips main.py, as on a board
        mark = b.mark()
        mpremote(b.pty_path, "soft-reset")
        assert b"BOOT-RAN" in b.console(mark) and b"MAIN-RAN" not in b.console(mark)
        # Ctrl-D at the friendly prompt: soft reboot, boot.py and main.py
        mark = b.mark()
        talk(b.pty_path, (b"\r\n", b">>> "),
             (b"\x04", b"MPY: soft reboot\r\n", b"MAIN-RAN\r\n", b">>> "),
             (b"print(M + 1)\r", b"2\r\n>>> "))  # main.py's globals are the REPL's, as on a board
        assert b.console(mark).count(b"BOOT-RAN") == 1


def test_resume_keeps_main_state_and_ctrl_c_interrupts_main(folder):
    (folder / "main.py").write_text(
        "import time\nCOUNT = 0\nwhile True:\n    COUNT += 1\n"
        "    if COUNT == 3:\n        print('main running')\n    time.sleep(0.01)\n")
    with VirtualBoard(folder, tcp_port=None) as b:
        b.wait_output(b"main running")
        talk(b.pty_path, (b"\x03", b"KeyboardInterrupt", b">>> "),
             (b"print(COUNT > 0)\r", b"True\r\n>>> "))
        out = mpremote(b.pty_path, "resume", "exec", "print(COUNT > 0)").stdout
        assert out.strip() == "True"


def test_mpremote_interrupts_running_main(folder):
    (folder / "main.py").write_text("import time\nprint('busy')\nwhile True:\n    time.sleep(0.05)\n")
    with VirtualBoard(folder, tcp_port=0) as b:
        b.wait_output(b"busy")
        assert mpremote(b.url, "exec", "print('got in')").stdout.strip() == "got in"


def test_heap_cap_gives_memory_error_and_board_survives(board):
    r = mpremote(board.pty_path, "exec", "b = bytearray(200 * 1024)", check=False)
    assert r.returncode != 0 and "MemoryError" in r.stdout + r.stderr
    out = mpremote(board.pty_path, "resume", "exec", "import gc; gc.collect(); print(len(bytearray(20 * 1024)))")
    assert out.stdout.strip() == "20480"


def test_bigger_heap_allows_more(folder):
    with VirtualBoard(folder, heap="512K", tcp_port=None) as b:
        out = mpremote(b.pty_path, "exec", "print(len(bytearray(200 * 1024)))").stdout
        assert out.strip() == "204800"


def test_exit_code_3_and_reset_are_hard_resets(folder):
    (folder / "main.py").write_text("print('MAIN-RAN')\n")
    with VirtualBoard(folder, tcp_port=None) as b:
        b.wait_output(b"MAIN-RAN")
        mark = b.mark()
        mpremote(b.pty_path, "exec", "import sys; sys.exit(3)")  # phone.platform reset()
        b.wait_output(b"hard reset", since=mark)
        b.wait_output(b"MAIN-RAN", since=mark)
        mark = b.mark()
        b.reset()
        b.wait_output(b"MAIN-RAN", since=mark)
        assert b.boots >= 3


def test_sys_exit_3_in_main_resets_once(folder):
    (folder / "main.py").write_text(
        "import os, sys\nprint('MAIN-RAN')\ntry:\n    os.stat('flag')\nexcept OSError:\n"
        "    open('flag', 'w').close()\n    sys.exit(3)\n")
    with VirtualBoard(folder, tcp_port=None) as b:
        b.wait_output(b"hard reset")
        b.wait_output(b'Type "help()"')
        assert b.console().count(b"MAIN-RAN") == 2 and b.boots == 2


def test_console_tap_events_queue_and_listener(folder):
    (folder / "main.py").write_text(
        "print('{\"t\":5,\"ev\":\"hello\",\"n\":1}')\nprint('not an event')\n")
    got: list[bytes] = []
    with VirtualBoard(folder, tcp_port=0, pty=False, on_output=got.append) as b:
        q = b.subscribe()
        e = b.wait_event("hello")
        assert e["n"] == 1 and e.t == 5
        assert b.pty_path is None and b.port_for_mpremote == b.url
        b.wait_output(b">>> ")
        assert b"not an event" in b"".join(got)
        b.write(b"print('via write')\r")
        data = b""
        deadline = time.monotonic() + 10
        while b"via write" not in data and time.monotonic() < deadline:
            try:
                data += q.get(timeout=0.5)
            except Exception:
                pass
        assert b"via write" in data


def test_prefix_and_env_reach_the_interpreter(folder):
    with VirtualBoard(folder, tcp_port=None, prefix=["env", "VBOARD_A=1"], env={"VBOARD_B": "2"}) as b:
        out = mpremote(b.pty_path, "exec", "import os; print(os.getenv('VBOARD_A'), os.getenv('VBOARD_B'))")
        assert out.stdout.strip() == "1 2"


def test_micropython_env_selects_interpreter(folder, tmp_path, monkeypatch):
    marker = tmp_path / "used"
    wrapper = tmp_path / "mp.sh"
    real = str(BIN / "micropython")
    wrapper.write_text(f"#!/bin/sh\ntouch {marker}\nexec {real} \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("MICROPYTHON", str(wrapper))
    with VirtualBoard(folder, tcp_port=None) as b:
        assert mpremote(b.pty_path, "exec", "print(1)").stdout.strip() == "1"
    assert marker.exists()


def test_port_taken_is_a_clear_error(folder):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        with pytest.raises(VBoardError, match=f"TCP port {port} .* already in use"):
            VirtualBoard(folder, tcp_port=port).start()
        r = subprocess.run([str(BIN / "phonelab"), "vboard", "--dir", str(folder), "--port", str(port)],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 2 and "already in use" in r.stderr
    with pytest.raises(VBoardError):
        VirtualBoard(folder, tcp_port=None, pty=False)


def test_no_leftover_processes_after_stop(folder):
    b = VirtualBoard(folder, tcp_port=0).start()
    try:
        mpremote(b.pty_path, "soft-reset")
        mpremote(b.url, "exec", "print(1)")
        assert len(b.pids) >= 3
        assert alive(b.pid)
    finally:
        b.stop()
    assert not b.running
    assert not [p for p in b.pids if alive(p)]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_runs_until_signal_and_cleans_up(folder, sig):
    from net_lab_support import default_signals
    p = subprocess.Popen([str(BIN / "phonelab"), "vboard", "--dir", str(folder), "--port", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=default_signals)
    try:
        lines = []
        deadline = time.monotonic() + 20
        while not any(line.strip().startswith("socket:") for line in lines):
            assert time.monotonic() < deadline and p.poll() is None, "".join(lines)
            lines.append(p.stdout.readline())
        pty_path = next(line.split()[1] for line in lines if line.strip().startswith("pty:"))
        url = next(line.split()[1] for line in lines if line.strip().startswith("socket:"))
        assert (folder / "board.json").exists()  # the virtual profile, for the firmware
        assert mpremote(pty_path, "exec", "print(2+2)").stdout.strip() == "4"
        assert mpremote(url, "exec", "print(3+3)").stdout.strip() == "6"
        kids = children(p.pid)
        assert kids
        p.send_signal(sig)
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()
    deadline = time.monotonic() + 5
    while any(alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [k for k in kids if alive(k)]


# -- the REPL over the pty ----------------------------------------------------------------------------
def test_friendly_repl_with_pyserial(board):
    talk(board.pty_path,
         (b"\r", b">>> "),
         (b"for i in range(3):\r", b"... "),
         (b"    print('line', i)\r\r", b"line 2\r\n>>> "),
         (b"1/0\r", b"ZeroDivisionError"),
         (b"import time\rwhile True: time.sleep(0.01)\r\r", 0.2),   # the loop runs
         (b"\x03", b"KeyboardInterrupt"),
         (b"print('alive')\r", b"alive\r\n>>> "))


def _read_until(fd: int, what: bytes, seen: bytearray, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while what not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {what!r} in {bytes(seen[-300:])!r}"
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                seen += os.read(fd, 4096)
            except OSError as e:
                if e.errno != errno.EIO:
                    raise
                break
    assert what in seen, bytes(seen[-300:])


def test_mpremote_repl_over_pty(board):
    # mpremote repl wants a terminal: give it one end of our own pty pair.
    master, slave = pty.openpty()
    p = subprocess.Popen([MPREMOTE, "connect", board.pty_path, "repl"],
                         stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    seen = bytearray()
    try:
        _read_until(master, b"Ctrl-] or Ctrl-x to exit", seen)
        os.write(master, b"\r")
        _read_until(master, b">>> ", seen)
        os.write(master, b"print(6 * 7)\r")
        _read_until(master, b"42\r\n>>> ", seen)
        os.write(master, b"\x04")  # Ctrl-D: soft reboot through mpremote
        _read_until(master, b"MPY: soft reboot", seen)
        _read_until(master, b">>> ", seen)
        os.write(master, b"\x1d")  # Ctrl-]: leave mpremote
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
