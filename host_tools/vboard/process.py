"""One run of the MicroPython unix port on its own pty: from a reset to the next.

The pty is the interpreter's controlling terminal and stays in raw mode with ISIG on, which
gives board-like Ctrl-C for free: the unix port turns ISIG off while it waits at a prompt
(0x03 is then an ordinary key) and back on while code runs (0x03 then raises
KeyboardInterrupt through SIGINT). NOFLSH keeps input queued behind a Ctrl-C (mpremote sends
"\\r\\x03\\r\\x01" without waiting), and Ctrl-\\ / Ctrl-Z are disabled so stray bytes cannot
kill or stop the interpreter. If the host dies, closing the pty hangs up the interpreter.

posix_spawn (vfork + exec) rather than fork + preexec_fn: safe with threads, and a forked
child would briefly hold copies of this process's fds, e.g. the flock of a serial port that
an in-process client just closed. The pty is opened by path after setsid(), which is how the
child gets it as controlling terminal without running Python code between fork and exec.
"""
from __future__ import annotations

import os
import pty
import shutil
import signal
import termios
import time
import tty
from typing import Sequence

from host_tools.vboard import ptyio


def _configure(fd: int) -> None:
    tty.setraw(fd)
    attr = termios.tcgetattr(fd)
    attr[3] |= termios.ISIG | termios.NOFLSH
    attr[6][termios.VINTR] = 3
    attr[6][termios.VQUIT] = 0
    attr[6][termios.VSUSP] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attr)


class Interpreter:
    def __init__(self, cmd: Sequence[str], env: dict[str, str]) -> None:
        exe = shutil.which(cmd[0], path=env.get("PATH")) or cmd[0]
        master, slave = pty.openpty()
        try:
            _configure(slave)
            actions = [(os.POSIX_SPAWN_OPEN, 0, os.ttyname(slave), os.O_RDWR, 0),
                       (os.POSIX_SPAWN_DUP2, 0, 1), (os.POSIX_SPAWN_DUP2, 0, 2)]
            self.pid = os.posix_spawn(exe, list(cmd), env, file_actions=actions, setsid=True,
                                      resetids=False)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self.fd = master
        self.returncode: int | None = None
        self.pending = bytearray()  # input not yet taken by the tty

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # someone else reaped it: it is gone, cause unknown
                self.returncode = -255
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.returncode

    def busy(self) -> bool:
        """On a CPU now (state R), rather than in a blocking call."""
        try:
            with open(f"/proc/{self.pid}/stat", "rb") as f:
                return f.read().rsplit(b") ", 1)[1][:1] == b"R"
        except (OSError, IndexError):
            return False

    def read(self) -> bytes | None:
        """Output; None once every holder of the pty is gone (the process ended)."""
        return ptyio.read(self.fd, None)

    def write(self, data: bytes) -> None:
        self.pending += data
        self.flush()

    def flush(self) -> None:
        ptyio.flush(self.fd, self.pending, any_error_drops=True)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.returncode is not None:
            return  # reaped: its pid may belong to someone else by now
        try:
            os.killpg(self.pid, sig)  # its session: os.system() children too
        except ProcessLookupError:
            pass

    def stop(self, timeout: float = 2.0) -> int:
        """End the process (SIGTERM, then SIGKILL) and reap it."""
        if self.poll() is None:
            self.kill(signal.SIGTERM)
            if self.wait(timeout) is None:
                self.kill(signal.SIGKILL)
                self.wait(timeout)
        return self.returncode if self.returncode is not None else -signal.SIGKILL

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
