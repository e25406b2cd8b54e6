"""Capture vs replay: what the board fetched (names, sizes, sha256) against the capture's
complete files, the DHCP lease it took against the captured answer, the order and outcome
of its read requests, its events; the differences; the JSON report and a summary.

Only file differences decide the verdict (`matched`): the board's provisioning matched the
capture when it fetched exactly the capture's files with the same hashes. The rest is
listed for the reader (verdict: false).
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


def differences(cap: Analysis, plan: Plan, run: ReplayRun) -> list[dict[str, Any]]:
    diffs: list[dict[str, Any]] = []

    def add(kind: str, what: str, captured: Any, replay: Any, verdict: bool) -> None:
        diffs.append({"kind": kind, "what": what, "captured": captured, "replay": replay,
                      "verdict": verdict})

    got, _src = board_files(run)
    for name, f in cap.files.items():
        b = got.get(name)
        if b is None:
            add("file_not_fetched", name, {"size": f.size, "sha256": f.sha256}, None, True)
        elif b["sha256"] != f.sha256:
            add("file_differs", name, {"size": f.size, "sha256": f.sha256}, b, True)
    for name, b in got.items():
        if name not in cap.files:
            add("file_extra", name, None, b, True)
    done = {s.event.get("file"): s.event.get("bytes") for s in run.events if s.event.ev == "tftp_done"}
    for name, b in got.items():
        if name in done and done[name] != b["size"]:
            add("board_size", name, b["size"], done[name], False)
    want, have = _collapse(cap.requests), _collapse(board_requests(run))
    if want != have:
        add("requests", "read requests in order", want, have, False)
    else:
        cs = [r["status"] for r in cap.requests]
        rs = [r["status"] for r in board_requests(run)]
        if cs != rs:
            add("request_results", "answers to the read requests", cs, rs, False)
    lease = _event(run, "dhcp_lease")
    if lease is None:
        add("dhcp", "no dhcp_lease event", plan.expected_lease, None, False)
    else:
        for k in LEASE_FIELDS:
            if k in plan.expected_lease and lease.get(k) != plan.expected_lease[k]:
                add("dhcp", k, plan.expected_lease[k], lease.get(k), False)
    if run.ended == "timeout":
        add("board_end", "the board's first provisioning pass did not end in time", None,
            run.ended, False)
    return diffs


def timing(cap: Analysis, run: ReplayRun) -> dict[str, Any]:
    """Side by side: captured transfer times and the board's (informational)."""
    ct = cap.timing()
    done = {}
    for s in run.events:
        if s.event.ev == "tftp_done":
            done.setdefault(s.event.get("file"), s.event.get("ms"))
    files = [{"file": t["file"], "captured_ms": t["duration_ms"], "replay_ms": done.get(t["file"]),
              "captured_first_answer_ms": t["first_answer_ms"]} for t in ct["tftp"]]
    lease = _event(run, "dhcp_lease")
    prov = _event(run, "provisioned")
    return {"dhcp": ct.get("dhcp"), "board_dhcp_ms": lease.get("ms") if lease else None,
            "files": files, "captured_last_file_at_ms": ct.get("last_file_at_ms"),
            "board_provisioned_ms": prov.get("ms") if prov else None}


def report(cap: Analysis, plan: Plan, run: ReplayRun) -> dict[str, Any]:
    diffs = differences(cap, plan, run)
    got, src = board_files(run)
    t0 = run.started
    return {
        "capture": str(cap.path), "mac": plan.mac, "timing": plan.timing,
        "matched": run.error is None and not any(d["verdict"] for d in diffs),
        "error": run.error,
        "differences": diffs,
        "captured": cap.to_dict(),
        "replay": {
            "ended": run.ended, "source": src,
            "files": [{"name": k, **v} for k, v in got.items()],
            "requests": board_requests(run),
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
    lines = [f"replay of {rep['capture']} (phone {rep['mac']}, timing {rep['timing']}): "
             f"{'MATCHED' if rep['matched'] else 'DIFFERS'}"]
    if rep.get("error"):
        lines.append(f"  error: {rep['error']}")
    ack = (cap.get("dhcp") or {}).get("ack") or {}
    if ack:
        lines.append(f"  captured DHCP: {ack.get('yiaddr')} mask {ack.get('subnet_mask')} "
                     f"router {ack.get('router')} 150 {ack.get('option150')} "
                     f"66 {ack.get('option66')} siaddr {ack.get('siaddr')} lease {ack.get('lease_s')}")
    lease = rp.get("dhcp_lease")
    lines.append("  board's lease: " + (f"{lease.get('ip')} mask {lease.get('mask')} router "
                                        f"{lease.get('router')} tftp {lease.get('tftp_servers')} "
                                        f"lease {lease.get('lease_s')}" if lease else "none"))
    moved = rep["plan"].get("addresses_moved") or {}
    if moved:
        lines.append("  addresses mapped: " + ", ".join(f"{k}->{v}" for k, v in moved.items()))
    got = {f["name"]: f for f in rp["files"]}
    lines.append(f"  files (board's side from the {rp['source']}):")
    for f in cap["files"]:
        b = got.get(f["name"])
        mark = "ok  " if b and b["sha256"] == f["sha256"] else "FAIL"
        lines.append(f"    {mark} {f['name']:34} {f['size']:>8} B  {f['sha256'][:16]}  "
                     f"board: {b['size'] if b else '-':>8} B  {b['sha256'][:16] if b else 'not fetched'}")
    for name, b in got.items():
        if not any(f["name"] == name for f in cap["files"]):
            lines.append(f"    FAIL {name:34} {'-':>8}    not in the capture  board: {b['size']} B")
    lines.append(f"  board ended with: {rp['ended']}")
    diffs = rep["differences"]
    if diffs:
        lines.append("  differences:")
        for d in diffs:
            tag = "verdict" if d["verdict"] else "info   "
            lines.append(f"    [{tag}] {d['kind']} {d['what']}: captured {d['captured']} / "
                         f"replay {d['replay']}")
    else:
        lines.append("  no differences")
    for n in rep.get("notes", []):
        lines.append(f"  note: {n}")
    for k, v in rep["files"].items():
        lines.append(f"  {k}: {v}")
    return "\n".join(lines)
