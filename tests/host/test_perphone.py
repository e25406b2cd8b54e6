"""What the lab's SCCP servers saw of each phone (host_tools.lab.perphone): the messages per
phone per minute beside a real phone's rate, and each session's registration dialogue; in the
scenario report and the fleet's figures."""
from __future__ import annotations

import time

import pytest

import host_tools.fw  # noqa: F401
from host_tools.fleet import report as fleet_report
from host_tools.lab import perphone
from host_tools.lab.callmanager import CallManager
from host_tools.scenario import report
from phone import sccp_lab as sccp  # type: ignore[import-not-found]
from sccp_lab_support import OTHER, OTHER_MAC, PHONE, make_lab_pki, phone, run, wait_for


class _Live:
    def __init__(self, summary: dict) -> None:
        self.state = summary["state"]
        self._s = summary

    def summary(self) -> dict:
        return self._s


class _Server:
    """A server's sessions as a known log: two closed and one live of one phone, a standby
    session of another (named by its certificate), a plain one named by its address."""
    name, role, keepalive = "cucm1", "callmanager", 30

    def __init__(self) -> None:
        self.history = [
            _summary(1, "SEP001122AABBCC", None, "registered", 60.0, rx=12, ka=2),
            _summary(3, "SEP001122AABBCC", None, "registering", 100.0, rx=7, ka=0,
                     missing=["TimeDateReq"]),
        ]
        self.sessions = {
            4: _Live(_summary(4, "SEP001122AABBCC", None, "registered", 120.0, rx=41, ka=30)),
            2: _Live(_summary(2, None, "sep001122aabbcd", "standby", 90.0, rx=9, ka=9)),
            5: _Live(_summary(5, None, None, "standby", 150.0, rx=3, ka=3,
                              peer="192.0.2.60:40000")),
        }

    def now(self) -> float:
        return 180.0


def _summary(sid: int, device: str | None, cn: str | None, state: str, at: float, *, rx: int,
             ka: int, missing: list | None = None, peer: str = "192.0.2.50:50000") -> dict:
    s = {"sid": sid, "device": device, "cert_cn": cn, "peer": peer, "state": state, "rx": rx,
         "keepalives": ka, "connected_at": at, "dialogue": ["0 <Register"] if device else [],
         "missing": [], "close_reason": None}
    if sid in (1, 3):     # closed: what _closed() keeps
        s.update(state="closed", was=state, closed_at=at + 10, missing=missing or [],
                 close_reason="eof")
    return s


def test_rates_from_a_known_session_log():
    v = perphone.view(_Server())
    assert v["keepalive_s"] == 30 and v["real_phone_per_min"] == 2.0
    assert list(v["phones"]) == ["192.0.2.60", "SEP001122AABBCC", "SEP001122AABBCD"]
    a = v["phones"]["SEP001122AABBCC"]
    # 12 + 7 + 41 messages from its first connection (60 s) to now (180 s): 2 minutes
    assert (a["messages"], a["keepalives"], a["minutes"]) == (60, 32, 2.0)
    assert (a["per_min"], a["keepalives_per_min"]) == (30.0, 16.0)
    assert [s["sid"] for s in a["sessions"]] == [1, 3, 4]
    assert [s["outcome"] for s in a["sessions"]] == ["registered", "incomplete", "registered"]
    assert a["sessions"][1]["missing"] == ["TimeDateReq"]
    assert (a["sessions"][0]["at"], a["sessions"][0]["until"]) == (60.0, 70.0)
    b = v["phones"]["SEP001122AABBCD"]          # 9 KeepAlives in 1.5 minutes
    assert (b["per_min"], b["sessions"][0]["outcome"]) == (6.0, "keepalives only")
    assert v["phones"]["192.0.2.60"]["per_min"] == 6.0      # 3 in 0.5 minute
    ld = perphone.load(v)
    assert ld == {"phones": 3, "per_min_avg": 14.0, "per_min_max": 30.0,
                  "worst": "SEP001122AABBCC", "real_phone_per_min": 2.0, "keepalive_s": 30}
    assert perphone.load(v, {"SEP001122AABBCD"})["per_min_avg"] == 6.0
    assert perphone.load(v, {"SEP00"}) is None and perphone.load(None) is None


def test_session_times_on_a_given_origin():
    srv = _Server()
    origin = time.monotonic() - srv.now() + 50.0      # 50 s after the server's start
    s = perphone.view(srv, origin)["phones"]["SEP001122AABBCC"]["sessions"][0]
    assert abs(s["at"] - 10_000) <= 5 and abs(s["until"] - 20_000) <= 5


def test_real_phone_rate():
    assert perphone.real_phone_per_min(30) == 2.0
    assert perphone.real_phone_per_min(5) == 12.0


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return make_lab_pki(tmp_path_factory)


def test_call_manager_counts_each_phone_and_keeps_its_dialogues(lab):
    """A phone registers with the whole dialogue, sends 3 KeepAlives and leaves; comes back and
    leaves without TimeDateReq; another only stands by. What the view says of each, closed
    sessions included."""
    async def main():
        async with CallManager(cert=lab.ccm.cert_path, key=lab.ccm.key_path,
                               phone_ca=lab.capf.cert_path, devices=[PHONE, OTHER],
                               port=0) as cm:
            c = await phone(lab, cm.ports["tls"])
            await c.register(PHONE, "192.0.2.50")
            await c.finish_registration()
            for _ in range(3):
                await c.keepalive()
            await c.close()
            c = await phone(lab, cm.ports["tls"])
            await c.register(PHONE, "192.0.2.50")
            await c.finish_registration(skip=(sccp.TIME_DATE_REQ,))
            await c.keepalive()
            sb = await phone(lab, cm.ports["tls"], mac=OTHER_MAC)
            await sb.keepalive()
            await sb.keepalive()
            await c.close()
            await wait_for(lambda: len(cm.history) == 2)
            v = perphone.view(cm)
            await sb.close()
            return v

    v = run(main())
    a, b = v["phones"][PHONE], v["phones"][OTHER]
    # Register + 9 dialogue messages (one line) + 3 KeepAlives; then Register + 8 + 1
    assert (a["messages"], a["keepalives"]) == (23, 4)
    first, second = a["sessions"]
    assert (first["outcome"], first["closed"], first["missing"]) == ("registered", True, [])
    assert first["messages"] == 13 and first["dialogue"][0].endswith("<Register")
    assert (second["outcome"], second["missing"]) == ("incomplete", ["TimeDateReq"])
    assert (b["messages"], b["sessions"][0]["outcome"]) == (2, "keepalives only")
    assert a["per_min"] > 23            # 23 messages in well under a minute


def _saved_report() -> dict:
    view = perphone.view(_Server())
    return {"scenario": "x", "board": "virtual", "mode": "netns", "passed": True, "error": None,
            "events": [], "actions": [], "expectations": [], "files": {},
            "metrics": {"messages_per_min": {"callmanager": perphone.load(view), "srst": None}},
            "servers": {"callmanager": view}}


def test_scenario_summary_shows_the_rate_and_incomplete_dialogues():
    d = report.check(_saved_report(), "r.json")
    text = report.summary(d)
    assert ("messages/min received by the call manager: 14.0 per phone, worst 30.0 "
            "(SEP001122AABBCC); a real phone: 2.0 (a KeepAlive every 30 s)") in text
    assert "SRST router:" not in text
    assert ("dialogue incomplete: call manager, SEP001122AABBCC, session 3 at 100.0 ms: "
            "missing TimeDateReq") in text
    with pytest.raises(ValueError, match="'servers'"):
        report.check({**d, "servers": []}, "r.json")


def test_fleet_notes_show_the_rate():
    ld = perphone.load(perphone.view(_Server()))
    notes = fleet_report.notes({"messages_per_min": {"callmanager": ld}})
    assert any(n.startswith("messages/min received by the call manager: 14.0 per phone, "
                            "worst 30.0") for n in notes), notes
