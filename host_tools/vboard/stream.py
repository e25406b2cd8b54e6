"""Byte-stream helpers between the MicroPython unix port and the virtual board's serial side.

- `SentinelSplitter` picks the NUL-framed markers that board_main.py prints ("up", "ready",
  "exit:N") out of the interpreter's output.
- `CrLf` turns lone LF into CRLF: the unix port leaves that to a terminal, a board's UART
  does it itself, and mpremote/terminals expect board output.
- `ReplMode` follows whether the interpreter sits in the friendly or the raw REPL, from the
  banners it prints, so a soft reset can come back in the same mode as on a board.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

SENTINEL_PREFIX = b"\x00vboard:"
_MAX_SENTINEL = 64  # longer than any marker we print: past this it was ordinary output


@dataclass(frozen=True)
class Sentinel:
    name: str
    arg: str | None = None


class SentinelSplitter:
    """Incremental: feed() returns output bytes and Sentinel items in stream order."""

    def __init__(self) -> None:
        self._held = b""

    def feed(self, data: bytes) -> list[bytes | Sentinel]:
        buf, self._held = self._held + data, b""
        out: list[bytes | Sentinel] = []
        i = 0
        while i < len(buf):
            j = buf.find(SENTINEL_PREFIX, i)
            if j < 0:
                keep = _partial_prefix_at_end(buf, i)
                if keep > i:
                    out.append(buf[i:keep])
                self._held = buf[keep:]
                break
            if j > i:
                out.append(buf[i:j])
            end = buf.find(b"\x00", j + len(SENTINEL_PREFIX))
            if end < 0:
                if len(buf) - j > _MAX_SENTINEL:
                    out.append(buf[j:j + 1])
                    i = j + 1
                    continue
                self._held = buf[j:]
                break
            body = buf[j + len(SENTINEL_PREFIX):end].decode("ascii", "replace")
            name, _, arg = body.partition(":")
            out.append(Sentinel(name, arg or None))
            i = end + 1
        return out

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return held


def _partial_prefix_at_end(buf: bytes, start: int) -> int:
    """Index where a possible beginning of SENTINEL_PREFIX starts at the end of buf."""
    for n in range(min(len(SENTINEL_PREFIX) - 1, len(buf) - start), 0, -1):
        if buf.endswith(SENTINEL_PREFIX[:n]):
            return len(buf) - n
    return len(buf)


_LONE_LF = re.compile(rb"(?<!\r)\n")


class CrLf:
    def __init__(self) -> None:
        self._last_cr = False

    def feed(self, data: bytes) -> bytes:
        if not data:
            return data
        head = b""
        if self._last_cr and data[:1] == b"\n":
            head, data = b"\n", data[1:]
        out = head + _LONE_LF.sub(b"\r\n", data)
        self._last_cr = out.endswith(b"\r")
        return out


RAW_MARK = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_MARK = b'Type "help()" for more information.\r\n'
FRIENDLY, RAW = "friendly", "raw"


class ReplMode:
    def __init__(self, mode: str = FRIENDLY) -> None:
        self.mode = mode
        self._tail = b""

    def reset(self, mode: str) -> None:
        self.mode, self._tail = mode, b""

    def feed(self, data: bytes) -> str:
        buf = self._tail + data
        raw, friendly = buf.rfind(RAW_MARK), buf.rfind(FRIENDLY_MARK)
        if raw > friendly:
            self.mode = RAW
        elif friendly > raw:
            self.mode = FRIENDLY
        self._tail = buf[-(max(len(RAW_MARK), len(FRIENDLY_MARK)) - 1):]
        return self.mode
