"""Power loss during store writes: MicroPython runs a sequence of phone.store writes and is
killed with SIGKILL at many points; a fresh interpreter then opens the store and must find, for
every name, the complete old or the complete new content (checked by hash), and no .tmp/.bak.

Kill points:
- deterministic, before every filesystem operation (open, write - torn in half -, flush,
  close, rename, remove) of the sequence: a test-only `fs` wrapper (the store's injection
  point) kills its own interpreter when STORE_CRASH_AT operations have been made;
  on the unix port's files (rename over), with the stepwise replace forced, and on the port's
  real FAT code (VfsFat on a file-backed block device, stepwise replace detected);
- LittleFS (VfsLfs2 on a file-backed block device): killed inside the Nth block write, after
  half of the block was written (a torn write);
- at random times from outside (SIGKILL from the host).
"""
from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

from host_tools import fwbuild, micropython

SUPPORT = Path(__file__).parents[1] / "firmware" / "support"   # blockfile.py
NAMES = ["ctl.tlv", "itl.tlv", "config.xml", "srst.der"]
SEQ = [(n, v) for v in (1, 2) for n in NAMES]      # the deterministic write sequence

# Runs under MicroPython: mp.py MODE DIR PHASE   (MODE posix|stepwise|fat|lfs;
# PHASE seed|write|loop|verify); STORE_CRASH_AT=N kills the interpreter at operation N.
MP_SCRIPT = r'''
import sys, os, hashlib, binascii
from blockfile import BlockFile
from phone.store import Store

NAMES = ['ctl.tlv', 'itl.tlv', 'config.xml', 'srst.der']
mode, base, phase = sys.argv[1], sys.argv[2], sys.argv[3]
crash_at = int(os.getenv('STORE_CRASH_AT') or 0)
count = 0


def content(name, v):
    n = 200 + (len(name) * 397 + v * 1009) % 1800
    seed = hashlib.sha256(('%s/%d' % (name, v)).encode()).digest()
    return (seed * (n // 32 + 1))[:n]


def tick(before_crash=None):
    global count
    count += 1
    if count == crash_at:
        if before_crash:
            before_crash()
        print('@@CRASH', count)
        os.system('kill -9 $PPID')      # SIGKILL ourselves: no cleanup, no flush
        while True:
            pass


class CrashFile:
    def __init__(self, f):
        self.f = f

    def write(self, b):
        tick(lambda: self.f.write(memoryview(b)[0:len(b) // 2]))   # torn write
        return self.f.write(b)

    def flush(self):
        tick()
        self.f.flush()

    def close(self):
        tick()
        self.f.close()


class CrashOS:
    """Test-only os wrapper passed as Store(fs=...)."""

    def __getattr__(self, name):
        return getattr(os, name)

    def rename(self, a, b):
        tick()
        os.rename(a, b)

    def remove(self, p):
        tick()
        os.remove(p)

    def open(self, p, mode='r'):
        if 'w' in mode:
            tick()
            return CrashFile(open(p, mode))
        return open(p, mode)


def torn(f, buf):                       # LittleFS: the crash tears a block write in half
    if mode == 'lfs':
        tick(lambda: f.write(memoryview(buf)[0:len(buf) // 2]))


fs = None
if mode in ('fat', 'lfs'):
    import vfs
    cls = vfs.VfsFat if mode == 'fat' else vfs.VfsLfs2
    bd = BlockFile(base + '/flash.img', 128, new=(phase == 'seed'), before_write=torn)
    if phase == 'seed':
        cls.mkfs(bd)
    vfs.mount(cls(bd), '/flash')
    base = '/flash/state'
if mode != 'lfs' and phase in ('write', 'loop'):
    fs = CrashOS()
st = Store(base, fs=fs, replace=False if mode == 'stepwise' else None)
if phase != 'verify':
    print('@@REPLACE', st.replace)


def put(name, v, stream):
    data = content(name, v)
    if stream:
        w = st.begin(name)
        for k in range(0, len(data), 512):
            w.write(data[k:k + 512])
        w.commit()
    else:
        st.write_bytes(name, data)
    print('@@COMMIT', name, v)


if phase == 'seed':
    for n in NAMES:
        put(n, 0, False)
elif phase == 'write':
    for v in (1, 2):
        for i, n in enumerate(NAMES):
            put(n, v, (i + v) % 2 == 0)
    print('@@END', count)
elif phase == 'loop':
    i = 0
    while True:
        put(NAMES[i % 4], i // 4 + 1, i % 3 == 0)
        i += 1
else:
    print('@@LIST', ' '.join(sorted(os.listdir(base))))
    for n in NAMES:
        d = st.read_bytes(n)
        print('@@HASH', n, 'None' if d is None else binascii.hexlify(hashlib.sha256(d).digest()).decode())
'''


def content(name: str, v: int) -> bytes:
    n = 200 + (len(name) * 397 + v * 1009) % 1800
    seed = hashlib.sha256(f"{name}/{v}".encode()).digest()
    return (seed * (n // 32 + 1))[:n]


def digest(name: str, v: int) -> str:
    return hashlib.sha256(content(name, v)).hexdigest()


class Rig:
    def __init__(self, tmp: Path, mode: str):
        self.tmp, self.mode = tmp, mode
        self.script = tmp / "mp.py"
        self.script.write_text(MP_SCRIPT)
        self.template = tmp / f"seed-{mode}"
        self.template.mkdir()
        out = self.run(self.template, "seed")
        assert out.returncode == 0, out.stdout + out.stderr
        self.replace = self.tag(out.stdout, "@@REPLACE")[0][0]

    def run(self, d: Path, phase: str, crash_at: int = 0) -> subprocess.CompletedProcess:
        env = fwbuild.environ(SUPPORT, STORE_CRASH_AT=str(crash_at))
        return subprocess.run(micropython.command([str(self.script), self.mode, str(d), phase]),
                              env=env, capture_output=True, text=True, timeout=20)

    def fresh(self, name: str) -> Path:
        d = self.tmp / name
        shutil.copytree(self.template, d)
        return d

    @staticmethod
    def tag(stdout: str, tag: str) -> list[list[str]]:
        return [line.split()[1:] for line in stdout.splitlines() if line.startswith(tag + " ")]

    def verify(self, d: Path, expect: dict[str, set[int]]) -> dict[str, int]:
        """Open the store in a fresh interpreter; each name must hold one of the allowed
        versions, complete. Returns the version found per name."""
        out = self.run(d, "verify")
        assert out.returncode == 0, out.stdout + out.stderr
        listing = self.tag(out.stdout, "@@LIST")[0]
        assert not [n for n in listing if n.endswith((".tmp", ".bak"))], listing
        found = {}
        for name, h in self.tag(out.stdout, "@@HASH"):
            ok = {v: digest(name, v) for v in expect[name]}
            match = [v for v, dh in ok.items() if dh == h]
            assert match, f"{self.mode}: {name} is neither version {sorted(ok)} (hash {h[:12]})"
            found[name] = match[0]
        assert set(found) == set(NAMES)
        return found


def expected_after(commits: int) -> dict[str, set[int]]:
    """Allowed versions after `commits` completed writes of SEQ: the last committed version,
    and for the one write in flight also its new version."""
    state = {n: 0 for n in NAMES}
    for name, v in SEQ[:commits]:
        state[name] = v
    allowed = {n: {v} for n, v in state.items()}
    if commits < len(SEQ):
        name, v = SEQ[commits]
        allowed[name].add(v)
    return allowed


def crash_sweep(rig: Rig, points: list[int]) -> int:
    kills = 0
    for k in points:
        d = rig.fresh(f"k{k}")
        out = rig.run(d, "write", crash_at=k)
        assert out.returncode == -signal.SIGKILL, (k, out.returncode, out.stdout, out.stderr)
        assert f"@@CRASH {k}" in out.stdout
        commits = len(rig.tag(out.stdout, "@@COMMIT"))
        rig.verify(d, expected_after(commits))
        shutil.rmtree(d)
        kills += 1
    return kills


def total_ops(rig: Rig) -> int:
    d = rig.fresh("dry")
    out = rig.run(d, "write")
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(rig.tag(out.stdout, "@@COMMIT")) == len(SEQ)
    rig.verify(d, {n: {2} for n in NAMES})
    shutil.rmtree(d)
    return int(rig.tag(out.stdout, "@@END")[0][0])


# A kill before every file operation (posix, stepwise, fat), or inside every LittleFS block
# write, which it tears in half (lfs).
@pytest.mark.parametrize("mode,replace,least", [("posix", "True", 40), ("stepwise", "False", 40),
                                                ("fat", "False", 40), ("lfs", "True", 50)])
def test_kill_at_every_point(tmp_path, mode, replace, least):
    rig = Rig(tmp_path, mode)
    assert rig.replace == replace            # rename-over, forced stepwise, FAT detected
    n = total_ops(rig)
    assert n >= least
    print(f"{mode}: {n} kill points")
    # every operation of the sequence, and one past the end (no crash -> exit 0 instead)
    assert crash_sweep(rig, list(range(1, n + 1))) == n


def test_random_time_kills(tmp_path):
    rig = Rig(tmp_path, "posix")
    rnd = random.Random(99)
    loop = [(NAMES[i % 4], i // 4 + 1) for i in range(100000)]
    for k in range(25):
        d = rig.fresh(f"r{k}")
        env = fwbuild.environ()
        p = subprocess.Popen(micropython.command([str(rig.script), "posix", str(d), "loop"]),
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(rnd.uniform(0.005, 0.08))
        p.send_signal(signal.SIGKILL)
        stdout, _ = p.communicate(timeout=10)
        # only whole lines count: a commit may be done and its line not yet printed
        lines = stdout.split("\n")[:-1]
        commits = sum(1 for line in lines if line.startswith("@@COMMIT "))
        print(f"random kill {k}: after {commits} commits")
        state = {n: {0} for n in NAMES}
        for name, v in loop[:commits]:
            state[name] = {v}
        name, v = loop[commits]
        state[name].add(v)
        rig.verify(d, state)
        shutil.rmtree(d)


def test_chained_crashes_recover_each_time(tmp_path):
    # the same folder crashes again and again (recovery runs on recovered states)
    for mode in ("stepwise", "posix"):
        sub = tmp_path / mode
        sub.mkdir()
        rig = Rig(sub, mode)
        n = total_ops(rig)
        d = rig.fresh("chain")
        have = {name: 0 for name in NAMES}
        rnd = random.Random(mode)
        for _ in range(12):
            k = rnd.randrange(1, n + 1)
            out = rig.run(d, "write", crash_at=k)
            assert out.returncode == -signal.SIGKILL
            commits = [(c[0], int(c[1])) for c in rig.tag(out.stdout, "@@COMMIT")]
            allowed = {name: {v} for name, v in have.items()}
            for name, v in commits:
                allowed[name] = {v}
            if len(commits) < len(SEQ):
                name, v = SEQ[len(commits)]
                allowed[name].add(v)
            have = rig.verify(d, allowed)
