"""The HIL pytest plugin (host_tools/hil), run the way users run it: small inner test files
under pytester, against a virtual board, a virtual board seen only as a pty (a serial device as
far as pyserial and mpremote can tell), two virtual boards in parallel, and a labgrid place
served by a real coordinator and exporter on loopback."""
from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from host_tools import FIRMWARE
from host_tools.scenario import runner
from host_tools.vboard import VirtualBoard

pytest_plugins = ["pytester"]
BIN = Path(sys.executable).parent
SCENARIO_TESTS = Path(__file__).resolve().parents[1] / "scenarios" / "test_scenarios.py"

# A stand-in agent: the plugin is under test here, not the firmware (tests/scenarios run that).
# It reports the token a test wrote to the board, so crossed boards or streams show at once.
MAIN = """\
import time
from phone import events
try:
    tok = open('/token').read()
except OSError:
    tok = None
events.emit('boot', board='test', device='SEP000000000001')
events.emit('hello', token=tok)
events.emit('state', state='PRIMARY', prev='BOOT')
while True:
    time.sleep_ms(200)
"""

INNER = """\
import json, os, pytest
RESULTS = {results!r}

@pytest.mark.parametrize("i", range({n}))
def test_board(board, event_stream, i):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "-")
    tok = "%s-%d-%d" % (worker, os.getpid(), i)
    board.exec("f=open('/token','w')\\nf.write(%r)\\nf.close()" % tok)
    board.reset()
    assert event_stream.wait("hello", timeout=20)["token"] == tok
    event_stream.wait("state", state="PRIMARY", timeout=10)
    with open(os.path.join(RESULTS, tok), "w") as f:
        json.dump({{"worker": worker, "name": board.name, "kind": board.kind,
                   "port": board.port, "profile": board.profile}}, f)
"""


@pytest.fixture
def hil(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """A pytester folder with the stand-in firmware and a results folder."""
    for var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(var, raising=False)
    fw = pytester.path / "fw"
    (fw / "phone").mkdir(parents=True)
    shutil.copy(FIRMWARE / "phone" / "events.py", fw / "phone" / "events.py")
    (fw / "phone" / "__init__.py").write_text("")
    (fw / "boot.py").write_text("import gc\n")
    (fw / "main.py").write_text(MAIN)
    (fw / "manifest.py").write_text('metadata(version="0")\nmodule("boot.py")\n'
                                    'module("main.py")\npackage("phone")\n')
    results = pytester.path / "results"
    results.mkdir()

    class Hil:
        path = pytester.path
        firmware = fw

        def inner(self, n: int = 1) -> None:
            pytester.makepyfile(test_inner=INNER.format(results=str(results), n=n))

        def run(self, *args: str, timeout: float = 120, stand_in: bool = True) -> pytest.RunResult:
            fw_args = ["--hil-firmware", str(fw)] if stand_in else []
            return pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                                 *fw_args, *args, timeout=timeout)

        def results(self) -> list[dict]:
            out = [json.loads(p.read_text()) for p in sorted(results.iterdir())]
            for p in results.iterdir():
                p.unlink()
            return out

    return Hil()


def test_virtual_board_by_default_with_junit_xml(hil):
    hil.inner(2)
    r = hil.run("--junitxml", "report.xml")
    r.assert_outcomes(passed=2)
    got = hil.results()
    assert {g["kind"] for g in got} == {"virtual"} and {g["profile"] for g in got} == {"virtual"}
    suite = ET.parse(hil.path / "report.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "0"
    assert [c.get("name") for c in suite.iter("testcase")] == ["test_board[0]", "test_board[1]"]


def test_a_pty_is_a_serial_board(hil, tmp_path):
    with VirtualBoard(tmp_path / "bench", heap="96K") as vb:   # a bare board: no files yet
        port = vb.pty_path
        hil.inner(2)
        r = hil.run("--board", port)   # no profile given and none on the board yet
        r.stdout.fnmatch_lines(["*has no board.json yet; name its profile: --board PROFILE@*"])
        r = hil.run("--board", f"virtual@{port}")
        r.assert_outcomes(passed=2)
        assert (tmp_path / "bench" / "main.py").read_text() == MAIN   # deployed over the pty
        r = hil.run("--board", port)   # now the profile comes from the board's board.json
        r.assert_outcomes(passed=2)
    got = hil.results()
    assert len(got) == 4 and {(g["kind"], g["port"], g["profile"]) for g in got} == {
        ("serial", port, "virtual")}


def test_two_virtual_boards_in_parallel(hil):
    hil.inner(6)
    t = time.monotonic()
    r = hil.run("-n", "2", "--board", "virtual", "--board", "virtual")
    r.assert_outcomes(passed=6)
    got = hil.results()
    workers = {g["worker"] for g in got}
    assert workers == {"gw0", "gw1"}, got
    by_worker = {w: {g["name"] for g in got if g["worker"] == w} for w in workers}
    assert by_worker == {"gw0": {"virtual:gw0"}, "gw1": {"virtual:gw1"}}
    ports = {g["worker"]: g["port"] for g in got}
    assert ports["gw0"] != ports["gw1"]
    assert time.monotonic() - t < 60


LAB_INNER = """\
import json, os
RESULTS = {results!r}

def test_failover_in_its_own_lab(board, lab, event_stream):
    board.reset()
    event_stream.wait("registered", link="primary", timeout=60)
    event_stream.wait("standby_up", timeout=30)
    lab.wan_cut("blackhole")
    event_stream.wait("registered", link="srst", timeout=30)
    lab.wan_restore()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "-")
    with open(os.path.join(RESULTS, worker), "w") as f:
        json.dump({{"worker": worker, "board": board.name, "phones": list(lab.status()["phones"]),
                   "workdir": str(lab.workdir), "mode": lab.mode}}, f)
"""


@pytest.mark.slow
def test_provisioned_boards_fail_over_in_their_own_labs_in_parallel(hil, pytester):
    """The real agent (repository firmware), each worker's board in its own lab: both
    register, stand by, and fail over when their own WAN is cut."""
    pytester.makepyfile(test_lab_inner=LAB_INNER.format(results=str(hil.path / "results")))
    r = hil.run("-n", "2", "--dist", "each", "--board", "virtual", "--board", "virtual",
                "test_lab_inner.py", stand_in=False, timeout=180)
    r.assert_outcomes(passed=2)
    got = {g["worker"]: g for g in hil.results()}
    assert set(got) == {"gw0", "gw1"}
    assert got["gw0"]["phones"] != got["gw1"]["phones"]          # one phone (MAC) per lab
    assert got["gw0"]["workdir"] != got["gw1"]["workdir"]
    assert {g["board"] for g in got.values()} == {"virtual:gw0", "virtual:gw1"}


def test_board_options_are_checked(hil):
    hil.inner(1)
    cases = [
        (["--board", "virtual", "--board", "/dev/ttyUSB9"], "2 boards need one pytest-xdist worker each"),
        (["-n", "3", "--board", "/dev/ttyUSB8", "--board", "virtual"], "cannot be shared between workers"),
        (["--board", "/dev/ttyUSB8", "--board", "/dev/ttyUSB8", "-n", "2"], "are the same board"),
        (["--board", "nosuch@/dev/ttyUSB0"], "no board profile 'nosuch'"),
        (["--board", "bogus"], "not 'virtual', 'virtual:PROFILE', a serial port"),
        (["--board", "virtual:virtual"], "is the unix port itself"),
    ]
    for args, msg in cases:
        r = hil.run(*args)
        assert r.ret == pytest.ExitCode.USAGE_ERROR, (args, r.stdout.str(), r.stderr.str())
        assert msg in r.stderr.str(), (args, r.stderr.str())


# -- labgrid: a real coordinator and exporter on loopback ---------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_ser2net() -> None:
    """labgrid's exporter serves serial ports with ser2net (a Debian package)."""
    if shutil.which("ser2net") or os.path.exists("/usr/sbin/ser2net"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("ser2net is missing (labgrid's exporter needs it): apt-get install ser2net "
                    "as root, or run scripts/bootstrap.sh as root")
    r = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "ser2net"],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if r.returncode != 0:
        pytest.skip(f"ser2net is missing and apt-get could not install it: {r.stderr.strip()[-300:]}")


class PowerSwitch(http.server.BaseHTTPRequestHandler):
    """labgrid's 'simplerest' power port: GET /relay/0/{0|1} switches, GET /relay/0 reads.
    Switching on hard-resets the virtual board, as power would."""
    board: VirtualBoard
    log: list[str]
    state = "1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        parts = self.path.strip("/").split("/")
        if len(parts) == 3:
            type(self).state = parts[2]
            self.log.append(parts[2])
            if parts[2] == "1":
                self.board.reset()
        body = type(self).state.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def labgrid_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Coordinator + exporter (RawSerialPort = a virtual board's pty, NetworkPowerPort = a
    loopback HTTP switch) and a place 'phonelab-bench' matching both."""
    pytest.importorskip("labgrid", reason="labgrid is not installed (pip install -e '.[dev]')")
    ensure_ser2net()
    addr = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("LG_COORDINATOR", addr)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    env = {**os.environ, "LG_COORDINATOR": addr, "NO_PROXY": "127.0.0.1"}
    procs: list[subprocess.Popen] = []
    vb = VirtualBoard(tmp_path / "bench-board", heap=runner.DEFAULT_HEAP).start()  # the agent's
    PowerSwitch.board, PowerSwitch.log = vb, []
    http_srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PowerSwitch)
    threading.Thread(target=http_srv.serve_forever, daemon=True).start()
    try:
        procs.append(subprocess.Popen([str(BIN / "labgrid-coordinator"), "-l", addr],
                                      cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        # The exporter gives up on a coordinator that is not listening yet: wait for it.
        host, port = addr.split(":")
        up_by = time.monotonic() + 60
        while True:
            assert procs[0].poll() is None, "labgrid-coordinator exited at start"
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < up_by, f"labgrid-coordinator not listening on {addr}"
                time.sleep(0.2)
        (tmp_path / "exporter.yaml").write_text(
            f"bench:\n  RawSerialPort:\n    port: {vb.pty_path}\n    speed: 115200\n"
            f"  NetworkPowerPort:\n    model: simplerest\n"
            f"    host: 'http://127.0.0.1:{http_srv.server_port}/relay/{{index}}/{{value}}'\n"
            f"    index: 0\n")
        exporter_log = (tmp_path / "exporter.log").open("w")
        procs.append(subprocess.Popen([str(BIN / "labgrid-exporter"), "-c", addr, "--name",
                                       "phonelab-exp", "--hostname", "127.0.0.1",
                                       str(tmp_path / "exporter.yaml")],
                                      stdout=exporter_log, stderr=subprocess.STDOUT, env=env))

        def client(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([str(BIN / "labgrid-client"), "-x", addr, *args],
                                  capture_output=True, text=True, timeout=30, env=env)

        deadline = time.monotonic() + 90     # labgrid's exporter starts slowly on a busy host
        while "phonelab-exp/bench/NetworkSerialPort" not in client("resources").stdout:
            assert time.monotonic() < deadline, (tmp_path / "exporter.log").read_text()[-2000:]
            time.sleep(0.2)
        for args in (("-p", "phonelab-bench", "create"),
                     ("-p", "phonelab-bench", "add-match", "phonelab-exp/bench/*")):
            r = client(*args)
            assert r.returncode == 0, r.stderr
        yield {"place": "phonelab-bench", "client": client, "board": vb,
               "power_log": PowerSwitch.log}
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        http_srv.shutdown()
        vb.stop()


POWER_INNER = """\
def test_power_cycle_restarts_the_board(board, event_stream):
    assert board.kind == "labgrid" and board.has_power
    event_stream.skip()
    board.power_cycle(delay=0.1)
    event_stream.wait("boot", timeout=20)
"""


@pytest.mark.slow
@pytest.mark.long("a labgrid coordinator and exporter, three inner pytest runs (1.5 minutes); "
                  "`make test` keeps the plugin's other tests")
def test_labgrid_place_and_lg_env_with_serial_logs_beside_the_junit_xml(hil, labgrid_place):
    """labgrid's pytest plugin loaded: --board labgrid:PLACE (acquired for the run, released
    after), then --lg-env with labgrid's `target` fixture as the board (the place acquired
    first, as labgrid users do); each board's serial log and events beside the JUnit XML."""
    from host_tools.hil.lgplace import LabgridBoard, PlaceError
    place, client = labgrid_place["place"], labgrid_place["client"]
    hil.inner(2)
    hil.path.joinpath("test_power.py").write_text(POWER_INNER)
    r = hil.run("--board", f"virtual@labgrid:{place}", "--junitxml", "out/hil.xml")
    r.assert_outcomes(passed=3)
    got = hil.results()
    assert {g["kind"] for g in got} == {"labgrid"}
    assert all(g["port"].startswith("rfc2217://127.0.0.1:") for g in got)
    assert labgrid_place["power_log"] == ["0", "1"]
    assert "acquired: None" in client("-p", place, "show").stdout  # released
    boards_dir = hil.path / "out" / "hil-boards"
    log = (boards_dir / f"virtual-labgrid-{place}.serial.log").read_bytes()
    events = [json.loads(line) for line in
              (boards_dir / f"virtual-labgrid-{place}.events.jsonl").read_text().splitlines()]
    assert log.count(b'"ev":"hello"') >= 3 and b"soft reboot" in log    # 2 tests + power
    assert [e["event"]["ev"] for e in events].count("boot") >= 3          # 2 resets + power
    assert all(isinstance(e["host_time"], float) for e in events)

    # labgrid's way: an environment file, the place acquired by the user, `target` the board
    (hil.path / "env.yaml").write_text(
        f"targets:\n  main:\n    resources:\n      RemotePlace:\n        name: {place}\n"
        f"    drivers:\n      NetworkPowerDriver: {{}}\n")
    assert client("-p", place, "acquire").returncode == 0
    try:
        r = hil.run("--lg-env", str(hil.path / "env.yaml"), "--hil-no-deploy")
        r.assert_outcomes(passed=3)
        got = hil.results()
        assert {(g["kind"], g["name"]) for g in got} == {("labgrid", "labgrid:main")}
        assert labgrid_place["power_log"] == ["0", "1", "0", "1"]
        # labgrid's strategy (host_tools.hil.lgstrategy) powers, deploys: nothing of ours
        (hil.path / "strategy.yaml").write_text(
            f"imports:\n  - host_tools.hil.lgstrategy\n"
            f"targets:\n  main:\n    resources:\n      RemotePlace:\n        name: {place}\n"
            f"    drivers:\n      NetworkPowerDriver: {{}}\n"
            f"      PhonelabStrategy:\n        profile: virtual\n")
        (labgrid_place["board"].folder / "main.py").unlink()
        r = hil.run("--lg-env", str(hil.path / "strategy.yaml"), "-k", "test_board")
        r.assert_outcomes(passed=2)
        assert (labgrid_place["board"].folder / "main.py").read_text() == MAIN
        assert labgrid_place["power_log"] == ["0", "1"] * 3
        hil.results()
        # the scenario suite on labgrid's target: the real agent, a loopback lab (in the
        # inner pytest's basetemp, deep under this test's: a work folder's length is free)
        r = hil.run(f"{SCENARIO_TESTS}::test_scenario[wan-blackhole]",
                    "--lg-env", str(hil.path / "env.yaml"), "--lab-mode", "loopback",
                    "--junitxml", "out/scenarios.xml", stand_in=False, timeout=300)
        r.assert_outcomes(passed=1)
        assert (hil.path / "out" / "scenarios-boards" / "labgrid-main.events.jsonl").stat().st_size
    finally:
        client("-p", place, "release")
    r = hil.run("--board", "labgrid")                        # no --lg-env: said at once
    assert r.ret == pytest.ExitCode.USAGE_ERROR and "--lg-env" in r.stderr.str()

    # the lock: while we hold the place, nobody else gets it
    with LabgridBoard.acquire(place) as held:
        assert held.serial_url.startswith("rfc2217://") and held.power is not None
        with pytest.raises(PlaceError, match="already acquired"):
            LabgridBoard.acquire(place)
    with pytest.raises(PlaceError, match="matches nothing|not found|does not exist"):
        LabgridBoard.acquire("no-such-place")


def test_board_auto_finds_the_esp32_on_a_port_and_says_when_there_is_none(hil, tmp_path):
    """--board auto asks every candidate port with esptool's detect_chip: here a pty whose far
    end is a simulated ESP32 ROM until the detection ends, then the virtual board MicroPython
    "boots" into (tests/host/esprom_sim.py)."""
    from esprom_sim import ChipThenMicroPython
    folder = tmp_path / "esp32"
    folder.mkdir()
    (folder / "board.json").write_text(json.dumps({"name": "olimex-esp32-poe-iso-wrover"}))
    chip = ChipThenMicroPython(folder, booted=lambda sim: bool(sim.ops))
    try:
        hil.inner(1)
        r = hil.run("--board", "auto", "--board-ports", chip.dev.path, "--junitxml", "j.xml")
        r.assert_outcomes(passed=1)
        got = hil.results()
        assert [(g["kind"], g["port"], g["profile"]) for g in got] == [
            ("serial", chip.dev.path, "olimex-esp32-poe-iso-wrover")]
        assert (hil.path / "j-boards" / f"{chip.dev.path.strip('/').replace('/', '-')}"
                ".serial.log").stat().st_size > 0
    finally:
        chip.close()
    r = hil.run("--board", "auto", "--board-ports", str(tmp_path / "no-such-tty*"))
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    assert "--board auto: no ESP32 board answered (looked at: no serial port matches" \
        in r.stderr.str()


def test_a_serial_board_is_flashed_then_deployed(hil, tmp_path):
    """--hil-flash IMAGE: esptool writes the image at the profile's offset (a simulated ROM on
    the pty), MicroPython "boots" (the virtual board behind the same pty), then the deploy."""
    from esprom_sim import ChipThenMicroPython, make_image
    image = tmp_path / "ESP32_GENERIC-20260101-v1.29.0.bin"
    image.write_bytes(make_image(0))
    chip = ChipThenMicroPython(tmp_path / "esp32")
    try:
        hil.inner(1)
        r = hil.run("--board", f"olimex-esp32-poe-iso-wrover@{chip.dev.path}",
                    "--hil-flash", str(image))
        r.assert_outcomes(passed=1)
        assert chip.sim.writes and chip.sim.writes[0][0] == 0x1000
        assert bytes(chip.sim.flash[0x1000:0x1000 + image.stat().st_size]) == image.read_bytes()
        assert (tmp_path / "esp32" / "main.py").read_text() == MAIN
    finally:
        chip.close()
