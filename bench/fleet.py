"""Fleet: N virtual phones (many agents per MicroPython process: one per core and at least one
per 500 phones, niced below the simulators) booting at once against the lab's call manager
and SRST router simulators, then a WAN cut (blackhole): registrations per second at boot, time
until all N are registered, time until all N are on the SRST router after the cut, MicroPython
heap and RSS per phone, the simulators' RSS per phone, failures with reasons (host_tools/fleet,
docs/fleet.md). Quick: 20 phones in 1 process; full: 300, 1,000 and 2,000 phones (the largest
SRST platforms' limit) in 2, 2 and 4 processes. Each run is judged against issue 16's targets
(host_tools.fleet.report.verdict): every phone on the SRST router within 10 s of the cut,
under 150 KB per phone in the phones' processes and in the simulators'. The lab's short timers (keepalive 5 s; the agent probes after 1.5 s of
silence and gives up after 2 missed acks of 1 s), so detection takes 1.5 to 3.5 s of the time
to the SRST router. Phone certificates (2048-bit) are made once and cached in out/fleet/.

SIP rows (issue 15, `phonelab fleet --sip`): SIP phones against the lab's Kamailio registrars
at both ends, the same timers and cut; Kamailio's own count must agree with the phones'
(quick: 10 phones in 1 process; full: 1,000 in 2)."""
from __future__ import annotations

import os
from typing import Any

from host_tools.fleet import report
from host_tools.fleet.run import FleetOptions, run as run_fleet
from host_tools.lab import kamailio

QUICK = ((20, 1, "sccp"), (10, 1, "sip"))
# 2,000 SCCP phones: the headline (issue 16); 300 and 1,000 give the curve (~1 and ~1.5 min;
# the 2,000 run ~2 min, the SIP run ~2 min). Processes: 0, the fleet's default
# (host_tools.fleet.run.PHONES_PER_PROC)
FULL = ((300, 0, "sccp"), (1000, 0, "sccp"), (2000, 0, "sccp"), (1000, 0, "sip"))
COLUMNS = ["protocol", *report.COLUMNS]


def run(quick: bool) -> dict[str, Any]:
    results, rows, notes = [], [], []
    no_sip = kamailio.available()
    for phones, procs, protocol in QUICK if quick else FULL:
        if protocol == "sip" and no_sip:
            notes.append(f"{phones} phones, SIP: not run ({no_sip})")
            continue
        res = run_fleet(FleetOptions(phones=phones, procs=procs, fail_over=True,
                                     protocol=protocol))
        results.append(res)
        rows.append([protocol.upper(), *report.row(res)])
        notes.append(f"{phones} phones, {protocol.upper()}: {report.target_line(res)}")
        notes += [f"  {line}" for line in report.notes(res)
                  if "console" not in line and not line.startswith("targets:")]
    sccp = [r for r in results if r.get("protocol", "sccp") == "sccp"]
    biggest = max((r for r in sccp if r.get("ok")), key=lambda r: r["phones"], default=None)
    notes.insert(0, report.LEGEND)
    notes.insert(1, f"highest N with every phone registered, standing by and then on the SRST "
                    f"router: {biggest['phones'] if biggest else 'none'} "
                    f"(machine: {os.cpu_count()} cores; 'other programs' below is load from "
                    f"other processes during the phase)")
    notes.insert(2, "SIP rows: SIP phones against the lab's Kamailio registrars (call manager's "
                    "and SRST router's, mutual TLS 5061, digest); 'reg' and 'SRST' are the "
                    "phones' events, and the run counts only when Kamailio's own statistics "
                    "and ul.dump hold as many (the 'Kamailio' lines below).")
    if quick:
        notes.insert(3, "quick: 20 phones, judged as the 2,000-phone run is; per phone, a "
                        "process's fixed costs weigh 100 times more than at 2,000, so its "
                        "memory figures are an upper bound (docs/fleet.md, '2,000 phones')")
    mode = results[0].get("mode", "?") if results else "?"
    return {"title": f"Fleet: N phones boot and fail over at once (lab simulators and Kamailio, "
                     f"{mode} mode)",
            "columns": COLUMNS, "rows": rows, "notes": notes, "results": results}


PLACE = "alone"         # registrations per second: it needs the CPU to itself


def headline(res: dict) -> list[tuple[str, str, str]]:
    out = []
    cols = res["columns"]
    results = res.get("results", [])
    sccp = [r for r in results if r.get("protocol", "sccp") == "sccp"]
    target = max(sccp, key=lambda r: r["phones"], default=None)
    if target is not None:              # quick: the 20-phone run, judged the same way
        out.append(_target_row(target))
    for protocol in ("sccp", "sip"):
        ok = [(r, row) for r, row in zip(results, res.get("rows", []))
              if r.get("ok") and r.get("protocol", "sccp") == protocol]
        if not ok:
            if protocol == "sccp" or any(r.get("protocol") == "sip" for r in results):
                out.append((f"fleet ({protocol.upper()})",
                            "no run with every phone registered and failed over", "-"))
            continue
        big, cells = max(ok, key=lambda x: x[0]["phones"])
        if protocol == "sccp" and big is target:
            continue                        # the target row above says it
        row = dict(zip(cols, cells))       # (older figures have no protocol column)
        what = "" if protocol == "sccp" else "SIP phones against Kamailio, "
        compared = f"{row['heap KB/ph']} KB heap per phone, {row['fail']} failures"
        if protocol == "sip":
            kb = big.get("kamailio_boot") or {}
            compared += (f"; Kamailio's own count: all registered in "
                         f"{kb.get('all_registered_s')} s, "
                         f"{(kb.get('shm_added_kb') or 0) / big['phones']:.0f} KB of its "
                         f"shared memory per phone")
        out.append((f"{what}{big['phones']:,} phones in {big['procs']} MicroPython processes: "
                    f"all registered / all on SRST after the WAN cut",
                    f"{row['all reg s']} s ({row['reg/s']} registrations/s) / "
                    f"{row['all SRST s']} s", compared))
    return out


def _target_row(r: dict) -> tuple[str, str, str]:
    """The biggest SCCP run against issue 16's targets: the figures, then each verdict."""
    b, f = r.get("boot") or {}, r.get("failover") or {}
    v = report.verdict(r)
    phones_kb = (r.get("memory") or {}).get("rss_per_phone_kb")
    sim_kb = (r.get("host_rss_kb") or {}).get("per_phone")
    return (f"{r['phones']:,} phones (SCCP) in {r['procs']} MicroPython processes: registered "
            f"and standing by; all on SRST after the WAN cut; RSS per phone (phones' "
            f"processes, simulators)",
            f"{b.get('registered', 0):,}/{r['phones']:,} in {b.get('all_standby_s')} s; "
            f"{f.get('on_srst', 0):,} in {f.get('all_on_srst_s')} s; {phones_kb} KB, {sim_kb} KB",
            f"target all <= {report.SRST_TARGET_S:g} s: {v['srst']}; target < "
            f"{report.MEMORY_TARGET_KB:g} KB: {v['phones_memory']}, {v['simulators_memory']} "
            f"(simulators: {report.SIMULATORS_ANCHOR_KB} KB per phone when issue 16 was opened)")
