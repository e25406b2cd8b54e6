"""A fleet run's figures as text: one summary table row per run (bench), and the lines
`phonelab fleet` prints under it (bottleneck, failures)."""
from __future__ import annotations

from typing import Any

from host_tools.lab import perphone

# Issue 16's targets for a fleet (docs/fleet.md): every phone on the SRST router within 10 s of
# the WAN cut; under 150 KB of memory per phone, both in the phones' own processes and in the
# simulators' (the lab process). The simulators' anchor: their RSS per phone when it was opened.
SRST_TARGET_S = 10.0
MEMORY_TARGET_KB = 150.0
SIMULATORS_ANCHOR_KB = 597

COLUMNS = ["N", "P", "reg", "reg/s", "peak/s", "all reg s", "all sby s", "SRST", "all SRST s",
           "SRST<=10s", "heap KB/ph", "RSS KB/ph", "sim KB/ph", "mem<150KB", "fail"]
LEGEND = ("N phones in P MicroPython processes; reg: registered with the call manager; reg/s: "
          "average over the boot, peak/s: most in any 1 s; all reg s / all sby s: from the start "
          "until every phone is registered / has its standby session to the SRST router; SRST: "
          "phones on the SRST router after the WAN cut, all SRST s: cut -> the last one; "
          "SRST<=10s: every phone there within 10 s of the cut (target); heap KB/ph: MicroPython "
          "heap per phone with both links up; RSS KB/ph: the MicroPython processes' RSS per "
          "phone; sim KB/ph: the lab simulators' process RSS per phone; mem<150KB: both under "
          "150 KB (target); fail: phones that missed a step")


def _kb(b: float | None) -> str:
    return "-" if b is None else f"{b / 1024:.1f}"


def _v(x: Any) -> str:
    return "-" if x is None else str(x)


def _pass(ok: bool | None) -> str:
    return "-" if ok is None else ("pass" if ok else "FAIL")


def verdict(res: dict[str, Any]) -> dict[str, str]:
    """A run against issue 16's targets, "pass", "FAIL" or "-" (no such figure): `srst`,
    every phone on the SRST router within SRST_TARGET_S of the cut (a phone that never got
    there fails it); `phones_memory` / `simulators_memory`, RSS per phone under
    MEMORY_TARGET_KB in the MicroPython processes / the lab process; `memory`, both."""
    f = res.get("failover") or {}
    srst = None
    if res.get("fail_over"):
        t = f.get("all_on_srst_s")
        srst = (t is not None and f.get("on_srst") == res.get("phones")
                and t <= SRST_TARGET_S)
    kb = ((res.get("memory") or {}).get("rss_per_phone_kb"),
          (res.get("host_rss_kb") or {}).get("per_phone"))
    mem = [None if x is None else x < MEMORY_TARGET_KB for x in kb]
    both = None if None in mem else all(mem)
    return {"srst": _pass(srst), "phones_memory": _pass(mem[0]),
            "simulators_memory": _pass(mem[1]), "memory": _pass(both)}


def row(res: dict[str, Any]) -> list[Any]:
    b, f, m = res.get("boot", {}), res.get("failover", {}), res.get("memory", {})
    v = verdict(res)
    return [res["phones"], res["procs"], b.get("registered", 0), _v(b.get("registrations_per_s")),
            _v(b.get("peak_registrations_per_s")), _v(b.get("all_registered_s")),
            _v(b.get("all_standby_s")),
            f.get("on_srst", "-") if res.get("fail_over") else "-",
            _v(f.get("all_on_srst_s")), v["srst"], _kb(m.get("heap_per_phone_bytes")),
            _v(m.get("rss_per_phone_kb")), _v((res.get("host_rss_kb") or {}).get("per_phone")),
            v["memory"], res.get("failure_count", "-")]


def target_line(res: dict[str, Any]) -> str:
    """The run beside issue 16's targets, each figure with its verdict."""
    f, v = res.get("failover") or {}, verdict(res)
    sim = (res.get("host_rss_kb") or {}).get("per_phone")
    srst = (f"all {res.get('phones')} phones on the SRST router in {_v(f.get('all_on_srst_s'))} s "
            f"of the cut ({f.get('on_srst', 0)} there; target <= {SRST_TARGET_S:g} s: "
            f"{v['srst']}); " if res.get("fail_over") else "")
    return (f"targets: {srst}RSS per phone, phones' processes "
            f"{_v((res.get('memory') or {}).get('rss_per_phone_kb'))} KB ({v['phones_memory']}), "
            f"simulators (lab process) {_v(sim)} KB ({v['simulators_memory']}; "
            f"{SIMULATORS_ANCHOR_KB} KB when issue 16 was opened); target < "
            f"{MEMORY_TARGET_KB:g} KB")


def cpu_line(phase: str, c: dict[str, Any] | None) -> str | None:
    if not c:
        return None
    parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(c["cores_used"].items(), key=lambda kv: -kv[1]))
    other = c.get("other_programs_cores")
    tail = f"; other programs on this machine {other:.2f}" if other is not None else ""
    return (f"CPU during {phase} ({c['seconds']} s, cores of {c['machine_cores']}): {parts}{tail}; "
            f"busiest: {c.get('busiest')}")


def notes(res: dict[str, Any]) -> list[str]:
    """What limited the run, measured: CPU per process and simulator thread, TCP counters,
    failures with reasons."""
    out = []
    for phase in ("boot", "failover"):
        line = cpu_line(phase, res.get(f"cpu_{phase}"))
        if line:
            out.append(line)
        tcp = res.get(f"tcp_{phase}")
        if tcp:
            out.append(f"TCP counters during {phase}: " + "; ".join(
                f"{host}: " + ", ".join(f"{k} {v}" for k, v in d.items()) for host, d in tcp.items()))
    b, f = res.get("boot", {}), res.get("failover", {})
    if f.get("median_on_srst_s") is not None:
        out.append(f"after the cut: first on the SRST router {f.get('first_on_srst_s')} s, median "
                   f"{f.get('median_on_srst_s')} s, last {f.get('last_on_srst_s')} s; the agents' "
                   f"failover_ms (lost -> registered) p50 {f.get('failover_ms_p50')} ms, max "
                   f"{f.get('failover_ms_max')} ms; {f.get('over_standby')} over standby")
    out.append(target_line(res))
    if res.get("open_files", {}).get("after", 1 << 30) < res.get("open_files", {}).get("needed", 0):
        out.append(f"open-files limit {res['open_files']['after']} under the "
                   f"{res['open_files']['needed']} this fleet may need (ulimit -Hn)")
    if b.get("retries"):
        why = ", ".join(f"{w} x{n}" for w, n in b.get("retry_reasons", []))
        out.append(f"boot retries {b['retries']}: {why}")
    m = res.get("memory", {})
    if m.get("heap_per_phone_bytes") is not None:
        links = (m.get("links_up_bytes") or 0) - (m.get("agent_bytes") or 0)
        out.append(f"MicroPython heap per phone {_kb(m.get('heap_per_phone_bytes'))} KB with both "
                   f"links up (identity {_kb(m.get('identity_bytes'))} KB, agent objects "
                   f"{_kb(m.get('agent_bytes'))} KB, links {_kb(links)} KB); process RSS per "
                   f"phone {m.get('rss_per_phone_kb')} KB (mbedTLS buffers are outside the heap)")
    for proc, lp in sorted(res.get("loop", {}).items()):
        out.append(f"process {proc} asyncio waits: {lp['sweeps_per_s']} I/O sweeps/s, "
                   f"{lp['sweep_share'] * 100:.0f}% of the time sweeping, "
                   f"{lp['idle_share'] * 100:.0f}% idle")
    out += kamailio_lines(res)
    out += load_lines(res)
    if res.get("failure_count"):
        out.append(f"{res['failure_count']} phones failed: " + ", ".join(
            f"{w} x{n}" for w, n in res.get("failure_reasons", [])))
    for proc, tail in (res.get("console_tail") or {}).items():
        out.append(f"process {proc} console: " + " | ".join(tail[-3:]))
    return out


def kamailio_lines(res: dict[str, Any]) -> list[str]:
    """A SIP fleet: what the Kamailio registrars counted themselves."""
    out = []
    n = res.get("phones") or 1
    for key, role, phase, start in (("kamailio_boot", "callmanager", "boot", "the boot"),
                                    ("kamailio_failover", "srst", "after the cut", "the cut")):
        k = res.get(key)
        if not k:
            continue
        shm, added = k.get("shm_used_kb"), k.get("shm_added_kb")
        out.append(f"Kamailio {role}, {phase} (its statistics, read every {k.get('poll_s')} s): "
                   f"{k.get('registered')} registered, all in {_v(k.get('all_registered_s'))} s "
                   f"({_v(k.get('registrations_per_s'))}/s), {k.get('registers_received')} "
                   f"REGISTERs received, {k.get('registers_accepted')} accepted, "
                   f"{k.get('registers_rejected')} rejected; {k.get('tcp_connections')} TCP "
                   f"connections; shared memory {shm} KB in use"
                   + (f", {added} KB more than before {start} ({added / n:.1f} KB per "
                      f"phone)" if added is not None else ""))
    for what in res.get("server_mismatch") or []:
        out.append(f"MISMATCH: {what}")
    return out


def load_lines(res: dict[str, Any]) -> list[str]:
    """Messages per phone per minute at each simulator over the run, beside a real phone's."""
    mpm = res.get("messages_per_min") or {}
    if res.get("protocol") == "sip":
        return [f"{role} Kamailio: {v.get('registers_per_phone_per_min')} REGISTERs per phone "
                f"per minute over {v.get('minutes')} min (its own count; CRLF keepalives are "
                f"not SIP requests, it counts none)" for role, v in mpm.items()
                if isinstance(v, dict) and "registers_per_phone_per_min" in v]
    found = (perphone.load_line(what, mpm.get(name)) for name, what in perphone.SERVERS)
    return [x for x in found if x]


def lines(res: dict[str, Any]) -> list[tuple[str, str]]:
    """Label/value pairs for one run (phonelab fleet's summary)."""
    b, f, m = res.get("boot", {}), res.get("failover", {}), res.get("memory", {})
    out = [("phones / processes / mode", f"{res['phones']} / {res['procs']} / {res.get('mode')} "
                                          f"({res.get('protocol', 'sccp').upper()}, timers "
                                          f"{res.get('timers')}, target {res.get('target')})"),
           ("registered with the call manager", f"{b.get('registered', 0)}/{res['phones']}"),
           ("registrations/s at boot (avg, peak 1 s)",
            f"{_v(b.get('registrations_per_s'))}, {_v(b.get('peak_registrations_per_s'))}"),
           ("all registered / all standby after", f"{_v(b.get('all_registered_s'))} s / "
                                                  f"{_v(b.get('all_standby_s'))} s")]
    kb, kf = res.get("kamailio_boot"), res.get("kamailio_failover")
    if kb:
        out.append(("Kamailio: registered at HQ, all in", f"{kb.get('registered')}/{res['phones']}, "
                    f"{_v(kb.get('all_registered_s'))} s"))
    if kf:
        out.append(("Kamailio: registered at the branch, all in",
                    f"{kf.get('registered')}/{res['phones']}, {_v(kf.get('all_registered_s'))} s"))
    if res.get("fail_over"):
        out += [("on the SRST router after the WAN cut", f"{f.get('on_srst', 0)}/{res['phones']}"),
                ("all / median on the SRST router after",
                 f"{_v(f.get('all_on_srst_s'))} s / {_v(f.get('median_on_srst_s'))} s"),
                ("failover_ms (agent: lost -> registered) p50 / max",
                 f"{_v(f.get('failover_ms_p50'))} / {_v(f.get('failover_ms_max'))} ms, "
                 f"{f.get('over_standby', 0)} over standby")]
    out += [("heap per phone", f"{_kb(m.get('heap_per_phone_bytes'))} KB"),
            ("RSS per phone (fleet / simulators)",
             f"{_v(m.get('rss_per_phone_kb'))} KB / {_v(res.get('host_rss_kb', {}).get('per_phone'))} KB"),
            ("failures", str(res.get("failure_count", "-")))]
    v = verdict(res)
    out.append(("targets: all on SRST <= 10 s / memory < 150 KB per phone (phones, simulators)",
                f"{v['srst']} / {v['phones_memory']}, {v['simulators_memory']}"))
    return out
