"""Fault matrix for SIP phones (issue 15): every row of bench/fault_matrix.py with the agent
as a SIP phone (phone.siplink) against the lab's Kamailio registrars, the call manager's at
HQ and the SRST router's in the branch (`Lab(protocol="sip")`: mutual TLS 5061, digest at
both). The same procedures (bench/_cases*.py) and the same expectations: a WAN kind in a
phase, the router or TFTP or DHCP down, and the refusals - a wrong SRST certificate, a call
manager certificate in no trust list, an unsigned plain-TCP config from a rogue TFTP server -
refused as for SCCP. The servers' faults act on the Kamailios (host_tools.lab.lab:
kill/restart stop and start them, hang stops their processes, cm_reset stops HQ's; a new
certificate restarts one with it).

A row that cannot apply to a SIP phone (it needs an SCCP message) is listed with the reason
in the table and not run (NOT_APPLICABLE). Its own module, not a column of fault_matrix: the
quick set stays small (QUICK: one failover and the three refusals), the SCCP matrix and its
README table are untouched, and a machine without Kamailio says so here ("not run") without
failing the SCCP matrix (docs/decisions.md, "Issue 15: the fault matrix for SIP")."""
from __future__ import annotations

from dataclasses import replace

from bench import fault_matrix as fm
from host_tools.lab import kamailio

NAME = "fault_matrix_sip"
PLACE = "together"      # pass/fail outcomes on demo timers

# proc -> why the row cannot apply to a SIP phone
NOT_APPLICABLE = {
    "srst_cert_reissued": "the call manager restarts the phone with an SCCP Reset message; a "
                          "SIP phone's is a NOTIFY check-sync, which the agent answers but the "
                          "lab's Kamailio does not send",
    "cm_quirk_after_ack": "an SCCP RegisterAck/DisplayText quirk of the lab's SCCP call "
                          "manager; the SIP registrar is Kamailio, which has no such switch",
}
# (fault without "WAN ", phase): a silent cut while registered, then the three refusals
QUICK = {("blackhole", "registered"), ("SRST certificate replaced", "registered"),
         ("call manager certificate not in the CTL", "registered"),
         ("rogue TFTP: CTL from a rogue SAST + unsigned mode-1 config, SAST pinned",
          "first boot")}


def cases() -> list[fm.Case]:
    """The SCCP matrix's rows for a SIP phone, those that cannot apply with their reason."""
    return [replace(c, protocol="sip", na=NOT_APPLICABLE.get(c.proc, "")) for c in fm.cases()]


def plan(quick: bool) -> list[fm.Case]:
    """Quick: QUICK's rows and the rows that do not apply (listed, nothing run)."""
    return [c for c in cases() if not quick or c.na or fm._key(c) in QUICK]


def run(quick: bool) -> dict:
    why = kamailio.available()
    if why:             # a machine without Kamailio: said, not failed
        return {"title": "Fault matrix for SIP phones: not run", "columns": ["SIP fault matrix"],
                "rows": [[f"not run: {why}"]], "notes": [], "cases": [], "passed": 0,
                "total": 0, "skipped": why}
    return fm.run_plan(plan(quick), quick, NAME)


def headline(res: dict) -> list[tuple[str, str, str]]:
    if res.get("skipped"):
        return [("fault matrix for SIP phones", "not run", str(res["skipped"]))]
    failed = [f"{c['fault']} / {c['phase']}" for c in res.get("cases", [])
              if not c.get("passed") and not c.get("na")]
    na = res.get("not_applicable") or 0
    return [("fault matrix for SIP phones against Kamailio: the SCCP matrix's rows, the "
             "same expectations",
             f"{res.get('passed')}/{res.get('total')} cases as expected"
             + (f", {na} not applicable" if na else ""),
             "failed: " + "; ".join(failed) if failed else "table below")]
