"""Each phone as the lab's Kamailio registrars saw it (issue 15), the SIP counterpart of
host_tools.lab.perphone's SCCP view, for a scenario report's `servers` (docs/reports.md):

    v = sipview.view(lab.sip.servers["callmanager"])
    v["phones"]["SEP001122AABBCC"]     # {"saved": 2, "refused": 0, "registered": True, ...}
    sipview.summary_line("call manager", v)

Kamailio is not the lab's own code: what it saw is its log (the configuration's `lab:` lines,
kamailio_cfg.py: each REGISTER it saved, each it refused, with the line, the peer and the
certificate's CN) and its location table (`ul.dump`, the contacts registered at the end of
the run). Its log spans the registrar's restarts (a cm_reset, kill/restart), its location
table does not. A per-phone message rate (perphone's `per_min`) is not measured: Kamailio
logs no line per request and answers the phones' CRLF keepalives below its script, so the
report says `not_applicable` (NOT_MEASURED) rather than a figure that would not compare.
"""
from __future__ import annotations

import re
from typing import Any

from host_tools.lab.kamailio import Kamailio
from host_tools.lab.kamrpc import KamRpcError

NOT_MEASURED = ("not measured for SIP phones: Kamailio logs no line per request and answers "
                "CRLF keepalives below its script (servers.*.phones: REGISTERs saved/refused)")
_SAVED = re.compile(r"lab: REGISTER (\S+) from (\S+) \((.*)\) saved")
_REFUSED = re.compile(r"lab: REGISTER (?:from unknown user )?(\S+?):? .*refused")


def view(k: Kamailio) -> dict[str, Any]:
    """One registrar's phones, by device name (the line's, kamailio_cfg.SipLine.device; a
    line the lab does not know, by its user): `saved` and `refused` REGISTERs (from its log,
    every run of it), `peers` it saved from (address:port, certificate CN), `registered`
    (a contact in its location table now) and those `contacts`."""
    device = {ln.user: ln.device for ln in k.config.lines}
    phones: dict[str, dict[str, Any]] = {}

    def phone(user: str) -> dict[str, Any]:
        return phones.setdefault(device.get(user, user), {
            "line": user, "saved": 0, "refused": 0, "refusals": [], "peers": [],
            "registered": False, "contacts": []})

    for line in k.log_tail(100_000):
        m = _SAVED.search(line)
        if m:
            p = phone(m.group(1))
            p["saved"] += 1
            peer = f"{m.group(2)} ({m.group(3)})"
            if peer not in p["peers"]:
                p["peers"].append(peer)
            continue
        m = _REFUSED.search(line)
        if m:
            p = phone(m.group(1))
            p["refused"] += 1
            if len(p["refusals"]) < 8:
                p["refusals"].append(line.split("lab: ", 1)[1].strip())
    out: dict[str, Any] = {"server": f"kamailio-{k.role}", "role": k.role, "protocol": "sip",
                           "listen": f"tls:{k.config.host}:{k.config.port}",
                           "running": k.running}
    try:
        regs = k.registrations() if k.running and not k.frozen else {}
    except KamRpcError as e:
        regs, out["error"] = {}, str(e)
    for aor, contacts in regs.items():
        p = phone(aor.split("@", 1)[0].removeprefix("sip:"))
        p["registered"] = bool(contacts)
        p["contacts"] = [{k_: c.get(k_) for k_ in ("contact", "expires", "socket")}
                         for c in contacts]
    out["phones"] = dict(sorted(phones.items()))
    return out


def summary_line(what: str, v: dict[str, Any] | None) -> str | None:
    """One line of a human summary for a SIP view, or None (no phone, an SCCP view)."""
    if not v or v.get("protocol") != "sip" or not v.get("phones"):
        return None
    parts = [f"{dev} {p['saved']} saved, {p['refused']} refused"
             + (", registered at the end" if p["registered"] else "")
             for dev, p in v["phones"].items()]
    return f"REGISTERs at the {what} (Kamailio): " + "; ".join(parts)
