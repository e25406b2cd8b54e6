"""Every scenario in scenarios/ runs end to end: the lab (namespaces when root, loopback
otherwise), a board running the agent, the scenario's faults and expectations.

Default: a fresh virtual board per scenario; `--board virtual:PROFILE` a fresh ESP32-faithful
board of that hardware profile (docs/vboard.md), at its calibrated CPU speed; on a `limited`
profile (one TLS session, no standby link) each scenario is read for that board
(spec.for_board, docs/reports.md). With the HIL plugin's `--board PORT` (or
`labgrid:PLACE`, `auto`, or labgrid's `--lg-env`) the same scenarios run on that board
through its `board` fixture, in a lab on `--lab-interface IF` (the bench NIC its Ethernet is
plugged into)."""
from __future__ import annotations

from pathlib import Path

import pytest

from host_tools import ROOT
from host_tools.scenario import report, runner, spec

# Scenarios `make test` leaves to `make test-long` and `make test-faithful` (PHONELAB_LONG=1),
# to stay within the CI budget, each with why:
_MINUTES = ("lasts minutes by design (dnsmasq's shortest lease is 2 minutes); `make test` "
            "proves the same in seconds (tests/host/test_dhcp_dnsmasq.py: renewals against "
            "dnsmasq with a short T1)")
_SIP_TWIN = ("the SIP twin of a WAN fault whose path to the phone is the SCCP one's (the same "
             "topology fault, issue 15); `make test` runs sip-wan-blackhole")
_SIP_HANG = ("a hung Kamailio (SIGSTOP) fails over as sip-wan-blackhole's silence does; "
             "`make test` runs that one")
_MATRIX = ("the fault matrix (bench/fault_matrix.py) proves the same refusal on every board; "
           "`make test` runs sip-cm-cert-unknown (issue 15's new ground)")
_ROW = ("the same fault is a row of the fault matrix (python -m bench --only fault_matrix, "
        "fault_matrix_sip), on every board kind; `make test` keeps one scenario of each kind")
LONG = {"wan-flap": _ROW, "wan-unreachable": _ROW, "wan-link_down": _ROW, "wan-cm_reset": _ROW,
        "srst-down": _ROW, "cm-reset-message": _ROW, "ctl-unknown-sast": _ROW,
        "sip-wan-cm_reset": _ROW, "sip-plain-config": _ROW, "sip-srst-cert-replaced": _ROW,
        "sip-registered-standby": _ROW,
        "dhcp-short-lease": _MINUTES, "srst-cert-replaced": _MATRIX,
        "cm-cert-unknown": _MATRIX, "plain-config": _MATRIX, "sip-wan-unreachable": _SIP_TWIN,
        "sip-wan-link_down": _SIP_TWIN, "sip-wan-flap": _SIP_TWIN, "sip-cm-hang": _SIP_HANG}
SCENARIOS = [pytest.param(p, id=p.stem, marks=[pytest.mark.long(LONG[p.stem])]
                          if p.stem in LONG else [])
             for p in sorted((ROOT / "scenarios").glob("*.toml"))]


@pytest.mark.slow
@pytest.mark.parametrize("path", SCENARIOS)
def test_scenario(path: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    sc = spec.load(path)
    if sc.lab.get("protocol") == "sip":
        from host_tools.lab.kamailio import available
        why = available()
        if why:
            pytest.skip(f"{path.stem}: a SIP scenario needs the lab's Kamailio: {why}")
    res = runner.run(sc, _options(request, tmp_path))
    report.write(res, tmp_path / "report.json")
    text = report.summary(res)
    if not res.passed:
        text += "\n  board console:\n    " + "\n    ".join(res.console[-25:])
    assert res.passed, text
    # the lab's side of the story is in the report too (servers, faults)
    assert res.lab_events and all("ev" in e for e in res.lab_events), "no lab_events"
    # and what the simulators saw: a server the phone says it registered with holds a session
    # with the whole dialogue, and a rate for the phone (a HIL lab's outside servers: none)
    for link, name in (("primary", "callmanager"), ("srst", "srst")):
        view = res.servers.get(name)
        if view is None or not any(s.event.ev == "registered" and s.event.get("link") == link
                                   for s in res.events):
            continue
        if view.get("protocol") == "sip":
            # Kamailio's side (host_tools.lab.sipview): it saved the phone's REGISTER, from
            # a TLS session with the phone's certificate, and refused none (a challenge is
            # not a refusal: credentials for another registrar's realm are); no message
            # rate to compare
            saved = [p for p in view["phones"].values() if p["saved"]
                     and any("(SEP" in peer for peer in p["peers"])]
            assert saved, (name, view)
            assert all(not p["refused"] for p in view["phones"].values()), (name, view)
            assert res.metrics["messages_per_min"]["not_applicable"], res.metrics
            continue
        done = [x for p in view["phones"].values() for x in p["sessions"]
                if x["outcome"] == "registered" and not x["missing"] and x["dialogue"]]
        assert done, (name, view)
        assert res.metrics["messages_per_min"][name]["per_min_avg"] > 0, res.metrics


def test_wrong_expectation_fails_and_names_it(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    sc = spec.load(ROOT / "scenarios" / "registered-standby.toml")
    sc.expect = {"final_state": "FALLBACK", "events": ["registered:primary"]}
    res = runner.run(sc, _options(request, tmp_path))
    assert not res.passed
    failed = [e for e in res.expectations if not e["passed"]]
    assert [e["name"] for e in failed] == ["final_state"]
    assert "expected 'FALLBACK', got 'PRIMARY'" in report.summary(res)


def _options(request: pytest.FixtureRequest, tmp_path: Path) -> runner.RunOptions:
    """A fresh virtual board, or the HIL plugin's board when --board names a real one (or
    `auto` found one, or labgrid's --lg-env gives its target)."""
    boards = [s.text for s in request.getfixturevalue("board_specs")]
    if boards == ["virtual"]:
        return runner.RunOptions(workdir=tmp_path)
    if len(boards) == 1 and boards[0].startswith("virtual:"):   # the ESP32-faithful board
        return runner.RunOptions(workdir=tmp_path, board=boards[0])
    interfaces = request.config.getoption("--lab-interface") or [None]
    return runner.RunOptions(workdir=tmp_path, handle=request.getfixturevalue("board"),
                             interface=interfaces[0], mode=request.config.getoption("--lab-mode"))
