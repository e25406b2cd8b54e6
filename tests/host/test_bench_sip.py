"""The SIP benchmarks' pure parts (issue 15), from made-up runs (no lab): bench/failover_sip.py's
plan (SIP series only, every WAN kind but cm_reset), its table and headline beside the SCCP
figures of a failover.json, its refusal without Kamailio; bench/fleet.py's headline for SCCP
and SIP rows, and for figures written before the protocol column."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import failover, failover_sip, fleet

OLIMEX = "virtual:olimex-esp32-poe-iso-wrover"


def _run(fo: int, reg: int) -> dict:
    return {"failover_ms": fo, "detect_ms": fo - reg, "step_ms": reg, "register_ms": reg,
            "over_standby": True, "reason": "x", "rehome_ms": 1000}


def test_plan_is_sip_only_and_leaves_out_cm_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    quick, full = failover_sip.plan(True), failover_sip.plan(False)
    assert all(s.protocol == "sip" for s in quick + full)
    assert [(s.kind, s.runs, s.board) for s in quick] == [("blackhole", 3, "virtual")]
    for kind in ("blackhole", "unreachable", "link_down"):
        assert sum(s.runs for s in full if s.label == kind) == 20
    assert not [s for s in full if s.kind == "cm_reset"]
    assert sum(s.runs for s in full if s.board == OLIMEX) == 20
    monkeypatch.setenv("BENCH_FAILOVER_BOARDS", "none")
    assert not [s for s in failover_sip.plan(False) if s.board != "virtual"]
    # the SCCP plan is unchanged: no SIP series in it
    assert all(s.protocol == "sccp" for s in failover.plan(False))


def test_table_and_headline_beside_the_sccp_figures(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"keepalive": 30, "errors": [], "settings": {}, "short_timers": False,
            "load": [1.0, 2.0], "protocol": "sip"}
    sccp = failover.summarize([
        {**base, "protocol": "sccp", "label": "blackhole", "kind": "blackhole",
         "board": "virtual", "runs": [_run(7000, 40)] * 3}], False)
    (tmp_path / "failover.json").write_text(json.dumps(sccp))
    monkeypatch.setenv("BENCH_OUT", str(tmp_path))
    res = failover_sip.summarize([
        {**base, "label": "blackhole", "kind": "blackhole", "board": "virtual",
         "runs": [_run(8000, 20)] * 3},
        {**base, "label": "blackhole, olimex", "kind": "blackhole", "board": OLIMEX,
         "runs": [_run(6000, 300)] * 3},
    ], False)
    rows = {r[0]: r for r in res["rows"]}
    assert rows["blackhole"][1] == "REGISTER 3600 s" and rows["blackhole"][8] == "-"
    assert rows["blackhole, olimex"][-1] == "median < 10 s: pass; register < 500 ms: pass"
    assert res["register_over_standby"]["median"] == 20            # host speed only
    assert res["sccp"]["kinds"]["blackhole"]["failover"]["median"] == 7000
    head = failover_sip.headline(res)
    assert ("SIP: silent WAN cut (blackhole) -> registered with the branch Kamailio, 3 runs",
            "median 8.00 s, worst 8.00 s", "SCCP: median 7.00 s, worst 7.00 s") in head
    assert any(m.startswith("SIP: register over the open standby session (REGISTER")
               and c == "target: worst < 50 ms, pass; SCCP dialogue: median 40 ms, worst 40 ms"
               for m, _, c in head)
    assert any("olimex-esp32-poe-iso-wrover at ESP32 speed" in m and "(pass)" in c
               for m, _, c in head)


def test_without_kamailio_the_sip_failover_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(failover_sip.kamailio, "available", lambda: "Kamailio is not installed")
    res = failover_sip.run(True)
    assert res["rows"] and all(len(r) == len(res["columns"]) for r in res["rows"])
    assert failover_sip.headline(res) == [("SIP failover", "not run", "Kamailio is not installed")]


def _fleet_res(protocol: str | None, phones: int) -> dict:
    r = {"phones": phones, "procs": 2, "ok": True, "fail_over": True,
         "boot": {"registered": phones, "registrations_per_s": 100.0, "all_registered_s": 9.5},
         "failover": {"on_srst": phones, "all_on_srst_s": 3.8},
         "memory": {"heap_per_phone_bytes": 26000}, "failure_count": 0}
    if protocol:
        r["protocol"] = protocol
    if protocol == "sip":
        r["kamailio_boot"] = {"all_registered_s": 9.7, "shm_added_kb": 85000}
    return r


def test_fleet_headline_for_both_protocols_and_older_figures() -> None:
    from host_tools.fleet import report
    results = [_fleet_res("sccp", 1000), _fleet_res("sip", 1000)]
    res = {"columns": fleet.COLUMNS, "results": results,
           "rows": [[r["protocol"].upper(), *report.row(r)] for r in results]}
    head = fleet.headline(res)
    assert len(head) == 2 and head[1][0].startswith("SIP phones against Kamailio, 1,000 phones")
    assert "Kamailio's own count: all registered in 9.7 s, 85 KB" in head[1][2]
    old = [_fleet_res(None, 300)]
    head = fleet.headline({"columns": report.COLUMNS, "results": old,
                           "rows": [report.row(r) for r in old]})
    assert len(head) == 1 and head[0][0].startswith("300 phones")
