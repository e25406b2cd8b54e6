"""Fleet: N virtual phones (many agents per MicroPython process, one process per core) booting
at once against the lab's call manager and SRST router simulators, then a WAN cut (blackhole):
registrations per second at boot, time until all N are registered, time until all N are on the
SRST router after the cut, MicroPython heap and RSS per phone, failures with reasons
(host_tools/fleet, docs/fleet.md). Quick: 20 phones in 1 process; full: 100, 300 and 1,000
phones in 2 processes. The lab's short timers (keepalive 5 s; the agent probes after 1.5 s of
silence and gives up after 2 missed acks of 1 s), so detection takes 1.5 to 3.5 s of the time
to the SRST router. Phone certificates (2048-bit) are made once and cached in out/fleet/."""
from __future__ import annotations

import os
from typing import Any

from host_tools.fleet import report
from host_tools.fleet.run import FleetOptions, run as run_fleet

QUICK = ((20, 1),)
FULL = ((100, 2), (300, 2), (1000, 2))


def run(quick: bool) -> dict[str, Any]:
    results, rows, notes = [], [], []
    for phones, procs in QUICK if quick else FULL:
        res = run_fleet(FleetOptions(phones=phones, procs=procs, fail_over=True))
        results.append(res)
        rows.append(report.row(res))
        notes.append(f"{phones} phones:")
        notes += [f"  {line}" for line in report.notes(res) if "console" not in line]
    biggest = max((r for r in results if r.get("ok")), key=lambda r: r["phones"], default=None)
    notes.insert(0, report.LEGEND)
    notes.insert(1, f"highest N with every phone registered, standing by and then on the SRST "
                    f"router: {biggest['phones'] if biggest else 'none'} "
                    f"(machine: {os.cpu_count()} cores; 'other programs' below is load from "
                    f"other processes during the phase)")
    mode = results[0].get("mode", "?") if results else "?"
    return {"title": f"Fleet: N phones boot and fail over at once (lab simulators, {mode} mode)",
            "columns": report.COLUMNS, "rows": rows, "notes": notes, "results": results}


PLACE = "alone"         # registrations per second: it needs the CPU to itself


def headline(res: dict) -> list[tuple[str, str, str]]:
    ok = [r for r in res.get("results", []) if r.get("ok")]
    if not ok:
        return [("fleet", "no run with every phone registered and failed over", "-")]
    big = max(ok, key=lambda r: r["phones"])
    row = dict(zip(res["columns"], next(r for r in res["rows"] if r[0] == big["phones"])))
    return [(f"{big['phones']:,} phones in {big['procs']} MicroPython processes: all registered / "
             f"all on SRST after the WAN cut",
             f"{row['all reg s']} s ({row['reg/s']} registrations/s) / {row['all SRST s']} s",
             f"{row['heap KB/ph']} KB heap per phone, {row['fail']} failures")]
