"""Non-blocking reads and writes on a pty master, shared by the board's serial endpoint
(endpoints.py) and the MicroPython process (process.py). EIO on a master means nobody holds
the other side any more."""
from __future__ import annotations

import errno
import os


def read(fd: int, at_eof: bytes | None) -> bytes | None:
    """What `fd` has: b"" for nothing yet, None once the other side is gone, `at_eof` for an
    empty read."""
    try:
        return os.read(fd, 4096) or at_eof
    except BlockingIOError:
        return b""
    except OSError as e:
        if e.errno == errno.EIO:
            return None
        raise


def flush(fd: int, pending: bytearray, any_error_drops: bool) -> None:
    """Write out and remove from `pending` what `fd` takes now. When the other side is gone
    (EIO, or any OSError with any_error_drops) the rest is dropped."""
    while pending:
        try:
            n = os.write(fd, pending)
        except BlockingIOError:
            return
        except OSError as e:
            if any_error_drops or e.errno == errno.EIO:
                pending.clear()
                return
            raise
        del pending[:n]
