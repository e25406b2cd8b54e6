"""Fault matrix: every WAN fault kind x every phase (provisioning, registration, registered,
fallback, re-home), SRST router down, TFTP down or lossy, DHCP slow, certificate changes;
one fresh lab and virtual board per case (lab demo timers: keepalive 5 s, the agent's short
settings), cases in parallel processes. Each row: the expected outcome, what the board did
(from its events), its final state, pass/fail. The table is also written as markdown to
fault_matrix.md beside the JSON (python -m bench --out) for the README.

Procedures: bench/_cases.py. Quick mode runs a representative subset (one case per phase,
each WAN kind at least once, and one of each other kind of fault).

BENCH_BOARD=virtual:PROFILE runs every case on that ESP32-faithful board (docs/vboard.md)
instead of the unix port at host speed; give it its own --out so that its JSON does not take
the place of the host-speed matrix's.

The same rows for a SIP phone against the lab's Kamailio: bench/fault_matrix_sip.py (a Case's
`protocol`; a row that cannot apply to SIP carries its reason in `na` and is listed, not run)."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import (_cases, _cases_alive, _cases_dhcp, _cases_provisioning, _cases_trust,
                   _readme, _rig)
from bench._rig import Rig, RigError, RigSpec
from host_tools.lab.names import WAN_KINDS as KINDS

PHASES = {
    "provisioning": ("wan_provisioning",
                     "provisions from its stored config, registers with SRST, re-homes after "
                     "restore"),
    "registration": ("wan_registration",
                     "first registration fails, registers with SRST directly, re-homes after "
                     "restore"),
    "registered": ("wan_registered",
                   "fails over to SRST over the standby link, re-homes after restore"),
    "fallback": ("wan_fallback",
                 "cut again during the connectionMonitorDuration wait: stays with SRST, "
                 "re-homes after restore"),
    "re-home": ("wan_rehome",
                "cut while the re-home Register is in flight: re-home aborted, stays with "
                "SRST, re-homes after restore"),
}
QUICK = {("blackhole", "registered"), ("cm_reset", "registration"), ("unreachable", "fallback"),
         ("link_down", "re-home"), ("blackhole", "provisioning"),
         ("SRST router down", "registered"),
         ("TFTP lossy (20 %)", "boot"), ("SRST certificate replaced", "registered")}
LIMITED_REGISTERED = ("fails over to SRST over a fresh, pinned TLS session (no standby link "
                      "on a limited board), re-homes after restore")
MONITOR = 4                          # connectionMonitorDuration of the matrix labs, seconds


def board() -> str:
    """The board every case runs on: BENCH_BOARD, else the unix port at host speed."""
    return os.environ.get("BENCH_BOARD", "").strip() or "virtual"


@dataclass
class Case:
    fault: str
    phase: str
    expected: str
    proc: str
    args: dict[str, Any] = field(default_factory=dict)
    final: str = "PRIMARY"
    monitor: int = MONITOR
    boot_first: bool = True
    # On a `limited` board (one TLS session, no standby link): the fields that differ
    # (expected, proc, args, final), as a scenario's [expect.limited] (docs/vboard.md).
    limited: dict[str, Any] = field(default_factory=dict)
    protocol: str = "sccp"           # "sip": a SIP phone against the lab's Kamailio registrars
    na: str = ""                     # why the row cannot apply (to this protocol): not run

    def for_board(self, limited: bool) -> "Case":
        return replace(self, **self.limited, limited={}) if limited and self.limited else self


def cases() -> list[Case]:
    out: list[Case] = []
    for phase, (proc, text) in PHASES.items():
        for kind in KINDS:
            args: dict[str, Any] = {"kind": kind}
            exp = text
            if phase == "provisioning" and kind == "cm_reset":
                exp = ("provisions online (TFTP is not the call manager), registers with SRST, "
                       "re-homes after restore")
            monitor = 10 if phase == "fallback" else MONITOR
            if phase == "re-home":
                args["monitor"] = monitor
            lim = {"expected": LIMITED_REGISTERED} if phase == "registered" else {}
            out.append(Case(f"WAN {kind}", phase, exp, proc, args, monitor=monitor, limited=lim))
    out += [
        Case("SRST router down", "registered", "stays with the call manager, standby back when "
             "the router is", "srst_down",
             limited={"expected": "stays with the call manager (a limited board holds no "
                                  "session with the router)", "proc": "srst_down_limited"}),
        Case("SRST router down + WAN blackhole", "registered", "no service while both are "
             "gone (TRYING), call manager after restore", "srst_down_wan_cut"),
        Case("TFTP down", "boot", "provisions from its stored state, registers with the call "
             "manager", "tftp_down_boot"),
        Case("TFTP down", "first boot", "retries provisioning (nothing stored), registers "
             "once TFTP is back", "tftp_down_first_boot", boot_first=False),
        Case("TFTP lossy (20 %)", "boot", "retransmits, provisions online, registers with the "
             "call manager", "tftp_lossy"),
        Case("DHCP slow (3 s reply delay)", "boot", "waits for the lease, registers with the "
             "call manager", "dhcp_slow"),
        Case("SRST certificate replaced", "registered", "standby refused with an event that "
             "names the certificate, primary kept", "srst_cert_replaced",
             limited={"expected": "no standby link: at failover the router is refused with an "
                                  "event that names the certificate, never registered with "
                                  "it; call manager after restore",
                      "proc": "srst_cert_at_failover"}),
        Case("SRST certificate re-issued in the config", "registered", "after Reset: new "
             "certificate pinned from the signed config, standby back", "srst_cert_reissued",
             limited={"expected": "after Reset: new certificate pinned from the signed "
                                  "config, registered with the call manager"}),
        Case("call manager certificate not in the CTL", "registered", "fails over to SRST, "
             "never registers with the unknown call manager", "cm_cert_replaced",
             final="FALLBACK",
             limited={"expected": "fails over to SRST; each re-home (TCP watch, then TLS) "
                                  "refuses the unknown call manager and returns to SRST"}),
        Case("CTL signed by an unknown SAST", "boot", "CTL refused, stored trust list kept, "
             "registers with the call manager", "ctl_unknown_sast"),
    ]
    for mod in _TOPICS:
        out += [Case(**row) for row in mod.CASES]
    return out


# Attack and lifetime rows, one module per topic (each with its PROCEDURES and CASES).
_TOPICS = (_cases_trust, _cases_alive, _cases_provisioning, _cases_dhcp)


def procedure(name: str):
    for mod in (_cases, *_TOPICS):
        if name in mod.PROCEDURES:
            return mod.PROCEDURES[name]
    raise KeyError(f"no fault-matrix procedure {name!r}")


def _key(c: Case) -> tuple[str, str]:
    return (c.fault.removeprefix("WAN "), c.phase)


def plan(quick: bool) -> list[Case]:
    return [c for c in cases() if not quick or _key(c) in QUICK]


def play(c: Case) -> dict:
    """One case on its own lab and board (runs in a worker process)."""
    spec = RigSpec(short_timers=True, connection_monitor=c.monitor, board=board(),
                   protocol=c.protocol)
    c = c.for_board(spec.limited)
    t0 = time.monotonic()
    rig = Rig(_rig.workdir("matrix"), spec)
    ok, observed, figures = False, "", {}
    try:
        rig.start(boot=c.boot_first)
        if c.boot_first:
            rig.settled(rig.booted, 180 if spec.faithful else 60)
        ok, observed, figures = procedure(c.proc)(rig, **c.args)
    except RigError as e:
        observed = f"stuck: {e}"
    except Exception as e:  # a harness failure is reported in the row, not raised
        observed = f"harness error: {type(e).__name__}: {e}"
    finally:
        final = rig.state()
        tracebacks = sum(1 for line in rig.tap.text if "Traceback" in line)
        if not rig.cleanup:             # BENCH_KEEP: the board's events beside the lab's
            rig.save_events(rig.workdir / "board-events.jsonl")
        rig.stop()
    passed = ok and final == c.final
    return {"fault": c.fault, "phase": c.phase, "expected": c.expected,
            "expected_final": c.final, "observed": observed, "final_state": final,
            "passed": passed, "figures": figures, "seconds": round(time.monotonic() - t0, 1),
            "tracebacks": tracebacks}


def not_applicable(c: Case) -> dict:
    """The result row of a case that cannot apply: listed with its reason, not run."""
    return {"fault": c.fault, "phase": c.phase, "expected": c.expected,
            "expected_final": c.final, "observed": f"not applicable: {c.na}",
            "final_state": None, "passed": None, "na": c.na}


def run(quick: bool) -> dict:
    return run_plan(plan(quick), quick, "fault_matrix")


def run_plan(cases_: list[Case], quick: bool, name: str) -> dict:
    """Every case of the plan on its own lab (BENCH_JOBS at a time), the rows that cannot
    apply listed with their reason; the table also as markdown beside the JSON
    (fault_matrix.md, fault_matrix_sip.md)."""
    limited = RigSpec(board=board()).limited
    todo = [c.for_board(limited) for c in cases_ if not c.na]
    jobs = int(os.environ.get("BENCH_JOBS", "10"))
    played = iter([r if "passed" in r else   # the worker itself failed
                   {"fault": c.fault, "phase": c.phase, "expected": c.expected,
                    "expected_final": c.final, "observed": r.get("error", "?"),
                    "final_state": None, "passed": False}
                   for c, r in zip(todo, _rig.parallel(play, todo, jobs=jobs))])
    results = [not_applicable(c) if c.na else next(played) for c in cases_]
    protocol = cases_[0].protocol if cases_ else "sccp"
    res = summarize(results, quick, protocol)
    out = Path(os.environ.get("BENCH_OUT", "out/bench"))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(markdown(res, name))
    res["markdown"] = str(out / f"{name}.md")
    return res


def summarize(results: list[dict], quick: bool, protocol: str = "sccp") -> dict:
    rows = [[r["fault"], r["phase"], r["expected"], r["observed"],
             "-" if r.get("na") else
             f"{r['final_state']} (want {r['expected_final']})"
             if r["final_state"] != r["expected_final"] else str(r["final_state"]),
             "n/a" if r.get("na") else "pass" if r["passed"] else "FAIL"] for r in results]
    run_ = [r for r in results if not r.get("na")]
    n_ok = sum(1 for r in run_ if r["passed"])
    n_na = len(results) - len(run_)
    sip = protocol == "sip"
    where = board()
    notes = [f"Board: {where} (ESP32-faithful: CPU quota at the calibrated ESP32 speed, "
             f"clock at 2000, the platform's DHCP, the profile's heap and TLS budget; "
             f"docs/vboard.md)."] if where != "virtual" else []
    na = f", {n_na} not applicable to SIP (listed with the reason, not run)" if n_na else ""
    notes.append(f"{n_ok}/{len(run_)} cases passed{na}"
                 + (" (quick: a representative subset; make bench runs all)" if quick else "")
                 + ".")
    if sip:
        notes.append("A SIP phone (phone.siplink) against the lab's Kamailio registrars, the "
                     "call manager's at HQ and the SRST router's in the branch (mutual TLS "
                     "5061, digest): the SCCP matrix's procedures and expectations, the "
                     "servers' faults acting on the Kamailios (kill/restart: stopped and "
                     "started; hang: SIGSTOP; cm_reset: HQ's stopped and started again; a new "
                     "certificate: restarted with it). The keepalive below is the SCCP "
                     "call manager's: a SIP link's silence is probed with RFC 5626 CRLF pings "
                     "on the same probe and ack timers.")
    notes += ["Lab demo timers: keepalive 5 s, probe 1.5 s, ack 1 s, connectionMonitorDuration "
              f"{MONITOR} s (10 s for the fallback phase); one lab and virtual board per case.",
              "Registration and re-home last milliseconds on a host CPU: the call manager is "
              "hung (TCP up, no answer) just before them so the cut lands inside the phase."]
    what = "virtual board" if where == "virtual" else f"{where}, ESP32-faithful"
    title = (f"Fault matrix for SIP phones: expected vs observed ({what}, Kamailio at HQ and "
             f"in the branch, namespace lab)" if sip else
             f"Fault matrix: expected vs observed ({what}, namespace lab)")
    return {"title": title,
            "columns": ["fault", "phase", "expected", "observed", "final state", "result"],
            "rows": rows, "notes": notes, "cases": results, "passed": n_ok,
            "total": len(run_), "not_applicable": n_na, "quick": quick,
            "firmware": _rig.revision(), "board": where, "protocol": protocol}


def markdown(res: dict, name: str = "fault_matrix") -> str:
    mode = "quick" if res.get("quick") else "full"
    return (f"<!-- generated by `python -m bench --only {name}` ({mode}, firmware "
            f"{res.get('firmware')}); do not edit -->\n\n" + _readme.table_md(res))


PLACE = "together"      # pass/fail outcomes on demo timers


def headline(res: dict) -> list[tuple[str, str, str]]:
    failed = [f"{c['fault']} / {c['phase']}" for c in res.get("cases", [])
              if not c.get("passed") and not c.get("na")]
    return [("fault matrix: WAN kinds x phases, SRST/TFTP/DHCP faults, certificate changes",
             f"{res.get('passed')}/{res.get('total')} cases as expected",
             "failed: " + "; ".join(failed) if failed else "table below")]
