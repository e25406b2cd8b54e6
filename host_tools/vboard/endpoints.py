"""The serial side of the virtual board: a pty (looks like /dev/ttyUSB0 to pyserial) and a TCP
listener for `socket://HOST:PORT`. All fds are non-blocking; the board's pump thread drives them.

Output written while nobody is attached is dropped, like a UART with no one listening: a client
that connects later must not read minutes-old console output.
"""
from __future__ import annotations

import errno
import os
import pty
import select
import socket
import tty

from host_tools.vboard import ptyio
from host_tools.vboard.errors import VBoardError

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only
_MAX_PENDING = 1 << 20  # per client; a reader that stalls this long loses the oldest output


class _Outbox:
    def __init__(self) -> None:
        self.pending = bytearray()

    def queue(self, data: bytes) -> None:
        self.pending += data
        if len(self.pending) > _MAX_PENDING:
            del self.pending[:len(self.pending) - _MAX_PENDING]


class PtyEndpoint(_Outbox):
    def __init__(self) -> None:
        super().__init__()
        self.master, slave = pty.openpty()
        self.path = os.ttyname(slave)
        tty.setraw(slave)  # bytes pass untouched until a client configures the port itself
        os.close(slave)    # with no slave open the master reports POLLHUP: "nobody attached"
        os.set_blocking(self.master, False)
        self._poll = select.poll()
        self._poll.register(self.master, select.POLLIN)

    def attached(self) -> bool:
        return not any(ev & select.POLLHUP for _, ev in self._poll.poll(0))

    def read(self) -> bytes | None:
        """Client input; None when the client went away."""
        return ptyio.read(self.master, b"")

    def flush(self) -> None:
        ptyio.flush(self.master, self.pending, any_error_drops=False)

    def close(self) -> None:
        os.close(self.master)


class TcpClient(_Outbox):
    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> bytes | None:
        try:
            data = self.sock.recv(4096)
        except BlockingIOError:
            return b""
        except OSError:
            return None
        # pyserial's socket:// leaves Nagle on: without an immediate ACK from us each small
        # write of mpremote's raw-REPL protocol waits for our delayed ACK (~40 ms).
        if data and _QUICKACK is not None:
            try:
                self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass
        return data or None

    def flush(self) -> bool:
        """False when the client went away."""
        while self.pending:
            try:
                n = self.sock.send(self.pending)
            except BlockingIOError:
                return True
            except OSError:
                return False
            del self.pending[:n]
        return True

    def close(self) -> None:
        self.sock.close()


class TcpListener:
    def __init__(self, host: str, port: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # SO_REUSEADDR lets a restarted vboard take its port back from TIME_WAIT; a port with
        # a live listener still fails with EADDRINUSE on Linux.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            sock.close()
            if e.errno == errno.EADDRINUSE:
                raise VBoardError(
                    f"TCP port {port} on {host} is already in use (another vboard or program); "
                    f"choose another with --port N, or --port 0 for a free one") from None
            raise VBoardError(f"cannot listen on {host}:{port}: {e.strerror}") from None
        sock.listen(4)
        sock.setblocking(False)
        self.sock = sock
        self.host, self.port = sock.getsockname()[:2]

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept(self) -> TcpClient | None:
        try:
            conn, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return None
        return TcpClient(conn)

    def close(self) -> None:
        self.sock.close()
