"""Capture vs replay: what the board fetched (names, sizes, sha256) against the capture's
complete files, the DHCP lease it took against the captured answer, the order and outcome
of its read requests, its events; the differences; the JSON report and a summary.

The verdict: MATCHED when the board provisioned and fetched the files that decide its trust
and configuration (CTL, ITL, its configuration: `decisive`) as the capture has them, with
the same hashes, and every file it asked for got an answer; REPRODUCED when the captured
phone got no configuration either (its config download failed in the capture) and the
board failed the same way (same answers to the same requests); DIFFERS otherwise. A board
that did not provision is never MATCHED; a file nobody answered is a difference. Captured
files the agent never asks for (Ringlist.xml, firmware loads, ...) and the rest (request
order, lease fields, timing) are listed for information (verdict: false).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from host_tools.replay.capture import Analysis
from host_tools.replay.plan import Plan
from host_tools.replay.session import ReplayRun

LEASE_FIELDS = ("ip", "mask", "router", "dns", "lease_s", "tftp_servers")
MATCHED, REPRODUCED, DIFFERS = "MATCHED", "REPRODUCED", "DIFFERS"
FAILED = ("provision_failed", "provision_retry")
NOTABLE = ("ctl_rejected", "config_rejected", "config_missing", "trust_missing", "tftp_failed",
           "dhcp_unavailable", "provision_failed", "network_failed", "no_identity")


def board_files(run: ReplayRun) -> tuple[dict[str, dict[str, Any]], str]:
    """name -> {size, sha256} of what the board received completely, and the source: the
    replay's own capture (bytes on the board's wire) or, without one, the servers' logs
    (a transfer the board acknowledged to the end, with the bytes served)."""
    rc = run.replay_capture
    if rc is not None:
        out = {}
        for x in rc.transfers:
            c = x.content
            if c is not None and x.file not in out:
                out[x.file] = {"size": len(c), "sha256": hashlib.sha256(c).hexdigest()}
        return out, "replay capture"
    served = {name: content for tp in run.plan.tftp for name, content in tp.files.items()}
    out = {}
    for e in run.tftp_log:
        name = e.get("file")
        if e.get("result") == "ok" and name in served and name not in out:
            c = served[name]
            out[name] = {"size": len(c), "sha256": hashlib.sha256(c).hexdigest()}
    return out, "server log"


def board_requests(run: ReplayRun) -> list[dict[str, Any]]:
    rc = run.replay_capture
    if rc is not None:
        return [{"file": r["file"], "status": r["status"]} for r in rc.requests]
    items = [(e.get("time", 0), {"file": e.get("file"), "status": _status(e)}) for e in run.tftp_log]
    items += [(e.get("time", 0), {"file": e.get("file"), "status": "unanswered"})
              for e in run.unanswered]
    return [d for _, d in sorted(items, key=lambda i: i[0])]


def _status(entry: dict[str, Any]) -> str:
    """A server log entry as a capture status (capture.Transfer.status)."""
    result = entry.get("result")
    if (result or "").startswith("aborted_by_client") and not entry.get("bytes"):
        return "refused by client"
    if result == "ok":
        return "complete"
    if result == "not_found":
        return "error 1"
    if result and result.startswith("captured_error "):
        return "error " + result.split()[1]
    if result == "timeout" or (result or "").startswith("aborted_by_client"):
        return "incomplete"
    return result or "?"


def _collapse(reqs: list[dict[str, Any]]) -> list[str]:
    """Requested names in order, retries of the same name in a row counted once."""
    out: list[str] = []
    for r in reqs:
        if not out or out[-1] != r["file"]:
            out.append(r["file"])
    return out


def _event(run: ReplayRun, name: str) -> dict[str, Any] | None:
    for s in run.events:
        if s.event.ev == name:
            return dict(s.event.fields)
    return None


def decisive_groups(mac: str) -> list[tuple[str, ...]]:
    """The names the agent asks for, per file it needs, in the order it asks (lower case):
    the board takes the first one a server has, so one per group decides."""
    dev = f"sep{mac.lower()}"
    return [(f"ctl{dev}.tlv", "ctlfile.tlv"), (f"itl{dev}.tlv", "itlfile.tlv"),
            (f"{dev}.cnf.xml.sgn", f"{dev}.cnf.xml", "xmldefault.cnf.xml")]


def _group(name: str, groups: list[tuple[str, ...]]) -> int | None:
    low = name.lower()
    return next((i for i, g in enumerate(groups) if low in g), None)


def unanswered(run: ReplayRun) -> list[dict[str, Any]]:
    """The board's read requests no server answered (a timeout or a network error before any
    data), from its own events, for the files no other server answered either."""
    answered: set[str] = set()
    silent: list[dict[str, Any]] = []
    asking: dict[Any, Any] = {}         # server -> the file its last read request asked for
    for s in run.events:
        e = s.event
        if e.ev == "tftp_start":
            asking[e.get("server")] = e.get("file")
        elif e.ev in ("tftp_oack", "tftp_options_ignored"):    # an answer, then maybe silence
            answered.add(asking.get(e.get("server")))
        elif e.ev == "tftp_done" or e.ev == "tftp_options_refused" or (
                e.ev == "tftp_error" and (e.get("code") is not None or e.get("bytes"))):
            answered.add(e.get("file"))
        elif e.ev == "tftp_error":
            silent.append({"file": e.get("file"), "server": e.get("server"),
                           "reason": e.get("msg")})
    return [u for u in silent if u["file"] not in answered]


def captured_failed(cap: Analysis) -> bool:
    """The captured phone asked for its configuration and got none complete."""
    cfg = decisive_groups(cap.mac or "")[-1]
    asked = [x for x in cap.transfers if x.file.lower() in cfg]
    return bool(asked) and not any(x.complete for x in asked)


def differences(cap: Analysis, plan: Plan, run: ReplayRun) -> list[dict[str, Any]]:
    diffs: list[dict[str, Any]] = []

    def add(kind: str, what: str, captured: Any, replay: Any, verdict: bool) -> None:
        diffs.append({"kind": kind, "what": what, "captured": captured, "replay": replay,
                      "verdict": verdict})

    got, _src = board_files(run)
    groups = decisive_groups(plan.mac)
    fetched = {g for g in (_group(n, groups) for n in got) if g is not None}
    claimed: set[int] = set()
    for name, f in cap.files.items():
        b = got.get(name)
        g = _group(name, groups)
        if b is None:
            # decisive: the first captured file of a group the board fetched nothing of
            decides = g is not None and g not in fetched and g not in claimed
            if g is not None:
                claimed.add(g)
            add("file_not_fetched", name, {"size": f.size, "sha256": f.sha256}, None, decides)
        elif b["sha256"] != f.sha256:
            add("file_differs", name, {"size": f.size, "sha256": f.sha256}, b, True)
    for name, b in got.items():
        if name not in cap.files:
            add("file_extra", name, None, b, True)
    for u in unanswered(run):
        seen = [x.status for x in cap.transfers if x.file == u["file"]]
        add("unanswered", f"{u['file']} from {u['server']}",
            ", ".join(seen) if seen else "not asked for", "no answer",
            "unanswered" not in seen)
    done = {s.event.get("file"): s.event.get("bytes") for s in run.events if s.event.ev == "tftp_done"}
    for name, b in got.items():
        if name in done and done[name] != b["size"]:
            add("board_size", name, b["size"], done[name], False)
    creqs, breqs = cap.requests, board_requests(run)
    want, have = _collapse(creqs), _collapse(breqs)
    if want != have:
        add("requests", "read requests in order", want, have, False)
    else:
        cs = [r["status"] for r in creqs]
        rs = [r["status"] for r in breqs]
        if cs != rs:
            add("request_results", "answers to the read requests", cs, rs, False)
    failed = captured_failed(cap)
    if run.ended != "provisioned":
        why = _reason(run)
        if run.ended in FAILED and failed:
            # the captured phone failed too: the verdict is whether it failed the same way
            cs, rs = _outcomes(creqs, groups), _outcomes(breqs, groups)
            common = sorted(set(cs) & set(rs))
            same = bool(common) and any(_group(n, groups) == len(groups) - 1 for n in common) \
                and all(cs[n] == rs[n] for n in common)
            add("board_end", "the board did not provision, nor did the captured phone",
                "no configuration", f"{run.ended}: {why}" if why else run.ended, False)
            if not same:
                add("failure", "answers to the trust and configuration requests both asked for",
                    {n: cs[n] for n in common} or cs, {n: rs[n] for n in common} or rs, True)
        elif run.ended == "timeout":
            add("board_end", "the board's first provisioning pass did not end in time", None,
                run.ended, True)
        else:
            add("board_end", "the board did not provision",
                "a configuration" if any(_group(n, groups) == len(groups) - 1 for n in cap.files)
                else "no configuration request in the capture",
                f"{run.ended}: {why}" if why else run.ended, True)
    lease = _event(run, "dhcp_lease")
    if lease is None:
        add("dhcp", "no dhcp_lease event", plan.expected_lease, None, False)
    else:
        for k in LEASE_FIELDS:
            if k in plan.expected_lease and lease.get(k) != plan.expected_lease[k]:
                add("dhcp", k, plan.expected_lease[k], lease.get(k), False)
    return diffs


def _outcomes(reqs: list[dict[str, Any]], groups: list[tuple[str, ...]]) -> dict[str, str]:
    """name -> how its last request went, for the trust and configuration names."""
    return {r["file"]: r["status"] for r in reqs if _group(r["file"], groups) is not None}


def _reason(run: ReplayRun) -> str | None:
    e = _event(run, "provision_failed")
    return e.get("reason") if e else None


def verdict(run: ReplayRun, diffs: list[dict[str, Any]]) -> str:
    if run.error is not None or any(d["verdict"] for d in diffs):
        return DIFFERS
    return MATCHED if run.ended == "provisioned" else REPRODUCED


def timing(cap: Analysis, run: ReplayRun) -> dict[str, Any]:
    """Side by side: captured transfer times and the board's (informational)."""
    ct = cap.timing()
    # the n-th captured transfer of a name beside the board's n-th transfer of it
    done: dict[str, list[Any]] = {}
    for s in run.events:
        if s.event.ev == "tftp_done":
            done.setdefault(s.event.get("file"), []).append(s.event.get("ms"))
    files = []
    for t in ct["tftp"]:
        mine = done.get(t["file"]) or []
        files.append({"file": t["file"], "captured_ms": t["duration_ms"],
                      "replay_ms": mine.pop(0) if mine else None,
                      "captured_first_answer_ms": t["first_answer_ms"]})
    lease = _event(run, "dhcp_lease")
    prov = _event(run, "provisioned")
    return {"dhcp": ct.get("dhcp"), "board_dhcp_ms": lease.get("ms") if lease else None,
            "files": files, "captured_last_file_at_ms": ct.get("last_file_at_ms"),
            "board_provisioned_ms": prov.get("ms") if prov else None}


def report(cap: Analysis, plan: Plan, run: ReplayRun) -> dict[str, Any]:
    diffs = differences(cap, plan, run)
    got, src = board_files(run)
    t0 = run.started
    v = verdict(run, diffs)
    return {
        "capture": str(cap.path), "mac": plan.mac, "timing": plan.timing,
        "verdict": v, "matched": v == MATCHED, "reproduced": v in (MATCHED, REPRODUCED),
        "error": run.error,
        "differences": diffs,
        "captured": cap.to_dict(),
        "replay": {
            "ended": run.ended, "reason": _reason(run), "source": src,
            "files": [{"name": k, **v} for k, v in got.items()],
            "requests": board_requests(run), "unanswered_requests": unanswered(run),
            "dhcp_lease": _event(run, "dhcp_lease"),
            "dhcp_log": run.dhcp_log, "tftp_log": run.tftp_log, "unanswered": run.unanswered,
            "notable_events": [{"ev": s.event.ev, **s.event.fields} for s in run.events
                               if s.event.ev in NOTABLE],
        },
        "timing_compared": timing(cap, run),
        "plan": plan.to_dict(),
        "notes": plan.notes + run.notes,
        "events": [{"host_ms": round((s.host - t0) * 1000), "t": s.event.t, "ev": s.event.ev,
                    **s.event.fields} for s in run.events],
        "files": dict(run.files),
    }


def write(rep: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rep["files"]["report"] = str(path)
    path.write_text(json.dumps(rep, indent=2, default=_plain) + "\n")
    return path


def _plain(o: Any) -> Any:
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    if isinstance(o, bytes):
        return o.hex()
    return str(o)


def summary(rep: dict[str, Any]) -> str:
    cap, rp = rep["captured"], rep["replay"]
    v = rep.get("verdict") or (MATCHED if rep["matched"] else DIFFERS)
    lines = [f"replay of {rep['capture']} (phone {rep['mac']}, timing {rep['timing']}): {v}"]
    if rep.get("error"):
        lines.append(f"  error: {rep['error']}")
    ack = (cap.get("dhcp") or {}).get("ack") or {}
    if ack:
        lines.append(f"  captured DHCP: {ack.get('yiaddr')} mask {ack.get('subnet_mask')} "
                     f"router {ack.get('router')} 150 {ack.get('option150')} "
                     f"66 {ack.get('option66')} siaddr {ack.get('siaddr')} lease {ack.get('lease_s')}")
    lease = rp.get("dhcp_lease")
    lines.append("  board's lease: " + (f"{lease.get('ip')} mask {lease.get('mask')} router "
                                        f"{lease.get('router')} dns {lease.get('dns')} tftp "
                                        f"{lease.get('tftp_servers')} lease {lease.get('lease_s')}"
                                        if lease else "none"))
    moved = rep["plan"].get("addresses_moved") or {}
    if moved:
        lines.append("  addresses mapped: " + ", ".join(f"{k}->{v}" for k, v in moved.items()))
    got = {f["name"]: f for f in rp["files"]}
    info = {d["what"] for d in rep["differences"] if d["kind"] == "file_not_fetched" and not d["verdict"]}
    lines.append(f"  files (board's side from the {rp['source']}):")
    for f in cap["files"]:
        b = got.get(f["name"])
        mark = "ok  " if b and b["sha256"] == f["sha256"] else "info" if f["name"] in info else "FAIL"
        lines.append(f"    {mark} {f['name']:34} {f['size']:>8} B  {f['sha256'][:16]}  "
                     f"board: {b['size'] if b else '-':>8} B  {b['sha256'][:16] if b else 'not fetched'}")
    for name, b in got.items():
        if not any(f["name"] == name for f in cap["files"]):
            lines.append(f"    FAIL {name:34} {'-':>8}    not in the capture  board: {b['size']} B")
    why = rp.get("reason")
    lines.append(f"  board ended with: {rp['ended']}" + (f" ({why})" if why else ""))
    diffs = rep["differences"]
    decide = [d for d in diffs if d["verdict"]]
    rest = [d for d in diffs if not d["verdict"]]
    if decide:
        lines.append("  differences:")
        for d in decide:
            lines.append(f"    {d['kind']} {d['what']}: captured {d['captured']} / replay {d['replay']}")
    else:
        lines.append("  no differences" + (" (for information only: see below)" if rest else ""))
    if info:
        lines.append("  captured files the agent never asks for (information): " + ", ".join(sorted(info)))
    for d in rest:
        if d["kind"] == "file_not_fetched" and d["what"] in info:
            continue
        lines.append(f"    [info] {d['kind']} {d['what']}: captured {d['captured']} / "
                     f"replay {d['replay']}")
    for n in rep.get("notes", []):
        lines.append(f"  note: {n}")
    for k, val in rep["files"].items():
        lines.append(f"  {k}: {val}")
    return "\n".join(lines)
