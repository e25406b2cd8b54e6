"""A scenario read for the kind of board that runs it (spec.for_board): a limited board (one
TLS session, no standby link) proves what it can live, a standby-holding board proves the
scenario as written; and `until` ends a run at its event after the last step, not before."""
from __future__ import annotations

import time

import pytest

from host_tools import ROOT
from host_tools.events import Event
from host_tools.scenario import metrics, runner, spec
from host_tools.scenario.metrics import Action, Stamped

LIMITED_SC = '''
name = "k"
until = "standby_up"

[[timeline]]
after = "standby_up"
action = "wan_cut"
kind = "blackhole"

[[timeline]]
after = "registered:srst"
action = "wan_restore"

[expect]
final_state = "PRIMARY"
registered_over_standby = true
max_failover_ms = 15000
events = ["standby_up", "registered:srst"]
no_events = ["standby_disabled", "ctl_rejected"]

[expect.limited]
max_failover_ms = 20000
'''


def test_a_full_board_proves_the_scenario_as_written():
    sc = spec.loads(LIMITED_SC)
    assert spec.for_board(sc, limited=False) is sc
    assert sc.expect["registered_over_standby"] is True
    assert sc.expect["max_failover_ms"] == 15000
    assert "limited" not in sc.expect
    assert sc.expect_kinds == {"limited": {"max_failover_ms": 20000}}


def test_a_limited_board_reads_standby_as_it_can_live_it():
    sc = spec.loads(LIMITED_SC)
    lim = spec.for_board(sc, limited=True)
    # settled: registered, and the state line after it (the final state is read there)
    assert lim.until == "state:state=PRIMARY"
    assert [st.after for st in lim.timeline] == ["state:state=PRIMARY", "registered:srst"]
    assert lim.expect["events"] == ["standby_disabled", "registered:srst"]
    assert lim.expect["no_events"] == ["standby_up", "ctl_rejected"]
    assert lim.expect["registered_over_standby"] is False
    assert lim.expect["max_failover_ms"] == 20000           # [expect.limited]
    assert lim.expect["final_state"] == "PRIMARY"
    # the original is untouched (the same Scenario may run on both kinds)
    assert sc.until == "standby_up" and sc.timeline[0].after == "standby_up"
    assert sc.expect["events"] == ["standby_up", "registered:srst"]


@pytest.mark.parametrize("text, msg", [
    ('[expect]\nfinal_state = "PRIMARY"\n[expect.limited]\nnope = 1\n',
     ":4: [expect.limited] unknown key 'nope'"),
    ('[expect]\nfinal_state = "PRIMARY"\n[expect.limited]\nfinal_state = "X"\n',
     ":4: [expect.limited] final_state must be one of"),
    ('[expect]\nevents = ["standby_up"]\n[expect.limited]\nno_events = ["standby_up"]\n',
     "[expect.limited] standby_up in both events and no_events"),
    ('[expect]\n[expect.tiny]\nfinal_state = "PRIMARY"\n', "[expect] unknown key 'tiny'"),
])
def test_bad_kind_tables_are_refused_with_the_line(text: str, msg: str):
    with pytest.raises(spec.ScenarioError) as e:
        spec.loads(text)
    assert msg in str(e.value)


def test_shipped_scenarios_read_for_a_limited_board():
    for p in sorted((ROOT / "scenarios").glob("*.toml")):
        lim = spec.for_board(spec.load(p), limited=True)
        assert lim.until != "standby_up", p.name
        assert all(st.after != "standby_up" for st in lim.timeline), p.name
        assert "standby_up" not in lim.expect.get("events", []), p.name
        assert lim.expect.get("registered_over_standby") is not True, p.name


def test_the_runner_knows_limited_profiles():
    assert runner._limited("wt32-eth01") is True
    assert runner._limited("olimex-esp32-poe-iso-wrover") is False
    assert runner._limited("virtual") is False
    assert runner._limited(None) is False


def _stamped(host: float, ev: str, **fields) -> Stamped:
    return Stamped(host, Event(int(host * 1000), ev, fields))


def test_until_is_the_event_after_the_last_step():
    """A reboot step at 5 s: the standby_up of the boot before it does not end the run."""
    sc = spec.loads('name = "u"\nuntil = "standby_up"\ntimeout = "60s"\n'
                    '[[timeline]]\nafter = "standby_up"\naction = "reboot_phone"\n')
    res = runner.Result(sc, "virtual", "netns", [_stamped(1.0, "standby_up")],
                        [Action(5.0, "reboot_phone")], {}, [])
    assert "before 'standby_up'" in (runner._conclude(res).error or "")
    res = runner.Result(sc, "virtual", "netns",
                        [_stamped(1.0, "standby_up"), _stamped(9.0, "standby_up")],
                        [Action(5.0, "reboot_phone")], {}, [])
    assert runner._conclude(res).error is None


def test_finish_waits_for_the_until_event_after_the_last_step():
    sc = spec.loads('name = "u"\nuntil = "standby_up"\ntimeout = "1s"\n')
    tap = runner.Tap()
    asked: list[float] = []

    def wait(spec_: str, since: float, timeout: float):
        asked.append(since)
        return tap.events[0] if tap.events else None

    t0 = time.monotonic()
    tap.events.append(_stamped(t0 + 0.1, "standby_up"))
    tap.wait = wait  # type: ignore[method-assign]
    runner._finish(sc, tap, t0=t0, last=t0 + 0.5)
    assert asked == [t0 + 0.5]


def test_a_fresh_srst_session_is_no_register_over_standby():
    """A limited board's failover opens its SRST session fresh: its Register is no figure
    for register-over-standby (the report would otherwise show it as one)."""
    evs = [_stamped(0.0, "boot"), _stamped(0.1, "registered", link="primary"),
           _stamped(4.0, "registered", link="srst", over_standby=False, register_ms=284)]
    m = metrics.compute(evs, [Action(1.0, "wan_cut", {"kind": "blackhole"})])
    assert m["failover_ms"] == 3000
    assert m["register_over_standby_ms"] is None
    assert m["failovers"][0]["register_ms"] == 284
    evs[-1] = _stamped(4.0, "registered", link="srst", over_standby=True, register_ms=9)
    assert metrics.compute(evs, [Action(1.0, "wan_cut")])["register_over_standby_ms"] == 9


def test_an_anchor_can_name_the_field():
    """'state:state=PRIMARY' is the state line into PRIMARY, not one that leaves it
    (prev=PRIMARY), which 'state:PRIMARY' (any field) would also take."""
    into = Event(1, "state", {"state": "PRIMARY", "prev": "PROVISION"})
    out = Event(2, "state", {"state": "FALLBACK", "prev": "PRIMARY"})
    assert metrics.matches("state:PRIMARY", into) and metrics.matches("state:PRIMARY", out)
    assert metrics.matches("state:state=PRIMARY", into)
    assert not metrics.matches("state:state=PRIMARY", out)
    assert not metrics.matches("state:nope=PRIMARY", into)
    assert spec._event("state:state=PRIMARY") is None
    assert "is not an event" in spec._event("state:=PRIMARY")

