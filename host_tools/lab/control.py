"""A control channel into a running `phonelab lab up`: one JSON request per connection on a
UNIX socket, so `phonelab lab cut|restore|kill|restart|status` can act from another terminal.

    request:  {"cmd": "wan_cut", "args": {"kind": "blackhole"}}
    answer:   {"ok": true, "result": ...}   or   {"ok": false, "error": "..."}
"""
from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

# name -> (Lab method, allowed argument names)
COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "status": ("status", ()),
    "wan_cut": ("wan_cut", ("kind",)),
    "wan_restore": ("wan_restore", ()),
    "flap": ("flap", ("period_s", "count", "kind")),
    "kill": ("kill", ("name",)),
    "restart": ("restart", ("name",)),
    "hang": ("hang", ("name", "on")),
    "record_start": ("_record_start", ()),
    "record_stop": ("record_stop", ()),
}
_MAX_REQUEST = 64 * 1024


class ControlError(RuntimeError):
    pass


class ControlServer:
    def __init__(self, lab: Any, path: str | Path) -> None:
        self.lab = lab
        self.path = Path(path)
        self.sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> "ControlServer":
        self.path.unlink(missing_ok=True)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(self.path))
        os.chmod(self.path, 0o600)        # faults and kills are for the lab's owner only
        s.listen(4)
        s.settimeout(0.2)
        self.sock = s
        self._thread = threading.Thread(target=self._serve, name="lab:control", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        assert self.sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                try:
                    answer = self.handle(_read_line(conn))
                except Exception as e:  # a bad request must not end the lab
                    answer = {"ok": False, "error": str(e)}
                try:
                    conn.sendall(json.dumps(answer, default=str).encode() + b"\n")
                except OSError:
                    pass

    def handle(self, raw: bytes) -> dict:
        req = json.loads(raw)
        cmd = req.get("cmd")
        if cmd not in COMMANDS:
            return {"ok": False, "error": f"unknown command {cmd!r}"}
        method, allowed = COMMANDS[cmd]
        args = req.get("args") or {}
        extra = set(args) - set(allowed)
        if extra:
            return {"ok": False, "error": f"{cmd}: unexpected arguments {sorted(extra)}"}
        if method == "_record_start":
            rec = self.lab.record_start()
            return {"ok": True, "result": {"pcap": str(rec.pcap)}}
        try:
            result = getattr(self.lab, method)(**args)
        except Exception as e:
            return {"ok": False, "error": f"{type(e).__name__}: {e}"}
        if isinstance(result, threading.Thread):
            result = None
        return {"ok": True, "result": result}

    def stop(self) -> None:
        self._stop.set()
        s, self.sock = self.sock, None
        if s is not None:
            s.close()
        if self._thread is not None:
            self._thread.join(2)
        self.path.unlink(missing_ok=True)


def _read_line(conn: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        buf += chunk
        if len(buf) > _MAX_REQUEST:
            raise ControlError("request too long")
    return buf


def request(path: str | Path, cmd: str, timeout: float = 60.0, **args: Any) -> Any:
    """Send one command to a running lab; returns its result or raises ControlError."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(path))
        s.sendall(json.dumps({"cmd": cmd, "args": args}).encode() + b"\n")
        answer = json.loads(_read_line(s) or b"{}")
    except (OSError, ValueError) as e:
        raise ControlError(f"cannot talk to the lab at {path}: {e}") from e
    finally:
        s.close()
    if not answer.get("ok"):
        raise ControlError(answer.get("error") or "no answer")
    return answer.get("result")
