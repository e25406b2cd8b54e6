"""Running lab code inside network namespaces from one CPython process.

A network namespace belongs to a *thread* (setns(2) with CLONE_NEWNET changes only the calling
thread), and a socket belongs to the namespace of the thread that created it. So each lab host
(branch router, HQ) gets one `NsLoop`: a thread that enters the namespace and runs an asyncio
loop. Everything that loop creates (listening sockets, outgoing connections, executor threads
it starts) lives in that namespace, and the simulators need no change at all.

    hq = NsLoop("hq", netns="pl123-3-srst-hq").start()   # netns.enter_current_thread
    cm = hq.run(make_and_start_callmanager())      # runs on hq's loop, waits for the result
    hq.stop()

`spawn()` starts helper processes (the recorder's dumpcap) from one long-lived thread with a
parent-death signal, so they end with this process even when it is killed. (Processes inside
a namespace are also killed when the namespace is deleted: `netns._delete_namespace`.)
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import queue
import signal
import subprocess
import threading
from typing import Any, Awaitable, Callable, Sequence, TypeVar

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1

try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # not Linux/glibc
    _libc = None


class NsError(RuntimeError):
    pass


class NsLoop:
    """An asyncio loop in its own thread, optionally inside a network namespace."""

    def __init__(self, name: str, netns: str | None = None) -> None:
        self.name = name
        self.netns = netns
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        # what crashed on this loop: exceptions no server code caught (a handler task that
        # died, a callback that raised); the lab turns them into a failed run
        self.crashes: list[str] = []
        self.on_crash: Callable[[str, str], None] | None = None

    def start(self, timeout: float = 10.0) -> "NsLoop":
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._main, name=f"lab:{self.name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise NsError(f"{self.name}: loop thread did not start within {timeout} s")
        if self._error is not None:
            self._thread = None
            raise NsError(f"{self.name}: {self._error}") from self._error
        return self

    def _main(self) -> None:
        try:
            if self.netns:
                from host_tools.lab.netns import enter_current_thread
                enter_current_thread(self.netns)
            self.loop = asyncio.new_event_loop()
        except BaseException as e:
            self._error = e
            self._ready.set()
            return
        asyncio.set_event_loop(self.loop)
        self.loop.set_exception_handler(self._exception)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            self._shutdown()

    def _exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if exc is None or isinstance(exc, (OSError, asyncio.CancelledError)):
            return          # notes (a task destroyed at shutdown), a peer's reset: no crash
        text = f"{type(exc).__name__}: {exc}"
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None:
            code = tb.tb_frame.f_code
            text += f" (in {code.co_name}, {code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno})"
        self.crashes.append(text)
        if self.on_crash is not None:
            try:
                self.on_crash(self.name, text)
            except Exception:  # noqa: BLE001 - a broken listener must not hide the crash
                pass

    def _shutdown(self) -> None:
        loop = self.loop
        assert loop is not None
        try:
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in tasks:
                t.cancel()
            if tasks:
                loop.run_until_complete(asyncio.wait(tasks, timeout=3))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        except Exception:
            pass
        finally:
            loop.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, coro: Awaitable[T]) -> "concurrent.futures.Future[T]":
        if not self.running or self.loop is None:
            raise NsError(f"{self.name}: loop is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def run(self, coro: Awaitable[T], timeout: float = 30.0) -> T:
        """Run a coroutine on this loop and wait for it (from any other thread)."""
        if self.loop is not None and _running_loop() is self.loop:
            raise NsError(f"{self.name}: run() called from its own loop (await it instead)")
        fut = self.submit(coro)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise TimeoutError(f"{self.name}: operation did not finish within {timeout} s")

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 30.0) -> T:
        """Call a plain function on the loop thread (thread-safe access to its objects)."""
        async def wrapper() -> T:
            return fn(*args)
        return self.run(wrapper(), timeout)

    def stop(self, timeout: float = 10.0) -> None:
        t, self._thread = self._thread, None
        if t is None:
            return
        if self.loop is not None and t.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
        t.join(timeout)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


# -- helper processes ------------------------------------------------------------------------

def _child_setup() -> None:
    # In the forked child: die with the parent thread, which is the long-lived spawner.
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class _Spawner:
    """PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, so children are
    forked from one daemon thread that lives as long as the process."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _run(self) -> None:
        while True:
            args, kw, fut = self._q.get()
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(subprocess.Popen(args, preexec_fn=_child_setup, **kw))
                except BaseException as e:
                    fut.set_exception(e)

    def popen(self, args: Sequence[str], **kw: Any) -> subprocess.Popen:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lab:spawner", daemon=True)
                self._thread.start()
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._q.put((list(args), kw, fut))
        return fut.result(30)


_spawner = _Spawner()


def spawn(args: Sequence[str], **kw: Any) -> subprocess.Popen:
    """subprocess.Popen that ends with this process (SIGTERM on parent death)."""
    return _spawner.popen(args, **kw)


def stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM,
                 timeout: float = 5.0) -> int | None:
    """Signal, wait, then SIGKILL; returns the exit code (None if it was not running)."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        except ProcessLookupError:
            pass
    return proc.returncode
