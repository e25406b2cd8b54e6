"""firmware/manifest.py: what goes on a board, and who reads it (deploy, fwbuild, the images)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from host_tools import BOARDS, FIRMWARE, boards, deploy, fwbuild, manifest, memcheck

MANIFEST = FIRMWARE / "manifest.py"
NEVER_ON_A_BOARD = ("phone/sccp_lab.py", "phone/compat.py")
# Listed before anything on the board imports them (none since the SIP link, issue 15).
AHEAD_OF_THEIR_LINK: set[str] = set()


def _phone_imports(path: Path) -> set[str]:
    """Modules of the phone package `path` imports, anywhere (functions too), except in an
    `except` handler: a fallback taken where a module is missing (CPython), not on a board."""
    tree = ast.parse(path.read_text(), str(path))
    fallback = {id(n) for h in ast.walk(tree) if isinstance(h, ast.ExceptHandler)
                for n in ast.walk(h)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in fallback:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "phone")
        elif isinstance(node, ast.ImportFrom) and node.module and \
                node.module.split(".")[0] == "phone":
            found.add(node.module)
            if node.module == "phone":   # from phone import x: x may be a module
                found.update(f"phone.{a.name}" for a in node.names)
    return found


def _source(module: str) -> Path | None:
    base = FIRMWARE.joinpath(*module.split("."))
    for cand in (base / "__init__.py", base.with_suffix(".py")):
        if cand.is_file():
            return cand
    return None          # a name, not a module (from phone import NAME)


def board_files() -> set[str]:
    """Every file the board's boot reaches: boot.py, main.py and the phone modules they
    import, transitively, with the packages on the way."""
    todo = [FIRMWARE / "boot.py", FIRMWARE / "main.py"]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _phone_imports(path):
            parts = module.split(".")
            for i in range(1, len(parts) + 1):
                src = _source(".".join(parts[:i]))
                if src is not None:
                    todo.append(src)
    return {p.relative_to(FIRMWARE).as_posix() for p in seen}


def test_manifest_lists_exactly_what_the_board_imports():
    listed = [e.target for e in manifest.files(MANIFEST)]
    assert len(listed) == len(set(listed))
    reached = board_files()
    assert set(listed) - reached - AHEAD_OF_THEIR_LINK == set(), \
        "listed but nothing on the board imports it"
    assert AHEAD_OF_THEIR_LINK <= set(listed)
    assert not AHEAD_OF_THEIR_LINK & reached, "imported now: take it off AHEAD_OF_THEIR_LINK"
    assert reached - set(listed) == set(), "imported on the board but not in firmware/manifest.py"
    for path in NEVER_ON_A_BOARD:
        assert (FIRMWARE / path).exists() and path not in listed


def test_the_walk_sees_lazy_imports_and_skips_fallbacks():
    reached = board_files()
    # imported inside functions only (loaded for a step, then dropped)
    assert {"phone/lease.py", "phone/limited.py", "phone/setcheck.py", "phone/sntp.py",
            "phone/hw.py", "phone/sha512n.py"} <= reached
    assert "phone/compat.py" not in reached      # only in `except AttributeError:` (CPython)


def test_deploy_copies_the_manifest_and_nothing_else(tmp_path):
    items = deploy.build_items(FIRMWARE, boards.load("virtual"), None, tmp_path)
    assert [i.target for i in items] == ["/board.json"] + [
        "/" + e.target for e in manifest.files(MANIFEST)]
    assert items[0].data == (BOARDS / "virtual.json").read_bytes()
    targets = {i.target for i in items}
    assert not {"/" + p for p in NEVER_ON_A_BOARD} & targets


def test_deploy_leaves_out_what_the_image_has_frozen(tmp_path):
    items = deploy.build_items(FIRMWARE, boards.load("virtual"), None, tmp_path,
                               frozen=frozenset({"phone"}))
    assert [i.target for i in items] == ["/board.json", "/boot.py", "/main.py"]


def test_fwbuild_compiles_the_manifest_and_the_lab_side_only():
    built = [t for _, t in fwbuild._sources(FIRMWARE)]
    assert built == [e.target for e in manifest.files(MANIFEST, scripts=False)] + \
        list(fwbuild.LAB_MODULES)
    assert "phone/compat.py" not in built
    out = fwbuild.compiled()
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.mpy")) == \
        sorted(t[:-3] + ".mpy" for t in built)


def test_the_images_freeze_the_package_not_the_scripts(tmp_path):
    # A stand-in for the port's own manifest (the real one needs a MicroPython tree).
    port = tmp_path / "port"
    for rel in ("boards/manifest.py", "variants/standard/manifest.py"):
        (port / rel).parent.mkdir(parents=True, exist_ok=True)
        (port / rel).write_text("# the port's frozen modules\n")
    package = [e.target for e in manifest.files(MANIFEST) if e.target.startswith("phone/")]
    for image in ("esp32.py", "unix.py"):
        got = manifest.read(FIRMWARE / "image" / image, path_vars={"PORT_DIR": str(port)})
        assert [e.target for e in got.entries] == package, image
        assert got.metadata.description


def test_manifest_reader_follows_micropython_rules(tmp_path):
    def read(text: str, **kw) -> list[str]:
        (tmp_path / "manifest.py").write_text(text)
        return [e.target for e in manifest.files(tmp_path / "manifest.py", **kw)]

    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    for f in ("pkg/__init__.py", "pkg/a.py", "pkg/sub/b.py", "m.py"):
        (tmp_path / f).write_text("")
    assert read('metadata(version="1")\npackage("pkg")\nmodule("m.py")\n') == \
        ["pkg/__init__.py", "pkg/a.py", "pkg/sub/b.py", "m.py"]
    assert read('metadata(version="1")\noptions.defaults(x=True)\n'
                'if options.x:\n    module("m.py")\n', x=False) == []
    for text, error in (('module("m.py")', "metadata() must be the first"),
                        ('metadata(version="1")\nrequire("aioble")', "mip"),
                        ('metadata(version="1")\ninclude("$(PORT_DIR)/boards/manifest.py")',
                         "PORT_DIR"),
                        ('metadata(version="1")\nmodule("gone.py")', "no such file"),
                        ('metadata(version="1")\nmodule("m.py")\nmodule("m.py")', "twice"),
                        ('metadata(version="1")\nfreeze(".")', "NameError")):
        with pytest.raises(manifest.ManifestError, match=re.escape(error)):
            read(text)


def test_deploy_refuses_a_tree_without_a_manifest(tmp_path):
    with pytest.raises(deploy.DeployError, match="no manifest.py"):
        deploy.build_items(tmp_path, boards.load("virtual"), None, tmp_path / "w")


@pytest.mark.skipif(not (memcheck.FROZEN_BUILD / "micropython").exists(),
                    reason="no frozen build: bash scripts/build-frozen-unix.sh")
def test_frozen_image_holds_the_agent_and_saves_heap():
    try:
        res = memcheck.frozen_saving(memcheck.firmware())
    except memcheck.MemcheckError as e:      # built before the firmware last changed
        pytest.skip(str(e))
    assert res is not None and res["frozen"] < res["mpy"] and res["frozen_qstrs"] < 100
