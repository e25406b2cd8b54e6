"""Failover of a SIP phone (issue 15): bench/failover.py's cut/failover/restore/re-home cycles
with the agent as a SIP phone (phone.siplink) against the lab's Kamailio registrars, the call
manager's at HQ and the SRST router's in the branch (`Lab(protocol="sip")`: mutual TLS 5061,
digest authentication at both), on a virtual board provisioned from the lab's SIP cnf.xml.

Two figures beside the SCCP ones: WAN cut -> registered with the branch Kamailio, and the
register step over the open standby session, which for SIP is REGISTER -> 401 (the branch's
digest challenge) -> REGISTER -> 200 OK: two round trips on the session, no handshake, timed
by the board (its register_ms); at host speed its worst case over the parallel labs is held to
bench/failover.py's TARGET_HOST_REGISTER_MS (issue 16). The agent's settings and probe rule
are the SCCP series' (silence is probed with RFC 5626 CRLF pings, which Kamailio answers); a
SIP link has no SCCP keepalive (its registered session's is the REGISTER refresh, an hour at
the lab's expiry), so the keepalive column names the refresh.

Full: each WAN kind but cm_reset (the lab resets the SCCP call manager's connections, not
Kamailio's), 20 cuts in 4 labs each, and 20 silent cuts on the ESP32-faithful board (4 labs);
quick: 3 silent cuts at host speed in one lab. Each cut lands at a chosen fraction of the
phone's probe cycle, the fractions of a row spread evenly over it; Kamailio keeps no count of
CRLF pings, so the cycle is anchored on the phone's last registration with the call manager
(the 200 OK is the last thing it heard: _rig.after_registered). The SCCP figures shown beside
are those of out/bench/failover.json when it is there (its own run, date and commit)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from bench import _rig, failover
from bench.failover import (BASE_SETTINGS, FAITHFUL, TARGET_FAILOVER_MS, TARGET_REGISTER_MS,
                            Series, host_verdict)
from host_tools.lab import cnfxml, kamailio
from host_tools.lab.names import WAN_KINDS

KINDS = tuple(k for k in WAN_KINDS if k != "cm_reset")
REFRESH = f"REGISTER {cnfxml.REGISTER_EXPIRES} s"      # the keepalive column of a SIP row
PLACE = "together"


def plan(quick: bool) -> list[Series]:
    out: list[Series] = []
    seed = 101
    for kind in ("blackhole",) if quick else KINDS:
        for part in _rig.split(*((3, 1) if quick else (20, 4))):
            # keepalive 30: the waits' size (and the SCCP simulators', which SIP does not use)
            out.append(Series(kind, kind, 30, part, seed, dict(BASE_SETTINGS), protocol="sip"))
            seed += 1
    if not quick:
        for board in _rig.boards("BENCH_FAILOVER_BOARDS", FAITHFUL):
            for part in _rig.split(20, 4):
                out.append(Series(f"blackhole, {_rig.board_label(board)}", "blackhole", 30, part,
                                  seed, dict(BASE_SETTINGS), board=board, protocol="sip"))
                seed += 1
    _rig.spread_phases(out)     # cuts at stratified points of the probe cycle (its last
    return out                  # registration is the anchor: _rig.after_registered)


def run(quick: bool) -> dict:
    why = kamailio.available()
    if why:             # a machine without Kamailio: said, not failed
        return {"title": "Failover of a SIP phone: not run", "columns": ["SIP failover"],
                "rows": [[f"not run: {why}"]], "notes": [], "series": [], "skipped": why}
    return summarize(_rig.parallel_in_step(failover.series, plan(quick), 8), quick)


def summarize(results: list[dict], quick: bool) -> dict:
    rows, table, errors = failover.tabulate(results, keepalive=REFRESH, real_phones=False)
    host = [x for t in table if t["board"] == "virtual" for x in t["runs"]]
    reg = _rig.stats([x["register_ms"] for x in host])
    step = _rig.stats([x["step_ms"] for x in host])
    sccp = sccp_figures()
    notes = _notes(table, reg, step, sccp)
    notes.append(_rig.load_note(table))
    if errors:
        notes.append(f"{len(errors)} run(s) not counted: " + "; ".join(errors[:3]))
    return {"title": "Failover of a SIP phone: WAN cut -> registered with the branch's Kamailio "
                     "(virtual board at host speed and ESP32-faithful board, namespace lab)",
            "columns": failover.COLUMNS, "rows": rows, "notes": notes, "series": table,
            "register_over_standby": reg, "failover_step": step, "errors": errors,
            "sccp": sccp, "targets": {"failover_median_ms": TARGET_FAILOVER_MS,
                                      "register_over_standby_ms": TARGET_REGISTER_MS,
                                      "register_over_standby_host_ms":
                                          failover.TARGET_HOST_REGISTER_MS},
            "firmware": _rig.revision()}


def sccp_figures(out: Path | None = None) -> dict[str, Any] | None:
    """The SCCP failover figures to show beside (out/bench/failover.json): per WAN kind at the
    30 s keepalive, and the register step; None when there are none."""
    path = (out or Path(os.environ.get("BENCH_OUT", "out/bench"))) / "failover.json"
    try:
        res = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    kinds = {t["label"]: {"failover": t["failover"], "register_over_standby":
                          t["register_over_standby"]}
             for t in res.get("series", []) if t.get("keepalive_s") == 30
             and t.get("board", "virtual") == "virtual" and t["label"] in KINDS}
    loads = [x for t in res.get("series", []) for x in t.get("load") or [] if x is not None]
    return {"kinds": kinds, "register_over_standby": res.get("register_over_standby"),
            "load": [min(loads), max(loads)] if loads else None,
            "firmware": res.get("firmware"), "quick": res.get("quick"),
            "date": time.strftime("%Y-%m-%d", time.gmtime(path.stat().st_mtime))}


def _fig(fo: dict) -> str:
    return f"median {_rig.sec(fo['median'])}, worst {_rig.sec(fo['worst'])}"


def _notes(table: list[dict], reg: dict, step: dict, sccp: dict | None) -> list[str]:
    out = ["A SIP phone (phone.siplink) against the lab's Kamailio registrars over mutual TLS "
           "5061 with digest authentication at both ends, provisioned from the lab's SIP "
           "cnf.xml; the agent's settings are bench/failover.py's (firmware defaults with "
           "monitor_s 1 and retry_max_ms 2000): probe after 5 s of silence, 2 missed pongs "
           "of 2 s. 'register dialogue over standby': REGISTER -> 401 -> REGISTER -> 200 OK "
           "on the open standby session (two round trips, no handshake). No public figure for a "
           "Cisco SIP phone's failover is compared with ('vs real phones' -); cm_reset is "
           "not run (the lab resets the SCCP call manager's connections only)."]
    if reg["median"] is not None:
        out.append(f"Register over the standby session (REGISTER, 401, REGISTER, 200 OK) at "
                   f"host speed, every failover of the labs running in parallel: median "
                   f"{reg['median']} ms, worst {reg['worst']} ms over {reg['n']} failovers "
                   f"({host_verdict(reg)}); loss noticed -> registered: median "
                   f"{step['median']} ms, worst {step['worst']} ms.")
    if sccp:
        r = sccp.get("register_over_standby") or {}
        out.append(f"SCCP beside it (out/bench/failover.json, firmware {sccp.get('firmware')}, "
                   f"{sccp.get('date')}{', quick' if sccp.get('quick') else ''}): "
                   + "; ".join(f"{k} {_fig(v['failover'])}" for k, v in sccp["kinds"].items())
                   + f"; its registration dialogue over standby median {r.get('median')} ms, "
                     f"worst {r.get('worst')} ms"
                   + (f" (host load average {sccp['load'][0]}-{sccp['load'][1]} during its "
                      f"labs: its worst cases are the load's as much as the protocol's)."
                      if sccp.get("load") else "."))
    for t in table:
        if t["board"] != "virtual" and t["failover"]["median"] is not None:
            fo, r = t["failover"], t["register_over_standby"]
            out.append(f"{t['board']} (ESP32-faithful: CPU quota at the calibrated ESP32 speed; "
                       f"docs/vboard.md), silent cut: {_fig(fo)} over {fo['n']} cuts (target: "
                       f"median under {TARGET_FAILOVER_MS // 1000} s); register over the "
                       f"standby session median {r['median']} ms, worst {r['worst']} ms "
                       f"(target: under {TARGET_REGISTER_MS} ms).")
    return out


def headline(res: dict) -> list[tuple[str, str, str]]:
    if res.get("skipped"):
        return [("SIP failover", "not run", str(res["skipped"]))]
    by = {t["label"]: t for t in res.get("series", [])}
    sccp = res.get("sccp") or {}
    out = []
    for kind, what in (("blackhole", "silent WAN cut (blackhole)"),
                       ("unreachable", "ICMP unreachable"), ("link_down", "link down")):
        t = by.get(kind)
        if t and t["failover"]["median"] is not None:
            other = sccp.get("kinds", {}).get(kind)
            out.append((f"SIP: {what} -> registered with the branch Kamailio, "
                        f"{t['failover']['n']} runs", _fig(t["failover"]),
                        f"SCCP: {_fig(other['failover'])}" if other else "-"))
    reg = res.get("register_over_standby") or {}
    if reg.get("median") is not None:
        s = sccp.get("register_over_standby") or {}
        out.append((f"SIP: register over the open standby session (REGISTER, 401, REGISTER, "
                    f"200 OK), {reg['n']} failovers of parallel labs at host speed",
                    f"median {reg['median']} ms, worst {reg['worst']} ms",
                    host_verdict(reg) + (f"; SCCP dialogue: median {s.get('median')} ms, "
                                          f"worst {s.get('worst')} ms" if s else "")))
    for t in res.get("series", []):
        if t.get("board", "virtual") == "virtual" or t["failover"]["median"] is None:
            continue
        name, fo = _rig.board_label(t["board"]), t["failover"]
        speed = t.get("register_at_speed") or {"n": 0}   # its CPU times the quota's slowdown
        r, how = ((speed, "its CPU times the slowdown") if speed["n"] else
                  (t["register_over_standby"], "wall time"))
        out.append((f"SIP: silent WAN cut -> registered with the branch Kamailio, {name} at "
                    f"ESP32 speed, {fo['n']} cuts", _fig(fo),
                    f"target: median < {TARGET_FAILOVER_MS // 1000} s "
                    f"({'pass' if fo['median'] < TARGET_FAILOVER_MS else 'FAIL'})"))
        if r["median"] is not None:
            out.append((f"SIP: register over the open standby session, {name} at ESP32 speed "
                        f"({how})",
                        f"median {r['median']} ms, worst {r['worst']} ms",
                        f"target: < {TARGET_REGISTER_MS} ms "
                        f"({'pass' if r['worst'] < TARGET_REGISTER_MS else 'FAIL'})"))
    return out
