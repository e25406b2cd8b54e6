"""`phonelab deploy` against a virtual board: .mpy matched to the board, only changes copied."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from host_tools import BOARDS, FIRMWARE, boards, deploy, manifest
from host_tools.vboard import VirtualBoard

BIN = Path(sys.executable).parent


def phonelab_deploy(port: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "phonelab"), "deploy", "--port", port, *args],
                          capture_output=True, text=True, timeout=60)


def mpremote(port: str, *args: str) -> str:
    r = subprocess.run([str(BIN / "mpremote"), "connect", port, *args],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.fixture
def firmware(tmp_path: Path) -> Path:
    fw = tmp_path / "firmware"
    shutil.copytree(FIRMWARE, fw, ignore=shutil.ignore_patterns("__pycache__"))
    return fw


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "board"


@pytest.fixture
def board(folder: Path):
    with VirtualBoard(folder, tcp_port=0) as b:
        yield b


def modules(fw: Path) -> list[str]:
    """The phone package's modules that firmware/manifest.py lists."""
    return sorted(Path(e.target).stem for e in manifest.files(fw / "manifest.py", scripts=False))


def test_first_copies_all_then_nothing_then_the_changed_one(board, folder, firmware):
    expected = 3 + len(modules(firmware))  # board.json, boot.py, main.py + phone/*
    assert (firmware / "phone" / "sccp_lab.py").exists() and "sccp_lab" not in modules(firmware)
    r = phonelab_deploy(board.port_for_mpremote, "--firmware", str(firmware))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"deployed {expected} file(s)" in r.stdout and "0 unchanged" in r.stdout
    assert sorted(p.stem for p in (folder / "phone").iterdir()) == modules(firmware)
    assert all(p.suffix == ".mpy" for p in (folder / "phone").iterdir())
    assert (folder / "main.py").read_bytes() == (firmware / "main.py").read_bytes()
    assert (folder / "board.json").read_bytes() == (BOARDS / "virtual.json").read_bytes()
    manifest = json.loads((folder / ".deploy.json").read_text())
    assert manifest["format"] == ".mpy v6.3" and len(manifest["files"]) == expected

    r = phonelab_deploy(board.url, "--firmware", str(firmware))  # socket:// works the same
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"deployed 0 file(s) (0 B), {expected} unchanged, 0 removed" in r.stdout

    with (firmware / "phone" / "events.py").open("a") as f:
        f.write("\nDEPLOY_TEST = 1\n")
    result = deploy.deploy(board.port_for_mpremote, firmware=firmware, show=False)
    assert result.copied == ["/phone/events.mpy"] and result.removed == []

    result = deploy.deploy(board.port_for_mpremote, firmware=firmware, force=True, show=False)
    assert len(result.copied) == expected


def test_deployed_agent_runs_from_mpy_at_reset(board, folder, firmware):
    seen = len(board.events)
    deploy.deploy(board.port_for_mpremote, firmware=firmware, show=False)
    e = board.wait_event("boot", timeout=20, since=seen)
    assert e["board"] == "virtual" and e["chip"] == "unix"
    assert not list((folder / "phone").glob("*.py"))
    out = mpremote(board.port_for_mpremote, "exec",  # after a soft reset: a fresh heap
                   "import phone.agent; print(phone.agent.__file__)")
    assert out.strip() == "phone/agent.mpy"


def test_stale_and_shadowing_files_are_removed(board, folder, firmware):
    (folder / "phone").mkdir(parents=True)
    (folder / "phone" / "agent.py").write_text("raise ImportError('stale source shadows the .mpy')\n")
    (folder / "phone" / "gone.mpy").write_bytes(b"old")
    (folder / "keep.txt").write_text("user data")
    result = deploy.deploy(board.port_for_mpremote, firmware=firmware, show=False)
    assert result.removed == ["/phone/agent.py", "/phone/gone.mpy"]
    assert (folder / "keep.txt").exists() and not (folder / "phone" / "agent.py").exists()

    # switching to sources replaces every .mpy by its .py
    result = deploy.deploy(board.port_for_mpremote, firmware=firmware, source=True, show=False)
    assert result.mpy == "source"
    assert sorted(p.name for p in (folder / "phone").iterdir()) == [f"{m}.py" for m in modules(firmware)]
    seen = len(board.events)
    board.reset()
    board.wait_event("boot", timeout=20, since=seen)


def test_board_says_what_its_image_has_frozen(board):
    # the unix port freezes asyncio; a board whose image freezes phone gets no /phone copies
    with deploy.RawRepl(board.port_for_mpremote) as b:
        assert b.frozen(["asyncio", "phone"]) == {"asyncio"}
        assert b.eval("'asyncio' in __import__('sys').modules") is False


def test_deploy_keeps_the_mac_provision_wrote(board, folder, firmware):
    assert deploy.deploy(board.port_for_mpremote, firmware=firmware, show=False).copied
    profile = json.loads((folder / "board.json").read_text())
    (folder / "board.json").write_text(json.dumps({**profile, "mac": "00:11:22:AA:BB:CD"}))
    with (firmware / "phone" / "events.py").open("a") as f:
        f.write("\nDEPLOY_TEST = 1\n")
    result = deploy.deploy(board.port_for_mpremote, firmware=firmware, show=False)
    assert json.loads((folder / "board.json").read_text()) == {**profile, "mac": "00:11:22:AA:BB:CD"}
    assert "/board.json" in result.copied                 # rewritten once, in the new form
    result = deploy.deploy(board.port_for_mpremote, firmware=firmware, show=False)
    assert result.copied == []                            # then left alone


def test_hashes_of_named_files_only(board, folder):
    (folder / "a.txt").write_bytes(b"abc")
    with deploy.RawRepl(board.port_for_mpremote) as b:
        got = b.hashes(["/a.txt", "/missing"], [])       # no folder to walk: files only
    assert got == {"/a.txt": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                   "/missing": None}


def test_mpy_format_and_compiler_choice():
    fmt = deploy.MpyFormat.from_sys(2822)  # what the unix port here reports
    assert (fmt.version, fmt.sub, fmt.arch, fmt.label) == (6, 3, "x64", "6.3")
    esp32 = deploy.MpyFormat(6, 3, "xtensawin")
    assert deploy.mpy_cross_command(esp32)[-1] == "-march=xtensawin"
    older = deploy.mpy_cross_command(deploy.MpyFormat(6, 2, None))
    assert "v1.22.0" in older[0]
    with pytest.raises(deploy.DeployError, match=r"v7 .*--source"):
        deploy.mpy_cross_command(deploy.MpyFormat(7, 0, None))


def test_unreachable_port_is_a_clear_error(tmp_path):
    r = phonelab_deploy(str(tmp_path / "no-such-tty"))
    assert r.returncode == 1 and "cannot open" in r.stderr


def test_a_board_that_runs_the_agent_from_its_image(tmp_path, firmware):
    """wt32-eth01's agent belongs in the image: deployed to a board whose image lacks it, a
    warning names the fix; to the faithful board (the agent in its ROM at /rom) nothing of
    the package is copied and nothing is said."""
    from net_lab_support import skip_without_libfaketime
    plain = tmp_path / "plain"
    with VirtualBoard(plain, tcp_port=0) as b:
        r = deploy.deploy(b.url, board="wt32-eth01", firmware=firmware, show=False)
    assert len(r.warnings) == 1 and "lacks phone" in r.warnings[0]
    assert (plain / "phone").is_dir()
    skip_without_libfaketime()
    rom = tmp_path / "rom"
    shutil.copytree(plain / "phone", rom / "phone")
    with VirtualBoard(rom, tcp_port=0, board="virtual:wt32-eth01") as b:
        with deploy.RawRepl(b.port_for_mpremote) as raw:
            assert raw.frozen(["asyncio", "phone"]) == {"asyncio", "phone"}
        r = deploy.deploy(b.url, board="wt32-eth01", firmware=firmware, show=False)
    assert r.warnings == [] and not [f for f in r.copied if f.startswith("/phone")]
    assert not (rom / "phone").exists()


def test_mip_installs_the_package_the_manifest_makes(board, folder, tmp_path):
    """`phonelab package` + `mpremote mip install`: the agent on a board with mpremote alone."""
    from host_tools import fwbuild, mippkg
    pkg_dir = tmp_path / "pkg"
    label = fwbuild.unix_format().label
    r = subprocess.run([str(BIN / "phonelab"), "package", "--out", str(pkg_dir), "--mpy", label],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    pkg = json.loads((pkg_dir / "package.json").read_text())
    targets = {t for t, _ in pkg["urls"]}
    assert {"board.json", "boot.py", "main.py", "phone/agent.mpy"} <= targets
    assert pkg["version"] == manifest.read(FIRMWARE / "manifest.py").metadata.version
    out = mpremote(board.port_for_mpremote, "mip", "install", "--target", "/",
                   str(pkg_dir / "package.json"))
    assert "Done" in out
    for target in targets:
        assert (folder / target).read_bytes() == (pkg_dir / target).read_bytes(), target
    seen = len(board.events)
    board.reset()
    e = board.wait_event("boot", timeout=20, since=seen)
    assert e["board"] == "virtual"
    # then phonelab deploy takes over the board mip filled: nothing to copy but its record
    result = deploy.deploy(board.port_for_mpremote, show=False, reset=False)
    assert result.copied == [] and result.removed == []
    assert mippkg.CHIP_ARCH[boards.load("olimex-esp32-poe-iso-wrover").chip] == "xtensawin"
