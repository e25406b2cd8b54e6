"""The host tools as a wheel: it carries the project's data and runs without the repository.

The cheap checks (make test) build the wheel (about 3 s), read its file list and run the
unpacked wheel from an empty folder with this venv's interpreter. The whole story, a fresh
venv with the wheel installed from the package index and `phonelab demo` run from it, is
`make test-wheel` (PHONELAB_WHEEL=1; about a minute)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from host_tools import BOARDS, FIRMWARE, PACKAGE, SCENARIOS, manifest, version

REPO = PACKAGE.parent
DATA = "host_tools/data/"

# Modules that still compute a path inside the repository, by owner: each is a follow-up
# (docs/decisions.md, "Issue 17"). The test fails when one is added, and when one is fixed
# (then take it off this list).
KNOWN_REPO_PATHS = {
    "host_tools/fuzz/gen/corpus.py": "tests/firmware/fixtures: the fuzzer's seeds, a checkout only",
}
REPO_PATH = re.compile(r'ROOT\s*/\s*"(host_tools|out|build|tests)"|parents\[\d\]'
                       r'|Path\(__file__\)[^\n]*\.parent\.parent')


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                        str(REPO)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    (whl,) = out.glob("srst_phonelab-*.whl")
    return whl


@pytest.fixture(scope="module")
def unpacked(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    return site


def test_the_wheel_carries_the_project_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    want = {DATA + "firmware/manifest.py"}
    want |= {DATA + "firmware/" + e.target for e in manifest.files(FIRMWARE / "manifest.py")}
    want |= {DATA + "boards/" + p.name for p in BOARDS.glob("*.json")}
    want |= {DATA + "scenarios/" + p.name for p in SCENARIOS.glob("*.toml")}
    want |= {f"host_tools/{p.relative_to(PACKAGE).as_posix()}"
             for pattern in ("mpscripts/*.py", "vboard/esp32/*.py", "vboard/*.json")
             for p in PACKAGE.glob(pattern)}
    assert not want - names, f"missing from the wheel: {sorted(want - names)}"
    assert not [n for n in names if n.endswith((".mpy", ".pyc")) or "__pycache__" in n]
    info = json.loads(zipfile.ZipFile(wheel).read(DATA + "build.json"))
    assert info["firmware_commit"] == version.git_commit()


def _phonelab(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PHONELAB_HOME")}
    env["PYTHONPATH"] = str(site)       # ahead of the editable install of the checkout
    return subprocess.run([sys.executable, "-m", "host_tools.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_unpacked_wheel_runs_from_anywhere(unpacked: Path, tmp_path: Path) -> None:
    r = _phonelab(unpacked, tmp_path, "--version")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(rf"phonelab \S+, firmware commit {re.escape(version.git_commit())} "
                        r"\[installed\]\n", r.stdout), r.stdout
    r = _phonelab(unpacked, tmp_path, "boards")
    assert r.returncode == 0 and "olimex-esp32-poe-iso-wrover" in r.stdout, r.stdout + r.stderr
    r = _phonelab(unpacked, tmp_path, "run", "wan-blackhole", "--check")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(str(unpacked / DATA / "scenarios" / "wan-blackhole.toml"))
    r = _phonelab(unpacked, tmp_path, "vboard", "--help")
    assert r.returncode == 0 and str(REPO) not in r.stdout, r.stdout
    # `phonelab fleet`: its MicroPython runner from the package, its PKI cache in WORK
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PHONELAB_HOME")}
    r = subprocess.run([sys.executable, "-c", "from host_tools.fleet import identities, procs; "
                        "print(procs.RUNNER.is_file(), procs.RUNNER, identities.DEFAULT_CACHE)"],
                       cwd=tmp_path, env={**env, "PYTHONPATH": str(unpacked)},
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["True", str(unpacked / "host_tools/mpscripts/fleet_run.py"),
                                str(tmp_path / "out/fleet/pki-cache")], r.stdout + r.stderr
    assert list(tmp_path.iterdir()) == []      # nothing written by asking


def test_built_outside_git_the_commit_is_unknown(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "out", "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                        str(tmp_path / "dist"), str(src)], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    (whl,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(whl) as z:
        z.extractall(tmp_path / "site")
    work = tmp_path / "work"
    work.mkdir()
    r = _phonelab(tmp_path / "site", work, "--version")
    assert r.returncode == 0, r.stderr
    assert "firmware commit unknown (built outside a git checkout)" in r.stdout, r.stdout


def test_no_new_path_into_the_repository() -> None:
    """Nothing in host_tools computes a path of the checkout: data comes from
    host_tools.ROOT/FIRMWARE/BOARDS/SCENARIOS, scripts from MPSCRIPTS, state goes to WORK."""
    found = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        rel = p.relative_to(REPO).as_posix()
        if rel == "host_tools/__init__.py":
            continue
        hits = REPO_PATH.findall(p.read_text())
        if hits:
            found[rel] = hits
    assert sorted(found) == sorted(KNOWN_REPO_PATHS), found


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("PHONELAB_WHEEL") != "1",
                    reason="the fresh-venv install and demo: make test-wheel (PHONELAB_WHEEL=1)")
def test_fresh_venv_installs_the_wheel_and_runs_the_demo(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PHONELAB_HOME", "VIRTUAL_ENV", "MICROPYTHON")}
    r = subprocess.run([str(venv / "bin" / "phonelab"), "--version"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and f"firmware commit {version.git_commit()}" in r.stdout, r.stdout
    r = subprocess.run([str(venv / "bin" / "phonelab"), "demo"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "demo PASSED" in r.stdout
    assert (work / "out" / "demo" / "report.json").is_file()
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert not (site / "host_tools" / "data" / "out").exists()
