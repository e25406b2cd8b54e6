"""A labgrid place as a board: acquire it through the coordinator, find its serial port (and
power switch, if any), release it at the end.

The coordinator address comes from LG_COORDINATOR (labgrid's own variable; HOST[:PORT],
default port 20408). Acquiring is labgrid's lock: while we hold the place, nobody else can
(labgrid-client shows it as acquired by HOST/USER). The serial port is the exporter's
NetworkSerialPort, i.e. ser2net speaking RFC 2217, which pyserial and mpremote open as
`rfc2217://HOST:PORT?ign_set_control` (or socket:// for protocol "raw"). Power, when the place has a power resource, is switched with
`labgrid-client power` (its drivers know the many PDUs), run as an argument list.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_COORDINATOR = "127.0.0.1:20408"
SERIAL_CLASSES = ("NetworkSerialPort",)
POWER_SUFFIX = "PowerPort"


class PlaceError(RuntimeError):
    pass


def coordinator() -> str:
    return os.environ.get("LG_COORDINATOR", DEFAULT_COORDINATOR)


@contextlib.contextmanager
def _session(place: str):
    """A labgrid client session (its own event loop), closed afterwards; labgrid's chatter
    (it prints 'acquired place ...') kept off our stdout."""
    try:
        from labgrid.remote.client import start_session
    except ImportError:
        raise PlaceError("labgrid is not installed: pip install 'labgrid==26.0.1' "
                         "(it is in the project's dev extras)") from None
    import asyncio
    # grpc's aio channel binds to the thread's current loop when labgrid creates it: make ours
    # current for the session, then close it (labgrid's stash ignores a closed loop).
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    args = argparse.Namespace(place=place, allow_unmatched=False, kick=False)
    try:
        try:
            session = start_session(coordinator(), extra={"args": args}, loop=loop)
        except Exception as e:
            raise PlaceError(f"cannot reach the labgrid coordinator at {coordinator()} "
                             f"(LG_COORDINATOR): {e}") from None
        try:
            yield session, loop
        finally:
            loop.run_until_complete(session.stop())
            loop.run_until_complete(session.close())
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def _run(loop: object, coro: object) -> None:
    from labgrid.remote.client import Error as LabgridError, ErrorGroup
    quiet = io.StringIO()
    try:
        with contextlib.redirect_stdout(quiet):
            loop.run_until_complete(coro)  # type: ignore[attr-defined]
    except (LabgridError, ErrorGroup) as e:
        raise PlaceError(str(e)) from None


def _serial_url(args: dict) -> str:
    """pyserial URL of a NetworkSerialPort. As labgrid's own SerialDriver does, RFC 2217
    control acknowledgements are not waited for (ser2net does not send them for ports
    without modem lines, e.g. a pty)."""
    if args.get("protocol", "rfc2217") == "raw":
        return f"socket://{args['host']}:{args['port']}"
    return f"rfc2217://{args['host']}:{args['port']}?ign_set_control"


@dataclass
class Place:
    name: str
    serial_url: str
    speed: int
    power: str | None = None        # the power resource ("" when named by its class), if any
    acquired: bool = False

    @classmethod
    def acquire(cls, name: str) -> Place:
        with _session(name) as (session, loop):
            _run(loop, session.acquire())
            try:
                found = session.get_target_resources(session.get_place(name))
                serial = [(n, r) for (n, c), r in found.items() if c in SERIAL_CLASSES]
                # labgrid names a resource by its class unless the exporter renamed it
                power = [(n if n != c else "") for (n, c), _r in found.items()
                         if c.endswith(POWER_SUFFIX)]
                if not serial:
                    raise PlaceError(f"labgrid place {name!r} has no serial port resource "
                                     f"(NetworkSerialPort); it has: "
                                     f"{', '.join(c for _n, c in found) or 'nothing'}")
                _n, res = serial[0]
                if not res.avail:
                    raise PlaceError(f"the serial port of place {name!r} is not available "
                                     f"(exporter down or device unplugged)")
                args = res.args
                url = _serial_url(args)
                place = cls(name, url, int(args.get("speed") or 115200),
                            power[0] if power else None, acquired=True)
            except BaseException:
                _run(loop, session.release())
                raise
        return place

    def release(self) -> None:
        if not self.acquired:
            return
        with _session(self.name) as (session, loop):
            _run(loop, session.release())
        self.acquired = False

    def power_cycle(self, delay: float = 1.0) -> None:
        if self.power is None:
            raise PlaceError(f"labgrid place {self.name!r} has no power resource")
        client = shutil.which("labgrid-client") or str(Path(sys.executable).parent / "labgrid-client")
        cmd = [client, "-x", coordinator(), "-p", self.name, "power", "cycle", "-t", str(delay)]
        if self.power:
            cmd += ["--name", self.power]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise PlaceError(f"power cycle of place {self.name!r} failed: "
                             f"{(r.stderr or r.stdout).strip()}")

    def __enter__(self) -> Place:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
