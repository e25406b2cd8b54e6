"""A fleet run against issue 16's targets (host_tools.fleet.report.verdict): every phone on
the SRST router within 10 s of the WAN cut, under 150 KB of RSS per phone in the phones'
processes and in the simulators'; the bench's row and headline show each beside its figure."""
from __future__ import annotations

from typing import Any

from bench import fleet as bench_fleet
from host_tools.fleet import report


def _res(phones: int = 2000, on_srst: int | None = None, all_s: float | None = 7.5,
         rss: float | None = 93.6, sim: float | None = 100.0, fail_over: bool = True) -> dict[str, Any]:
    on = phones if on_srst is None else on_srst
    r: dict[str, Any] = {
        "phones": phones, "procs": 2, "ok": on == phones, "fail_over": fail_over,
        "protocol": "sccp",
        "boot": {"registered": phones, "standby": phones, "all_standby_s": 50.0,
                 "all_registered_s": 30.0, "registrations_per_s": 64.0},
        "failover": {"phones": phones, "on_srst": on,
                     "all_on_srst_s": all_s if on == phones else None},
        "memory": {"heap_per_phone_bytes": 21000, "rss_per_phone_kb": rss},
        "failure_count": phones - on}
    if sim is not None:
        r["host_rss_kb"] = {"before": 50000, "links_up": 250000, "per_phone": sim}
    return r


def test_a_run_within_every_target_passes() -> None:
    assert report.verdict(_res()) == {"srst": "pass", "phones_memory": "pass",
                                      "simulators_memory": "pass", "memory": "pass"}
    assert report.verdict(_res(all_s=10.0))["srst"] == "pass"          # "within 10 s"


def test_late_missing_or_heavy_fails() -> None:
    assert report.verdict(_res(all_s=10.01))["srst"] == "FAIL"
    # a phone that never reached the SRST router: no "all" time, and the run fails
    assert report.verdict(_res(on_srst=1992))["srst"] == "FAIL"
    v = report.verdict(_res(rss=150.0, sim=149.9))
    assert (v["phones_memory"], v["simulators_memory"], v["memory"]) == ("FAIL", "pass", "FAIL")
    v = report.verdict(_res(sim=597.0))
    assert (v["phones_memory"], v["simulators_memory"], v["memory"]) == ("pass", "FAIL", "FAIL")


def test_no_figure_is_no_verdict() -> None:
    v = report.verdict(_res(fail_over=False, sim=None))
    assert (v["srst"], v["simulators_memory"], v["memory"]) == ("-", "-", "-")


def test_row_and_headline_show_each_figure_beside_its_target() -> None:
    runs = [_res(300, all_s=3.9), _res(2000, all_s=12.3, sim=100.0)]
    row = dict(zip(report.COLUMNS, report.row(runs[1])))
    assert (row["all SRST s"], row["SRST<=10s"]) == ("12.3", "FAIL")
    assert (row["RSS KB/ph"], row["sim KB/ph"], row["mem<150KB"]) == ("93.6", "100.0", "pass")
    res = {"columns": bench_fleet.COLUMNS, "results": runs,
           "rows": [["SCCP", *report.row(r)] for r in runs]}
    head = bench_fleet.headline(res)
    measure, figure, compared = head[0]
    assert measure.startswith("2,000 phones (SCCP) in 2 MicroPython processes")
    assert "2,000 in 12.3 s" in figure and "93.6 KB, 100.0 KB" in figure
    assert "target all <= 10 s: FAIL" in compared and "target < 150 KB: pass, pass" in compared
    assert "597 KB" in compared
    line = report.target_line(runs[1])
    assert "12.3 s" in line and "FAIL" in line and "100.0 KB (pass" in line
