"""The ESP32-faithful virtual board (`virtual:PROFILE`) really behaves like the board.

A small MicroPython script (faithful/probe_main.py) does at boot what the firmware did before
the ESP32 fixes, on a faithful board in the namespace lab:
- a stock CERT_REQUIRED handshake before anything sets the clock is refused the way Mbed TLS
  refuses it on a board whose clock starts at 2000-01-01 (-9984, "validity starts in the
  future"); once machine.RTC() sets the clock the same handshake passes;
- the "lwIP" DHCP client holds UDP 68: the DHCPINFORM socket's bind fails with EADDRINUSE
  until ipconfig(dhcp4=False) releases it (and the address, as esp_netif_dhcpc_stop does);
- hashlib has no sha512;
- the profile's TLS session budget: one Mbed TLS session beside the heap without PSRAM, a
  few with it; the next one fails with OSError(ENOMEM) as mbedtls_ssl_setup's does;
- machine.reset() brings the clock back to 2000.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from host_tools import BOARDS
from host_tools.vboard import faithful
from net_lab_support import skip_without_libfaketime, skip_without_netns

PROBE = Path(__file__).with_name("faithful") / "probe_main.py"
ENOMEM, EADDRINUSE = 12, 98
CERT_VERIFY_FAILED = -9984            # MBEDTLS_ERR_X509_CERT_VERIFY_FAILED


def _skip_unless_ready() -> None:
    skip_without_netns()
    skip_without_libfaketime()


def _probe(tmp_path: Path, profile: str) -> dict[str, object]:
    from host_tools.lab.lab import Lab
    from host_tools.vboard import VirtualBoard
    lab = Lab(tmp_path / "lab", mode="netns", keylog=False)
    board = None
    try:
        lab.start()
        folder = tmp_path / "board"
        lab.prepare_board_folder(folder, profile=BOARDS / f"{profile}.json")
        assert lab.pki is not None
        (folder / "cm.der").write_bytes(lab.pki.ccm.cert_der)
        net = json.loads((BOARDS / f"{profile}.json").read_text())["network"]
        host, port = lab.endpoints["callmanager"]
        (folder / "probe.json").write_text(json.dumps({
            "host": host, "port": port, "cert": "cm.der", "name": lab.pki.ccm.cn,
            "now": int(time.time()), "lan": net}))
        (folder / "main.py").write_text(PROBE.read_text())
        board = VirtualBoard(folder, pty=True, prefix=lab.phone_prefix(), env=lab.phone_env(),
                             board=f"virtual:{profile}")
        board.start()
        board.wait_output(b'PROBE ["done", 2]', timeout=90)
        out: dict[str, object] = {}
        for line in board.console(0).decode(errors="replace").splitlines():
            if line.startswith("PROBE "):
                k, v = json.loads(line[6:])
                out[k if k not in out else f"{k}#2"] = v
        return out
    finally:
        if board is not None:
            board.stop()
        lab.stop()


def _refused_for_dates(err: object) -> bool:
    """Mbed TLS's refusal of a certificate not yet valid, as modtls_mbedtls.c raises it:
    ValueError with mbedtls_x509_crt_verify_info's text, or OSError(-9984) where the text
    cannot be had."""
    if not isinstance(err, list) or not err:
        return False
    if err[0] == "ValueError":
        return "validity starts in the future" in str(err[1:])
    return err[0] == "OSError" and CERT_VERIFY_FAILED in err[1:]


def _check_common(out: dict[str, object]) -> None:
    assert out["platform"] == "esp32"
    assert out["year"] == 2000 and out["year#2"] == 2000     # power-up and after reset
    assert out["sha512"] is False
    ip, mask = out["addr4"]                                  # the platform's own lease
    assert ip.startswith("192.0.2.") and mask == "255.255.255.0", out
    assert out["dhcp4"] is True
    assert out["bind68"] == EADDRINUSE                       # item 3: INFORM cannot bind
    # item 1: handshake deferred to the first write (as phone/link.py did it), and on connect
    for key in ("tls_at_boot_0", "tls_at_boot_1"):
        assert _refused_for_dates(out[key]), (key, out[key])
    assert out["year_set"] >= 2026
    assert out["session_after_close"] == "ok"
    assert out["after_stop"] == [False, ["0.0.0.0", "0.0.0.0"], "bound"]
    assert out["static"] == [ip, mask]
    assert out["addr4_after_reset"] == ["0.0.0.0", "0.0.0.0"]    # a reset forgets it


@pytest.mark.netns
@pytest.mark.slow
def test_olimex_wrover_fails_as_the_board_would(tmp_path):
    _skip_unless_ready()
    out = _probe(tmp_path, "olimex-esp32-poe-iso-wrover")
    _check_common(out)
    t = faithful.traits("virtual:olimex-esp32-poe-iso-wrover")
    assert out["sessions"] == [t.tls_sessions, ["OSError", ENOMEM]]


@pytest.mark.netns
@pytest.mark.slow
def test_wt32_eth01_holds_one_tls_session(tmp_path):
    _skip_unless_ready()
    out = _probe(tmp_path, "wt32-eth01")
    _check_common(out)
    assert out["sessions"] == [1, ["OSError", ENOMEM]]


def test_traits_from_profiles():
    olimex = faithful.traits("virtual:olimex-esp32-poe-iso-wrover")
    wt32 = faithful.traits("virtual:wt32-eth01")
    assert olimex.psram and olimex.tls_sessions > 1 and olimex.chip == "esp32"
    assert not wt32.psram and wt32.tls_sessions == 1
    assert wt32.heap < olimex.heap
    assert wt32.board_heap == wt32.heap + faithful.MODULES_ALLOWANCE


@pytest.mark.parametrize("bad", ["virtual:virtual", "virtual:nope"])
def test_bad_faithful_board_is_refused(bad):
    with pytest.raises(faithful.VBoardError):
        faithful.traits(bad)


def _heap_in_use(tmp_path: Path, board: str | None) -> int:
    from host_tools.vboard import VirtualBoard
    folder = tmp_path / (board or "plain").replace(":", "-")
    folder.mkdir()
    (folder / "main.py").write_text("import gc\ngc.collect()\nprint('USED', gc.mem_alloc())\n")
    with VirtualBoard(folder, tcp_port=None, board=board) as b:
        b.wait_output(b"USED ", timeout=20)
        time.sleep(0.2)
        text = b.console(0).decode(errors="replace")
    return int(text.split("USED ", 1)[1].split()[0])


def test_board_modules_fit_their_heap_allowance(tmp_path):
    """The board's own modules (network, machine, tls...) are bytecode in the capped heap
    here, C in flash on the board: the cap adds MODULES_ALLOWANCE, which must cover them so
    that board code gets at least the profile's heap."""
    skip_without_libfaketime()
    extra = _heap_in_use(tmp_path, "virtual:wt32-eth01") - _heap_in_use(tmp_path, None)
    assert 0 < extra <= faithful.MODULES_ALLOWANCE


def test_scenario_hardware_profile_runs_on_the_faithful_board(tmp_path):
    """[board] profile = a hardware profile: the scenario runs on virtual:PROFILE (it was
    refused before the faithful board existed)."""
    from host_tools.scenario import runner, spec
    src = (Path(__file__).resolve().parents[2] / "scenarios" / "registered-standby.toml").read_text()
    f = tmp_path / "sc.toml"
    f.write_text(src + '\n[board]\nprofile = "wt32-eth01"\n' if "[board]" not in src else src)
    sc = spec.load(f)
    assert runner._board_kind("virtual", sc.board.get("profile")) == "virtual:wt32-eth01"
    assert runner._board_kind("virtual:olimex-esp32-poe-iso-wrover", None) == \
        "virtual:olimex-esp32-poe-iso-wrover"
    assert runner._board_kind("virtual", "virtual") is None


def test_board_options_take_virtual_profile():
    from host_tools.hil import specs
    s = specs.parse("virtual:wt32-eth01")
    assert (s.kind, s.profile, s.shareable) == ("virtual", "wt32-eth01", True)
    with pytest.raises(specs.SpecError, match="unix port itself"):
        specs.parse("virtual:virtual")


@pytest.mark.slow
def test_watchdog_not_fed_resets_the_board(tmp_path):
    """machine.WDT on the faithful board: not fed within its timeout, the board resets (and
    the clock is back at 2000 after it)."""
    skip_without_libfaketime()
    from host_tools.vboard import VirtualBoard
    folder = tmp_path / "wdt"
    folder.mkdir()
    (folder / "main.py").write_text(
        "import machine, time\n"
        "print('YEAR', time.gmtime()[0])\n"
        "machine.RTC().datetime((2030, 1, 1, 1, 0, 0, 0, 0))\n"
        "print('SET', time.gmtime()[0])\n"
        "w = machine.WDT(timeout=1000)\n"
        "time.sleep(30)\n")
    with VirtualBoard(folder, tcp_port=None, board="virtual:wt32-eth01") as b:
        b.wait_output(b"watchdog: no feed", timeout=30)
        mark = b.mark()
        b.wait_output(b"YEAR 2000", since=mark, timeout=30)
        assert b.boots >= 2
        assert b"SET 2030" in b.console(0)


def test_vboard_cli_takes_a_faithful_board():
    from host_tools.commands import vboard as cli
    assert cli._board_arg("virtual:wt32-eth01") == "virtual:wt32-eth01"
    assert cli._board_arg("virtual") == "virtual"
    import argparse
    for bad in ("virtual:nope", "wt32-eth01"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli._board_arg(bad)


@pytest.mark.netns
@pytest.mark.slow
def test_registered_standby_on_the_faithful_olimex(tmp_path):
    """The firmware, fixed for the ESP32 (its own DHCP for option 150, the clock set from what
    it trusts, exact pinning), goes through the normal day on the faithful board at the
    profile's CPU speed."""
    _skip_unless_ready()
    from host_tools import ROOT
    from host_tools.scenario import report, runner, spec
    sc = spec.load(ROOT / "scenarios" / "registered-standby.toml")
    res = runner.run(sc, runner.RunOptions(workdir=tmp_path,
                                           board="virtual:olimex-esp32-poe-iso-wrover"))
    text = report.summary(res) + "\n" + "\n".join(res.console[-25:])
    assert res.passed, text
    assert res.board == "virtual:olimex-esp32-poe-iso-wrover"


@pytest.mark.netns
def test_hil_lab_gives_a_faithful_board_its_hardware_profile(tmp_path):
    """pytest --board virtual:PROFILE: the lab the HIL plugin builds writes the board's own
    profile into its folder (it wrote boards/virtual.json, a unix profile, before)."""
    _skip_unless_ready()
    from host_tools.hil import handles, labboard, specs
    spec = specs.parse("virtual:wt32-eth01")
    h = handles.VirtualHandle(spec, "virtual:t", tmp_path / "board", "96K")
    h.start()
    lab = None
    try:
        lab = labboard.start_lab(h, tmp_path / "lab", labboard.worker_mac(0), "netns")
        prof = json.loads((tmp_path / "board" / "board.json").read_text())
        assert (prof["name"], prof["chip"]) == ("wt32-eth01", "esp32")
        assert h.vboard is not None and h.vboard.traits is not None
        assert h.vboard.traits.profile == "wt32-eth01"
    finally:
        h.close()
        if lab is not None:
            lab.stop()


def test_a_board_that_runs_the_agent_from_its_image(tmp_path):
    """wt32-eth01 runs the agent from the image (agent_in_image): the folder's `phone`
    package becomes the board's ROM at power-up (mounted at /rom, after '.frozen'), leaves
    the filesystem, imports in place, and gc.mem_alloc() does not count the ROM's buffer.
    A profile without the trait keeps the package as files."""
    skip_without_libfaketime()
    from host_tools import fwbuild
    from host_tools.vboard import VirtualBoard
    assert faithful.traits("virtual:wt32-eth01").agent_in_image
    assert not faithful.traits("virtual:olimex-esp32-poe-iso-wrover").agent_in_image
    fw = fwbuild.compiled()
    probe = ("import gc, sys, os\n"
             "gc.collect(); a = gc.mem_alloc()\n"
             "from phone import dhcpcore\n"
             "gc.collect(); print('RESULT', repr((dhcpcore.__file__, gc.mem_alloc() - a, "
             "sys.path, 'phone' in os.listdir('/'))))\n")
    seen = {}
    for board in ("virtual:wt32-eth01", "virtual:olimex-esp32-poe-iso-wrover"):
        folder = tmp_path / board.replace(":", "-")
        (folder / "phone").mkdir(parents=True)
        for m in ("__init__", "udp", "dhcpcore"):
            (folder / "phone" / f"{m}.mpy").write_bytes((fw / "phone" / f"{m}.mpy").read_bytes())
        (folder / "main.py").write_text(probe)
        with VirtualBoard(folder, tcp_port=None, board=board) as b:
            b.wait_output(b"RESULT ", timeout=30)
            time.sleep(0.3)
            text = b.console(0).decode(errors="replace")
            seen[board] = (eval(text.split("RESULT ", 1)[1].splitlines()[0]),
                           b.faithful.image_size if b.faithful else 0)
    (rom_file, rom_cost, rom_path, rom_listed), size = seen["virtual:wt32-eth01"]
    (fs_file, fs_cost, fs_path, fs_listed), none = seen["virtual:olimex-esp32-poe-iso-wrover"]
    assert rom_file == "/rom/phone/dhcpcore.mpy" and rom_path[:3] == ["", ".frozen", "/rom"]
    assert not rom_listed and not (tmp_path / "virtual-wt32-eth01" / "phone").exists()
    assert size > 0 and none == 0
    assert fs_file == "phone/dhcpcore.mpy" and fs_listed and "/rom" not in fs_path
    # in place: the bytecode stays in the ROM (measured: 13.9 KB as a file, 7.7 KB from ROM)
    assert 0 < rom_cost < fs_cost * 0.7, (rom_cost, fs_cost)
