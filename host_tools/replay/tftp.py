"""The TFTP read transfers of a capture, put back together (RFC 1350, 2347-2349, 7440).

A transfer starts with a read request to a TFTP port (69); the server answers from a port of
its own (its TID) to the client's port. The file is the DATA blocks in block order, with the
block size the OACK negotiated (512 without one). Duplicates (retransmissions, a window sent
again) count once; a later copy that differs is counted as a conflict and the first kept.
Block numbers past 65535 are followed (roll-over to 0). A transfer is *complete* when every
block from 1 up to the first short block is present, none was cut by the capture's snap
length, and a negotiated tsize agrees; only complete transfers give a file.

    asm = Assembler()
    for dg in datagrams: asm.feed(dg)
    for x in asm.transfers: x.file, x.complete, x.content, x.error, x.first_answer_ms
"""
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from typing import Any, Iterable

from host_tools.replay.pcap import Datagram

RRQ, WRQ, DATA, ACK, ERROR, OACK = 1, 2, 3, 4, 5, 6
TFTP_PORT = 69


@dataclass
class Transfer:
    client: str
    client_port: int
    server: str
    file: str
    mode: str
    requested: dict[str, str]                  # options in the RRQ
    rrq_ts: list[float] = field(default_factory=list)
    server_port: int | None = None             # the server's TID
    first_answer_ts: float | None = None
    answer: str | None = None                  # 'oack', 'data', 'error'
    oack: dict[str, str] | None = None
    blocks: dict[int, bytes] = field(default_factory=dict)
    cut_blocks: set[int] = field(default_factory=set)   # blocks shortened by the snap length
    duplicates: int = 0
    conflicts: int = 0
    error: dict[str, Any] | None = None        # {"code", "msg", "by": "server"|"client"}
    last_ts: float = 0.0
    _high: int = 0                             # highest absolute block seen

    # -- negotiated values --------------------------------------------------------------
    @property
    def negotiated_blksize(self) -> int:
        try:
            return int((self.oack or {}).get("blksize", 512))
        except ValueError:
            return 512

    @property
    def blksize(self) -> int:
        """The block size in force; a DATA block longer than the negotiated one (an OACK
        missing from the capture) raises it to that length."""
        longest = max((len(b) for b in self.blocks.values()), default=0)
        return max(self.negotiated_blksize, longest)

    @property
    def tsize(self) -> int | None:
        v = (self.oack or {}).get("tsize")
        return int(v) if v is not None and v.isdigit() else None

    @property
    def windowsize(self) -> int:
        v = (self.oack or {}).get("windowsize", "1")
        return int(v) if v.isdigit() else 1

    # -- the file -------------------------------------------------------------------------
    @property
    def last_block(self) -> int | None:
        size = self.blksize
        short = [n for n, b in self.blocks.items() if len(b) < size and n not in self.cut_blocks]
        return min(short) if short else None

    @property
    def expected_blocks(self) -> int | None:
        """How many blocks the file has: up to the short one, or from tsize."""
        last = self.last_block
        if last is not None:
            return last
        if self.tsize is not None:
            return self.tsize // self.blksize + 1
        return None

    @property
    def missing_blocks(self) -> list[int]:
        """Blocks not (intact) in the capture, up to the last one when it is known, else up
        to the highest one seen."""
        top = self.expected_blocks or self._high
        return [n for n in range(1, top + 1) if n not in self.blocks or n in self.cut_blocks]

    @property
    def complete(self) -> bool:
        last = self.last_block
        if last is None or self.missing_blocks:
            return False
        return self.tsize is None or self.tsize == len(self._join(last))

    @property
    def content(self) -> bytes | None:
        return self._join(self.last_block) if self.complete else None  # type: ignore[arg-type]

    def _join(self, last: int) -> bytes:
        return b"".join(self.blocks[n] for n in range(1, last + 1))

    @property
    def sha256(self) -> str | None:
        c = self.content
        return hashlib.sha256(c).hexdigest() if c is not None else None

    @property
    def status(self) -> str:
        """complete, error N (the server's ERROR), unanswered, refused by client (an ERROR
        before any data, e.g. to the OACK) or incomplete (data stopped: the server fell
        silent or the client gave up; `error` says which)."""
        if self.complete:
            return "complete"
        if self.error and self.error["by"] == "server":
            return f"error {self.error['code']}"
        if self.answer is None:
            return "unanswered"
        if self.error and not self.blocks:
            return "refused by client"
        return "incomplete"

    # -- timing ---------------------------------------------------------------------------
    @property
    def retransmitted_rrqs(self) -> int:
        """Read requests the server left unanswered before its first answer."""
        if self.first_answer_ts is None:
            return len(self.rrq_ts)
        return len([t for t in self.rrq_ts if t <= self.first_answer_ts]) - 1

    @property
    def silent_ms(self) -> float | None:
        """How long the server left this file's read requests unanswered, from the first:
        halfway between the last request it ignored and the one it answered (it woke up in
        between); None when it answered the first (or never answered)."""
        if self.first_answer_ts is None:
            return None
        before = [t for t in self.rrq_ts if t <= self.first_answer_ts]
        if len(before) < 2:
            return None
        return round(((before[-2] + before[-1]) / 2 - before[0]) * 1000, 3)

    @property
    def first_answer_ms(self) -> float | None:
        """Time from the last read request before the first answer to that answer: how long
        the server took to answer."""
        if self.first_answer_ts is None:
            return None
        before = [t for t in self.rrq_ts if t <= self.first_answer_ts]
        return round((self.first_answer_ts - before[-1]) * 1000, 3) if before else None

    @property
    def duration_ms(self) -> float:
        return round((self.last_ts - self.rrq_ts[0]) * 1000, 3)

    def summary(self) -> dict[str, Any]:
        c = self.content
        return {"file": self.file, "client": f"{self.client}:{self.client_port}",
                "server": self.server, "status": self.status,
                "size": len(c) if c is not None else None, "sha256": self.sha256,
                "blksize": self.blksize, "windowsize": self.windowsize, "tsize": self.tsize,
                "options": self.oack, "blocks": len(self.blocks),
                "missing_blocks": self.missing_blocks[:20], "duplicates": self.duplicates,
                "conflicts": self.conflicts, "rrqs": len(self.rrq_ts),
                "first_answer_ms": self.first_answer_ms, "duration_ms": self.duration_ms,
                "error": self.error}


def parse_request(payload: bytes) -> tuple[int, str, str, dict[str, str]] | None:
    """(opcode, file, mode, options) of an RRQ/WRQ, None when malformed."""
    if len(payload) < 4:
        return None
    op = struct.unpack("!H", payload[:2])[0]
    if op not in (RRQ, WRQ):
        return None
    fields = payload[2:].split(b"\0")
    if len(fields) < 3 or fields[-1] != b"":
        return None
    fields = fields[:-1]
    if len(fields) % 2:
        fields = fields[:-1]             # a dangling option name: keep what is sound
    name = fields[0].decode("utf-8", "replace")
    mode = fields[1].decode("ascii", "replace").lower()
    opts = {fields[i].decode("ascii", "replace").lower(): fields[i + 1].decode("ascii", "replace")
            for i in range(2, len(fields), 2)}
    return op, name, mode, opts


def _parse_oack(payload: bytes) -> dict[str, str]:
    f = payload[2:].split(b"\0")
    f = f[:len(f) - len(f) % 2]
    return {f[i].decode("ascii", "replace").lower(): f[i + 1].decode("ascii", "replace")
            for i in range(0, len(f) - 1, 2) if f[i]}


class Assembler:
    def __init__(self, ports: Iterable[int] = (TFTP_PORT,)) -> None:
        self.ports = set(ports)
        self.transfers: list[Transfer] = []
        self.write_requests = 0
        self._open: dict[tuple[str, int, str], Transfer] = {}   # (client, port, server)

    def feed(self, dg: Datagram) -> None:
        if dg.dport in self.ports:
            req = parse_request(dg.payload)
            if req is not None:
                self._request(dg, *req)
                return
        x = self._open.get((dg.dst, dg.dport, dg.src))
        if x is not None and self._from_server(x, dg):
            return
        x = self._open.get((dg.src, dg.sport, dg.dst))
        if x is not None and x.server_port is not None and dg.dport == x.server_port:
            self._from_client(x, dg)

    def _request(self, dg: Datagram, op: int, name: str, mode: str, opts: dict[str, str]) -> None:
        if op == WRQ:
            self.write_requests += 1
            return
        key = (dg.src, dg.sport, dg.dst)
        x = self._open.get(key)
        if x is not None and x.file == name and x.blocks == {} and x.error is None:
            x.rrq_ts.append(dg.ts)              # a retransmitted read request
            x.last_ts = dg.ts
            return
        x = Transfer(dg.src, dg.sport, dg.dst, name, mode, opts, rrq_ts=[dg.ts], last_ts=dg.ts)
        self._open[key] = x
        self.transfers.append(x)

    def _from_server(self, x: Transfer, dg: Datagram) -> bool:
        if len(dg.payload) < 2:
            return False
        if x.server_port is None:
            x.server_port = dg.sport
        elif dg.sport != x.server_port:
            return False                        # another TID: not this transfer
        op = struct.unpack("!H", dg.payload[:2])[0]
        first = x.first_answer_ts is None
        if op == OACK:
            if x.oack is None:
                x.oack = _parse_oack(dg.payload)
            kind = "oack"
        elif op == DATA and len(dg.payload) >= 4:
            self._data(x, dg)
            kind = "data"
        elif op == ERROR and len(dg.payload) >= 4:
            code = struct.unpack("!H", dg.payload[2:4])[0]
            msg = dg.payload[4:].split(b"\0")[0].decode("utf-8", "replace")
            x.error = {"code": code, "msg": msg, "by": "server"}
            kind = "error"
        else:
            return True
        if first:
            x.first_answer_ts = dg.ts
            x.answer = kind
        x.last_ts = dg.ts
        return True

    def _data(self, x: Transfer, dg: Datagram) -> None:
        n16 = struct.unpack("!H", dg.payload[2:4])[0]
        delta = (n16 - x._high) & 0xFFFF
        if delta > 0x8000:
            delta -= 0x10000
        n = x._high + delta
        if n < 1:
            return
        x._high = max(x._high, n)
        data = dg.payload[4:]
        if n in x.blocks and n not in x.cut_blocks:
            x.duplicates += 1
            if x.blocks[n] != data and not dg.truncated:
                x.conflicts += 1
            return
        x.blocks[n] = data
        if dg.truncated:
            x.cut_blocks.add(n)
        else:
            x.cut_blocks.discard(n)

    def _from_client(self, x: Transfer, dg: Datagram) -> None:
        if len(dg.payload) >= 4 and struct.unpack("!H", dg.payload[:2])[0] == ERROR:
            code = struct.unpack("!H", dg.payload[2:4])[0]
            msg = dg.payload[4:].split(b"\0")[0].decode("utf-8", "replace")
            if x.error is None:
                x.error = {"code": code, "msg": msg, "by": "client"}
        x.last_ts = dg.ts


def transfers(datagrams: Iterable[Datagram], ports: Iterable[int] = (TFTP_PORT,)) -> list[Transfer]:
    asm = Assembler(ports)
    for dg in datagrams:
        asm.feed(dg)
    return asm.transfers
