"""A labgrid target as a board, through labgrid's public interface only.

- `--lg-env ENV.yaml` (labgrid's own pytest plugin): its `target` fixture is the board. The
  environment names the serial port (a RemotePlace whose exporter serves a
  NetworkSerialPort, or a local RawSerialPort/USBSerialPort) and, if it has one, a driver
  for power (anything implementing labgrid's PowerProtocol, e.g. NetworkPowerDriver). As
  everywhere with labgrid, a remote place is acquired by the user first
  (`labgrid-client -p PLACE acquire`).
- `--board labgrid:PLACE`: the plugin acquires the place itself with `labgrid-client`
  (labgrid's lock: while we hold it nobody else can), builds a Target with a RemotePlace
  (labgrid's library use: a resource and its driver bound to a Target), and releases the
  place at the end. The coordinator is LG_COORDINATOR (labgrid's own variable; HOST[:PORT],
  default 127.0.0.1:20408).

The serial port is what pyserial and mpremote open: a NetworkSerialPort is ser2net speaking
RFC 2217, `rfc2217://HOST:PORT?ign_set_control` (or socket:// for protocol "raw"); a local
port is its device. Power is switched by the target's PowerProtocol driver.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_COORDINATOR = "127.0.0.1:20408"


class PlaceError(RuntimeError):
    pass


def coordinator() -> str:
    return os.environ.get("LG_COORDINATOR", DEFAULT_COORDINATOR)


def _labgrid() -> None:
    try:
        import labgrid  # noqa: F401
    except ImportError:
        raise PlaceError("labgrid is not installed: pip install 'labgrid==26.0.1' "
                         "(it is in the project's dev extras)") from None


def client(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`labgrid-client -x COORDINATOR ARGS...` (labgrid's command line)."""
    exe = shutil.which("labgrid-client") or str(Path(sys.executable).parent / "labgrid-client")
    return subprocess.run([exe, "-x", coordinator(), *args], capture_output=True, text=True,
                          timeout=timeout)


def _client_error(r: subprocess.CompletedProcess) -> str:
    lines = [ln.strip() for ln in (r.stderr or r.stdout).splitlines() if ln.strip()]
    text = lines[-1] if lines else f"exit {r.returncode}"
    return text.removeprefix("labgrid-client: error: ")


def serial_url(resource: Any) -> str:
    """pyserial URL of a labgrid serial resource. As labgrid's own SerialDriver does, RFC 2217
    control acknowledgements are not waited for (ser2net does not send them for ports
    without modem lines, e.g. a pty)."""
    from labgrid.resource import NetworkSerialPort
    if isinstance(resource, NetworkSerialPort):
        if resource.protocol == "raw":
            return f"socket://{resource.host}:{resource.port}"
        return f"rfc2217://{resource.host}:{resource.port}?ign_set_control"
    return str(resource.port)


@dataclass
class LabgridBoard:
    """A labgrid Target's serial port and power, for host_tools.hil.handles.LabgridHandle."""
    name: str
    target: Any
    serial_url: str
    speed: int
    power: Any = None               # the target's PowerProtocol driver, if any
    place: str | None = None        # a place we acquired ourselves (released by release())
    _env: Any = field(default=None, repr=False)

    @classmethod
    def from_target(cls, target: Any, place: str | None = None) -> LabgridBoard:
        """The board of a labgrid Target: its serial resource, its power driver if any."""
        from labgrid.exceptions import NoDriverFoundError, NoResourceFoundError
        from labgrid.protocol import PowerProtocol
        from labgrid.resource import NetworkSerialPort, RawSerialPort
        serial = None
        for cls_ in (NetworkSerialPort, RawSerialPort):     # USBSerialPort is a RawSerialPort
            try:
                serial = target.get_resource(cls_, wait_avail=False)
                break
            except NoResourceFoundError:
                continue
        if serial is None:
            raise PlaceError(f"labgrid target {target.name!r} has no serial port resource "
                             f"(NetworkSerialPort, RawSerialPort or USBSerialPort); it has: "
                             f"{', '.join(type(r).__name__ for r in target.resources) or 'nothing'}")
        if not serial.avail:
            raise PlaceError(f"the serial port of labgrid target {target.name!r} is not "
                             f"available (exporter down or device unplugged)")
        try:
            power = target.get_driver(PowerProtocol, activate=False)
        except NoDriverFoundError:
            power = None
        return cls(target.name, target, serial_url(serial), int(serial.speed or 115200),
                   power, place)

    @classmethod
    def acquire(cls, place: str) -> LabgridBoard:
        """Acquire `place` (labgrid-client), and a Target with its RemotePlace and, when the
        place has a NetworkPowerPort, a NetworkPowerDriver."""
        _labgrid()
        r = client("-p", place, "acquire")
        if r.returncode != 0:
            raise PlaceError(f"cannot acquire labgrid place {place!r} (coordinator "
                             f"{coordinator()}, LG_COORDINATOR): {_client_error(r)}")
        try:
            from labgrid import Target
            from labgrid.driver import NetworkPowerDriver
            from labgrid.resource import NetworkPowerPort, RemotePlace
            target = Target(place)
            RemotePlace(target, name=place)
            if any(isinstance(res, NetworkPowerPort) for res in target.resources):
                NetworkPowerDriver(target, None)
            return cls.from_target(target, place)
        except BaseException:
            client("-p", place, "release")
            raise

    def power_cycle(self, delay: float = 1.0) -> None:
        if self.power is None:
            raise PlaceError(f"labgrid target {self.name!r} has no power driver")
        self.target.activate(self.power)
        if hasattr(self.power, "delay"):
            self.power.delay = delay
        self.power.cycle()

    def release(self) -> None:
        """Give back what we took: the target's drivers, and the place if we acquired it."""
        if self.place is None:
            return
        try:
            self.target.cleanup()
        finally:
            r = client("-p", self.place, "release")
            self.place = None
            if r.returncode != 0:
                raise PlaceError(f"cannot release labgrid place {self.name!r}: "
                                 f"{_client_error(r)}")

    def __enter__(self) -> LabgridBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
