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
the place of the host-speed matrix's."""
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
    spec = RigSpec(short_timers=True, connection_monitor=c.monitor, board=board())
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
        rig.stop()
    passed = ok and final == c.final
    return {"fault": c.fault, "phase": c.phase, "expected": c.expected,
            "expected_final": c.final, "observed": observed, "final_state": final,
            "passed": passed, "figures": figures, "seconds": round(time.monotonic() - t0, 1),
            "tracebacks": tracebacks}


def run(quick: bool) -> dict:
    limited = RigSpec(board=board()).limited
    todo = [c.for_board(limited) for c in plan(quick)]
    jobs = int(os.environ.get("BENCH_JOBS", "10"))
    results = [r if "passed" in r else   # the worker itself failed
               {"fault": c.fault, "phase": c.phase, "expected": c.expected,
                "expected_final": c.final, "observed": r.get("error", "?"),
                "final_state": None, "passed": False}
               for c, r in zip(todo, _rig.parallel(play, todo, jobs=jobs))]
    res = summarize(results, quick)
    out = Path(os.environ.get("BENCH_OUT", "out/bench"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "fault_matrix.md").write_text(markdown(res))
    res["markdown"] = str(out / "fault_matrix.md")
    return res


def summarize(results: list[dict], quick: bool) -> dict:
    rows = [[r["fault"], r["phase"], r["expected"], r["observed"],
             f"{r['final_state']} (want {r['expected_final']})"
             if r["final_state"] != r["expected_final"] else str(r["final_state"]),
             "pass" if r["passed"] else "FAIL"] for r in results]
    n_ok = sum(1 for r in results if r["passed"])
    where = board()
    notes = ([f"Board: {where} (ESP32-faithful: CPU quota at the calibrated ESP32 speed, "
              f"clock at 2000, the platform's DHCP, the profile's heap and TLS budget; "
              f"docs/vboard.md)."] if where != "virtual" else []) + [f"{n_ok}/{len(results)} cases passed"
             + (" (quick: a representative subset; make bench runs all)" if quick else "") + ".",
             "Lab demo timers: keepalive 5 s, probe 1.5 s, ack 1 s, connectionMonitorDuration "
             f"{MONITOR} s (10 s for the fallback phase); one lab and virtual board per case.",
             "Registration and re-home last milliseconds on a host CPU: the call manager is "
             "hung (TCP up, no answer) just before them so the cut lands inside the phase."]
    what = "virtual board" if where == "virtual" else f"{where}, ESP32-faithful"
    return {"title": f"Fault matrix: expected vs observed ({what}, namespace lab)",
            "columns": ["fault", "phase", "expected", "observed", "final state", "result"],
            "rows": rows, "notes": notes, "cases": results, "passed": n_ok,
            "total": len(results), "quick": quick, "firmware": _rig.revision(), "board": where}


def markdown(res: dict) -> str:
    mode = "quick" if res.get("quick") else "full"
    return (f"<!-- generated by `python -m bench --only fault_matrix` ({mode}, firmware "
            f"{res.get('firmware')}); do not edit -->\n\n" + _readme.table_md(res))


PLACE = "together"      # pass/fail outcomes on demo timers


def headline(res: dict) -> list[tuple[str, str, str]]:
    failed = [f"{c['fault']} / {c['phase']}" for c in res.get("cases", []) if not c.get("passed")]
    return [("fault matrix: WAN kinds x phases, SRST/TFTP/DHCP faults, certificate changes",
             f"{res.get('passed')}/{res.get('total')} cases as expected",
             "failed: " + "; ".join(failed) if failed else "table below")]
