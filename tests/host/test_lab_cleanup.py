"""What a run leaves behind: nothing when it ends by an exception or a signal; when it is
killed outright (SIGKILL), its namespaces, dnsmasq and run folder (the lab PKI's private keys,
the TLS key log) are swept by the next lab, and a live lab's never are. Also: a lab server
that crashes fails the run, and two runs never write one report."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from net_lab_support import default_signals

from host_tools import ROOT, cli
from host_tools.lab import lab as lablib
from host_tools.lab import netns
from host_tools.scenario import runner, spec
from host_tools.signals import pid_alive

PHONELAB = [sys.executable, "-m", "host_tools.cli"]
LONG = """name = "{name}"
description = "runs until it is stopped"
duration = "{duration}"
timeout = "{duration}"

[lab]
short_timers = true
"""


def _namespaces(pid: int) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [ln.split()[0] for ln in out.splitlines() if ln.startswith(f"{netns.PREFIX}{pid}-")]


def _run_folders(base: Path) -> list[Path]:
    return sorted(base.glob(f"{lablib.RUN_PREFIX}*"))


def _start_run(tmp: Path, base: Path, name: str, duration: str = "120s") -> subprocess.Popen:
    sc = tmp / f"{name}.toml"
    sc.write_text(LONG.format(name=name, duration=duration))
    env = {**os.environ, "TMPDIR": str(base), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([*PHONELAB, "run", str(sc), "-q", "--mode", "netns",
                             "--report", str(tmp / f"{name}.json")], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=default_signals)



def _wait_lab_up(proc: subprocess.Popen, base: Path, timeout: float = 60) -> Path:
    """The run's folder once its lab is up (lab.json written, dnsmasq serving)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()[0]
        for d in _run_folders(base):
            if (d / "lab" / "lab.json").exists() and lablib._pids_using(d):
                return d
        time.sleep(0.1)
    raise AssertionError("the run's lab did not come up")


def _dnsmasq_of(folder: Path) -> list[int]:
    return [p for p in lablib._pids_using(folder)
            if b"dnsmasq" in Path(f"/proc/{p}/cmdline").read_bytes()]


@pytest.fixture
def base(tmp_path: Path) -> Path:
    b = tmp_path / "tmp"
    b.mkdir()
    return b


@pytest.mark.netns
@pytest.mark.slow
def test_kill9_leftovers_are_swept_by_the_next_run(tmp_path: Path, base: Path) -> None:
    if netns.unusable_reason():
        pytest.skip(netns.unusable_reason())
    proc = _start_run(tmp_path, base, "killed")
    try:
        folder = _wait_lab_up(proc, base)
        # private keys: in a folder only this user can enter, each key file 0600
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        pki = folder / "lab" / "pki"
        assert stat.S_IMODE(pki.stat().st_mode) == 0o700
        keys = sorted(pki.glob("*.key")) + sorted(pki.glob("*.key.der"))
        assert keys, list(pki.iterdir())
        assert all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys)
        assert stat.S_IMODE((folder / "lab" / "tls-keys.log").stat().st_mode) == 0o600
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    # what SIGKILL leaves: namespaces, a dnsmasq, the folder with the keys
    left_ns = _namespaces(proc.pid)
    left_dnsmasq = _dnsmasq_of(folder)
    assert left_ns and left_dnsmasq and keys[0].exists()

    # a live lab (this process) beside it: the sweep must not touch it
    live_dir = lablib.run_folder("live", base)
    try:
        with lablib.Lab(live_dir / "lab", mode="netns") as live:
            live_ns = _namespaces(os.getpid())
            live_dnsmasq = _dnsmasq_of(live_dir)
            assert live_ns and live_dnsmasq
            nxt = _start_run(tmp_path, base, "next", duration="1s")
            out = nxt.communicate(timeout=120)[0]
            assert nxt.returncode == 0, out
            assert _namespaces(proc.pid) == []
            assert not any(pid_alive(p) for p in left_dnsmasq)
            assert not folder.exists() and not keys[0].exists()
            # untouched: the live lab's namespaces, dnsmasq and folder
            assert set(live_ns) <= set(_namespaces(os.getpid()))
            assert all(pid_alive(p) for p in live_dnsmasq)
            assert (live_dir / lablib.OWNER_FILE).exists() and live.status()["servers"]["dhcp"]["running"]
    finally:
        import shutil
        shutil.rmtree(live_dir, ignore_errors=True)
    assert _run_folders(base) == []


@pytest.mark.netns
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_signalled_run_cleans_up(tmp_path: Path, base: Path, sig: int) -> None:
    if netns.unusable_reason():
        pytest.skip(netns.unusable_reason())
    proc = _start_run(tmp_path, base, f"sig{int(sig)}")
    try:
        folder = _wait_lab_up(proc, base)
        dnsmasq = _dnsmasq_of(folder)
        assert dnsmasq
        proc.send_signal(sig)
        out = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode != 0, out
    assert "Traceback" not in out, out
    assert _namespaces(proc.pid) == []
    assert not any(pid_alive(p) for p in dnsmasq)
    assert not folder.exists()


def test_a_lab_error_before_start_leaves_no_folder(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    sc = spec.loads(LONG.format(name="laberror", duration="1s"))
    sc.lab = {**sc.lab, "tftp": "no-such-server"}     # past the spec: the Lab refuses it
    res = runner.run(sc, runner.RunOptions(mode="loopback"))
    assert not res.passed and "the lab did not start" in (res.error or ""), res.error
    assert _run_folders(tmp_path) == []


def test_sweep_spares_unmarked_and_live_folders(tmp_path: Path) -> None:
    live = lablib.run_folder("live", tmp_path)
    unmarked = tmp_path / f"{lablib.RUN_PREFIX}someone-else"
    unmarked.mkdir()
    dead = lablib.run_folder("dead", tmp_path)
    (dead / "key.pem").write_text("secret")
    # a pid that is gone: a child that already ended
    gone = subprocess.Popen(["true"])
    gone.wait()
    (dead / lablib.OWNER_FILE).write_text(f"{gone.pid} {lablib._start_time(os.getpid())}\n")
    # this very pid, but another start time: the pid was reused by a later process
    reused = lablib.run_folder("reused", tmp_path)
    (reused / lablib.OWNER_FILE).write_text(f"{os.getpid()} 1\n")
    done = lablib.sweep_stale_runs(tmp_path)
    assert live.exists() and unmarked.exists()
    assert not dead.exists() and not reused.exists(), done
    assert stat.S_IMODE(live.stat().st_mode) == 0o700


# -- a crashed lab server fails the run ----------------------------------------------------

def test_a_crashed_call_manager_fails_the_run() -> None:
    async def boom(session: object, info: dict) -> None:
        raise RuntimeError("the simulator's own bug")

    def break_it(lab: lablib.Lab) -> None:   # a registration kills the session's task
        lab.callmanager.on_register = boom   # type: ignore[union-attr, method-assign]

    sc = spec.loads(LONG.format(name="crash", duration="20s"))
    res = runner.run(sc, runner.RunOptions(mode="loopback", on_lab=break_it))
    assert not res.passed
    assert "lab server callmanager crashed" in (res.error or ""), res.error
    assert res.ended - res.started < 19      # it stopped at the crash, not after 20 s


@pytest.mark.netns
def test_a_dead_dnsmasq_fails_the_run() -> None:
    if netns.unusable_reason():
        pytest.skip(netns.unusable_reason())
    sc = spec.loads(LONG.format(name="deaddhcp", duration="3s"))
    res = runner.run(sc, runner.RunOptions(mode="netns",
                                           on_lab=lambda lab: lab.dhcp.proc.kill()))
    assert not res.passed
    assert "lab server dhcp died" in (res.error or ""), res.error


def test_a_killed_server_is_no_failure() -> None:
    sc = spec.loads(LONG.format(name="killed", duration="2s") +
                    '\n[[timeline]]\nat = "0s"\naction = "kill"\nserver = "srst"\n')
    res = runner.run(sc, runner.RunOptions(mode="loopback"))
    assert res.error is None and res.passed, res.error


# -- two runs, one report ---------------------------------------------------------------------

def test_a_second_run_of_the_same_report_is_refused(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    sc = tmp_path / "same.toml"
    sc.write_text(LONG.format(name="same", duration="1s"))
    default = tmp_path / "out" / "reports" / "same.json"
    with runner.report_lock(default):                        # a first run of it is on
        assert cli.main(["run", str(sc), "-q", "--mode", "loopback"]) == 2
        err = capsys.readouterr().err
        assert "another run" in err and "same.json" in err and len(err.strip().splitlines()) == 1
        assert not default.exists()
        other = tmp_path / "other.json"                      # its own --report: runs
        assert cli.main(["run", str(sc), "-q", "--mode", "loopback", "--report", str(other)]) == 0
        assert other.exists()
    # the first run has ended: the path is free again, and no lock file is left
    assert cli.main(["run", str(sc), "-q", "--mode", "loopback"]) == 0
    assert default.exists()
    assert sorted(p.name for p in default.parent.iterdir()) == ["same.json", "same.png"] or \
        sorted(p.name for p in default.parent.iterdir()) == ["same.json"]


# -- a run never goes past its timeout -----------------------------------------------------------

def test_a_step_past_the_timeout_ends_the_run() -> None:
    sc = spec.loads('name = "late"\ndescription = "d"\nduration = "10s"\ntimeout = "10s"\n'
                    '[[timeline]]\nafter = "boot"\naction = "wait"\n'
                    '[[timeline]]\nat = "+60s"\naction = "wait"\n')
    res = runner.run(sc, runner.RunOptions(mode="loopback"))
    assert not res.passed and "after the 10 s timeout" in (res.error or ""), res.error
    assert res.ended - res.started < 10
