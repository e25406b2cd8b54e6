"""The virtual board's CPU quota (host_tools/vboard/cpuquota.py): a process under it really
runs slower, its cgroup goes away on every exit path, and a killed host's group is swept."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_tools.vboard import cpuquota
from host_tools.vboard.cpuquota import CpuQuotaError, Quota

try:
    BACKEND: cpuquota.Backend | None = cpuquota.detect()
    WHY = ""
except CpuQuotaError as e:  # not root, or no cpu controller: the real-cgroup tests skip
    BACKEND, WHY = None, str(e)

needs_cgroup = pytest.mark.skipif(BACKEND is None, reason=f"no CPU quota here: {WHY}")

# Busy for a fixed amount of work, then prints its CPU seconds and wall seconds.
CPU_LOOP = """
import sys, time
sys.stdin.readline()
w, c = time.perf_counter(), time.process_time()
n = 0
while n < %d:
    n += 1
print(time.process_time() - c, time.perf_counter() - w)
"""


def _spawn_loop(n: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CPU_LOOP % n], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def _run_loop(p: subprocess.Popen) -> tuple[float, float]:
    out, _ = p.communicate("go\n", timeout=120)
    cpu, wall = map(float, out.split())
    return cpu, wall


def _wait_gone(path: Path, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return not path.exists()


def _cgroup_of(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrl, path = line.split(":", 2)
        if ("cpu" in ctrl.split(",")) if BACKEND.kind == "v1" else ctrl == "":
            return path
    return ""


# -- quota arithmetic and profiles (no cgroup needed) --------------------------------------
def test_factor_gives_the_shortest_period_the_kernel_takes():
    assert Quota.for_factor(135) == Quota(1000, 135000)
    assert Quota.for_factor(1) == Quota(1000, 1000)
    assert Quota.for_factor(142.37).period_us == 142370
    for bad in (0.5, 0, float("nan"), 1001):
        with pytest.raises(CpuQuotaError):
            Quota.for_factor(bad)


def test_profiles_chip_default_clock_and_alias(tmp_path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"aliases": {"esp32s3@160": "esp32@160"},
                             "profiles": {"esp32@160": {"quota_us": 1000, "period_us": 140000}}}))
    assert cpuquota.quota_for("esp32@160", f) == Quota(1000, 140000)
    assert cpuquota.quota_for("esp32", f) == Quota(1000, 140000)
    assert cpuquota.quota_for("esp32s3", f) == Quota(1000, 140000)
    with pytest.raises(CpuQuotaError, match="no calibrated CPU profile 'esp32@240'.*--calibrate"):
        cpuquota.quota_for("esp32@240", f)
    assert cpuquota.profile_for_board({"chip": "esp32"}) == "esp32@160"
    assert cpuquota.profile_for_board({"chip": "esp32", "cpu_mhz": 240}) == "esp32@240"


def test_stored_profiles_cover_the_esp32_boards():
    boards = Path(__file__).resolve().parents[2] / "boards"
    for b in boards.glob("*.json"):
        prof = json.loads(b.read_text())
        if prof.get("chip", "").startswith("esp32"):
            q = cpuquota.quota_for(cpuquota.profile_for_board(prof))
            assert 50 <= q.factor <= 400, (b.name, q)


def test_detect_prefers_v2_with_cpu_and_enables_it(tmp_path):
    v2 = tmp_path / "unified"
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("cpu memory pids\n")
    (v2 / "cgroup.subtree_control").write_text("\n")
    b = cpuquota.detect(v1_root=tmp_path / "nope", v2_roots=(v2,))
    assert b == cpuquota.Backend("v2", v2)
    assert "cpu" in (v2 / "cgroup.subtree_control").read_text()
    g = v2 / "g"
    g.mkdir()
    b.write_quota(g, Quota(1000, 120000))
    assert (g / "cpu.max").read_text() == "1000 120000\n"
    assert b.read_quota(g) == Quota(1000, 120000)


def test_detect_names_why_neither_is_usable(tmp_path):
    v2 = tmp_path / "unified"
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("hugetlb\n")
    with pytest.raises(CpuQuotaError, match="no cpu controller"):
        cpuquota.detect(v1_root=tmp_path / "cpu", v2_roots=(v2,))
    v1 = tmp_path / "cpu"
    v1.mkdir()
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpuquota.detect(v1_root=v1, v2_roots=(v2,)) == cpuquota.Backend("v1", v1)


def test_unavailable_quota_warns_and_runs_unthrottled(monkeypatch, caplog):
    def no(*a, **k):
        raise CpuQuotaError("no usable CPU quota: /sys/fs/cgroup/cpu is not writable (not root)")
    monkeypatch.setattr(cpuquota, "detect", no)
    with caplog.at_level(logging.WARNING, logger=cpuquota.__name__):
        h = cpuquota.limit(os.getpid(), 100)
    assert not h.active and "not root" in h.reason
    assert "runs at host speed" in caplog.text
    h.close()
    with pytest.raises(CpuQuotaError, match="not root"):
        cpuquota.limit(os.getpid(), 100, required=True)


# -- real cgroups ----------------------------------------------------------------------------
@needs_cgroup
def test_a_process_under_the_quota_runs_factor_times_slower():
    """Wall time over CPU time of a busy loop: ~1 without the quota (whatever else runs on
    the machine only makes it larger, never near 20), ~20 under a 20x quota."""
    p = _spawn_loop(400_000)
    h = cpuquota.limit(p.pid, 20, required=True)
    try:
        assert h.backend.read_quota(h.path) == Quota(1000, 20000)
        assert _cgroup_of(p.pid).endswith(h.path.name)
        cpu, wall = _run_loop(p)
    finally:
        p.kill()
        p.wait()
        h.close()
    assert cpu > 0.01, cpu                  # enough work to span many periods
    assert 10 <= wall / cpu <= 40, (cpu, wall)


@needs_cgroup
def test_group_disappears_when_the_process_exits():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    h = cpuquota.limit(p.pid, 10, required=True)
    assert h.path.is_dir()
    p.wait()
    assert _wait_gone(h.path), h.path
    assert h.closed


@needs_cgroup
def test_group_disappears_before_the_exited_process_is_reaped():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    h = cpuquota.limit(p.pid, 10, required=True)
    try:
        assert _wait_gone(h.path), h.path          # a zombie holds no group
    finally:
        p.wait()


@needs_cgroup
def test_close_frees_a_running_process_and_removes_the_group():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        h = cpuquota.limit(p.pid, 10, required=True, watch=False)
        assert _cgroup_of(p.pid).endswith(h.path.name)
        h.close()
        h.close()
        assert not h.path.exists()
        assert p.poll() is None
        assert cpuquota.PREFIX not in _cgroup_of(p.pid)
    finally:
        p.kill()
        p.wait()


HOST = """
import subprocess, sys, time
from host_tools.vboard import cpuquota
child = subprocess.Popen(["sleep", "60"])
h = cpuquota.limit(child.pid, 10, required=True)
print(child.pid, h.path, flush=True)
time.sleep(60)
"""


@needs_cgroup
def test_a_killed_hosts_group_is_swept_and_a_live_hosts_is_not():
    root = Path(__file__).resolve().parents[2]
    host = subprocess.Popen([sys.executable, "-c", HOST], stdout=subprocess.PIPE, text=True,
                            cwd=root)
    mine = subprocess.Popen(["sleep", "60"])
    h = cpuquota.limit(mine.pid, 10, required=True, watch=False)
    try:
        child, path = host.stdout.readline().split()
        path = Path(path)
        host.kill()                                  # no atexit, no watcher: the group stays
        host.wait()
        os.kill(int(child), signal.SIGKILL)
        deadline = time.monotonic() + 5
        while (path / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert path.is_dir()
        removed = cpuquota.sweep()
        assert path in removed and not path.exists()
        assert h.path.is_dir() and h.path not in removed     # its host (this one) is alive
    finally:
        mine.kill()
        mine.wait()
        h.close()
        if host.poll() is None:
            host.kill()
        assert not h.path.exists()


# -- the calibration's harness (bench/cpu_calibration.py) -----------------------------------
LOOP_BENCH = """
def bm_setup(params):
    def run():
        x = 0
        for i in range(params[0]):
            x += i
    return run, lambda: (params[0], 0)
"""


@needs_cgroup
def test_calibration_harness_scores_lower_under_the_quota(tmp_path):
    from bench import cpu_calibration as cal
    bench = tmp_path / "bm_loop.py"
    bench.write_text(LOOP_BENCH)
    free = cal.measure(bench, [400_000], reps=2)["scores"]
    slow = cal.measure(bench, [400_000], quota=Quota(1000, 20000))["scores"]
    assert len(free) == 2 and len(slow) == 1
    assert max(free) / slow[0] > 5, (free, slow)
    assert not list(BACKEND.root.glob(cpuquota.PREFIX + f"{os.getpid()}-*"))


def test_calibration_without_perf_bench_says_where_to_get_it(tmp_path, monkeypatch):
    from bench import cpu_calibration as cal
    monkeypatch.setenv(cal.PERF_BENCH_ENV, str(tmp_path))
    with pytest.raises(cal.CalibrationError, match="perf_bench not found in .*MICROPY_PERF_BENCH"):
        cal.find_perf_bench()
    res = cal.run(quick=True)
    assert res["columns"] == ["not run"] and "perf_bench not found" in res["rows"][0][0]
    assert cal.headline(res)[0][1] == "not run"
