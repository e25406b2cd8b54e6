"""`phonelab demo --sip` (issue 15): the story is the SIP scenario, the live view names the
Kamailio registrars, and without Kamailio it refuses in one line. (The run itself is the
scenario sip-wan-blackhole's, which tests/scenarios/test_scenarios.py runs.)"""
from __future__ import annotations

from types import SimpleNamespace

from host_tools import cli
from host_tools.commands import demo
from host_tools.lab import kamailio
from host_tools.scenario import spec


def test_the_sip_story_is_a_sip_scenario():
    sc = spec.loads(demo.STORY.format(short="true", kind="cm_reset", timeout="90s",
                                      protocol="sip"))
    assert sc.lab == {"short_timers": True, "protocol": "sip"}
    assert [s.action for s in sc.timeline] == ["wan_cut", "wan_restore"]
    assert sc.timeline[0].args == {"kind": "cm_reset"}


def test_the_view_names_the_kamailio_registrars():
    lab = SimpleNamespace(
        mode="netns", dhcp=object(), topology=SimpleNamespace(addr=SimpleNamespace(phone="x")),
        endpoints={"sip_srst": ("192.0.2.1", 5061), "sip_callmanager": ("203.0.113.10", 5061),
                   "tftp": ("203.0.113.10", 69)})
    v = demo.View(sip=True)
    v.on_lab(lab)
    assert "Kamailio tls:192.0.2.1:5061" in v.hosts["branch router"]
    assert "Kamailio tls:203.0.113.10:5061" in v.hosts["HQ"]
    assert v.hosts["phone"].endswith(", SIP")


def test_without_kamailio_it_refuses_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(kamailio, "available", lambda: "Kamailio is not installed (Debian: ...)")
    rc = cli.main(["demo", "--sip", "--plain", "--out", str(tmp_path / "demo")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err == ["phonelab demo: error: --sip: Kamailio is not installed (Debian: ...)"]
