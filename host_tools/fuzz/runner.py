"""One long-lived MicroPython process per parser, fed inputs over a pipe, with per-input
timeouts (a hang kills and restarts the process), and the tallies the bench and tests report.

The harness (host_tools/mpscripts/fuzz_harness.py) answers one line per input:
`ok`, `rejected:<Class>:<message>` or `crash:<Class>:<traceback>`. Here an answer becomes an
Outcome: ok, rejected (a documented error class with a message), unclear (a documented class
with an empty message), crash (any other exception, or the interpreter died) or hang."""
from __future__ import annotations

import hashlib
import os
import select
import shutil
import struct
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from host_tools import MPSCRIPTS, fwbuild, micropython

HARNESS = MPSCRIPTS / "fuzz_harness.py"
DEFAULT_HEAP = "128K"
MAX_INPUT = 16384       # the harness's input buffer (network targets; files go by path)
SLOW_MS = 1000          # an answer slower than this is recorded (a board is ~50x slower)


@dataclass(frozen=True)
class Target:
    name: str
    short: str
    label: str
    errors: tuple[str, ...]     # the exception classes the parser documents
    file: bool = False          # the parser reads a file: the input is written to one
    timeout_s: float = 5.0      # per input; more is a hang


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("dhcp", "DHCP", "DHCP replies (dhcp.parse, the client)", ("Ignored",)),
    Target("tftp", "TFTP", "TFTP (OACK/ERROR parsers, receive path)", ("TftpError", "TftpTimeout")),
    Target("sccp", "SCCP", "SCCP (FrameReader.aread, parse_*)", ("SccpError",)),
    Target("x509", "DER/X.509", "DER / X.509 (der, x509.load)", ("X509Error",)),
    Target("ctl", "CTL/ITL", "CTL / ITL (ctl.parse, load_trust)", ("CtlError",), file=True),
    Target("sgn", ".sgn", ".sgn (verify_sgn, payload config)", ("CtlError",), file=True),
    Target("config", "cnf.xml", "cnf.xml (config.parse_file)", ("ConfigError",), file=True),
)}


@dataclass
class Outcome:
    kind: str                   # ok | rejected | unclear | crash | hang
    cls: str = ""
    detail: str = ""            # message, or traceback
    ms: float = 0.0             # time to answer

    @property
    def bad(self) -> bool:
        return self.kind in ("crash", "hang", "unclear")

    def __str__(self) -> str:
        return self.kind + (f" {self.cls}: {self.detail}" if self.cls or self.detail else "")


def _unescape(s: str) -> str:
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            out.append({"n": "\n", "r": "\r", "\\": "\\"}.get(s[i + 1], s[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def classify(line: str, target: Target) -> Outcome:
    if line == "ok":
        return Outcome("ok")
    kind, _, rest = line.partition(":")
    cls, _, detail = rest.partition(":")
    detail = _unescape(detail)
    if kind == "rejected" and cls in target.errors:
        return Outcome("rejected" if detail.strip() else "unclear", cls, detail)
    return Outcome("crash", cls or "?", detail or line)


def build_harness(out: Path) -> Path:
    """fuzz_harness.mpy in `out` (compiled, its code costs the capped heap less)."""
    from host_tools import deploy, fwbuild
    cmd = deploy.mpy_cross_command(fwbuild.unix_format())
    deploy.compile_file(cmd, HARNESS, "fuzz_harness.py", out / "fuzz_harness.mpy")
    return out


class Harness:
    """One MicroPython process running the harness for one target."""

    def __init__(self, target: Target, fw: Path, workdir: Path, trust: list[Path] = (),
                 heap: str = DEFAULT_HEAP, timeout_s: float | None = None):
        """fw: a folder holding phone/*.mpy (host_tools.fwbuild), workdir: one for the
        harness's files (and fuzz_harness.mpy, when built there)."""
        self.target = target
        self.fw = fw
        self.workdir = workdir
        self.trust = list(trust)
        self.heap = heap
        self.timeout_s = timeout_s or target.timeout_s
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self._buf = b""
        self.input_path = workdir / f"{target.name}.input"
        self._err = None
        self.free_at_start = 0      # heap bytes free once the harness is ready

    # -- process ---------------------------------------------------------------------
    def start(self) -> None:
        env = fwbuild.environ()
        env["MICROPYPATH"] = ":".join([".frozen", str(self.fw), str(self.workdir)])
        script = ["-m", "fuzz_harness"] if (self.workdir / "fuzz_harness.mpy").exists() else [str(HARNESS)]
        args = [*script, self.target.name, ",".join(self.target.errors), *map(str, self.trust)]
        self._err = open(self.workdir / f"{self.target.name}.stderr", "wb")
        self.proc = subprocess.Popen(micropython.command(args, heap=self.heap), env=env,
                                     cwd=self.workdir, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._err, bufsize=0)
        self.starts += 1
        self._buf = b""
        line = self._readline(time.monotonic() + 60)
        if line is not None and line.startswith("ready "):
            self.free_at_start = int(line.split()[1])
        else:
            err = self.stderr_tail()
            self.stop()
            raise RuntimeError(f"fuzz harness {self.target.name} did not start: {line!r} {err}")

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            for f in (self.proc.stdin, self.proc.stdout):
                if f:
                    f.close()
            self.proc = None
        if self._err:
            self._err.close()
            self._err = None

    def stderr_tail(self) -> str:
        p = self.workdir / f"{self.target.name}.stderr"
        try:
            return p.read_bytes()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> "Harness":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _readline(self, deadline: float) -> str | None:
        """A line of output, or None at a timeout or when the process is gone."""
        assert self.proc and self.proc.stdout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:               # end of output: the interpreter is gone
                try:
                    self.proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    pass
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode(errors="replace")

    def mem_free(self) -> int:
        """Free heap bytes in the harness now (after a collection)."""
        if self.proc is None:
            self.start()
        assert self.proc and self.proc.stdin
        self.proc.stdin.write(struct.pack(">I", 0))
        line = self._readline(time.monotonic() + self.timeout_s) or ""
        return int(line.split()[1]) if line.startswith("mem ") else -1

    # -- one input ---------------------------------------------------------------------
    def run(self, data: bytes, retry: bool = True) -> Outcome:
        """One input's outcome. No answer within timeout_s: the process is restarted and the
        input tried once more with ten times the time; a hang is what fails both."""
        if self.proc is None:
            self.start()
        assert self.proc and self.proc.stdin
        if self.target.file:
            self.input_path.write_bytes(data[1:])
            msg = data[:1] + str(self.input_path).encode()
        else:
            msg = data[:MAX_INPUT]
        try:
            self.proc.stdin.write(struct.pack(">I", len(msg)) + msg)
        except BrokenPipeError:
            pass
        t0 = time.monotonic()
        line = self._readline(t0 + self.timeout_s)
        if line is not None:
            o = classify(line, self.target)
            o.ms = (time.monotonic() - t0) * 1000
            return o
        died = self.proc.poll() is not None
        self.stop()
        err = self.stderr_tail()
        self.start()
        if died:
            return Outcome("crash", "InterpreterDied", err or "the MicroPython process exited")
        if not retry:
            return Outcome("hang", "", f"no answer within {self.timeout_s:g} s")
        # slow (a machine busy with something else, a heap that makes the GC run often) or
        # stuck? Once more, in the fresh process, with ten times the time
        keep = self.timeout_s
        self.timeout_s = keep * 10
        try:
            o = self.run(data, retry=False)
        finally:
            self.timeout_s = keep
        if o.kind == "hang":
            o.detail = f"no answer within {keep:g} s, nor within {keep * 10:g} s in a fresh process"
        return o


# -- tallies ----------------------------------------------------------------------------
@dataclass
class Finding:
    target: str
    outcome: Outcome
    data: bytes
    count: int = 1

    @property
    def key(self) -> str:
        o = self.outcome
        where = [ln.strip() for ln in o.detail.splitlines() if ln.strip().startswith("File ")]
        return f"{o.kind}:{o.cls}:{where[-1] if where else o.detail[:60]}"

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()[:12]


@dataclass
class Tally:
    target: str
    tried: int = 0
    ok: int = 0
    rejected: Counter = field(default_factory=Counter)
    findings: dict[str, Finding] = field(default_factory=dict)   # key -> first input
    crashes: int = 0
    hangs: int = 0
    unclear: int = 0
    seconds: float = 0.0
    restarts: int = 0
    slow: int = 0
    max_ms: float = 0.0
    slowest: Finding | None = None
    heap_free: int | None = None    # free heap at the end of a campaign()
    heap_kept: int | None = None    # free heap lost over its second half

    def add(self, data: bytes, o: Outcome) -> None:
        self.tried += 1
        if o.kind != "hang" and o.ms > self.max_ms:
            self.max_ms = o.ms
            if o.ms > SLOW_MS:
                self.slowest = Finding(self.target, o, data)
        if o.kind != "hang" and o.ms > SLOW_MS:
            self.slow += 1
        if o.kind == "ok":
            self.ok += 1
        elif o.kind == "rejected":
            self.rejected[o.cls] += 1
        else:
            if o.kind == "crash":
                self.crashes += 1
            elif o.kind == "hang":
                self.hangs += 1
            else:
                self.unclear += 1
            f = Finding(self.target, o, data)
            if f.key in self.findings:
                self.findings[f.key].count += 1
            else:
                self.findings[f.key] = f

    def save(self, out: Path) -> list[Path]:
        """Write each distinct finding's input and outcome under out/TARGET/ (and the
        slowest input when one took more than SLOW_MS)."""
        paths = []
        found = list(self.findings.values())
        if self.slowest is not None:
            found.append(self.slowest)
        for f in found:
            d = out / self.target
            d.mkdir(parents=True, exist_ok=True)
            kind = f.outcome.kind if f is not self.slowest else "slow"
            p = d / f"{kind}-{f.digest}.bin"
            p.write_bytes(f.data)
            p.with_suffix(".txt").write_text(f"{f.outcome}\n{f.outcome.ms:.0f} ms, seen {f.count} times\n")
            paths.append(p)
        return paths


class Session:
    """What every harness needs: the firmware as .mpy (host_tools.fwbuild's cached build of
    the current sources), a temp folder, the trust lists the
    ctl/sgn harnesses trust (the fixture CTL, plus `corpus.trust` when the corpus has fresh
    signers), started on demand."""

    def __init__(self, corpus=None, fw: Path | None = None, heap: str = DEFAULT_HEAP):
        from host_tools import fwbuild
        from host_tools.fuzz import gen
        self.tmp = Path(tempfile.mkdtemp(prefix="fuzz-"))
        self.fw = fw or fwbuild.compiled()
        build_harness(self.tmp)
        self.heap = heap
        self.trust = [gen.FIXTURE_DATA / "ctl_sha1.tlv"]
        if corpus is not None and getattr(corpus, "trust", None):
            p = self.tmp / "trust.tlv"
            p.write_bytes(corpus.trust)
            self.trust.append(p)
        self.harnesses: list[Harness] = []

    def harness(self, name: str, **kw) -> Harness:
        h = Harness(TARGETS[name], self.fw, self.tmp, self.trust, heap=kw.pop("heap", self.heap), **kw)
        h.start()
        self.harnesses.append(h)
        return h

    def close(self) -> None:
        for h in self.harnesses:
            h.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def fuzz(h: Harness, inputs, tally: Tally | None = None, seconds: float | None = None) -> Tally:
    """Run every input of the iterable through the harness (stopping after `seconds`)."""
    t = tally or Tally(h.target.name)
    t0 = time.monotonic()
    starts = h.starts
    for data in inputs:
        t.add(data, h.run(data))
        if seconds is not None and time.monotonic() - t0 > seconds:
            break
    t.seconds += time.monotonic() - t0
    t.restarts += h.starts - starts
    return t


def campaign(session: Session, name: str, count: int, seed: str, corpus) -> Tally:
    """`count` inputs from the target's generator driven by a seeded PRNG. The free heap is
    taken halfway (every module the parser imports is loaded by then) and at the end:
    `heap_kept` is what the second half left behind for good (None when the process was
    restarted in between), a leak grows it with the number of inputs."""
    from host_tools.fuzz import gen
    h = session.harness(name)
    make = gen.GENERATORS[name]
    src = gen.RandomSrc(f"{seed}-{name}")
    half = count // 2
    t = fuzz(h, (make(src, corpus) for _ in range(half)))
    mid, starts = h.mem_free(), h.starts
    fuzz(h, (make(src, corpus) for _ in range(count - half)), t)
    t.heap_free = h.mem_free()
    t.heap_kept = mid - t.heap_free if h.starts == starts else None
    h.stop()
    return t
