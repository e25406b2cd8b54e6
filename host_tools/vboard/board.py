"""VirtualBoard: the MicroPython unix port behind a serial-like endpoint, files in a folder.

One pump thread owns everything: the interpreter's pty, the client pty, the TCP listener and
its clients. Interpreter output goes through SentinelSplitter -> CrLf -> ReplMode, then to the
clients and to the host-side taps (console history, events, listeners, queues).

Resets, as on a board:
- the unix port ends on Ctrl-D at an empty REPL prompt (exit 0) and on `sys.exit()`:
  print "MPY: soft reboot", start again in the REPL mode it was in (raw: boot.py only, then the
  raw REPL prompt; friendly: boot.py, main.py, banner);
- exit code 3 (phone/platform.py reset()) or a crash: hard reset, boot.py and main.py run.
"""
from __future__ import annotations

import atexit
import logging
import os
import queue
import selectors
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

from host_tools import micropython
from host_tools.vboard import faithful, stream
from host_tools.vboard.console import ConsoleTaps, Listener
from host_tools.vboard.endpoints import PtyEndpoint, TcpClient, TcpListener
from host_tools.vboard.errors import VBoardError
from host_tools.vboard.process import Interpreter

log = logging.getLogger(__name__)

BOARD_MAIN = Path(__file__).with_name("board_main.py")
SOFT_REBOOT = b"MPY: soft reboot\r\n"
HARD_RESET_CODE = 3

# Phases of one interpreter run. Input is held in STARTING (no SIGINT handler yet), PROMPT
# (between the end of boot and the first prompt a Ctrl-C would hit SIG_DFL and kill the
# unix port) and SWALLOW (raw-mode reboot: the friendly banner is hidden, then Ctrl-A sent).
_STARTING, _BOOT, _PROMPT, _SWALLOW, _REPL = "starting", "boot", "prompt", "swallow", "repl"
_HOLD_PHASES = (_STARTING, _PROMPT, _SWALLOW)
_MAX_HELD_INPUT = 64 << 10
_CRASH_BACKOFF_S = 1.0    # a board that crashes at once is not restarted in a tight loop
_CTRL_C_GATE_S = 1.0      # longest a Ctrl-C waits for the interpreter to be in a blocking call

_live: weakref.WeakSet[VirtualBoard] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for board in list(_live):
        board.stop()


class VirtualBoard(ConsoleTaps):
    """A virtual board; use as a context manager or call start()/stop().
    Console history, events and taps: see ConsoleTaps (mark, console, wait_output, events,
    wait_event, add_listener, subscribe).

    folder      the board's filesystem root ('/' on the board), created if missing
    heap        MicroPython heap cap ("96K", "2M", bytes); None for the port's default
    tcp_port    None: no TCP endpoint; 0: a free port; N: that port (VBoardError if taken)
    pty         offer a pty path (what `mpremote repl` and serial tools need)
    prefix      command prefix for the interpreter, e.g. ["ip", "netns", "exec", "ns1"]
    env         extra environment for the interpreter (e.g. PHONE_MAC)
    board       "virtual:PROFILE" for an ESP32-faithful board (host_tools.vboard.faithful):
                the profile's heap (`heap` is then ignored), clock, DHCP, TLS budget, CPU
    """

    def __init__(self, folder: str | Path, heap: str | int | None = micropython.DEFAULT_HEAP,
                 tcp_port: int | None = None, pty: bool = True, prefix: Sequence[str] = (),
                 env: dict[str, str] | None = None, host: str = "127.0.0.1",
                 interpreter: str | None = None, on_output: Listener | None = None,
                 board: str | None = None) -> None:
        if tcp_port is None and not pty:
            raise VBoardError("a virtual board needs a pty, a TCP port, or both")
        self.folder = Path(folder).resolve()
        self.prefix = list(prefix)
        self.interpreter = interpreter or micropython.interpreter()
        self.env = {**os.environ, **(env or {})}
        self.board = board
        self.traits: faithful.Traits | None = None
        self.faithful: faithful.Faithful | None = None
        if faithful.is_faithful(board):
            self.traits = faithful.traits(str(board))
            heap = self.traits.board_heap
        self.heap = None if heap is None else micropython.parse_size(heap)
        self._want_pty, self._want_tcp, self._host = pty, tcp_port, host

        super().__init__(on_output)
        self.pids: list[int] = []  # every interpreter started, for leak checks
        self.boots = 0

        self._pty: PtyEndpoint | None = None
        self._listener: TcpListener | None = None
        self._clients: list[TcpClient] = []
        self._pty_attached = False
        self._interp: Interpreter | None = None
        self._thread: threading.Thread | None = None
        self._calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._wake_r = self._wake_w = -1
        self._stopping = False
        self._first_spawn: threading.Event = threading.Event()
        self._first_error: BaseException | None = None
        self._reset_state()

    def _reset_state(self) -> None:
        self._phase = _STARTING
        self._boot_mode = stream.FRIENDLY
        self._mode = stream.ReplMode()
        self._split = stream.SentinelSplitter()
        self._crlf = stream.CrLf()
        self._held = bytearray()
        self._boot_input = bytearray()  # given to the interpreter before its first prompt
        self._gated = bytearray()       # a Ctrl-C (and what follows) waiting for a safe moment
        self._gate_until = 0.0
        self._swallowed = bytearray()
        self._exit_override: int | None = None
        self._hard_reset_requested = False
        self._respawn: tuple[float, str] | None = None
        self._spawned_at = 0.0

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> VirtualBoard:
        if self._thread is not None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            if self.traits is not None:
                self.faithful = faithful.Faithful(self.traits, self.prefix, self.env)
                self.env.update(self.faithful.env())
                self.faithful.start_network()
            if self._want_pty:
                self._pty = PtyEndpoint()
            if self._want_tcp is not None:
                self._listener = TcpListener(self._host, self._want_tcp)
        except BaseException:
            self._close_endpoints()
            raise
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._stopping = False
        self._thread = threading.Thread(target=self._pump, name=f"vboard:{self.folder.name}",
                                        daemon=True)
        self._thread.start()
        _live.add(self)
        if not self._first_spawn.wait(30):
            self.stop()
            raise VBoardError("the virtual board's interpreter did not start within 30 s")
        if self._first_error is not None:
            err = self._first_error
            self.stop()
            raise VBoardError(f"cannot start the MicroPython interpreter "
                              f"({' '.join(self._command('friendly'))}): {err}") from err
        return self

    def stop(self, timeout: float = 5.0) -> None:
        thread = self._thread
        if thread is None:
            return
        self._call(self._begin_stop)
        if thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None
        _live.discard(self)

    def __enter__(self) -> VirtualBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- where to connect ------------------------------------------------------
    @property
    def pty_path(self) -> str | None:
        return self._pty.path if self._pty else None

    @property
    def tcp_port(self) -> int | None:
        return self._listener.port if self._listener else None

    @property
    def url(self) -> str | None:
        return self._listener.url if self._listener else None

    @property
    def port_for_mpremote(self) -> str:
        """What to give `mpremote connect` (or `phonelab deploy --port`): the pty if any."""
        port = self.pty_path or self.url
        assert port is not None
        return port

    @property
    def pid(self) -> int | None:
        interp = self._interp
        return interp.pid if interp else None

    # -- talking to the board from the host -------------------------------------
    def write(self, data: bytes) -> None:
        """Bytes to the board's serial input, as if a client typed them."""
        self._call(lambda: self._client_input(bytes(data)))

    def interrupt(self) -> None:
        self.write(b"\x03")

    def reset(self) -> None:
        """Hard reset: the interpreter is killed and starts again (boot.py, main.py)."""
        self._call(self._hard_reset)

    # -- pump thread ---------------------------------------------------------------
    def _call(self, fn: Callable[[], None]) -> None:
        if self._thread is threading.current_thread():
            fn()
            return
        self._calls.put(fn)
        try:
            os.write(self._wake_w, b"!")
        except OSError:  # already stopped
            pass

    def _command(self, mode: str) -> list[str]:
        cmd = [*self.prefix, self.interpreter]
        if self.heap is not None:
            rom = self.faithful.image_size if self.faithful is not None else 0
            cmd += ["-X", f"heapsize={self.heap + rom}"]
        return cmd + ["-i", str(BOARD_MAIN), str(self.folder), mode]

    def _pump(self) -> None:
        sel = selectors.DefaultSelector()
        try:
            self._spawn(stream.FRIENDLY, first=True)
            while not self._stopping:
                self._loop_once(sel)
        except Exception:
            log.exception("virtual board %s failed", self.folder)
        finally:
            self._stopping = True
            self._first_spawn.set()
            sel.close()
            self._shutdown()

    def _loop_once(self, sel: selectors.BaseSelector) -> None:
        self._refresh_pty()
        # fd -> (events, owner, handler). The owner tells a reused fd number (a new
        # interpreter's pty, a new client) from the closed one epoll forgot.
        wanted: dict[int, tuple[int, object, Callable[[int], None]]] = {
            self._wake_r: (selectors.EVENT_READ, self, self._on_wake)}
        if self._interp is not None:
            ev = selectors.EVENT_READ | (selectors.EVENT_WRITE if self._interp.pending else 0)
            wanted[self._interp.fd] = (ev, self._interp, self._on_interp)
        if self._pty is not None and self._pty_attached:
            ev = selectors.EVENT_READ | (selectors.EVENT_WRITE if self._pty.pending else 0)
            wanted[self._pty.master] = (ev, self._pty, self._on_pty)
        if self._listener is not None:
            wanted[self._listener.fileno()] = (selectors.EVENT_READ, self._listener, self._on_accept)
        for c in self._clients:
            ev = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.pending else 0)
            wanted[c.fileno()] = (ev, c, self._client_handler(c))
        for fd, key in list(sel.get_map().items()):
            if fd not in wanted or key.data[0] is not wanted[fd][1]:
                sel.unregister(fd)
        registered = sel.get_map()
        for fd, (ev, owner, fn) in wanted.items():
            key = registered.get(fd)
            if key is None:
                sel.register(fd, ev, (owner, fn))
            elif key.events != ev:
                sel.modify(fd, ev, (owner, fn))

        timeout = 0.005 if self._gated else 0.1
        if self._respawn is not None:
            timeout = max(0.0, min(timeout, self._respawn[0] - time.monotonic()))
        for key, mask in sel.select(timeout):
            if self._stopping:
                return
            key.data[1](mask)
        self._check_exit()
        self._check_gate()
        self._check_watchdog()
        if self._respawn is not None and time.monotonic() >= self._respawn[0]:
            mode = self._respawn[1]
            self._respawn = None
            self._spawn(mode)

    def _on_wake(self, _mask: int) -> None:
        try:
            os.read(self._wake_r, 4096)
        except BlockingIOError:
            pass
        while True:
            try:
                fn = self._calls.get_nowait()
            except queue.Empty:
                return
            fn()

    def _begin_stop(self) -> None:
        self._stopping = True

    def _shutdown(self) -> None:
        if self._interp is not None:
            self._release_cpu()
            self._interp.stop()
            self._interp.close()
            self._interp = None
        self._close_endpoints()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        self._console_wake()

    def _close_endpoints(self) -> None:
        if self.faithful is not None:
            self.faithful.close()
            self.faithful = None
        for c in self._clients:
            c.close()
        self._clients.clear()
        if self._listener is not None:
            self._listener.close()
        if self._pty is not None:
            self._pty.close()

    # -- interpreter -------------------------------------------------------------------
    def _spawn(self, mode: str, first: bool = False) -> None:
        try:
            if self.faithful is not None:
                self.faithful.power_up(self.folder)  # clock back to 2000, lease gone
            interp = Interpreter(self._command(mode), self.env)
        except OSError as e:
            if first:
                self._first_error = e
                self._stopping = True
                self._first_spawn.set()
                return
            log.error("virtual board %s: cannot start the interpreter: %s", self.folder, e)
            self._emit(f"\r\n[vboard] cannot start the interpreter: {e}\r\n".encode())
            self._respawn = (time.monotonic() + 2.0, mode)
            return
        self._interp = interp
        self._phase, self._boot_mode = _STARTING, mode
        self._mode.reset(mode)
        self._split = stream.SentinelSplitter()
        self._swallowed.clear()
        self._spawned_at = time.monotonic()
        with self._lock:
            self.pids.append(interp.pid)
            self.boots += 1
        if first:
            self._first_spawn.set()

    def _on_interp(self, mask: int) -> None:
        interp = self._interp
        if interp is None:
            return
        if mask & selectors.EVENT_WRITE:
            interp.flush()
        if mask & selectors.EVENT_READ:
            data = interp.read()
            if data is None:
                self._interp_gone()
            elif data:
                self._interp_output(data)

    def _check_exit(self) -> None:
        # Normally EIO on the pty says the process ended; a child it left behind can keep the
        # pty open, so look at the process too.
        interp = self._interp
        if interp is None or interp.poll() is None:
            return
        while (data := interp.read()):
            self._interp_output(data)
        self._interp_gone()

    def _interp_output(self, data: bytes) -> None:
        for item in self._split.feed(data):
            if isinstance(item, stream.Sentinel):
                self._on_sentinel(item)
            elif self._phase == _SWALLOW:
                self._swallow(item)
            else:
                self._emit(item)
                if self._phase == _PROMPT:
                    self._await_prompt(item)

    def _on_sentinel(self, s: stream.Sentinel) -> None:
        if s.name == "up" and self._phase == _STARTING:
            if self.faithful is not None and self._interp is not None:
                # The profile's CPU speed (host_tools/vboard/cpuquota.py) from here on: what
                # ran before (CPython and the unix port starting, the board's modules
                # compiled) has no counterpart on the board, whose boot is ROM and C.
                self.faithful.started(self._interp.pid)
            self._phase = _BOOT
            self._release_input()
        elif s.name == "ready" and self._phase in (_STARTING, _BOOT):
            self._swallowed.clear()
            if self._boot_mode == stream.RAW:
                self._phase = _SWALLOW  # hide the friendly banner, then enter the raw REPL
            else:
                self._phase = _PROMPT
        elif s.name == "exit" and self._interp is not None:
            try:
                self._exit_override = int(s.arg or "0")
            except ValueError:
                self._exit_override = 1
            self._release_cpu()
            self._interp.kill()

    def _swallow(self, data: bytes) -> None:
        self._swallowed += data
        if b">>> " in self._swallowed or len(self._swallowed) > 8192:
            if b">>> " not in self._swallowed:  # no banner after all: show what came
                self._emit(bytes(self._swallowed))
            self._swallowed.clear()
            self._phase = _REPL
            assert self._interp is not None
            self._interp.write(b"\x01")  # prints "raw REPL; CTRL-B to exit\r\n>" like a board
            self._release_input()

    def _await_prompt(self, data: bytes) -> None:
        self._swallowed += data
        if b">>> " in self._swallowed:
            self._swallowed.clear()
            self._phase = _REPL
            self._release_input()
        else:
            del self._swallowed[:-8]

    def _interp_gone(self) -> None:
        interp = self._interp
        assert interp is not None
        self._interp = None
        rc = interp.stop()
        interp.close()
        rest = self._split.flush()
        if rest:
            self._emit(rest)
        code = self._exit_override if self._exit_override is not None else rc
        self._exit_override = None
        if self._stopping:
            return
        crashed_in_boot = (code not in (0, HARD_RESET_CODE) and not self._hard_reset_requested
                           and self._phase != _REPL)
        # A board loses what was in flight when it resets. But a Ctrl-C that lands in the first
        # milliseconds of boot code (imports, GC) can crash the unix port itself, which a board
        # would survive: then give the client's input (mpremote's "\r\x03\r\x01") to the next
        # run instead of leaving the client waiting for a prompt that never comes.
        self._held = bytearray(self._boot_input) if crashed_in_boot else bytearray()
        self._boot_input.clear()
        self._gated.clear()
        if self._hard_reset_requested:
            self._hard_reset_requested = False
            self._emit(b"\r\n[vboard] hard reset\r\n")
            self._respawn = (time.monotonic(), stream.FRIENDLY)
        elif code == 0:
            self._emit(SOFT_REBOOT)
            self._respawn = (time.monotonic(), self._mode.mode)
        elif code == HARD_RESET_CODE:
            self._emit(b"\r\n[vboard] hard reset (exit code 3)\r\n")
            self._respawn = (time.monotonic(), stream.FRIENDLY)
        else:
            why = f"signal {-code}" if code < 0 else f"exit code {code}"
            log.warning("virtual board %s: interpreter ended with %s", self.folder, why)
            self._emit(f"\r\n[vboard] interpreter ended with {why}: hard reset\r\n".encode())
            quick = time.monotonic() - self._spawned_at < 2 * _CRASH_BACKOFF_S
            self._respawn = (time.monotonic() + (_CRASH_BACKOFF_S if quick else 0), stream.FRIENDLY)

    def _release_cpu(self) -> None:
        """Lift the CPU quota before the interpreter is killed: a process throttled to an
        ESP32's speed takes seconds to exit (its teardown is throttled too), while a board's
        reset is immediate."""
        if self.faithful is not None:
            self.faithful.release_cpu()

    def _check_watchdog(self) -> None:
        f = self.faithful
        if f is None or self._interp is None or self._hard_reset_requested:
            return
        now = time.monotonic()
        if now < getattr(self, "_wdt_next", 0.0):
            return
        self._wdt_next = now + 0.1
        if f.watchdog_expired():
            self._emit(b"\r\n[vboard] watchdog: no feed within its timeout\r\n")
            self._hard_reset()

    def _hard_reset(self) -> None:
        if self._interp is None:
            self._respawn = (time.monotonic(), stream.FRIENDLY)
            return
        self._hard_reset_requested = True
        self._release_cpu()
        self._interp.kill()

    # -- clients -----------------------------------------------------------------------
    def _refresh_pty(self) -> None:
        if self._pty is None:
            return
        attached = self._pty.attached()
        if not attached and self._pty_attached:
            self._pty.pending.clear()
        self._pty_attached = attached

    def _on_pty(self, mask: int) -> None:
        assert self._pty is not None
        if mask & selectors.EVENT_WRITE:
            self._pty.flush()
        if mask & selectors.EVENT_READ:
            data = self._pty.read()
            if data is None:
                self._pty_attached = False
                self._pty.pending.clear()
            elif data:
                self._client_input(data)

    def _on_accept(self, _mask: int) -> None:
        assert self._listener is not None
        client = self._listener.accept()
        if client is not None:
            self._clients.append(client)

    def _client_handler(self, client: TcpClient) -> Callable[[int], None]:
        def handle(mask: int) -> None:
            if client not in self._clients:
                return
            ok = True
            if mask & selectors.EVENT_WRITE:
                ok = client.flush()
            if ok and mask & selectors.EVENT_READ:
                data = client.read()
                if data is None:
                    ok = False
                elif data:
                    self._client_input(data)
            if not ok:
                self._clients.remove(client)
                client.close()
        return handle

    def _client_input(self, data: bytes) -> None:
        if self._interp is None or self._phase in _HOLD_PHASES:
            # Not ready for input (a Ctrl-C now would hit the interpreter while SIGINT has
            # its default action): keep it for when the board is.
            self._held += data
            del self._held[:-_MAX_HELD_INPUT]
        else:
            self._to_interp(data)

    def _release_input(self) -> None:
        if self._held and self._interp is not None:
            self._to_interp(bytes(self._held))
        self._held.clear()
        if self._phase == _REPL:
            self._boot_input.clear()

    def _to_interp(self, data: bytes) -> None:
        assert self._interp is not None
        if self._phase != _REPL:
            self._boot_input += data
            del self._boot_input[:-_MAX_HELD_INPUT]
        if self._gated:
            self._gated += data
            return
        ctrl_c = data.find(b"\x03")
        if ctrl_c >= 0 and self._interp.busy():
            # The unix port is fragile when SIGINT lands in the middle of an import, compile or
            # GC (uncaught NLR, endless loop); in a blocking call (sleep, poll, read) it is
            # clean. So a Ctrl-C waits, with what follows it, until the interpreter sleeps,
            # or _CTRL_C_GATE_S at most (a busy loop is interrupted cleanly too).
            self._interp.write(data[:ctrl_c])
            self._gated = bytearray(data[ctrl_c:])
            self._gate_until = time.monotonic() + _CTRL_C_GATE_S
            return
        self._interp.write(data)

    def _check_gate(self) -> None:
        if not self._gated:
            return
        if self._interp is None:
            self._gated.clear()
        elif not self._interp.busy() or time.monotonic() >= self._gate_until:
            data, self._gated = bytes(self._gated), bytearray()
            self._interp.write(data)

    def _emit(self, data: bytes) -> None:
        data = self._crlf.feed(data)
        if not data:
            return
        self._mode.feed(data)
        if self._pty is not None and self._pty_attached:
            self._pty.queue(data)
            self._pty.flush()
        for c in list(self._clients):
            c.queue(data)
            if not c.flush():
                self._clients.remove(c)
                c.close()
        self._console_feed(data)
