"""Scenario files: validation with line-precise errors, durations, event matching, metrics."""
from __future__ import annotations

import pytest

from host_tools import ROOT
from host_tools.events import Event
from host_tools.scenario import metrics, spec

GOOD = '''
name = "x"
until = "rehomed"

[lab]
short_timers = true

[[timeline]]
after = "standby_up"
delay = "1s"
action = "wan_cut"
kind = "blackhole"

[[timeline]]
at = "+2s"
action = "wan_restore"

[expect]
final_state = "PRIMARY"
max_failover_ms = 5000
'''


def test_shipped_scenarios_are_valid():
    paths = sorted((ROOT / "scenarios").glob("*.toml"))
    assert len(paths) >= 8
    for p in paths:
        sc = spec.load(p)
        assert sc.description, f"{p.name} has no description"


def test_good_scenario_parses():
    sc = spec.loads(GOOD)
    assert [s.action for s in sc.timeline] == ["wan_cut", "wan_restore"]
    assert sc.timeline[0].after == "standby_up" and sc.timeline[0].delay == 1.0
    assert sc.timeline[1].at == 2.0 and sc.timeline[1].relative
    assert sc.until == "rehomed" and sc.expect["max_failover_ms"] == 5000


@pytest.mark.parametrize("bad,line,msg", [
    (GOOD.replace('kind = "blackhole"', 'kind = "meteor"'), 12, "kind must be one of"),
    (GOOD.replace('action = "wan_restore"', 'action = "explode"'), 16, "action must be one of"),
    (GOOD.replace('at = "+2s"', 'at = "soon"'), 15, "not a duration"),
    (GOOD.replace('max_failover_ms = 5000', 'max_failover_ms = "fast"'), 20, "must be int"),
    (GOOD.replace('final_state = "PRIMARY"', 'final_state = "HAPPY"'), 19, "final_state must be"),
    (GOOD.replace('short_timers = true', 'shrt_timers = true'), 6, "unknown key 'shrt_timers'"),
    (GOOD.replace('delay = "1s"\n', 'delay = "1s"\nat = "3s"\n'), 8, "exactly one of"),
    (GOOD.replace('until = "rehomed"', 'until = "rehomed"\nduration = "3s"'), 4, "not both"),
])
def test_bad_scenarios_name_the_line(bad, line, msg):
    with pytest.raises(spec.ScenarioError) as ei:
        spec.loads(bad)
    assert f"<scenario>:{line}:" in str(ei.value)
    assert msg in str(ei.value)


def test_toml_syntax_error_is_reported():
    with pytest.raises(spec.ScenarioError, match="line 2"):
        spec.loads('name = "x"\n[lab\n')


def test_durations():
    assert spec.parse_duration("500ms") == 0.5
    assert spec.parse_duration("+2s") == 2.0
    assert spec.parse_duration("1.5m") == 90.0
    with pytest.raises(ValueError):
        spec.parse_duration("2 hours")


def _ev(t, name, **f):
    return metrics.Stamped(t / 1000, Event(t=t, ev=name, fields=f))


def test_metrics_from_a_story():
    evs = [_ev(0, "boot", heap_used=20000), _ev(90, "registered", link="primary"),
           _ev(150, "standby_up"), _ev(160, "state", state="PRIMARY", heap_used=80000),
           _ev(4000, "registered", link="srst", over_standby=True, register_ms=7),
           _ev(4001, "state", state="FALLBACK"), _ev(17000, "rehomed"),
           _ev(17001, "state", state="PRIMARY")]
    acts = [metrics.Action(1.0, "wan_cut", {"kind": "blackhole"}), metrics.Action(6.0, "wan_restore")]
    m = metrics.compute(evs, acts)
    assert m["boot_to_registered_ms"] == 90 and m["standby_up_ms"] == 150
    assert m["failover_ms"] == 3000 and m["register_over_standby_ms"] == 7
    assert m["rehome_ms"] == 11000 and m["peak_heap_bytes"] == 80000
    assert m["final_state"] == "PRIMARY" and m["registrations"] == 2
    v = metrics.verdicts({"max_failover_ms": 2000, "registered_over_standby": True,
                          "events": ["registered:srst"], "no_events": ["ctl_rejected"]}, evs, m)
    assert [x["passed"] for x in v] == [False, True, True, True]
    assert "3000" in str(v[0]["actual"])
