"""The lab's TFTP server (read requests only) with fault injection.

    srv = TftpServer(root, host="192.0.2.1", port=69, netns=srv_ns,
                     faults=Faults(loss=0.2, seed=7), log_path=tmp / "tftp.jsonl")
    with srv:                     # start() binds (inside the namespace when given)
        ...
    srv.log                       # access log entries (also JSON lines in log_path)

Serves files under `root`. A name holding `SEP<12 hex digits>` (SEP<MAC>.cnf.xml,
CTLSEP<MAC>.tlv, ...) is served from root/<MAC>/ when that file exists there, else from root.
Options (RFC 2347/2348/2349/7440): blksize, tsize, timeout, windowsize; unknown options are
not acknowledged. blksize: never more than asked nor than one unfragmented datagram to the
client carries (path_blksize); under 8 not acknowledged (512, as tftp-hpa). Faults: see `Faults`. Each transfer runs in its own thread with its own
socket (its TID), as RFC 1350 asks.
"""
from __future__ import annotations

import json
import random
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_tools.lab import netns as _netns
from host_tools.lab.serverthread import ServerThread

RRQ, WRQ, DATA, ACK, ERROR, OACK = 1, 2, 3, 4, 5, 6
MIN_BLKSIZE, MAX_BLKSIZE = 8, 65464           # RFC 2348
IP_MTU = getattr(socket, "IP_MTU", 14)       # Linux <linux/in.h>
_HEADERS = 20 + 8 + 4                        # IPv4 (no options), UDP, TFTP DATA
_MAC_RE = re.compile(r"SEP([0-9A-Fa-f]{12})")


@dataclass
class Faults:
    """What goes wrong. Block numbers are 1-based; packet counts are per transfer and count
    every packet the server sends (OACK included), 1-based."""
    drop_blocks: set[int] = field(default_factory=set)      # first send of these DATA blocks is lost
    drop_packets: set[int] = field(default_factory=set)     # the nth packet sent is lost
    drop_acks: set[int] = field(default_factory=set)        # the first ACK for these blocks is lost
    loss: float = 0.0                   # random loss, both directions
    seed: int | None = None
    delay_s: float = 0.0                # before every packet the server sends
    latency_s: float = 0.0              # once per round trip: before the OACK and each window
    duplicate_blocks: set[int] = field(default_factory=set)  # sent twice
    duplicate_rate: float = 0.0
    error: tuple[int, str] | None = None                    # answer every RRQ with this ERROR
    error_at_block: tuple[int, int, str] | None = None      # (block, code, msg) instead of the block
    missing: set[str] = field(default_factory=set)          # file names that "do not exist"
    ignore_options: bool = False        # a plain RFC 1350 server
    refuse_options: bool = False        # ERROR 8 to any request with options
    ignore_rrqs: int = 0                # the first n read requests are lost
    # (blksize, seconds): a server that drips. Its OACK names this blksize whatever the client
    # asked for (RFC 2348 allows 8..65464), then one block every `seconds`.
    drip: tuple[int, float] | None = None


@dataclass
class _Transfer:
    client: tuple[str, int]
    file: str
    entry: dict[str, Any]
    sent: int = 0
    dropped_blocks: set[int] = field(default_factory=set)
    dropped_acks: set[int] = field(default_factory=set)


class TftpServer:
    def __init__(self, root: Path | str, host: str = "127.0.0.1", port: int = 0,
                 faults: Faults | None = None, log_path: Path | str | None = None,
                 netns: "_netns.Namespace | str | None" = None, timeout_s: float = 1.0,
                 fixed_timeout: bool = False, retries: int = 5, max_blksize: int = MAX_BLKSIZE,
                 max_windowsize: int = 64) -> None:
        """timeout_s: retransmission interval unless the client negotiates `timeout`
        (fixed_timeout=True keeps timeout_s anyway, for fast lossy lab runs)."""
        self.root = Path(root)
        self.host = host
        self.port = port
        self.faults = faults or Faults()
        self.log_path = Path(log_path) if log_path else None
        self.netns = netns.name if isinstance(netns, _netns.Namespace) else netns
        self.timeout_s = timeout_s
        self.fixed_timeout = fixed_timeout
        self.retries = retries
        self.max_blksize = max_blksize
        self.max_windowsize = max_windowsize
        self.log: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._rng = random.Random(self.faults.seed)
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._active: set[tuple[tuple[str, int], bytes]] = set()
        self._rrqs = 0
        self._runner = ServerThread("TFTP server")

    # -- life cycle ---------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def running(self) -> bool:
        return self._runner.running

    def start(self, timeout: float = 5.0) -> "TftpServer":
        if self._runner.thread is not None:
            raise RuntimeError("already started")
        self._stop.clear()
        self._runner.start(self._main, f"tftp-{self.host}:{self.port}", timeout)
        return self

    def stop(self) -> None:
        """Stop listening (a "server down" from now on); running transfers end too."""
        self._stop.set()
        self._runner.join()

    def __enter__(self) -> "TftpServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reseed(self, seed: int | None) -> None:
        self.faults.seed = seed
        self._rng = random.Random(seed)

    def wait_log(self, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        t_end = time.monotonic() + timeout
        while len(self.log) < count and time.monotonic() < t_end:
            time.sleep(0.01)
        return list(self.log)

    # -- listener -------------------------------------------------------------------------
    def _main(self) -> None:
        with self._runner:                 # what the set-up raises, start() raises
            if self.netns:
                _netns.enter_current_thread(self.netns)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((self.host, self.port))
            self.port = s.getsockname()[1]
            s.settimeout(0.1)
            self._sock = s
        if self._runner.error is not None:
            return
        workers: list[threading.Thread] = []
        try:
            while not self._stop.is_set():
                try:
                    data, client = s.recvfrom(65535)
                except socket.timeout:
                    continue
                except OSError:
                    break
                t = self._dispatch(s, data, client)
                if t is not None:
                    workers.append(t)
        finally:
            s.close()
            self._sock = None
            for t in workers:
                t.join(timeout=5)

    def _dispatch(self, s: socket.socket, data: bytes, client: tuple[str, int]):
        if len(data) < 2:
            return None
        op = struct.unpack("!H", data[:2])[0]
        if op == WRQ:
            s.sendto(_error(2, "this server is read-only"), client)
            return None
        if op != RRQ:
            s.sendto(_error(4, "expected a read request"), client)
            return None
        with self._lock:
            self._rrqs += 1
            if self._rrqs <= self.faults.ignore_rrqs:
                return None
            if (client, data) in self._active:
                return None  # a retransmitted RRQ while its transfer runs
            if self.faults.loss and self._rng.random() < self.faults.loss:
                return None
            self._active.add((client, data))
        # Started from this thread, so the worker is in the same namespace.
        t = threading.Thread(target=self._serve, args=(data, client), daemon=True,
                             name=f"tftp-xfer-{client[0]}:{client[1]}")
        t.start()
        return t

    # -- one transfer -------------------------------------------------------------------
    def _serve(self, data: bytes, client: tuple[str, int]) -> None:
        t0 = time.monotonic()
        entry: dict[str, Any] = {"time": round(time.time(), 3), "client": f"{client[0]}:{client[1]}",
                                 "file": None, "result": None, "bytes": 0}
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.host, 0))
            fields = data[2:].split(b"\0")
            if len(fields) < 3 or fields[-1] != b"":
                self._send_raw(sock, _error(4, "malformed request"), client)
                entry["result"] = "malformed"
                return
            fields = fields[:-1]
            name = fields[0].decode("utf-8", "replace")
            entry["file"] = name
            mode = fields[1].decode("ascii", "replace").lower()
            if len(fields) % 2:
                self._send_raw(sock, _error(4, "malformed options"), client)
                entry["result"] = "malformed"
                return
            opts = {fields[i].decode("ascii", "replace").lower(): fields[i + 1].decode("ascii", "replace")
                    for i in range(2, len(fields), 2)}
            entry["mode"] = mode
            xfer = _Transfer(client, name, entry)
            self._run(sock, xfer, opts)
        except Exception as e:  # noqa: BLE001 - a lab server keeps serving
            entry["result"] = "server_error"
            entry["error"] = repr(e)
        finally:
            sock.close()
            entry["ms"] = round((time.monotonic() - t0) * 1000, 1)
            with self._lock:
                self._active.discard((client, data))
            self._write_log(entry)

    def _write_log(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.log.append(entry)
            if self.log_path:
                with self.log_path.open("a") as f:
                    f.write(json.dumps(entry) + "\n")

    def resolve(self, name: str) -> Path | None:
        """The file served for `name`, or None when it is outside root or missing."""
        if "\\" in name or name.startswith("/") or any(p in ("..", "") for p in name.split("/")):
            return None
        m = _MAC_RE.search(name)
        if m:
            per_mac = self.root / m.group(1).upper() / name
            if per_mac.is_file():
                return per_mac
        p = self.root / name
        return p if p.is_file() else None

    def _run(self, sock: socket.socket, x: _Transfer, opts: dict[str, str]) -> None:
        f = self.faults
        e = x.entry
        if f.error is not None:
            self._send(sock, x, _error(*f.error))
            e["result"] = "injected_error"
            return
        if "\\" in x.file or x.file.startswith("/") or ".." in x.file.split("/"):
            self._send(sock, x, _error(2, "access violation"))
            e["result"] = "access_violation"
            return
        path = None if x.file in f.missing else self.resolve(x.file)
        if path is None:
            self._send(sock, x, _error(1, "File not found"))
            e["result"] = "not_found"
            return
        content = path.read_bytes()
        e["path"] = str(path.relative_to(self.root))
        blksize, window, timeout = 512, 1, self.timeout_s
        oack: list[tuple[str, str]] = []
        if opts and f.refuse_options:
            self._send(sock, x, _error(8, "options refused"))
            e["result"] = "options_refused"
            return
        if opts and not f.ignore_options:
            try:
                if "blksize" in opts:
                    asked = int(opts["blksize"])
                    if f.drip is not None:
                        blksize = max(8, min(int(f.drip[0]), MAX_BLKSIZE))
                        oack.append(("blksize", str(blksize)))
                    elif asked >= MIN_BLKSIZE:
                        # RFC 2348: never more than asked; and no more than one datagram
                        # the path carries without IP fragmentation
                        blksize = min(asked, self.max_blksize, path_blksize(self.host, x.client))
                        oack.append(("blksize", str(blksize)))
                        if blksize < min(asked, self.max_blksize):
                            e["blksize_capped"] = f"{asked} asked, the path carries {blksize}"
                    else:
                        # below the RFC's 8: not acknowledged (as tftp-hpa), 512 it is
                        e["blksize_ignored"] = asked
                if "timeout" in opts:
                    t = int(opts["timeout"])
                    if 1 <= t <= 255:
                        oack.append(("timeout", str(t)))
                        if not self.fixed_timeout:
                            timeout = float(t)
                if "tsize" in opts:
                    oack.append(("tsize", str(len(content))))
                if "windowsize" in opts:
                    window = max(1, min(int(opts["windowsize"]), self.max_windowsize))
                    oack.append(("windowsize", str(window)))
            except ValueError:
                self._send(sock, x, _error(8, "bad option value"))
                e["result"] = "bad_option"
                return
        e.update(blksize=blksize, windowsize=window, retransmits=0)
        sock.settimeout(timeout)
        if oack:
            pkt = struct.pack("!H", OACK) + b"".join(k.encode() + b"\0" + v.encode() + b"\0"
                                                     for k, v in oack)
            if not self._handshake(sock, x, pkt, timeout):
                return
        self._send_file(sock, x, content, blksize, window, timeout)

    def _handshake(self, sock: socket.socket, x: _Transfer, pkt: bytes, timeout: float) -> bool:
        """Send the OACK until ACK 0 comes back."""
        for attempt in range(self.retries + 1):
            if self._stop.is_set():
                break
            if attempt:
                x.entry["retransmits"] += 1
            if self.faults.latency_s:
                time.sleep(self.faults.latency_s)
            self._send(sock, x, pkt)
            deadline = time.monotonic() + timeout
            while True:
                got = self._recv(sock, x, deadline)
                if got is None:
                    break
                op, val, msg = got
                if op == ACK and val == 0:
                    return True
                if op == ERROR:
                    x.entry["result"] = f"aborted_by_client: {msg}"
                    return False
        x.entry["result"] = "timeout"
        return False

    def _recv(self, sock: socket.socket, x: _Transfer, deadline: float):
        """(op, block or code, message) of the next packet from the client, None on timeout."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self._stop.is_set():
                return None
            sock.settimeout(min(left, 0.2))
            try:
                data, addr = sock.recvfrom(65535)
            except socket.timeout:
                continue
            if addr != x.client:
                self._send_raw(sock, _error(5, "unknown transfer ID"), addr)
                continue
            if len(data) < 4:
                continue
            if self.faults.loss:
                with self._lock:
                    lost = self._rng.random() < self.faults.loss
                if lost:
                    continue
            op, val = struct.unpack("!HH", data[:4])
            if op == ACK and val in self.faults.drop_acks and val not in x.dropped_acks:
                x.dropped_acks.add(val)
                continue
            msg = data[4:].split(b"\0")[0].decode("utf-8", "replace") if op == ERROR else ""
            return op, val, msg

    def _send_file(self, sock: socket.socket, x: _Transfer, content: bytes, blksize: int,
                   window: int, timeout: float) -> None:
        f = self.faults
        e = x.entry
        nblocks = len(content) // blksize + 1
        base = 1            # first block not yet acknowledged
        tries = 0
        sent_max = 0        # highest block sent at least once
        while base <= nblocks:
            if self._stop.is_set():
                e["result"] = "server_stopped"
                e["bytes"] = (base - 1) * blksize
                return
            end = min(base + window - 1, nblocks)
            if f.latency_s:
                time.sleep(f.latency_s)
            for b in range(base, end + 1):
                stop = self._error_at(x, b, blksize)
                if stop is not None:
                    self._send(sock, x, _error(stop[0], stop[1]))
                    e["result"] = stop[2]
                    e["bytes"] = (b - 1) * blksize
                    return
                if f.drip is not None:
                    time.sleep(f.drip[1])
                    if self._stop.is_set():
                        break
                if b <= sent_max:
                    e["retransmits"] += 1
                sent_max = max(sent_max, b)
                chunk = content[(b - 1) * blksize:b * blksize]
                self._send(sock, x, struct.pack("!HH", DATA, b & 0xFFFF) + chunk, block=b)
            deadline = time.monotonic() + timeout
            progressed = False
            while True:
                got = self._recv(sock, x, deadline)
                if got is None:
                    break
                op, val, msg = got
                if op == ERROR:
                    e["result"] = f"aborted_by_client: {msg}"
                    e["bytes"] = (base - 1) * blksize
                    return
                if op != ACK:
                    continue
                acked = base - 1 + ((val - (base - 1)) & 0xFFFF)
                if acked > end:
                    continue            # not a block of this window: stale or bogus
                if acked >= base:
                    base = acked + 1
                    progressed = True
                    tries = 0
                if acked == end:
                    break               # the whole window arrived: next window
                if window > 1:
                    break               # client asks for a restart at acked + 1 (RFC 7440)
                # window 1 and a duplicate ACK: ignore it (no Sorcerer's Apprentice)
            if base > nblocks:
                break
            if not progressed:
                tries += 1
                if tries > self.retries:
                    e["result"] = "timeout"
                    e["bytes"] = (base - 1) * blksize
                    return
        e["result"] = "ok"
        e["bytes"] = len(content)
        e["blocks"] = nblocks

    def _error_at(self, x: _Transfer, block: int, blksize: int) -> tuple[int, str, str] | None:
        """(code, message, log result) of the ERROR sent instead of DATA `block`, or None."""
        f = self.faults.error_at_block
        if f and f[0] == block:
            return f[1], f[2], "injected_error"
        return None

    # -- sending, with faults -------------------------------------------------------------
    def _send(self, sock: socket.socket, x: _Transfer, pkt: bytes, block: int | None = None) -> None:
        f = self.faults
        x.sent += 1
        if f.delay_s:
            time.sleep(f.delay_s)
        if x.sent in f.drop_packets:
            return
        if block is not None and block in f.drop_blocks and block not in x.dropped_blocks:
            x.dropped_blocks.add(block)
            return
        with self._lock:
            lost = bool(f.loss) and self._rng.random() < f.loss
            dup = (block is not None and block in f.duplicate_blocks) or \
                (bool(f.duplicate_rate) and self._rng.random() < f.duplicate_rate)
        if lost:
            return
        self._send_raw(sock, pkt, x.client)
        if dup:
            self._send_raw(sock, pkt, x.client)

    @staticmethod
    def _send_raw(sock: socket.socket, pkt: bytes, addr: tuple[str, int]) -> None:
        try:
            sock.sendto(pkt, addr)
        except OSError:
            pass


def path_blksize(host: str, client: tuple[str, int]) -> int:
    """The largest DATA payload one unfragmented IPv4 datagram carries from `host` to
    `client`: the route's MTU (the kernel's path MTU for it) less the headers. Called in
    the server's namespace; MAX_BLKSIZE when the kernel will not say."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            s.connect(client)                # no packet: a route lookup
            mtu = s.getsockopt(socket.IPPROTO_IP, IP_MTU)
    except OSError:
        return MAX_BLKSIZE
    return max(MIN_BLKSIZE, min(MAX_BLKSIZE, mtu - _HEADERS))


def _error(code: int, msg: str) -> bytes:
    return struct.pack("!HH", ERROR, code) + msg.encode() + b"\0"
