"""Re-home time vs connectionMonitorDuration, and boot-to-registered during a WAN outage (the
boot-during-outage scenario: the phone restarts while the WAN is cut, provisions from its
store and registers with the SRST router directly). Cold boots: bench/boot.py, which needs
the CPU to itself.

Re-home: the config's connectionMonitorDuration is set by the lab (no monitor_s override),
the agent runs its default settings, keepalive 30 s. Each run: silent cut (blackhole),
registered with SRST, WAN restored 2 s later (or 30 s later, full mode's long-outage row),
then the time from the restore to the board's `rehomed` line. It is connectionMonitorDuration
plus the wait for the next probe of the call manager (backoff 1 s doubling to 30 s while the
WAN is down) plus the Register over the probe session.

Boot: `boot` -> `registered` on the board's own clock. During an outage:
each WAN kind, default agent settings, and the lab's demo timers (scenarios/
boot-during-outage.toml); connectionMonitorDuration 5 s there, so the series moves on."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from bench import _rig
from bench._rig import Rig, RigError, RigSpec
from host_tools.lab.names import WAN_KINDS as KINDS



@dataclass
class Task:
    what: str                       # "rehome" | "boot_outage"
    label: str
    runs: int
    monitor: int = 120
    outage_s: float = 2.0
    kind: str = "blackhole"
    short_timers: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    start_at: float = 0.0


def plan(quick: bool) -> list[Task]:
    """The measures, each split over labs so that no lab runs more than about a minute."""
    if quick:
        return [Task("rehome", "connectionMonitorDuration 5 s", 2, monitor=5),
                Task("boot_outage", "blackhole", 1, monitor=5)]
    whole = [Task("rehome", f"connectionMonitorDuration {m} s", 5, monitor=m) for m in (5, 10, 20)]
    whole.append(Task("rehome", "connectionMonitorDuration 10 s, 30 s outage", 3, monitor=10,
                      outage_s=30.0))
    whole += [Task("boot_outage", k, 3, kind=k, monitor=5) for k in KINDS]
    whole.append(Task("boot_outage", "blackhole, demo timers", 3, short_timers=True, monitor=5))
    out = []
    for t in whole:
        # seconds one run takes, roughly: detection, the outage, the monitor, a boot's TFTP retries
        est = 10 + t.monitor + t.outage_s if t.what == "rehome" else \
            35 if t.kind != "cm_reset" and not t.short_timers else 15
        per_lab = max(1, int(60 // est))
        out += [replace(t, runs=n) for n in _rig.split(t.runs, -(-t.runs // per_lab))]
    return out


def worker(t: Task) -> dict:
    spec = RigSpec(keepalive=5 if t.short_timers else 30,
                   secondary_keepalive=10 if t.short_timers else 60,
                   connection_monitor=t.monitor, short_timers=t.short_timers,
                   settings=t.settings)
    runs: list[dict] = []
    errors: list[str] = []
    with Rig(_rig.workdir(f"rehome-{t.what}"), spec) as rig:
        rig.wait("standby_up", rig.booted, 60)
        _rig.wait_in_step(t)
        step = {"rehome": _rehome, "boot_outage": _boot_outage}[t.what]
        for _ in range(t.runs):
            try:
                runs.append(step(rig, t))
            except RigError as e:
                errors.append(str(e))
                try:
                    rig.wait("standby_up", rig.restore(), 120)
                except RigError:
                    break
    return {"what": t.what, "label": t.label, "monitor": t.monitor, "outage_s": t.outage_s,
            "kind": t.kind, "runs": runs, "errors": errors}


def _rehome(rig: Rig, t: Task) -> dict:
    time.sleep(1.0)
    t_cut = rig.cut("blackhole")
    reg = rig.wait("registered:srst", rig.cut_began, 60)
    _rig.sleep_until(reg.host + t.outage_s)
    t_back = rig.restore()
    rh = rig.wait("rehomed", t_back, t.monitor + 90)
    reach = rig.since(t_back, "primary_reachable")
    rig.wait("standby_up", rh.host, 60)
    return {"rehome_ms": round((rh.host - t_back) * 1000),
            "reachable_ms": round((reach[0].host - t_back) * 1000) if reach else None,
            "register_ms": rh.event.get("ms")}


def _boot_outage(rig: Rig, t: Task) -> dict:
    time.sleep(1.0)
    t_cut = rig.cut(t.kind)
    time.sleep(1.0)
    t_boot = rig.reboot()
    boot = rig.wait("boot", t_boot, 30)
    reg = rig.wait("registered", boot.host, 120)
    prov = rig.since(boot.host, "provisioned")
    r = {"registered_ms": reg.event.t - boot.event.t, "link": reg.event.get("link"),
         "offline": prov[0].event.get("offline") if prov else None,
         "provisioned_ms": (prov[0].event.t - boot.event.t) if prov else None,
         "cut_to_boot_ms": round((t_boot - t_cut) * 1000)}
    t_back = rig.restore()
    # After a boot from the store the re-home is a restart (TFTP answers again: phone.tftpwatch)
    # and the boot that follows registers with the call manager; cm_reset leaves TFTP up, so
    # that boot was not offline and re-homes as usual.
    if r["offline"]:
        rs = rig.wait("restarting", t_back, t.monitor + 90)
        rh = rig.wait("registered:primary", rs.host, 60)
    else:
        rh = rig.wait("rehomed", t_back, t.monitor + 90)
    r["rehome_ms"] = round((rh.host - t_back) * 1000)
    rig.wait("standby_up", rh.host, 60)
    return r


# Issue 16's targets for a boot during an outage with stored state (no public figure for
# real phones): the SRST router reached within 5 s of the boot when the WAN is silent, 2 s
# when it answers ICMP unreachable.
BOOT_TARGET_S = {"unreachable": 2.0}
BOOT_TARGET_DEFAULT_S = 5.0
BOOT_BEFORE = {"blackhole": "23.30 s", "unreachable": "2.42 s"}    # medians before the change


def _target(r: dict) -> str:
    if r["kind"] == "cm_reset":
        return "no public figure"
    return _verdict(r["kind"], max(x["registered_ms"] for x in r["runs"]))


def _verdict(kind: str, worst_ms: float) -> str:
    """A boot row's worst against its target (BOOT_TARGET_S)."""
    limit = BOOT_TARGET_S.get(kind, BOOT_TARGET_DEFAULT_S)
    return f"target < {limit:g} s: {'pass' if worst_ms / 1000 < limit else 'MISS'}"


def run(quick: bool) -> dict:
    return summarize(_rig.parallel_in_step(worker, plan(quick), 6))


def summarize(results: list[dict]) -> dict:
    rows: list[list] = []
    errors = [r["error"] for r in results if "error" in r and "runs" not in r]
    ok: list[dict] = []                 # one entry per measure: its labs' runs together
    for r in results:
        if "runs" not in r:
            continue
        errors += r["errors"]
        same = next((m for m in ok if (m["what"], m["label"]) == (r["what"], r["label"])), None)
        if same is None:
            ok.append({**r, "runs": list(r["runs"])})
        else:
            same["runs"] += r["runs"]
    detail: dict[str, Any] = {"rehome": [], "boot_outage": []}
    for r in ok:
        if r["what"] != "rehome":
            continue
        st = _rig.stats([x["rehome_ms"] for x in r["runs"]])
        over = _rig.stats([x["rehome_ms"] - r["monitor"] * 1000 for x in r["runs"]])
        rows.append([f"re-home, {r['label']}", st["n"], _rig.sec(st["median"]),
                     _rig.sec(st["worst"]), f"+{_rig.sec(over['median'])} over the duration",
                     "after 120 s default"])
        detail["rehome"].append({**{k: r[k] for k in ("label", "monitor", "outage_s")},
                                 "rehome": st, "overhead": over, "runs": r["runs"]})
    for r in ok:
        if r["what"] != "boot_outage":
            continue
        st = _rig.stats([x["registered_ms"] for x in r["runs"]])
        prov = _rig.stats([x["provisioned_ms"] for x in r["runs"]])
        links = sorted({str(x["link"]) for x in r["runs"]})
        offline = sum(1 for x in r["runs"] if x["offline"])
        rows.append([f"boot during outage ({r['label']})", st["n"], _rig.sec(st["median"]),
                     _rig.sec(st["worst"]),
                     f"provisioned after {_rig.sec(prov['median'])} (offline {offline}/"
                     f"{st['n']}), registered with {'/'.join(links)}", _target(r)])
        detail["boot_outage"].append({"label": r["label"], "kind": r["kind"],
                                      "registered": st, "runs": r["runs"]})
    notes = [
        "Re-home: from the WAN restore to the board's rehomed line. Real phones re-home after "
        "connectionMonitorDuration (120 s by default), so the column to read is the overhead: "
        "the wait for the next probe to get through (a probe's TCP connect still pending "
        "gets through at its next SYN retransmission, 1 s then 2 s apart; otherwise the "
        "retry backoff, 1 s doubling to 30 s while the WAN is down) plus the Register over "
        "the already open probe session. So the overhead is 0.1-1.2 s, by where the restore "
        "falls in that rhythm.",
        "Boot: the board's own clock from its boot event (cold boots: bench/boot.py).",
        "Boot during an outage, default settings, configuration stored: TFTP is given up "
        "after tftp_stored_wait_ms (1.5 s) of silence or at its ICMP error; the standby "
        "session to the SRST router opens beside the call-manager attempt, and the phone "
        "registers over it once the call manager has not completed TCP in boot_race_ms "
        "(1.5 s) or its host answered ICMP host unreachable (docs/failover.md). Targets "
        "(issue 16): 5 s silent, 2 s with ICMP. The re-home column of such a boot is the "
        "restart TFTP's return brings (phone.tftpwatch); cm_reset leaves TFTP reachable.",
    ]
    if errors:
        notes.append(f"{len(errors)} run(s) not counted: " + "; ".join(errors[:3]))
    return {"title": "Re-home vs connectionMonitorDuration; boot during an outage (virtual board)",
            "columns": ["measure", "runs", "median", "worst", "detail", "real phones"],
            "rows": rows, "notes": notes, "detail": detail, "errors": errors,
            "firmware": _rig.revision()}


PLACE = "together"


def headline(res: dict) -> list[tuple[str, str, str]]:
    d = res.get("detail", {})
    out = []
    for r in d.get("rehome", []):
        if r.get("outage_s", 0) <= 2:
            out.append((f"re-home after the WAN is back, connectionMonitorDuration {r['monitor']} s",
                        f"duration + {_rig.sec(r['overhead']['median'])} (worst +"
                        f"{_rig.sec(r['overhead']['worst'])})", "real phones: after 120 s by default"))
    for b in d.get("boot_outage", []):
        if b["label"] in ("blackhole", "unreachable"):
            how = "a silent outage" if b["label"] == "blackhole" else "an outage with ICMP unreachable"
            out.append((f"boot during {how} -> registered with SRST (configuration stored)",
                        f"median {_rig.sec(b['registered']['median'])}, worst "
                        f"{_rig.sec(b['registered']['worst'])}",
                        f"{_verdict(b['label'], b['registered']['worst'])} "
                        f"(was {BOOT_BEFORE[b['label']]} at firmware d605e2b)"))
    return out
