"""Small adapters that put dnsmasq and the lab TFTP server into the lab's event log, plus the
port-fallback start of the simulators. The servers themselves live in `dnsmasq.py` and
`tftp_server.py`; this module only adds what the Lab needs on top.
"""
from __future__ import annotations

import re
from typing import Any, Awaitable, Callable, TypeVar

from host_tools.lab.dnsmasq import Dnsmasq
from host_tools.lab.tftp_server import TftpServer

Emit = Callable[..., Any]
S = TypeVar("S")

_DHCP_RE = re.compile(r"dnsmasq-dhcp(?:\[\d+\])?: (?:\d+ )?(DHCP[A-Z]+)\(([^)]*)\)\s*(.*)")
_TFTP_RE = re.compile(r"dnsmasq-tftp(?:\[\d+\])?: (.*)")


class LoggedDnsmasq(Dnsmasq):
    """Dnsmasq whose DHCP message lines and TFTP lines also become lab events."""

    def __init__(self, *args: Any, emit: Emit, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._emit_ev = emit

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self._cv:
                self.log.append(line)
                self._cv.notify_all()
            self._event(line)
        with self._cv:
            self._cv.notify_all()

    def _event(self, line: str) -> None:
        m = _DHCP_RE.search(line)
        if m:
            msg, iface, rest = m.groups()
            words = rest.split()
            fields: dict[str, Any] = {"msg": msg, "iface": iface}
            for w in words:
                if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", w):
                    fields["ip"] = w
                elif re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", w):
                    fields["mac"] = w
            self._emit_ev("dhcp", **fields)
            return
        m = _TFTP_RE.search(line)
        if m:
            self._emit_ev("tftp", line=m.group(1))
        elif "failed" in line or "error" in line.lower():
            self._emit_ev("dnsmasq_error", line=line)


class LoggedTftp(TftpServer):
    """The lab TFTP server; each finished transfer is also a `tftp_transfer` event."""

    def __init__(self, *args: Any, emit: Emit, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._emit_ev = emit

    def _write_log(self, entry: dict[str, Any]) -> None:
        super()._write_log(entry)
        self._emit_ev("tftp_transfer", **{k: v for k, v in entry.items() if k != "time"})


async def start_with_fallback(make: Callable[[int | None], S], start: Callable[[S], Awaitable[Any]],
                              stop: Callable[[S], Awaitable[Any]], fallback: bool) -> S:
    """make(None) uses the standard ports; if they are taken (another lab, no root) and
    `fallback` is allowed, make(0) asks for free ones."""
    srv = make(None)
    try:
        await start(srv)
        return srv
    except OSError:
        await stop(srv)
        if not fallback:
            raise
    srv = make(0)
    await start(srv)
    return srv
