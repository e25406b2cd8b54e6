"""Board handles for tests: one interface over a virtual board, a serial port and a labgrid place.

    board.kind       "virtual" | "serial" | "labgrid"
    board.port       what mpremote, pyserial and `phonelab deploy` open
    board.profile    the board profile name (boards/NAME.json)
    board.events()   an EventStream from now on (close it with board.close_events(stream))
    board.reset()    restart the agent (virtual: hard reset; real: Ctrl-C + soft reset)
    board.deploy()   copy the firmware (only what changed)
    board.exec(code) run code over the raw REPL (stops the agent: reset() afterwards)
    board.write(b)   raw bytes to the console
Virtual boards also have .vboard (the VirtualBoard) and .folder; relaunch(prefix, env) starts
the interpreter again (same files) e.g. inside a lab's network namespace.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

from host_tools import FIRMWARE, deploy
from host_tools.hil.console import EventStream, SerialConsole
from host_tools.hil.specs import BoardSpec


class BoardError(RuntimeError):
    pass


class BoardHandle:
    kind = ""

    def __init__(self, spec: BoardSpec, name: str) -> None:
        self.spec = spec
        self.name = name
        self.profile: str = spec.profile or "virtual"
        self._streams: list[EventStream] = []

    port: str = ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} port={self.port} profile={self.profile}>"

    # console fan-out: subclasses call _dispatch(bytes) with everything the board prints
    def _dispatch(self, data: bytes) -> None:
        for s in list(self._streams):
            s.feed(data)

    def events(self) -> EventStream:
        s = EventStream(self.name)
        self._streams.append(s)
        return s

    def _new_boot(self) -> None:
        for s in list(self._streams):
            s.skip()

    def attach(self, sink: object) -> None:
        """Any object with feed(bytes), skip() (called at each reset) and a `closed` flag gets
        the console from now on (the scenario runner's timestamping tap); close_events(sink)
        detaches it."""
        self._streams.append(sink)  # type: ignore[arg-type]

    def close_events(self, stream: EventStream) -> None:
        stream.closed = True
        if stream in self._streams:
            self._streams.remove(stream)

    @property
    def tool_port(self) -> str:
        """The port the host tools (mpremote) use; normally `port`."""
        return self.port

    def deploy(self, firmware: Path = FIRMWARE, source: bool = False, force: bool = False,
               reset: bool = True) -> deploy.DeployResult:
        with self._port_free():
            return deploy.deploy(self.tool_port, board=self.profile, source=source, force=force,
                                 reset=reset, firmware=firmware, show=False)

    def exec(self, code: str) -> str:
        with self._port_free():
            with deploy.RawRepl(self.tool_port) as b:
                return b.exec(code).decode()

    def _port_free(self):  # a context manager: the port is free for mpremote inside
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        for s in list(self._streams):
            self.close_events(s)


class _NoPause:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class VirtualHandle(BoardHandle):
    kind = "virtual"

    def __init__(self, spec: BoardSpec, name: str, folder: Path, heap: str) -> None:
        super().__init__(spec, name)
        self.folder = Path(folder)
        self.heap = heap
        self.vboard = None
        self._prefix: list[str] = []
        self._env: dict[str, str] = {}

    def start(self) -> VirtualHandle:
        from host_tools.vboard import VirtualBoard
        # pty for people and serial tools; the TCP endpoint for our own mpremote calls, because
        # mpremote reads a pty without a timeout and would hang on a board that never answers.
        # --board virtual:PROFILE: the ESP32-faithful board (its own heap, clock, DHCP...)
        faithful = self.spec.text if self.spec.text.startswith("virtual:") else None
        self.vboard = VirtualBoard(self.folder, heap=self.heap, pty=True, tcp_port=0,
                                   prefix=self._prefix, env=self._env, on_output=self._dispatch,
                                   board=faithful)
        self.vboard.start()
        return self

    @property
    def port(self) -> str:  # type: ignore[override]
        assert self.vboard is not None and self.vboard.pty_path
        return self.vboard.pty_path

    @property
    def tool_port(self) -> str:
        assert self.vboard is not None and self.vboard.url
        return self.vboard.url

    def relaunch(self, prefix: Sequence[str] = (), env: dict[str, str] | None = None) -> None:
        """Start the interpreter again with a command prefix (ip netns exec NS) and extra
        environment; the board's files stay. The pty path changes."""
        self.stop_board()
        self._prefix, self._env = list(prefix), dict(env or {})
        self.start()

    def _port_free(self) -> _NoPause:
        return _NoPause()  # the console is tapped host-side, not through the pty

    def reset(self, timeout: float = 10.0) -> None:
        """Hard reset; returns once the new interpreter runs (input sent earlier would be lost
        with the old one, as on a board in reset)."""
        vb = self.vboard
        assert vb is not None
        self._new_boot()
        boots = vb.boots
        vb.reset()
        deadline = time.monotonic() + timeout
        while vb.boots <= boots:
            if time.monotonic() > deadline:
                raise BoardError(f"{self.name}: the virtual board did not restart within {timeout} s")
            time.sleep(0.01)

    def write(self, data: bytes) -> None:
        assert self.vboard is not None
        self.vboard.write(data)

    def stop_board(self) -> None:
        if self.vboard is not None:
            self.vboard.stop()
            self.vboard = None

    def close(self) -> None:
        super().close()
        self.stop_board()


class SerialHandle(BoardHandle):
    kind = "serial"

    def __init__(self, spec: BoardSpec, name: str, port: str) -> None:
        super().__init__(spec, name)
        self.port = port
        self.console = SerialConsole(port)
        self.console.add_listener(self._dispatch)

    def start(self) -> SerialHandle:
        if self.spec.profile is None:
            self.profile = self._profile_on_board()
        if self.spec.chip is not None:          # detected (--board auto): the profile agrees
            from host_tools import boards
            chip = boards.load(self.profile).chip
            if chip != self.spec.chip:
                raise BoardError(f"{self.name}: the board is an {self.spec.chip}, its profile "
                                 f"{self.profile!r} is for an {chip}: deploy the right one "
                                 f"(--board PROFILE@{self.spec.target})")
        self.console.start()
        return self

    def flash(self, image: Path) -> None:
        """Write a MicroPython image with esptool (host_tools.flash: chip and image checked
        against the profile, written at its offset), then wait until MicroPython answers."""
        from host_tools import espimage, flash
        with self._port_free():
            try:
                flash.flash(self.tool_port, self.profile, image, show=False)
                flash.wait_for_micropython(self.tool_port)
            except (flash.FlashError, espimage.ImageError) as e:
                raise BoardError(f"{self.name}: {e}") from None

    def _profile_on_board(self) -> str:
        try:
            with deploy.RawRepl(self.port) as b:
                text = b.read_text("/board.json")
        except deploy.DeployError as e:
            raise BoardError(f"{self.name}: {e}") from None
        try:
            name = json.loads(text)["name"] if text else None
        except (ValueError, KeyError, TypeError):
            name = None
        if not name:
            raise BoardError(f"{self.name}: the board has no board.json yet; name its profile: "
                             f"--board PROFILE@{self.spec.target} (phonelab boards lists them)")
        return str(name)

    def _port_free(self):  # type: ignore[override]
        return self.console.pause()

    def reset(self, timeout: float = 10.0) -> None:
        """Ctrl-C until the friendly REPL prompt shows (the agent stopped), then a soft reset,
        so boot.py and main.py run again; returns once "soft reboot" was seen."""
        seen = bytearray()
        self.console.add_listener(seen.extend)
        try:
            deadline = time.monotonic() + timeout
            while b">>> " not in seen:
                if time.monotonic() > deadline:
                    raise BoardError(f"{self.name}: no REPL prompt after Ctrl-C within {timeout} s "
                                     f"(last output: {bytes(seen[-200:])!r})")
                # Ctrl-C stops the agent; Ctrl-B leaves a raw REPL a tool may have left behind
                # (the raw REPL answers nothing else) and prints the friendly banner.
                self.console.write(b"\r\x03\x03\x02")
                time.sleep(0.3)
            self._new_boot()
            del seen[:]
            self.console.write(b"\x04")   # soft reset at an empty friendly prompt
            while b"soft reboot" not in seen:
                if time.monotonic() > deadline:
                    raise BoardError(f"{self.name}: no soft reboot within {timeout} s")
                time.sleep(0.05)
        finally:
            self.console.remove_listener(seen.extend)

    def write(self, data: bytes) -> None:
        self.console.write(data)

    def close(self) -> None:
        super().close()
        self.console.stop()


class LabgridHandle(SerialHandle):
    kind = "labgrid"

    def __init__(self, spec: BoardSpec, name: str, place: object) -> None:
        self.place = place
        super().__init__(spec, name, place.serial_url)  # type: ignore[attr-defined]

    @property
    def has_power(self) -> bool:
        return self.place.power is not None  # type: ignore[attr-defined]

    def power_cycle(self, delay: float = 1.0) -> None:
        self.place.power_cycle(delay)  # type: ignore[attr-defined]

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.place.release()  # type: ignore[attr-defined]
