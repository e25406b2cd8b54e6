"""Failover: WAN cut (each kind) -> registered with the SRST router, on a virtual board in
the namespace lab, at the 30 s default keepalive and at a short one (5 s).

One lab and one board serve a whole series: cut, wait registered:srst, restore, wait until
re-homed (the agent's monitor_s setting overrides connectionMonitorDuration with 1 s so the
series moves on) and the standby link is back, then cut again at a chosen point of the
phone's probe cycle: a fraction of the cycle after a KeepAlive reached the call manager,
the fractions of a row's cuts spread evenly over the cycle (_rig.spread_phases; SIP and
demo-timer rows: a random 0.2-5.2 s pause instead). Series run in parallel processes (they
mostly wait on timers). The agent's own settings are the defaults of
firmware/phone/settings.py except monitor_s and retry_max_ms (2 s, how fast it re-probes
the call manager in fallback), which only shorten the re-home half of each cycle.

Extra rows in full mode: the probe rule switched off (probe_after_ms 0: detection then
waits for the 30 s keepalive), and the lab's demo agent timers (Lab short_timers).

The ESP32-faithful board (`virtual:olimex-esp32-poe-iso-wrover`: CPU quota at the calibrated
ESP32 speed, clock at 2000, the platform's DHCP, the profile's heap; docs/vboard.md): silent
cuts (blackhole) at the 30 s keepalive, 20 in 4 labs (quick: 3 in one lab), against the
targets: failover median under 10 s, the registration dialogue over the standby session
under 500 ms. Those labs run with the others (PLACE "together"): from the host's view the
board is timer-bound (its quota is under 1 % of a core), and the CPU-bound part of its
figures, the register step, is CPU time granted per 144 ms quota period; a busy machine
delays each grant by a scheduler slice, which shows in the worst case, so the host's load
average is recorded with the figures. BENCH_FAILOVER_BOARDS (comma-separated, or "none") names other boards.

'Register dialogue over standby' is the agent's register_ms: from its Register on the open standby
session to the end of the whole registration dialogue (RegisterAck; the opening, with
CapabilitiesRes, -> ConfigStat; LineStatReq, TimeDateReq and RegisterAvailableLines written),
after which the agent says registered (docs/decisions.md, "Issue 14: the SCCP registration
dialogue"). At host speed its worst case over every failover of the parallel labs is held to
TARGET_HOST_REGISTER_MS (issue 16).
The same series for SIP phones against Kamailio: bench/failover_sip.py."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench import _rig
from bench._rig import Rig, RigSpec
from host_tools.lab.names import WAN_KINDS as KINDS

REAL_CUT_MS = (30000, 35000)       # real phones, cable pulled, 30 s keepalive (docs/failover.md)
REAL_STANDBY_MS = (10000, 20000)   # real phones with a standby connection, after the loss
FAITHFUL = ("virtual:olimex-esp32-poe-iso-wrover",)
TARGET_FAILOVER_MS = 10000         # median, silent cut, at ESP32 speed (issue target)
TARGET_REGISTER_MS = 500           # the dialogue over the standby session, at ESP32 speed
TARGET_HOST_REGISTER_MS = 50       # the same at host speed, worst of the parallel labs
REGISTER_WHAT = ("Register -> RegisterAck, ConfigStatReq -> ConfigStat, LineStatReq, "
                 "TimeDateReq, RegisterAvailableLines")
BASE_SETTINGS = {"monitor_s": 1, "retry_max_ms": 2000}


@dataclass
class Series:
    label: str
    kind: str
    keepalive: int
    runs: int
    seed: int
    settings: dict[str, Any] = field(default_factory=dict)
    short_timers: bool = False
    spacing: tuple[float, float] = (0.2, 5.2)   # random wait before each cut (no phases), s
    start_at: float = 0.0                       # wall clock: all series begin together
    phases: list[float] | None = None           # where in the probe cycle each cut lands
    cycle_s: float = 0.0                        # (both set by _rig.spread_phases)
    board: str = "virtual"                      # "virtual:PROFILE": an ESP32-faithful board
    protocol: str = "sccp"                      # "sip": a SIP phone against Kamailio


def plan(quick: bool) -> list[Series]:
    # Full: 4 labs per series (5 runs each), so the 20 runs take about 1.5 min.
    runs, shards = (3, 1) if quick else (20, 4)
    out: list[Series] = []
    seed = 1
    for ka in (30, 5):
        for kind in KINDS:
            for part in _rig.split(runs, shards):
                out.append(Series(kind, kind, ka, part, seed, dict(BASE_SETTINGS)))
                seed += 1
    if not quick:
        for part in _rig.split(6, 6):           # each waits up to 30 s: one run per lab
            out.append(Series("blackhole, probe off", "blackhole", 30, part, seed,
                              {**BASE_SETTINGS, "probe_after_ms": 0}, spacing=(0.2, 30.2)))
            seed += 1
        for part in _rig.split(20, 4):
            out.append(Series("blackhole, demo timers", "blackhole", 5, part, seed,
                              {"monitor_s": 1}, short_timers=True))
            seed += 1
    for board in _rig.boards("BENCH_FAILOVER_BOARDS", FAITHFUL):
        for part in _rig.split(*((3, 1) if quick else (20, 4))):
            out.append(Series(f"blackhole, {_rig.board_label(board)}", "blackhole", 30, part, seed,
                              dict(BASE_SETTINGS), board=board))
            seed += 1
    _rig.spread_phases(out)     # silent cuts at stratified points of the probe cycle
    return out


def series(s: Series) -> dict:
    """One lab + board, s.runs cut/failover/restore/re-home cycles (runs in a worker)."""
    spec = RigSpec(keepalive=s.keepalive, secondary_keepalive=2 * s.keepalive,
                   short_timers=s.short_timers, settings=s.settings, board=s.board,
                   protocol=s.protocol)
    with Rig(_rig.workdir(f"failover-{s.protocol}-{s.kind}-{s.keepalive}"), spec) as rig:
        rig.wait("standby_up", rig.booted, 180 if spec.faithful else 60)
        if spec.faithful:
            rig.measure_idle_cpu()        # for the register step at the board's speed
        runs, errors, load = _rig.cycles(rig, s, _one,
                                         lambda t: rig.wait("standby_up", t, 90))
    return {"label": s.label, "kind": s.kind, "keepalive": s.keepalive, "runs": runs,
            "errors": errors, "settings": s.settings, "short_timers": s.short_timers,
            "board": s.board, "load": load, "protocol": s.protocol}


def _one(rig: Rig, s: Series) -> dict:
    r, lost = _rig.failover_cycle(rig, s.kind, s.keepalive, True, s.board)
    r["reason"] = lost[0].event.get("reason") if lost else None
    return r


ALONE = "register step, one lab alone"


def run(quick: bool) -> dict:
    results = _rig.parallel_in_step(series, plan(quick), 8)
    if not quick:
        # the register step again with the machine to the bench's one lab: the parallel
        # labs above load 2 cores to a load average of 10-20, which sets their worst case
        results.append(_rig._guard(series, Series(ALONE, "cm_reset", 30, 25, 999,
                                                  dict(BASE_SETTINGS), spacing=(0.3, 0.8))))
    return summarize(results, quick)


def summarize(results: list[dict], quick: bool) -> dict:
    rows, table, errors = tabulate(results)
    host = [t for t in table if t["board"] == "virtual" and t["label"] != ALONE]
    all_runs = [x for t in host for x in t["runs"] if not t["short_timers"]]
    reg_all = _rig.stats([x["register_ms"] for x in all_runs])
    alone = next((t for t in table if t["label"] == ALONE), None)
    reg_alone = _rig.stats([x["register_ms"] for x in alone["runs"]]) if alone else None
    step_all = _rig.stats([x["step_ms"] for x in all_runs])
    notes = _notes(host, reg_all, step_all) + _faithful_notes(table)
    if reg_alone and reg_alone["n"]:
        notes.append(f"The same dialogue with the bench's one lab alone on the machine "
                     f"({reg_alone['n']} failovers, the call manager resetting its sessions, "
                     f"host load {alone['load'][0]}-{alone['load'][1]}): median "
                     f"{reg_alone['median']} ms, worst {reg_alone['worst']} ms "
                     f"({host_verdict(reg_alone)}).")
    notes.append(_rig.load_note(table))
    if errors:
        notes.append(f"{len(errors)} run(s) not counted: " + "; ".join(errors[:3]))
    return {"title": "Failover: WAN cut -> registered with the SRST router (virtual board at "
                     "host speed and ESP32-faithful board, namespace lab)",
            "columns": COLUMNS, "rows": rows, "notes": notes, "series": table,
            "register_over_standby": reg_all, "register_alone": reg_alone,
            "failover_step": step_all, "errors": errors,
            "targets": {"failover_median_ms": TARGET_FAILOVER_MS,
                        "register_over_standby_ms": TARGET_REGISTER_MS,
                        "register_over_standby_host_ms": TARGET_HOST_REGISTER_MS},
            "firmware": _rig.revision()}


COLUMNS = ["WAN cut", "keepalive", "runs", "median", "worst", "detected",
           "register dialogue over standby", "standby", "vs real phones", "target"]


def tabulate(results: list[dict], keepalive: str | None = None,
             real_phones: bool = True) -> tuple[list[list], list[dict], list[str]]:
    """The series' runs grouped by (label, keepalive): table rows (COLUMNS; `keepalive` in
    place of the keepalive, `real_phones` False for '-' in 'vs real phones'), their figures,
    and the errors."""
    groups: dict[tuple[str, int], dict] = {}
    errors: list[str] = []
    for r in results:
        if "error" in r and "runs" not in r:
            errors.append(r["error"])
            continue
        g = groups.setdefault((r["label"], r["keepalive"]),
                              {"runs": [], "errors": [], "r": r, "load": []})
        g["runs"] += r["runs"]
        g["errors"] += r["errors"]
        g["load"] += r.get("load", [])
    rows, table = [], []
    for (label, ka), g in groups.items():
        runs = g["runs"]
        board = g["r"].get("board", "virtual")
        fo = _rig.stats([x["failover_ms"] for x in runs])
        det = _rig.stats([x["detect_ms"] for x in runs])
        step = _rig.stats([x["step_ms"] for x in runs])
        reg = _rig.stats([x["register_ms"] for x in runs])
        speed = _rig.stats([x.get("register_at_speed_ms") for x in runs])
        over = sum(1 for x in runs if x["over_standby"])
        lo, hi = REAL_STANDBY_MS if g["r"]["kind"] == "cm_reset" else REAL_CUT_MS
        real = f"{_x(lo / fo['median'])}-{_x(hi / fo['median'])}x ({lo // 1000}-{hi // 1000} s)" \
            if fo["median"] and real_phones else "-"
        rows.append([label, keepalive or f"{ka} s", fo["n"], _rig.sec(fo["median"]), _rig.sec(fo["worst"]),
                     _rig.sec(det["median"]), _reg_cell(reg, speed),
                     f"{over}/{len(runs)}", real, _target(board, fo, speed if speed["n"] else reg)])
        table.append({"label": label, "keepalive_s": ka, "board": board, "failover": fo,
                      "detect": det, "step": step, "register_over_standby": reg,
                      "register_at_speed": speed,
                      "over_standby": over, "errors": g["errors"],
                      "settings": g["r"]["settings"], "short_timers": g["r"]["short_timers"],
                      "load": [min(g["load"], default=None), max(g["load"], default=None)],
                      "protocol": g["r"].get("protocol", "sccp"), "runs": runs})
        errors += g["errors"]
    return rows, table, errors


def _reg_cell(reg: dict, speed: dict) -> str:
    cell = f"{reg['median']}/{reg['worst']} ms"
    if speed["n"]:
        cell += f" (at the board's speed: {speed['median']}/{speed['worst']} ms)"
    return cell


def _target(board: str, fo: dict, reg: dict) -> str:
    """The ESP32-speed targets, for a faithful board's series."""
    if board == "virtual" or fo["median"] is None:
        return "-"
    out = [f"median < {TARGET_FAILOVER_MS // 1000} s: "
           f"{'pass' if fo['median'] < TARGET_FAILOVER_MS else 'FAIL'}"]
    if reg["median"] is not None:
        out.append(f"register < {TARGET_REGISTER_MS} ms: "
                   f"{'pass' if reg['worst'] < TARGET_REGISTER_MS else 'FAIL'}")
    return "; ".join(out)


def _faithful_notes(table: list[dict]) -> list[str]:
    out = []
    for t in table:
        if t["board"] == "virtual" or t["failover"]["median"] is None:
            continue
        fo, reg = t["failover"], t["register_over_standby"]
        speed = t.get("register_at_speed") or {"n": 0}
        at_speed = (f"; at the board's speed (the CPU from the loss noticed to registered, "
                    f"beyond the board's rest, times the quota's slowdown) median "
                    f"{speed['median']} ms, worst {speed['worst']} ms (target: under "
                    f"{TARGET_REGISTER_MS} ms): a step "
                    f"shorter than one quota slice (1 ms of host CPU per period) runs at host "
                    f"speed, so its wall time understates an ESP32") if speed["n"] else ""
        out.append(f"{t['board']} (ESP32-faithful: CPU quota at the calibrated ESP32 speed, "
                   f"144x; docs/vboard.md), silent cut at the {t['keepalive_s']} s keepalive: "
                   f"median {_rig.sec(fo['median'])}, worst {_rig.sec(fo['worst'])} over "
                   f"{fo['n']} cuts (target: median under {TARGET_FAILOVER_MS // 1000} s); "
                   f"register dialogue over the standby session, wall time: median "
                   f"{reg['median']} ms, worst {reg['worst']} ms{at_speed}; "
                   f"{t['over_standby']}/{len(t['runs'])} over standby. Host load average "
                   f"(1 min) during its labs: {t['load'][0]}-{t['load'][1]} on 2 cores, with "
                   f"the other failover labs (and the benchmarks of the same PLACE) running.")
    return out


def _defaults() -> tuple[int, int, int]:
    """The firmware's probe rule: (probe_after_ms, ack_timeout_ms, max_missed)."""
    import host_tools.fw  # noqa: F401 - puts firmware/ on sys.path
    from phone.settings import DEFAULTS  # type: ignore[import-not-found]
    return DEFAULTS["probe_after_ms"], DEFAULTS["ack_timeout_ms"], DEFAULTS["max_missed"]


def _defaults_text() -> str:
    p, a, m = _defaults()
    return f"probe_after_ms {p}, ack_timeout_ms {a}, max_missed {m}"


def _load(res: dict) -> str:
    loads = [x for t in res.get("series", []) if t["label"] != ALONE
             for x in t.get("load", []) if x is not None]
    return f"{min(loads)}-{max(loads)}" if loads else "?"


def host_verdict(reg: dict) -> str:
    """The host-speed dialogue's worst case against its target (issue 16)."""
    ok = reg["worst"] is not None and reg["worst"] < TARGET_HOST_REGISTER_MS
    return f"target: worst < {TARGET_HOST_REGISTER_MS} ms, {'pass' if ok else 'FAIL'}"


def _x(r: float) -> str:
    return f"{r:,.0f}" if r >= 10 else f"{r:.1f}"


def _notes(table: list[dict], reg: dict, step: dict) -> list[str]:
    by = {(t["label"], t["keepalive_s"]): t for t in table}
    out = ["median/worst: from the moment the cut was in force to the board's "
           "registered:srst line; 'detected': median to its primary_lost line; 'register "
           "dialogue over standby': the agent's Register on the open standby session -> the "
           f"whole registration dialogue done ({REGISTER_WHAT}), median/worst; 'standby': "
           "failovers that used the standby session.",
           "Real phones (docs/failover.md): 30-35 s for a silent cut at the 30 s keepalive; "
           "cm_reset (connections reset) is noticed at once by both, so it is compared with "
           "their 10-20 s from noticing to registered over a standby connection.",
           f"Agent settings: firmware defaults ({_defaults_text()}) with monitor_s 1 and "
           f"retry_max_ms 2000 to shorten each cycle's re-home; silent cuts land at evenly "
           f"spread points of the probe cycle (the median is the cycle's)."]
    silent = [t["failover"]["worst"] for t in table if t["settings"].get("probe_after_ms") is None
              and not t["short_timers"] and not t["label"].startswith("cm_reset")
              and t["failover"]["worst"] is not None]
    if silent:
        p, a, m = _defaults()
        out.append(f"Silent cuts, worst of all: {_rig.sec(max(silent))}; the probe rule's "
                   f"bound is {p / 1000:g} + {m} x {a / 1000:g} = {(p + m * a) / 1000:g} s "
                   f"(docs/failover.md) plus the register step.")
    a, b = by.get(("blackhole", 30)), by.get(("blackhole", 5))
    if a and b and a["failover"]["median"] and b["failover"]["median"]:
        out.append(f"Blackhole median {_rig.sec(a['failover']['median'])} at the 30 s "
                   f"keepalive vs {_rig.sec(b['failover']['median'])} at 5 s: the probe "
                   f"after {_defaults()[0] / 1000:g} s of silence sets the pace at 30 s, the "
                   f"KeepAlive itself at 5 s.")
    off = by.get(("blackhole, probe off", 30))
    if off and off["failover"]["median"]:
        out.append(f"With the probe off (probe_after_ms 0) the same cut waits for the 30 s "
                   f"keepalive: median {_rig.sec(off['failover']['median'])}, worst "
                   f"{_rig.sec(off['failover']['worst'])} over {off['failover']['n']} runs.")
    demo = by.get(("blackhole, demo timers", 5))
    if demo and demo["failover"]["median"]:
        out.append(f"Lab demo agent timers (probe 1.5 s, ack 1 s): blackhole median "
                   f"{_rig.sec(demo['failover']['median'])}, worst "
                   f"{_rig.sec(demo['failover']['worst'])}.")
    if reg["median"] is not None:
        out.append(f"The registration dialogue over the open standby TLS session, whole "
                   f"({REGISTER_WHAT}), every host-speed failover of the labs running in "
                   f"parallel: median {reg['median']} ms, worst {reg['worst']} ms over "
                   f"{reg['n']} failovers ({host_verdict(reg)}); loss noticed -> registered: "
                   f"median {step['median']} ms, worst {step['worst']} ms, against 10-20 s for "
                   f"real phones with a standby connection "
                   f"({REAL_STANDBY_MS[0] / max(1, step['worst']):,.0f}x or more).")
    out.append("Host CPU, not an ESP32: the step is two SCCP round trips on an open TLS "
               "session (no handshake); detection is timer-bound and the same on a board. The "
               "ESP32-faithful board's rows measure both at ESP32 speed.")
    return out


PLACE = "together"


def headline(res: dict) -> list[tuple[str, str, str]]:
    by = {(t["label"], t["keepalive_s"]): t for t in res.get("series", [])}
    out = []

    def fig(t: dict) -> str:
        return f"median {_rig.sec(t['failover']['median'])}, worst {_rig.sec(t['failover']['worst'])}"

    def vs(t: dict, lo: int, hi: int) -> str:
        m = t["failover"]["median"]
        return f"{lo // 1000}-{hi // 1000} s ({_x(lo / m)}-{_x(hi / m)}x faster)" if m else "-"

    for kind, what in (("blackhole", "silent WAN cut (blackhole)"), ("unreachable", "ICMP unreachable"),
                       ("link_down", "link down")):
        t = by.get((kind, 30))
        if t:
            out.append((f"{what} -> registered with SRST, 30 s keepalive, {t['failover']['n']} runs",
                        fig(t), "real phones " + vs(t, *REAL_CUT_MS)))
    t = by.get(("cm_reset", 30))
    if t:
        out.append(("call manager resets its connections -> registered with SRST", fig(t),
                    "real phones with standby " + vs(t, *REAL_STANDBY_MS)))
    reg = res.get("register_over_standby") or {}
    if reg.get("median") is not None:
        out.append((f"register over the open standby session, the whole dialogue "
                    f"({REGISTER_WHAT}), {reg['n']} failovers of parallel labs at host speed",
                    f"median {reg['median']} ms, worst {reg['worst']} ms",
                    f"{host_verdict(reg)} (host load average {_load(res)} on 2 cores); "
                    f"no TLS handshake"))
    alone = res.get("register_alone") or {}
    if alone.get("median") is not None:
        out.append((f"the same dialogue, one lab alone on the machine, {alone['n']} failovers",
                    f"median {alone['median']} ms, worst {alone['worst']} ms",
                    host_verdict(alone)))
    t = by.get(("blackhole, probe off", 30))
    if t:
        out.append(("silent cut with the probe rule off (keepalive only)", fig(t),
                    "real phones " + vs(t, *REAL_CUT_MS)))
    for t in res.get("series", []):
        if t.get("board", "virtual") == "virtual" or not t["failover"]["median"]:
            continue
        name = _rig.board_label(t["board"])
        fo, reg = t["failover"], t["register_over_standby"]
        out.append((f"silent WAN cut -> registered with SRST, {t['keepalive_s']} s keepalive, "
                    f"{name} at ESP32 speed, {fo['n']} cuts", fig(t),
                    f"target: median < {TARGET_FAILOVER_MS // 1000} s "
                    f"({'pass' if fo['median'] < TARGET_FAILOVER_MS else 'FAIL'})"))
        speed = t.get("register_at_speed") or {"n": 0}
        if speed["n"]:
            out.append((f"register dialogue over the open standby session, {name} at ESP32 "
                        f"speed (its CPU x the quota's slowdown), {speed['n']} failovers",
                        f"median {speed['median']} ms, worst {speed['worst']} ms "
                        f"(wall {reg['median']}/{reg['worst']} ms)",
                        f"target: < {TARGET_REGISTER_MS} ms "
                        f"({'pass' if speed['worst'] < TARGET_REGISTER_MS else 'FAIL'})"))
        elif reg["median"] is not None:
            out.append((f"register over the open standby session, {name} at ESP32 speed, "
                        f"{reg['n']} failovers", f"median {reg['median']} ms, worst "
                        f"{reg['worst']} ms", f"target: < {TARGET_REGISTER_MS} ms "
                        f"({'pass' if reg['worst'] < TARGET_REGISTER_MS else 'FAIL'})"))
    return out
