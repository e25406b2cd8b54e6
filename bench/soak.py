"""Soak: N failover/re-home cycles on one virtual board with short timers, the WAN kinds in
turn (blackhole, unreachable, link_down, cm_reset). Per block of cycles: the heap in use
after a collection at each re-home (min/median/max), failover and re-home medians, cycles
that got stuck. At the end: the store files (state/) hashed against their hashes after the
first registration, and one boot from them during an outage (the store still works).

Cycles: 20 quick, 100 full (about 2.7 s each: 5 min, beside the other benchmarks), 1,000 with
--long or BENCH_SOAK_CYCLES=1000 (about 45 min). Heap figures per 100 cycles from 500 cycles
up, else per fifth of the run (per 10 cycles at least).

The heap figures are the agent's own: every `rehomed` event carries the heap in use after a
collection (`heap_used`, `heap_free`); the board runs the firmware's main.py unchanged."""
from __future__ import annotations

import os
import random
import statistics
import time
from typing import Any

from bench import _rig
from bench._rig import Rig, RigError, RigSpec
from host_tools.lab.names import WAN_KINDS as KINDS

SETTINGS = {"probe_after_ms": 300, "ack_timeout_ms": 300, "max_missed": 2,
            "retry_min_ms": 100, "retry_max_ms": 400, "monitor_s": 0}


def cycles_for(quick: bool) -> int:
    env = os.environ.get("BENCH_SOAK_CYCLES")
    if env:
        return max(1, int(env))
    return 20 if quick else 100


def run(quick: bool) -> dict:
    n = cycles_for(quick)
    block = 100 if n >= 500 else max(10, n // 5)     # per 100 cycles in the long run
    spec = RigSpec(short_timers=True, settings=SETTINGS)
    rng = random.Random(11)
    rev = _rig.revision()                  # what the board runs: installed at the start
    cycles: list[dict] = []
    t0 = time.monotonic()
    with Rig(_rig.workdir("soak"), spec) as rig:
        first = rig.wait("standby_up", rig.booted, 60)
        before = rig.store_hashes()
        agent_start = rig.since(rig.booted, "agent_start")
        t_loop = time.monotonic()
        for i in range(n):
            time.sleep(rng.uniform(0.0, 0.2))
            cycles.append(_cycle(rig, KINDS[i % len(KINDS)]))
            if (i + 1) % block == 0 or i + 1 == n:      # progress: a long run is 45 min
                part = cycles[-block:]
                heaps = [c["heap_used"] for c in part if c.get("heap_used") is not None]
                med = round(statistics.median(heaps)) if heaps else None
                print(f"soak: {i + 1}/{n} cycles, {(time.monotonic() - t_loop) / 60:.1f} min; "
                      f"last {len(part)}: heap median {_kb(med)}, "
                      f"{sum(1 for c in part if 'stuck' in c)} stuck", flush=True)
        loop_s = time.monotonic() - t_loop
        after = rig.store_hashes()
        servers = rig.lab.status()["phones"]
        reboot = _boot_from_store(rig)
        registrations = len(rig.since(first.host, "registered"))
        tracebacks = sum(1 for line in rig.tap.text if "Traceback" in line)
    res = summarize(cycles, block, before, after, reboot, servers, registrations, tracebacks,
                    agent_start[0].event.get("heap_used") if agent_start else None,
                    time.monotonic() - t0, loop_s, quick)
    res["firmware"] = rev
    return res


def _cycle(rig: Rig, kind: str) -> dict:
    c: dict[str, Any] = {"kind": kind}
    try:
        t_cut = rig.cut(kind)
        reg = rig.wait("registered:srst", rig.cut_began, 30)
        c["failover_ms"] = round((reg.host - t_cut) * 1000)
        c["over_standby"] = bool(reg.event.get("over_standby"))
        time.sleep(0.1)
        t_back = rig.restore()
        rh = rig.wait("rehomed", t_back, 30)
        c["rehome_ms"] = round((rh.host - t_back) * 1000)
        c["heap_used"] = rh.event.get("heap_used")
        c["heap_free"] = rh.event.get("heap_free")
        rig.wait("standby_up", rh.host, 30)
    except RigError as e:
        c["stuck"] = str(e)
        c["state"] = rig.state()
        try:
            rig.wait("standby_up", rig.restore(), 90)
            c["recovered"] = True
        except RigError:
            c["recovered"] = False
            raise
    return c


def _boot_from_store(rig: Rig) -> dict:
    """Cut the WAN, restart: the phone must provision from its store and reach SRST."""
    try:
        rig.cut("blackhole")
        boot = rig.wait("boot", rig.reboot(), 30)
        reg = rig.wait("registered:srst", boot.host, 90)
        prov = rig.since(boot.host, "provisioned")
        rejected = rig.since(boot.host, "config_rejected") + rig.since(boot.host, "ctl_rejected")
        t_back = rig.restore()
        rig.wait("rehomed", t_back, 60)
        return {"ok": bool(prov and prov[0].event.get("offline")) and not rejected,
                "offline": bool(prov and prov[0].event.get("offline")),
                "registered_ms": reg.event.t - boot.event.t, "rejected": len(rejected)}
    except RigError as e:
        return {"ok": False, "error": str(e)}


def summarize(cycles: list[dict], block: int, before: dict, after: dict, reboot: dict,
              servers: dict, registrations: int, tracebacks: int, start_heap: int | None,
              seconds: float, loop_s: float, quick: bool) -> dict:
    rows, blocks = [], []
    for i in range(0, len(cycles), block):
        part = cycles[i:i + block]
        heaps = [c["heap_used"] for c in part if c.get("heap_used") is not None]
        fo = _rig.stats([c.get("failover_ms") for c in part if "failover_ms" in c])
        rh = _rig.stats([c.get("rehome_ms") for c in part if "rehome_ms" in c])
        stuck = sum(1 for c in part if "stuck" in c)
        b = {"cycles": f"{i + 1}-{i + len(part)}", "heap_min": min(heaps, default=None),
             "heap_median": round(statistics.median(heaps)) if heaps else None,
             "heap_max": max(heaps, default=None), "failover": fo, "rehome": rh, "stuck": stuck}
        blocks.append(b)
        rows.append([b["cycles"], _kb(b["heap_min"]), _kb(b["heap_median"]), _kb(b["heap_max"]),
                     _rig.sec(fo["median"]), _rig.sec(fo["worst"]), _rig.sec(rh["median"]), stuck])
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    first = blocks[0]["heap_median"] if blocks else None
    last = blocks[-1]["heap_median"] if blocks else None
    growth = (last - first) if first is not None and last is not None else None
    stuck = sum(1 for c in cycles if "stuck" in c)
    over = sum(1 for c in cycles if c.get("over_standby"))
    notes = [
        f"{len(cycles)} cycles in {seconds / 60:.1f} min"
        + ("" if len(cycles) >= 1000 else
           f"; 1,000 cycles: python -m bench --long --only soak (about "
           f"{loop_s / max(1, len(cycles)) * 1000 / 60:.0f} min at "
           f"{loop_s / max(1, len(cycles)):.1f} s per cycle)")
        + f"; {over} failovers over the standby session, {stuck} stuck.",
        f"Heap in use after a collection at each re-home: first block median {_kb(first)}, last "
        f"{_kb(last)} ({'+' if (growth or 0) >= 0 else ''}{growth if growth is not None else '-'} "
        f"bytes); at agent start {_kb(start_heap)}.",
        f"Store files (state/): {len(after)} files, "
        + ("unchanged after the soak" if not changed else f"CHANGED: {', '.join(changed)}")
        + "; boot from them during an outage: "
        + (f"provisioned offline, SRST after {reboot.get('registered_ms')} ms" if reboot.get("ok")
           else f"FAILED {reboot}") + ".",
        f"Registrations seen: {registrations} (2 per cycle expected: SRST, then the call "
        f"manager); lab after the cycles: {servers}; tracebacks on the console: {tracebacks}.",
        "Agent settings: probe_after_ms {probe_after_ms}, ack_timeout_ms {ack_timeout_ms}, retry "
        "{retry_min_ms}-{retry_max_ms} ms, monitor_s 0 (re-home as soon as the call manager "
        "answers), lab keepalive 5 s.".format(**SETTINGS),
    ]
    return {"title": f"Soak: {len(cycles)} failover/re-home cycles on one virtual board",
            "columns": ["cycles", "heap min", "heap median", "heap max", "failover median",
                        "failover worst", "re-home median", "stuck"],
            "rows": rows, "notes": notes, "blocks": blocks, "cycles": cycles,
            "store_changed": changed, "store_files": sorted(after), "boot_from_store": reboot,
            "heap_growth_bytes": growth, "stuck": stuck, "registrations": registrations,
            "tracebacks": tracebacks}


def _kb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:.1f} KB"


PLACE = "background"    # one board on timers, alongside the rest: heap and stuck states


def headline(res: dict) -> list[tuple[str, str, str]]:
    blocks = res.get("blocks", [])
    per = ", ".join(f"{b['cycles']}: {_kb(b['heap_median'])}" for b in blocks[:10])
    growth = res.get("heap_growth_bytes")
    reboot = res.get("boot_from_store", {})
    return [(f"{len(res.get('cycles', [])):,} failover/re-home cycles on one board, heap median per block",
             f"{'+' if (growth or 0) >= 0 else ''}{growth} bytes first to last block ({per})",
             f"{res.get('stuck')} stuck; store "
             + ("unchanged" if not res.get("store_changed") else "CHANGED")
             + ("; boots from it during an outage" if reboot.get("ok") else "; boot from store FAILED"))]
