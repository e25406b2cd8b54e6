"""A server's thread and its start handshake: the thread sets itself up (enters its
namespace, binds its socket) and says so; start() waits for that and raises what the set-up
raised, in the caller's thread, rather than leaving a dead thread and a traceback on stderr.

    self._runner = ServerThread("TFTP server")
    def start(self, timeout=5.0):
        self._runner.start(self._main, "tftp", timeout)
    def stop(self):
        self._stop.set()                    # the server's own signal to its loop
        self._runner.join()
    def _main(self):
        with self._runner:                  # what the set-up raises goes to start()
            s = socket.socket(...); s.bind(...)
        if self._runner.error is not None:
            return
        ...                                 # serve until self._stop
"""
from __future__ import annotations

import threading
from types import TracebackType
from typing import Any, Callable

Spawn = Callable[..., threading.Thread]


def _daemon(target: Callable[[], Any], name: str) -> threading.Thread:
    t = threading.Thread(target=target, name=name, daemon=True)
    t.start()
    return t


class ServerThread:
    def __init__(self, what: str) -> None:
        self.what = what                    # "TFTP server": in "... did not start"
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()

    def start(self, target: Callable[[], Any], name: str, timeout: float,
              spawn: Spawn = _daemon) -> None:
        """Run target in a thread (spawn(target, name=...): a daemon thread by default) and
        wait for its set-up. Raises RuntimeError when the thread did not say within timeout,
        else what the set-up raised (the thread has ended then)."""
        self._ready.clear()
        self.error = None
        self.thread = spawn(target, name=name)
        if not self._ready.wait(timeout):
            raise RuntimeError(f"{self.what} did not start")
        if self.error is not None:
            self.thread = None
            raise self.error

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def join(self, timeout: float = 5.0) -> None:
        """Wait for the thread to end (once its server has told it to)."""
        t, self.thread = self.thread, None
        if t is not None:
            t.join(timeout=timeout)

    # the thread's side: `with runner:` around its set-up
    def __enter__(self) -> "ServerThread":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> bool:
        self.error = error
        self._ready.set()
        return True                         # start() raises it, in the caller's thread
