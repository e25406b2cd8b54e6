"""JSON-RPC with a running Kamailio over its FIFO (the jsonrpcs module, transport 2).

    rpc = KamRpc(run_dir / "rpc.fifo")
    rpc.call("ul.dump")             # {"Domains": [...]}
    rpc.call("core.version")

The request goes into Kamailio's FIFO as one JSON document naming a reply FIFO, which the
client makes beside it (Kamailio writes replies only into its `fifo_reply_dir`, and only to
names without '.' or '/'; the folder's path and the name together in at most 127 characters,
see kamailio_cfg.RPC_PATH_MAX). A FIFO is a file, not a socket: the lab reaches a Kamailio in
another network namespace with no way in, and the answer has no size limit (a datagram
socket's would cut ul.dump of a large fleet).
"""
from __future__ import annotations

import itertools
import json
import os
import select
import threading
import time
from pathlib import Path
from typing import Any

_ids = itertools.count(1)
REPLY_NAME_MAX = 32        # "reply_PID_N": a pid (at most 7 digits), a count below 10**9


class KamRpcError(RuntimeError):
    pass


class KamRpc:
    def __init__(self, fifo: str | Path, timeout: float = 5.0) -> None:
        self.fifo = Path(fifo).resolve()   # a link to it (the run folder's): replies beside it
        self.timeout = timeout
        self._lock = threading.Lock()

    def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        """The method's result; KamRpcError for an error answer, no answer, no server."""
        timeout = self.timeout if timeout is None else timeout
        n = next(_ids) % 10**9
        name = f"reply_{os.getpid()}_{n}"
        reply = self.fifo.parent / name
        req: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": n, "reply_name": name}
        if params:
            req["params"] = list(params)
        with self._lock:       # one request at a time: the answers stay in order in the log
            os.mkfifo(reply, 0o600)
            try:
                # opened first (non-blocking) so that Kamailio's open for writing succeeds
                fd = os.open(reply, os.O_RDONLY | os.O_NONBLOCK)
                try:
                    self._send(json.dumps(req).encode() + b"\n")
                    data = _read_all(fd, timeout, method)
                finally:
                    os.close(fd)
            finally:
                reply.unlink(missing_ok=True)
        try:
            ans = json.loads(data)
        except ValueError as e:
            raise KamRpcError(f"{method}: not JSON: {data[:200]!r}") from e
        if "error" in ans:
            err = ans["error"]
            raise KamRpcError(f"{method}: {err.get('code')} {err.get('message')}")
        return ans.get("result")

    def _send(self, data: bytes) -> None:
        try:
            fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            raise KamRpcError(f"no RPC FIFO at {self.fifo}: Kamailio is not running") from None
        except OSError as e:       # ENXIO: nobody reads it
            raise KamRpcError(f"Kamailio does not read {self.fifo}: {e.strerror}") from None
        try:
            os.write(fd, data)     # one request, under PIPE_BUF: written whole
        finally:
            os.close(fd)


def _read_all(fd: int, timeout: float, method: str) -> bytes:
    """Everything until the writer closes. A FIFO no writer has opened yet reads as EOF, so
    EOF counts only after data (Kamailio writes the whole answer, then closes)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    chunks: list[bytes] = []
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            raise KamRpcError(f"{method}: no answer within {timeout} s")
        if not poller.poll(max(1, int(left * 1000))):
            continue
        try:
            d = os.read(fd, 1 << 16)
        except BlockingIOError:
            continue
        if d:
            chunks.append(d)
        elif chunks:
            return b"".join(chunks)
        else:
            time.sleep(0.005)      # EOF before any writer (POLLHUP of a reopened FIFO)
