"""The replay's servers, inside the server namespace:

- `DhcpResponder`: a small DHCP server that answers with the captured OFFER/ACK (mapped
  addresses), each reply built from the captured packet with the request's xid, flags and
  client address: DISCOVER -> OFFER, REQUEST -> ACK (NAK when it asks for another
  address), INFORM -> the INFORM answer. Captured delays and unanswered requests are
  reproduced. dnsmasq would re-order and re-encode options, always add its own, and delay
  only in whole seconds; this sends the captured option bytes.
- `ReplayTftp`: the lab's TFTP server (host_tools.lab.tftp_server.TftpServer) serving the
  captured files from a folder, plus per file: the captured delay before the first answer,
  the captured ERROR answers, read requests left unanswered, and transfers that stop after
  the bytes the capture saw (the server falls silent there), all as in the capture.
"""
from __future__ import annotations

import json
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

from host_tools.lab import netns as _netns
from host_tools.lab.serverthread import ServerThread
from host_tools.lab.tftp_server import ERROR, TftpServer
from host_tools.replay import bootp
from host_tools.replay.plan import DhcpPlan, TftpPlan
from host_tools.replay.tftp import parse_request

SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


class DhcpResponder:
    def __init__(self, plan: DhcpPlan, netns: str, iface: str, port: int = 67,
                 client_port: int = 68) -> None:
        self.plan = plan
        self.netns = netns
        self.iface = iface
        self.port = port
        self.client_port = client_port
        self.log: list[dict[str, Any]] = []
        self._seen = {bootp.DISCOVER: 0, bootp.REQUEST: 0}
        self._stop = threading.Event()
        self._runner = ServerThread("replay DHCP responder")
        self._lock = threading.Lock()

    def start(self, timeout: float = 5.0) -> "DhcpResponder":
        self._runner.start(self._main, "replay-dhcp", timeout)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._runner.join()

    def _main(self) -> None:
        with self._runner:                 # what the set-up raises, start() raises
            _netns.enter_current_thread(self.netns)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            s.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, self.iface.encode())
            s.bind(("0.0.0.0", self.port))
        if self._runner.error is not None:
            return
        pending: list[tuple[float, bytes, tuple[str, int], dict[str, Any]]] = []
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                for item in [p for p in pending if p[0] <= now]:
                    pending.remove(item)
                    self._send(s, *item[1:])
                wait = min([0.05] + [p[0] - now for p in pending])
                s.settimeout(max(wait, 0.001))
                try:
                    data, addr = s.recvfrom(4096)
                except socket.timeout:
                    continue
                except OSError:
                    break
                reply = self._answer(data)
                if reply is not None:
                    delay, pkt, dest, entry = reply
                    pending.append((time.monotonic() + delay, pkt, dest, entry))
        finally:
            s.close()

    def _answer(self, data: bytes) -> tuple[float, bytes, tuple[str, int], dict[str, Any]] | None:
        try:
            req = bootp.parse(data)
        except bootp.BootpError:
            return None
        if req.op != 1:
            return None
        t = req.msg_type
        entry: dict[str, Any] = {"time": time.time(), "mono": time.monotonic(), "msg": req.msg_name,
                                 "xid": req.xid, "mac": req.mac, "reply": None}
        self._record(entry)
        p = self.plan
        if t == bootp.DISCOVER:
            tmpl, delay, ignore = p.offer, p.offer_delay_s, p.ignore_discovers
        elif t == bootp.REQUEST:
            want = (req.addresses(bootp.OPT_REQUESTED_IP) or [req.ciaddr])[0]
            sid = req.addresses(bootp.OPT_SERVER_ID)
            if sid and sid[0] != p.server:
                entry["reply"] = "none (REQUEST for another server)"
                return None
            tmpl, delay, ignore = p.ack, p.ack_delay_s, p.ignore_requests
            if want not in (p.ack.yiaddr, "0.0.0.0"):
                tmpl = _nak(p)
        elif t == bootp.INFORM:
            tmpl, delay, ignore = p.inform_ack, p.ack_delay_s, p.ignore_requests
        else:
            return None
        with self._lock:
            key = bootp.REQUEST if t == bootp.INFORM else t
            self._seen[key] = self._seen.get(key, 0) + 1  # type: ignore[index]
            if self._seen[key] <= ignore:                  # type: ignore[index]
                entry["reply"] = "none (unanswered in the capture)"
                return None
        out = tmpl.copy()
        out.xid, out.flags, out.chaddr, out.htype = req.xid, req.flags, req.chaddr, req.htype
        out.secs = 0
        if t == bootp.INFORM:
            out.ciaddr = req.ciaddr
        dest_ip = req.ciaddr if (req.ciaddr != "0.0.0.0" and out.msg_type != bootp.NAK) else "255.255.255.255"
        entry.update(reply=out.msg_name, delay_ms=round(delay * 1000, 3))
        return delay, bootp.encode(out), (dest_ip, self.client_port), entry

    def _send(self, s: socket.socket, pkt: bytes, dest: tuple[str, int], entry: dict[str, Any]) -> None:
        try:
            s.sendto(pkt, dest)
            entry["sent"] = time.time()
        except OSError as e:
            entry["error"] = str(e)

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.log.append(entry)


def _nak(p: DhcpPlan) -> bootp.Bootp:
    return bootp.Bootp(op=2, xid=0, chaddr=b"", options=[
        (bootp.OPT_MSG_TYPE, bytes((bootp.NAK,))), (bootp.OPT_SERVER_ID, bootp.ip_bytes(p.server))])


class ReplayTftp(TftpServer):
    """The lab TFTP server with the captured files and per-file captured behaviour."""

    def __init__(self, plan: TftpPlan, root: Path, *, netns: str, log_path: Path | None = None,
                 port: int = 69) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.plan = plan
        self.names: dict[str, Path] = {}
        contents = dict(plan.files)
        for name, (prefix, tsize) in plan.partial.items():
            # never sent past the prefix (see _send); the padding only sizes the OACK's tsize
            size = tsize if tsize and tsize > len(prefix) else len(prefix) + 512
            contents[name] = prefix + b"\0" * (size - len(prefix))
        for i, (name, content) in enumerate(sorted(contents.items())):
            # stored under a plain name: a requested name is never a path on this machine
            p = root / f"file{i:03d}.bin"
            p.write_bytes(content)
            self.names[name] = p
        (root / "names.json").write_text(json.dumps({k: v.name for k, v in self.names.items()},
                                                    indent=2) + "\n")
        self._first_rrq: dict[str, float] = {}      # name -> when the board first asked
        self.unanswered: list[dict[str, Any]] = []
        super().__init__(root, host=plan.address, port=port, log_path=log_path, netns=netns)

    def resolve(self, name: str) -> Path | None:
        return self.names.get(name)

    def _dispatch(self, s: socket.socket, data: bytes, client: tuple[str, int]):
        req = parse_request(data)
        if req is not None:
            name = req[1]
            why = None
            with self._lock:
                if name in self.plan.silent:
                    why = "unanswered in the capture"
                elif name in self.plan.silent_s:
                    # by time, not by count: the board retransmits on its own schedule
                    first = self._first_rrq.setdefault(name, time.monotonic())
                    if time.monotonic() - first < self.plan.silent_s[name]:
                        why = (f"unanswered for the first {self.plan.silent_s[name]:.3f} s "
                               f"in the capture")
            if why is not None:
                self.unanswered.append({"time": time.time(), "client": f"{client[0]}:{client[1]}",
                                        "file": name, "why": why})
                return None
        return super()._dispatch(s, data, client)

    def _send(self, sock: socket.socket, x: Any, pkt: bytes, block: int | None = None) -> None:
        part = self.plan.partial.get(x.file)
        if part is not None and block is not None:
            if block > len(part[0]) // x.entry.get("blksize", 512):
                x.entry["cut_off"] = True          # the capture saw no more of this file
                return
        super()._send(sock, x, pkt, block)

    def _error_at(self, x: Any, block: int, blksize: int) -> tuple[int, str, str] | None:
        """A transfer the captured server ended with an ERROR after some data: that ERROR in
        place of the first block the capture did not see delivered."""
        err = self.plan.partial_errors.get(x.file)
        part = self.plan.partial.get(x.file)
        if err is not None and part is not None and block > len(part[0]) // blksize:
            x.entry["cut_off"] = True
            return err[0], err[1], f"captured_error {err[0]}"
        return super()._error_at(x, block, blksize)

    def _run(self, sock: socket.socket, x: Any, opts: dict[str, str]) -> None:
        delay = self.plan.delays_s.get(x.file, 0.0)
        if delay > 0:
            time.sleep(delay)
        err = self.plan.errors.get(x.file)
        if err is not None:
            self._send(sock, x, struct.pack("!HH", ERROR, err[0]) + err[1].encode() + b"\0")
            x.entry["result"] = f"captured_error {err[0]}"
            return
        super()._run(sock, x, opts)
