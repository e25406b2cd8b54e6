"""pytest plugin (registered through the `pytest11` entry point): choose the board(s) a test
run drives. `--board virtual` (default), `--board virtual:PROFILE` (the ESP32-faithful board
of a hardware profile, docs/vboard.md) or `--board /dev/ttyUSB0`, repeatable.

    pytest --board virtual                          a fresh virtual board, firmware deployed
    pytest --board /dev/ttyUSB0                     a real board (profile from its board.json)
    pytest --board wt32-eth01@/dev/ttyUSB0          ... naming the profile (a fresh board)
    pytest --board auto                             every ESP32 board attached (esptool finds them)
    pytest --lg-env env.yaml                        labgrid's pytest plugin: its `target` is the board
    pytest --board labgrid:bench-3                  a labgrid place, acquired for the run (LG_COORDINATOR)
    pytest -n 2 --board /dev/ttyUSB0 --board /dev/ttyUSB1     two boards, one xdist worker each
    pytest -n 2 --dist each --board A --board B     every test on every board
    pytest ... --junitxml=out/hil.xml               JUnit XML for CI (pytest's own report), and
                                                    out/hil-boards/NAME.serial.log, .events.jsonl

Fixtures: `board` (a handle, see host_tools.hil.handles; one per worker for the session),
`event_stream` (that board's events from the start of the test), `lab` (host_tools.lab.Lab
around this worker's board, which it gives the lab's identity and puts on the lab's network: a
board in its own lab; real boards need --lab-interface), `board_spec`, `board_specs`.
labgrid's own fixtures (`env`, `target`, `strategy`) and options (`--lg-env`, `--lg-log`,
...) work beside these: with --lg-env, `board` is labgrid's `target` (host_tools.hil.lgplace).
Plugins built on this one get `pytest_phonelab_board_ready(board, config)` (firmware deployed)
and `pytest_phonelab_lab_ready(board, lab, config)` (board in the lab, agent restarted).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterator

import pytest

from host_tools import FIRMWARE
from host_tools.hil import specs as _specs
from host_tools.lab.names import MODES

VBOARD_HEAP = "192K"  # = host_tools.scenario.runner.DEFAULT_HEAP (docs/decisions.md)
SPECS = pytest.StashKey[list]()       # the boards of this run, resolved once (auto: detected)


class HilHooks:
    """Hook specifications for plugins built on this one (the scenario runner)."""

    @pytest.hookspec
    def pytest_phonelab_board_ready(self, board: object, config: pytest.Config) -> None:
        """The worker's board is up with the firmware deployed, before any test uses it
        (e.g. put an identity from the lab's PKI on it)."""

    @pytest.hookspec
    def pytest_phonelab_lab_ready(self, board: object, lab: object, config: pytest.Config) -> None:
        """The worker's lab runs and the board is set up for it and restarted."""


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(HilHooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("phonelab", "Secure SRST phone lab")
    group.addoption("--board", action="append", default=None,
                    metavar="virtual|virtual:PROFILE|PORT|auto|labgrid|labgrid:PLACE",
                    help="board to test: 'virtual' (default), a serial port or URL "
                         "([PROFILE@]PORT), 'auto' (every ESP32 board attached), 'labgrid' "
                         "(the target of labgrid's --lg-env; the default with --lg-env) or a "
                         "labgrid place ([PROFILE@]labgrid:PLACE); repeatable, one "
                         "pytest-xdist worker per board")
    group.addoption("--board-ports", action="append", default=None, metavar="GLOB",
                    help="where --board auto looks for boards (default: the USB serial ports "
                         "pyserial lists); repeatable")
    group.addoption("--vboard-heap", default=VBOARD_HEAP, metavar="SIZE",
                    help="MicroPython heap of virtual boards (default %(default)s, the scenario "
                         "runner's: the whole agent on the 64-bit unix port)")
    group.addoption("--hil-firmware", default=str(FIRMWARE), metavar="DIR",
                    help="firmware tree deployed to the boards (default: the repository's)")
    group.addoption("--hil-flash", default=None, metavar="IMAGE",
                    help="flash this MicroPython image to each real board (esptool, at the "
                         "profile's offset) before the deploy; virtual boards ignore it")
    group.addoption("--hil-source", action="store_true",
                    help="deploy .py sources instead of .mpy")
    group.addoption("--hil-no-deploy", action="store_true",
                    help="use the boards as they are (no deploy at session start)")
    group.addoption("--lab-mode", default="auto", choices=MODES,
                    help="topology of the `lab` fixture for virtual boards (default auto: "
                         "namespaces when root)")
    group.addoption("--lab-interface", action="append", default=None, metavar="IF",
                    help="bench interface of a real board's lab (the board's Ethernet is "
                         "plugged into it); repeatable, in --board order")


def _workers(config: pytest.Config) -> int:
    if config.pluginmanager.hasplugin("xdist") and config.getoption("dist", "no") != "no":
        n = config.getoption("numprocesses", 0)
        return int(n) if isinstance(n, int) else 0
    return 0


def _lg_env(config: pytest.Config) -> str | None:
    """labgrid's --lg-env (or its LG_ENV), when labgrid's pytest plugin is loaded."""
    if not config.pluginmanager.hasplugin("labgrid"):
        return None
    return config.getoption("lg_env", None) or os.environ.get("LG_ENV")


def resolve(config: pytest.Config) -> list[_specs.BoardSpec]:
    """The boards of this run: --board (default virtual, or labgrid's target with --lg-env),
    `auto` replaced by the boards detected. SpecError says what is wrong."""
    specs = _specs.parse_all(config.getoption("--board"),
                             "labgrid" if _lg_env(config) else _specs.VIRTUAL)
    if any(s.kind == "lgenv" for s in specs) and not _lg_env(config):
        raise _specs.SpecError("--board labgrid is the target of labgrid's pytest plugin: give "
                               "it --lg-env ENV.yaml (or LG_ENV), without -p no:labgrid")
    specs = _specs.expand_auto(specs, config.getoption("--board-ports"))
    _specs.check_workers(specs, _workers(config))
    return specs


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hil: drives a board (virtual or real) through the "
                                       "phonelab HIL fixtures")
    if hasattr(config, "workerinput"):  # an xdist worker: the controller resolved the boards
        given = config.workerinput.get("phonelab_boards")  # type: ignore[attr-defined]
        if given is not None:
            config.stash[SPECS] = [_specs.BoardSpec(**d) for d in given]
        return
    try:
        config.stash[SPECS] = resolve(config)
    except _specs.SpecError as e:
        raise pytest.UsageError(str(e)) from None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: object) -> None:
    """pytest-xdist: each worker gets the controller's boards (auto detects once)."""
    specs = node.config.stash.get(SPECS, None)  # type: ignore[attr-defined]
    if specs is not None:
        node.workerinput["phonelab_boards"] = [dataclasses.asdict(s) for s in specs]  # type: ignore[attr-defined]


def pytest_report_header(config: pytest.Config) -> str | None:
    given = config.getoption("--board")
    specs = config.stash.get(SPECS, None)
    if specs and (given or any(s.kind != "virtual" for s in specs)):
        return f"phonelab boards: {', '.join(s.text for s in specs)}"
    return None


def artifact_dir(config: pytest.Config) -> Path | None:
    """Beside the JUnit XML (--junitxml out/hil.xml: out/hil-boards/), else none."""
    xml = getattr(config.option, "xmlpath", None)
    if not xml:
        return None
    xml_path = Path(os.path.expanduser(os.path.expandvars(xml)))
    return xml_path.with_name(xml_path.stem + "-boards")


@pytest.fixture(scope="session")
def board_specs(request: pytest.FixtureRequest) -> list[_specs.BoardSpec]:
    specs = request.config.stash.get(SPECS, None)
    return specs if specs is not None else resolve(request.config)


@pytest.fixture(scope="session")
def board_spec(board_specs: list[_specs.BoardSpec]) -> _specs.BoardSpec:
    """The board of this worker (gwN takes board N)."""
    return _specs.for_worker(board_specs)


@pytest.fixture(scope="session")
def board(board_spec: _specs.BoardSpec, request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from host_tools.deploy import DeployError
    from host_tools.hil import handles
    config = request.config
    worker = f"gw{_specs.worker_index()}"
    by_strategy = False         # labgrid's strategy (--lg-env) put the board in its state
    if board_spec.kind == "virtual":
        folder = tmp_path_factory.mktemp(f"vboard-{worker}")
        handle: handles.BoardHandle = handles.VirtualHandle(
            board_spec, f"virtual:{worker}", folder, config.getoption("--vboard-heap"))
    elif board_spec.kind == "serial":
        handle = handles.SerialHandle(board_spec, board_spec.text, str(board_spec.target))
    else:
        from host_tools.hil import lgplace
        try:
            if board_spec.kind == "lgenv":      # labgrid's pytest plugin, its target fixture
                target = request.getfixturevalue("target")
                place = lgplace.LabgridBoard.from_target(target)
                name = f"labgrid:{target.name}"
                strategy = _phonelab_strategy(target)
                if strategy is not None:        # the environment's strategy flashes, deploys
                    request.getfixturevalue("strategy")     # labgrid's: --lg-initial-state
                    strategy.firmware = strategy.firmware or config.getoption("--hil-firmware")
                    strategy.source = strategy.source or config.getoption("--hil-source")
                    if not config.getoption("--hil-no-deploy"):
                        from labgrid.strategy import StrategyError
                        try:
                            strategy.transition("deployed")  # type: ignore[attr-defined]
                        except StrategyError as e:
                            pytest.fail(f"--lg-env: labgrid strategy {type(strategy).__name__}: "
                                        f"{e.__cause__ or e.msg}", pytrace=False)
                    by_strategy = True
            else:
                place = lgplace.LabgridBoard.acquire(str(board_spec.target))
                name = board_spec.text
        except lgplace.PlaceError as e:
            pytest.fail(f"--board {board_spec.text}: {e}", pytrace=False)
        handle = handles.LabgridHandle(board_spec, name, place)
    log = None
    artifacts = artifact_dir(config)
    if artifacts is not None:
        from host_tools.hil.console import BoardLog
        log = BoardLog(artifacts, handle.name)
        handle.attach(log)
    try:
        handle.start()  # type: ignore[attr-defined]
        image = config.getoption("--hil-flash")
        if image and handle.kind != "virtual" and not by_strategy:
            handle.flash(Path(image))  # type: ignore[attr-defined]
        if not config.getoption("--hil-no-deploy") and not by_strategy:
            handle.deploy(Path(config.getoption("--hil-firmware")),
                          source=config.getoption("--hil-source"))
        config.hook.pytest_phonelab_board_ready(board=handle, config=config)
    except BaseException as e:
        handle.close()
        if log is not None:
            log.close()
        if isinstance(e, (handles.BoardError, DeployError)):
            pytest.fail(f"--board {board_spec.text}: {e}", pytrace=False)
        raise
    yield handle
    handle.close()
    if log is not None:
        log.close()


def _phonelab_strategy(target: object) -> object | None:
    """The target's PhonelabStrategy (host_tools.hil.lgstrategy), if its environment has one."""
    from labgrid.exceptions import NoDriverFoundError

    from host_tools.hil.lgstrategy import PhonelabStrategy
    try:
        return target.get_driver(PhonelabStrategy, activate=False)  # type: ignore[attr-defined]
    except NoDriverFoundError:
        return None


@pytest.fixture
def event_stream(board: object) -> Iterator[object]:
    """The board's events from the start of this test; .wait(name, timeout, **fields)."""
    stream = board.events()  # type: ignore[attr-defined]
    yield stream
    board.close_events(stream)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def lab(board: object, board_specs: list[_specs.BoardSpec], board_spec: _specs.BoardSpec,
        request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """This worker's lab (host_tools.lab.Lab) with the board set up for it and restarted
    on its network. One per worker, so parallel boards never share a lab."""
    from host_tools.hil import labboard
    config = request.config
    index = _specs.worker_index()
    interfaces = config.getoption("--lab-interface") or []
    interface = None
    if board_spec.kind != "virtual":
        pos = board_specs.index(board_spec)
        if pos >= len(interfaces):
            pytest.skip(f"{board_spec.text} is a real board: its lab needs --lab-interface IF "
                        f"(the bench interface its Ethernet is plugged into; root)")
        interface = interfaces[pos]
    try:
        the_lab = labboard.start_lab(board, tmp_path_factory.mktemp(f"lab-gw{index}"),  # type: ignore[arg-type]
                                     labboard.worker_mac(index), config.getoption("--lab-mode"),
                                     interface)
    except labboard.LabSetupError as e:
        pytest.skip(str(e))
    config.hook.pytest_phonelab_lab_ready(board=board, lab=the_lab, config=config)
    yield the_lab
    the_lab.stop()  # type: ignore[attr-defined]
