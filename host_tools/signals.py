"""SIGTERM and SIGHUP as SystemExit, so that `with` blocks and atexit handlers clean up (the
lab's namespaces and servers) when a long run is stopped from outside; and whether a process
is alive (signal 0)."""
from __future__ import annotations

import os
import signal
import threading
from typing import Any, Callable


def exit_on_signals(signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP)) -> Callable[[], None]:
    """Turn SIGTERM/SIGHUP into SystemExit in the main thread, so `with` blocks and atexit
    clean up; handlers someone else installed are left alone. Returns an undo function."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    for s in signals:
        cur = signal.getsignal(s)
        if cur in (signal.SIG_DFL, None):
            old[s] = cur
            signal.signal(s, handler)

    def undo() -> None:
        for s, h in old.items():
            if signal.getsignal(s) is handler:
                signal.signal(s, h if h is not None else signal.SIG_DFL)
    return undo


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (one of another user's counts); pid 0 or less never does
    (kill() would signal a process group)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
