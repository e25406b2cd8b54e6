"""The report's timeline picture: lanes and fault windows from events and actions (pure), the
measured-figure arrows, PNG/SVG output of the expected size, `phonelab report`."""
from __future__ import annotations

import json
import struct
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from host_tools import ROOT
from host_tools.cli import main as cli_main
from host_tools.scenario import picture, report
from host_tools.scenario.picture import Marker, Span


def ev(at: int, name: str, **fields: Any) -> dict[str, Any]:
    return {"host_ms": at, "t": at - 20, "ev": name, **fields}


def act(at: int, name: str, **args: Any) -> dict[str, Any]:
    return {"host_ms": at, "action": name, **args}


def blackhole_report() -> dict[str, Any]:
    """A wan-blackhole run as report.py writes it (the times of a real one, rounded)."""
    events = [
        ev(20, "state", state="BOOT", prev=None), ev(20, "boot", board="virtual"),
        ev(21, "state", state="PROVISION", prev="BOOT"),
        ev(110, "registered", link="primary", ms=60),
        ev(110, "state", state="PRIMARY", prev="PROVISION"),
        ev(180, "standby_up", ms=62),
        ev(3870, "link_down", link="primary", was="REGISTERED", reason="no KeepAliveAck"),
        ev(3880, "primary_lost", reason="no KeepAliveAck"),
        ev(3890, "registered", link="srst", over_standby=True, register_ms=7),
        ev(3890, "state", state="FALLBACK", prev="PRIMARY"),
        ev(6000, "primary_reachable", cm="cucm1", monitor_s=10),
        ev(16000, "state", state="REHOME", prev="FALLBACK"),
        ev(16010, "registered", link="primary", ms=14),
        ev(16010, "state", state="PRIMARY", prev="REHOME"),
        ev(16030, "rehomed", ms=35),
    ]
    actions = [act(1180, "wan_cut", kind="blackhole"), act(5890, "wan_restore")]
    metrics = {"boot_to_registered_ms": 90, "standby_up_ms": 160, "failover_ms": 2710,
               "rehome_ms": 10140, "peak_heap_bytes": 77024, "register_over_standby_ms": 7,
               "failovers": [{"after": "wan_cut", "ms": 2710, "over_standby": True,
                              "register_ms": 7}],
               "rehomes": [{"after": "wan_restore", "ms": 10140}],
               "registrations": 3, "final_state": "PRIMARY"}
    return {"scenario": "wan-blackhole", "description": "Silent WAN cut.", "board": "virtual",
            "mode": "netns", "passed": True, "error": None,
            "expectations": [{"name": "final_state", "expected": "PRIMARY", "actual": "PRIMARY",
                              "passed": True, "message": "ok"}],
            "metrics": metrics, "events": events, "actions": actions,
            "files": {"report": "out/reports/wan-blackhole.json"}, "lab_events": []}


def by_lane(spans: list[Span], lane: str) -> list[tuple[float, float, str]]:
    return [(s.start, s.end, s.label) for s in spans if s.lane == lane]


# -- pure: lanes ---------------------------------------------------------------------------

def test_lanes_of_a_failover_and_rehome() -> None:
    r = blackhole_report()
    spans = picture.intervals(r["events"], r["actions"], end=17.0)
    assert by_lane(spans, "state") == [
        (0.02, 0.021, "BOOT"), (0.021, 0.11, "PROVISION"), (0.11, 3.89, "PRIMARY"),
        (3.89, 16.0, "FALLBACK"), (16.0, 16.01, "REHOME"), (16.01, 17.0, "PRIMARY")]
    assert by_lane(spans, "primary") == [
        (0.11, 3.87, "registered"), (3.87, 6.0, "down"), (6.0, 16.01, "reachable"),
        (16.01, 17.0, "registered")]
    # the SRST link is closed on purpose after the re-home: no band, not "down"
    assert by_lane(spans, "srst") == [(0.18, 3.89, "standby"), (3.89, 16.03, "registered")]
    assert by_lane(spans, "fault") == [(1.18, 5.89, "WAN blackhole")]


def test_link_failures_and_reboot_drop_the_links() -> None:
    events = [ev(0, "state", state="PRIMARY"), ev(0, "registered", link="primary"),
              ev(100, "standby_up"), ev(1000, "link_down", link="srst", reason="closed by peer"),
              ev(1100, "standby_failed", retry_ms=500), ev(3000, "standby_up"),
              ev(4000, "state", state="BOOT"), ev(4000, "state", state="PROVISION"),
              ev(5000, "register_failed", link="primary"), ev(5000, "state", state="TRYING")]
    spans = picture.lane_spans(events, end=6.0)
    # standby_failed while already down does not split the band
    assert by_lane(spans, "srst") == [(0.1, 1.0, "standby"), (1.0, 3.0, "down"),
                                      (3.0, 4.0, "standby")]
    assert by_lane(spans, "primary") == [(0.0, 4.0, "registered"), (5.0, 6.0, "down")]
    assert by_lane(spans, "state")[-1] == (5.0, 6.0, "TRYING")


def test_probe_session_flaps_in_fallback() -> None:
    events = [ev(0, "registered", link="srst"), ev(1000, "probe_failed", cm="cucm1"),
              ev(2000, "primary_reachable"), ev(3000, "link_down", link="probe"),
              ev(3010, "primary_unstable", reachable_ms=1000), ev(3100, "primary_reachable")]
    assert by_lane(picture.lane_spans(events, end=4.0), "primary") == [
        (1.0, 2.0, "down"), (2.0, 3.0, "reachable"), (3.0, 3.1, "down"), (3.1, 4.0, "reachable")]


# -- pure: fault windows -------------------------------------------------------------------

def test_flap_is_one_window_per_cut_half_period() -> None:
    actions = [act(1000, "wan_cut"), act(5000, "flap", period=4.0, count=3, kind="unreachable")]
    assert by_lane(picture.fault_spans(actions, end=30.0), "fault") == [
        (1.0, 5.0, "WAN blackhole"), (5.0, 7.0, "flap 1/3 unreachable, 4 s"),
        (9.0, 11.0, "2/3"), (13.0, 15.0, "3/3")]


def test_flap_clipped_to_the_end_of_the_run() -> None:
    spans = picture.fault_spans([act(0, "flap", period=2.0, count=5)], end=3.5)
    assert [(s.start, s.end) for s in spans] == [(0.0, 1.0), (2.0, 3.0)]


def test_servers_killed_hung_and_instant_actions() -> None:
    actions = [act(1000, "kill", server="callmanager"), act(2000, "hang", server="srst"),
               act(2500, "reboot_phone"), act(3000, "restart", server="callmanager"),
               act(3500, "hang", server="srst", on=False),
               act(4000, "replace_file", file="ctl", **{"with": "tampered"}),
               act(4200, "send_reset", kind=2), act(4300, "wait"),
               act(5000, "kill", server="srst"), act(5500, "wan_cut", kind="cm_reset")]
    spans = picture.fault_spans(actions, end=8.0)
    assert by_lane(spans, "fault") == [
        (1.0, 3.0, "callmanager killed"), (2.0, 3.5, "srst hung"), (5.0, 8.0, "srst killed"),
        (5.5, 8.0, "WAN cm_reset")]
    assert by_lane(spans, "action") == [(2.5, 2.5, "phone rebooted"), (4.0, 4.0, "ctl tampered"),
                                        (4.2, 4.2, "Reset sent (kind 2)")]


def test_a_second_cut_of_another_kind_starts_a_new_window() -> None:
    actions = [act(0, "wan_cut"), act(1000, "wan_cut"), act(2000, "wan_cut", kind="link_down"),
               act(3000, "wan_restore"), act(4000, "wan_restore")]
    assert by_lane(picture.fault_spans(actions, end=5.0), "fault") == [
        (0.0, 2.0, "WAN blackhole"), (2.0, 3.0, "WAN link_down")]


def test_timeline_end() -> None:
    assert picture.timeline_end([ev(10000, "x")], [act(2000, "wan_cut")]) == pytest.approx(10.5)
    assert picture.timeline_end([ev(50000, "x")], []) == pytest.approx(52.0)
    assert picture.timeline_end([], [], ended_ms=7000) == 7.0
    assert picture.timeline_end([], []) == 0.5


# -- pure: measured figures ----------------------------------------------------------------

def test_markers_use_the_reports_measurements() -> None:
    assert picture.markers(blackhole_report()) == [
        Marker("failover", 1.18, 3.89, 2710, "wan_cut"),
        Marker("rehome", 5.89, 16.03, 10140, "wan_restore")]


def test_markers_without_metrics_are_computed_and_deduplicated() -> None:
    r = {"events": [ev(4000, "registered", link="srst")],
         "actions": [act(1000, "hang", server="callmanager"),
                     act(2000, "kill", server="callmanager"), act(5000, "restart", server="srst")]}
    assert picture.markers(r) == [Marker("failover", 1.0, 4.0, 3000, "hang:callmanager")]


# -- drawing -------------------------------------------------------------------------------

def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_png_of_the_expected_size(tmp_path: Path) -> None:
    out = picture.draw(blackhole_report(), tmp_path / "sub" / "run.png")
    assert out == tmp_path / "sub" / "run.png"
    assert png_size(out) == (1600, 560)


def test_svg(tmp_path: Path) -> None:
    out = picture.draw(blackhole_report(), tmp_path / "run.svg")
    root = ET.parse(out).getroot()
    assert root.tag.endswith("svg")
    assert root.get("width", "").startswith("1152")          # 16 in at 72 pt/in


def test_failed_run_with_everything_at_once(tmp_path: Path) -> None:
    r = blackhole_report()
    r.update(passed=False, error="line 20: wan_restore waited for 'registered:srst', which "
             "never came", metrics={"final_state": "PROVISION"})
    r["expectations"][0].update(passed=False, message="expected 'PRIMARY', got 'PROVISION'")
    r["actions"] += [act(1200, "kill", server="srst"), act(1250, "hang", server="callmanager"),
                     act(1300, "reboot_phone"), act(1350, "send_reset"),
                     act(7000, "flap", period=1.0, count=6)]
    assert png_size(picture.draw(r, tmp_path / "f.png")) == (1600, 560)


def test_empty_report_still_draws(tmp_path: Path) -> None:
    r = {"scenario": "x", "passed": False, "events": [], "actions": [], "metrics": {}}
    assert png_size(picture.draw(r, tmp_path / "e.png")) == (1600, 560)


def test_other_suffixes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PNG or SVG"):
        picture.draw(blackhole_report(), tmp_path / "x.jpg")


# -- phonelab report -----------------------------------------------------------------------

def test_report_show_and_picture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "wan-blackhole.json"
    path.write_text(json.dumps(blackhole_report()))
    assert cli_main(["report", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("scenario wan-blackhole on virtual (netns lab): PASSED")
    assert "failover_ms              2,710 ms (2.7 s)" in out
    assert "ok   final_state: ok" in out
    assert cli_main(["report", "picture", str(path)]) == 0
    assert png_size(tmp_path / "wan-blackhole.png") == (1600, 560)
    assert cli_main(["report", "picture", str(path), "-o", str(tmp_path / "p.svg")]) == 0
    assert (tmp_path / "p.svg").read_text().lstrip().startswith("<?xml")


def test_report_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["report", "show", str(tmp_path / "missing.json")]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    assert cli_main(["report", "picture", str(bad)]) == 2
    failed = blackhole_report() | {"passed": False}
    bad.write_text(json.dumps(failed))
    assert cli_main(["report", "show", str(bad)]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_summary_of_dict_and_result_agree() -> None:
    from host_tools.events import Event
    from host_tools.scenario import spec
    from host_tools.scenario.metrics import Action, Stamped
    from host_tools.scenario.runner import Result

    sc = spec.loads('name = "s"\ndescription = "d"\n')
    res = Result(sc, "virtual", "loopback", [Stamped(1.5, Event(5, "boot", {"board": "v"}))],
                 [Action(2.0, "wan_cut", {"kind": "blackhole"})],
                 {"failover_ms": 1234, "final_state": "PRIMARY"},
                 [{"name": "final_state", "passed": True, "message": "ok"}],
                 files={"report": "r.json"}, started=1.0)
    text = report.summary(res)
    assert text == report.summary(json.loads(json.dumps(report.to_dict(res))))
    assert text.splitlines()[0] == "scenario s on virtual (loopback lab): PASSED"
    assert "failover_ms              1,234 ms (1.2 s)" in text


# -- a real run ----------------------------------------------------------------------------

@pytest.mark.slow
def test_picture_of_a_real_run(tmp_path: Path) -> None:
    from host_tools.scenario import runner, spec

    res = runner.run(spec.load(ROOT / "scenarios" / "wan-blackhole.toml"),
                     runner.RunOptions(workdir=tmp_path / "w"))
    assert res.passed, res.error or res.expectations
    assert png_size(picture.draw(res, tmp_path / "run.png")) == (1600, 560)
    saved = json.loads(json.dumps(report.to_dict(res), default=str))
    spans = picture.intervals(saved["events"], saved["actions"])
    assert [s.label for s in spans if s.lane == "fault"] == ["WAN blackhole"]
    states = [s.label for s in spans if s.lane == "state"]
    assert states[-4:] == ["PRIMARY", "FALLBACK", "REHOME", "PRIMARY"]
    srst = [s.label for s in spans if s.lane == "srst"]
    assert srst[:2] == ["standby", "registered"]
    marks = picture.markers(saved)
    assert [m.kind for m in marks] == ["failover", "rehome"]
    assert marks[0].ms == res.metrics["failover_ms"]
    assert marks[1].ms == res.metrics["rehome_ms"]
    cut = next(s for s in spans if s.lane == "fault")
    assert cut.start == pytest.approx(marks[0].start) and cut.end == pytest.approx(marks[1].start)
