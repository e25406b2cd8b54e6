"""CPU calibration of the virtual board: which cgroup CPU quota makes the MicroPython unix
port here score what an ESP32 scores, on MicroPython's own benchmark (tests/perf_bench of
the MicroPython source, run by our harness bench/_mp_cpubench.py with the score of
run-perfbench.py: 1e6 * norm / microseconds, pystones per second for misc_pystone.py).

Published figures (PUBLISHED below): MicroPython commit 549448e8bbc8 "esp32: Enable
optimisations and move code to iRAM to boost performance" (Damien George, 2021-09-24),
run-perfbench.py N=100 M=100 on a TinyPICO, GENERIC build, ESP-IDF 4.2.2, 160 MHz (the
ESP32 port's default clock): misc_pystone.py 1801.87, bm_pidigits.py 664.40.

Steps: the host's score unthrottled (best of several runs: other work on the machine only
slows it); factor = host / ESP32; then misc_pystone under the quota, adjusting the period by
measured / published (the relation is not exactly linear: each 1 ms slice starts with cold
caches, and how cold depends on what else the machine runs; see calibrate()). Then
bm_pidigits under the calibrated quota (how far a workload of another kind lands), and the
distortion of a budget-per-period quota: bursts of fixed work after idle, at quota 1 ms and
10 ms (docs/vboard.md, "CPU speed").

    python -m host_tools.vboard.cpuquota --calibrate --write   # -> vboard/cpu_profiles.json
    python -m bench --only cpu_calibration                      # figures only, out/bench/

The perf_bench files are MicroPython's, not ours: `--perf-bench DIR` or MICROPY_PERF_BENCH
names the folder (a MicroPython checkout's tests/perf_bench); build/perf_bench and
build/micropython/tests/perf_bench are looked in by default."""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from host_tools import micropython
from host_tools.vboard import cpuquota
from host_tools.vboard.cpuquota import CpuQuotaError, Quota

PLACE = "alone"     # a CPU figure: nothing else of ours on the machine
SCRIPT = Path(__file__).with_name("_mp_cpubench.py")
HEAP = "96K"
RUNS, RUNS_QUICK = 6, 3     # runs under the quota that set the period
PERF_BENCH_ENV = "MICROPY_PERF_BENCH"
DEFAULT_DIRS = (Path("build/perf_bench"), Path("build/micropython/tests/perf_bench"))
SOURCE = ("MicroPython commit 549448e8bbc8 (esp32: Enable optimisations and move code to "
          "iRAM to boost performance, 2021-09-24): run-perfbench.py N=100 M=100, TinyPICO, "
          "GENERIC build, ESP-IDF 4.2.2, 160 MHz")
PUBLISHED = {
    "esp32@160": {"chip": "esp32", "mhz": 160, "misc_pystone": 1801.87,
                  "bm_pidigits": 664.40, "source": SOURCE},
}
# Chips without a published figure of their own, run at a calibrated one's speed.
ALIASES = {"esp32s3@160": "esp32@160"}
PIDIGITS = 65           # digits per loop at N=100 M=100, as the published score used
BURST_MS = (5, 20, 50, 100, 200, 500, 1000)   # ESP32 milliseconds of pystone work


class CalibrationError(RuntimeError):
    pass


def find_perf_bench(given: str | Path | None = None) -> Path:
    env = os.environ.get(PERF_BENCH_ENV)
    cands = [Path(given)] if given else ([Path(env)] if env else list(DEFAULT_DIRS))
    for d in cands:
        if (d / "misc_pystone.py").is_file() and (d / "bm_pidigits.py").is_file():
            return d.resolve()
    raise CalibrationError(
        "MicroPython's perf_bench not found in " + ", ".join(map(str, cands)) +
        f": clone the MicroPython source into build/micropython or set {PERF_BENCH_ENV} "
        "to its tests/perf_bench")


def measure(bench: Path, params: list[int], reps: int = 1, quota: Quota | None = None,
            bursts: list[list[int]] | None = None, timeout: float = 600) -> dict:
    """One interpreter run of a perf_bench module; under `quota` if given (applied after the
    interpreter has started). Returns {"scores": [...], "us": [...], "bursts_us": [...]}."""
    with tempfile.TemporaryDirectory(prefix="phonelab-cpucal-") as tmp:
        args = Path(tmp) / "args.json"
        args.write_text(json.dumps({"bench": str(bench), "params": params, "reps": reps,
                                    "bursts": bursts or []}))
        cmd = [micropython.interpreter(), "-X", f"heapsize={HEAP}", str(SCRIPT), str(args)]

        def fail(said: str) -> Exception:
            return CalibrationError(f"{bench.name}: the interpreter said {said!r}")

        with cpuquota.ready_go(cmd, quota, fail) as stdout:
            out: dict = {"scores": [], "us": [], "bursts_us": []}
            deadline = time.monotonic() + timeout
            for line in stdout:
                rec = json.loads(line)
                if "error" in rec:
                    raise CalibrationError(f"{bench.name}: {rec['error']}")
                if rec.get("done"):
                    break
                if "burst" in rec:
                    out["bursts_us"].append(rec["us"])
                else:
                    out["us"].append(rec["us"])
                    out["scores"].append(1e6 * rec["norm"] / rec["us"])
                if time.monotonic() > deadline:
                    raise CalibrationError(f"{bench.name}: no result within {timeout:.0f} s")
            return out


def host_info() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ver = subprocess.run([micropython.interpreter(), "-c",
                          "import sys; print(sys.version.split(';')[1].strip())"],
                         capture_output=True, text=True).stdout.strip()
    return {"cpu": model, "cores": os.cpu_count(), "kernel": platform.release(),
            "micropython": ver, "load_avg": [round(x, 2) for x in os.getloadavg()],
            "measured": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def min_quota_us(backend: cpuquota.Backend) -> int:
    """The smallest quota the kernel takes, probed on a scratch group."""
    probe = backend.root / f"{cpuquota.PREFIX}probe-{os.getpid()}"
    probe.mkdir()
    try:
        for q in (100, 500, 900, 999, 1000):
            try:
                backend.write_quota(probe, Quota(q, 100_000))
                return q
            except OSError:
                continue
        return 1000
    finally:
        probe.rmdir()


def host_scores(perf: Path, quick: bool) -> dict:
    reps = 3 if quick else 5
    probe = measure(perf / "misc_pystone.py", [2000])["scores"][0]
    loops = max(2000, int(probe * (0.3 if quick else 0.6)))
    py = measure(perf / "misc_pystone.py", [loops], reps=reps)["scores"]
    probe = measure(perf / "bm_pidigits.py", [2, PIDIGITS])["scores"][0]
    nloop = max(2, int(probe * (0.3 if quick else 0.6) / PIDIGITS))
    pi = measure(perf / "bm_pidigits.py", [nloop, PIDIGITS], reps=reps)["scores"]
    return {"misc_pystone": round(max(py), 1), "misc_pystone_runs": [round(s) for s in py],
            "bm_pidigits": round(max(pi), 1), "bm_pidigits_runs": [round(s) for s in pi]}


def calibrate(profile: str, perf: Path, host: dict, quick: bool = False) -> dict:
    """Runs of misc_pystone under the quota, each at the period the runs so far point to.
    A run's score times its period is the host's speed in 1 ms slices (k); the period is the
    median k over the ESP32's score: the median, because on a shared machine a slice's speed
    swings by +-10 % with what else runs (cold caches after each wait)."""
    pub = PUBLISHED[profile]
    target = pub["misc_pystone"]
    seconds = 4 if quick else 8
    loops = int(target * seconds)
    ks = [host["misc_pystone"] * cpuquota.MIN_US / 1e6]   # first guess: the unthrottled speed
    steps = []
    for i in range(RUNS_QUICK if quick else RUNS):
        q = Quota.for_factor(statistics.median(ks[1:] or ks) * 1e6 / cpuquota.MIN_US / target)
        score = measure(perf / "misc_pystone.py", [loops], quota=q)["scores"][0]
        steps.append({"period_us": q.period_us, "quota_us": q.quota_us, "pystone": round(score, 1)})
        ks.append(score * q.factor * cpuquota.MIN_US / 1e6)
    q = Quota.for_factor(statistics.median(ks[1:]) * 1e6 / cpuquota.MIN_US / target)
    check = measure(perf / "misc_pystone.py", [loops], quota=q)["scores"][0]
    nloop = max(2, int(pub["bm_pidigits"] * seconds / PIDIGITS))
    pidigits = measure(perf / "bm_pidigits.py", [nloop, PIDIGITS], quota=q)["scores"][0]
    spread = [round(k * 1e6 / cpuquota.MIN_US / q.factor) for k in ks[1:]]
    return {
        "chip": pub["chip"], "mhz": pub["mhz"],
        "quota_us": q.quota_us, "period_us": q.period_us, "factor": round(q.factor, 2),
        "published": {k: pub[k] for k in ("misc_pystone", "bm_pidigits", "source")},
        "host_factor": round(host["misc_pystone"] / target, 1),
        "under_quota": {"misc_pystone": round(check, 1), "bm_pidigits": round(pidigits, 1),
                        "misc_pystone_range": [min(spread), max(spread)]},
        "steps": steps,
    }


def distortion(perf: Path, cal: dict, target: float) -> list[dict]:
    """Fixed work (BURST_MS of ESP32 time, in pystone loops) after 300 ms idle, under the
    calibrated quota (1 ms slices) and under the same factor with 10 ms slices."""
    loops = [max(1, round(target * ms / 1000)) for ms in BURST_MS]
    rows = []
    for quota_us in (cal["quota_us"], cal["quota_us"] * 10):
        q = Quota(quota_us, round(cal["period_us"] * quota_us / cal["quota_us"]))
        if q.period_us > cpuquota.MAX_PERIOD_US:
            continue
        got = measure(perf / "misc_pystone.py", [1], quota=q,
                      bursts=[[300, n] for n in loops])["bursts_us"]
        for ms, n, us in zip(BURST_MS, loops, got):
            rows.append({"quota_us": q.quota_us, "period_us": q.period_us, "esp32_ms": ms,
                         "loops": n, "wall_ms": round(us / 1000, 1)})
    return rows


def calibrate_all(perf: Path, quick: bool = False, profiles: list[str] | None = None) -> dict:
    backend = cpuquota.detect()
    host = host_info()
    host["backend"] = backend.kind
    host["min_quota_us"] = min_quota_us(backend)
    host.update(host_scores(perf, quick))
    res: dict = {"host": host, "aliases": dict(ALIASES), "profiles": {}}
    for name in profiles or list(PUBLISHED):
        res["profiles"][name] = calibrate(name, perf, host, quick)
    first = next(iter(res["profiles"]))
    res["distortion"] = distortion(perf, res["profiles"][first], PUBLISHED[first]["misc_pystone"])
    return res


def write_profiles(res: dict, path: Path = cpuquota.PROFILES) -> None:
    data = {
        "about": "CPU quota per chip@MHz for virtual boards; written by "
                 "`python -m host_tools.vboard.cpuquota --calibrate --write` "
                 "(bench/cpu_calibration.py); docs/vboard.md, CPU speed",
        "host": res["host"], "aliases": res["aliases"], "profiles": res["profiles"],
        "distortion": res["distortion"],
    }
    path.write_text(json.dumps(data, indent=2) + "\n")


def _table(res: dict) -> dict:
    rows = []
    host = res["host"]
    for name, p in res["profiles"].items():
        pub, got = p["published"], p["under_quota"]
        rows.append([name, f"{host['misc_pystone']:.0f}", f"{pub['misc_pystone']:.0f}",
                     f"{got['misc_pystone']:.0f}", f"{pub['bm_pidigits']:.0f}",
                     f"{got['bm_pidigits']:.0f}",
                     f"{p['quota_us']} / {p['period_us']} us ({p['factor']:.0f}x)"])
    notes = [f"host: {host['cpu']} ({host['cores']} cores), MicroPython {host['micropython']}, "
             f"cgroup {host['backend']}, load {host['load_avg']}; host bm_pidigits "
             f"{host['bm_pidigits']:.0f}",
             f"published: {SOURCE}"]
    for d in res.get("distortion", []):
        notes.append(f"burst of {d['esp32_ms']} ms ESP32 work after idle, quota "
                     f"{d['quota_us']}/{d['period_us']} us: {d['wall_ms']} ms")
    return {"title": "CPU calibration (pystones/s, digits/s)",
            "columns": ["profile", "host pystone", "ESP32 pystone", "under quota",
                        "ESP32 pidigits", "under quota", "quota / period"],
            "rows": rows, "notes": notes, "calibration": res}


def run(quick: bool) -> dict:
    try:
        perf = find_perf_bench()
        res = calibrate_all(perf, quick)
    except (CalibrationError, CpuQuotaError) as e:
        return {"title": "CPU calibration", "columns": ["not run"], "rows": [[str(e)]]}
    return _table(res)


def headline(res: dict) -> list[tuple[str, str, str]]:
    cal = res.get("calibration")
    if not cal:
        return [("CPU quota calibration", "not run", _cell0(res))]
    out = []
    for name, p in cal["profiles"].items():
        pub = p["published"]
        lo, hi = p["under_quota"].get("misc_pystone_range", [0, 0])
        out.append((f"pystone under the {name} quota",
                    f"{p['under_quota']['misc_pystone']:.0f}/s (runs {lo}-{hi}), quota "
                    f"{p['quota_us']}/{p['period_us']} us ({p['factor']:.0f}x)",
                    f"ESP32 {pub['misc_pystone']}/s (MicroPython 549448e8, 160 MHz); host "
                    f"{cal['host']['misc_pystone']:.0f}/s"))
    return out


def _cell0(res: dict) -> str:
    rows = res.get("rows") or [[""]]
    return str(rows[0][0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m host_tools.vboard.cpuquota --calibrate",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--perf-bench", help="MicroPython's tests/perf_bench folder")
    ap.add_argument("--profile", action="append", choices=sorted(PUBLISHED),
                    help="calibrate only this profile")
    ap.add_argument("--quick", action="store_true", help="shorter runs (less exact)")
    ap.add_argument("--write", action="store_true",
                    help=f"store the result in {cpuquota.PROFILES.name} for virtual boards")
    ap.add_argument("--out", type=Path, default=Path("out/bench/cpu_calibration.json"))
    args = ap.parse_args(argv)
    try:
        perf = find_perf_bench(args.perf_bench)
        res = calibrate_all(perf, args.quick, args.profile)
    except (CalibrationError, CpuQuotaError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(_table(res), indent=2) + "\n")
    t = _table(res)
    print(" | ".join(t["columns"]))
    for row in t["rows"]:
        print(" | ".join(row))
    for line in t["notes"]:
        print("  " + line)
    print(f"written: {args.out}")
    if args.write:
        write_profiles(res)
        print(f"stored: {cpuquota.PROFILES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
