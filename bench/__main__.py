"""Run the benchmarks, print their tables and ratios, write JSON into out/bench/.

With more than one benchmark selected, each runs in its own process and they share the
machine by what they measure (a module's PLACE):
  "background"  starts first and runs alongside everything (the soak: one board, timers);
  "together"    run at the same time as each other (failover, rehome, fault_matrix: labs
                that mostly wait on timers);
  "alone"       one at a time, after the "together" group (CPU-bound figures: tftp, memory,
                fleet, fuzz).
`--serial` runs them one by one instead, for figures with nothing else on the machine."""
from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

import bench
from bench import _readme, _rig

OUT = Path("out/bench")
LONG = {"BENCH_SOAK_CYCLES": "1000", "BENCH_FUZZ_INPUTS": "20000"}
PLACES = ("background", "together", "alone")


def modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))


def place(name: str) -> str:
    p = getattr(importlib.import_module(f"bench.{name}"), "PLACE", "alone")
    assert p in PLACES, f"bench/{name}.py: PLACE {p!r} is not one of {PLACES}"
    return p


def show(console: Console, name: str, res: dict) -> None:
    t = Table(title=f"{res.get('title', name)}  [dim](bench/{name}.py)[/]")
    for c in res.get("columns", []):
        t.add_column(str(c))
    for row in res.get("rows", []):
        t.add_row(*[f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v) for v in row])
    console.print(t)
    for line in res.get("notes", []):
        console.print(f"  {line}")


def run_here(console: Console, name: str, quick: bool, out: Path) -> bool:
    """One benchmark in this process: its table, its JSON."""
    console.print(f"[bold]== bench/{name}[/] ({'quick' if quick else 'full'})")
    t0 = time.monotonic()
    try:
        res = importlib.import_module(f"bench.{name}").run(quick)
    except Exception as e:  # one broken benchmark must not hide the others' figures
        console.print(f"[red]bench/{name} failed: {type(e).__name__}: {e}[/]")
        return False
    res.setdefault("seconds", round(time.monotonic() - t0, 1))
    res.setdefault("quick", quick)
    res.setdefault("firmware", _rig.revision())
    (out / f"{name}.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
    show(console, name, res)
    return True


class Child:
    """One benchmark in its own process; its console output goes to out/bench/NAME.log."""

    def __init__(self, name: str, quick: bool, out: Path) -> None:
        self.name, self.out, self.t0 = name, out, time.monotonic()
        self.log = out / f"{name}.log"
        (out / f"{name}.json").unlink(missing_ok=True)     # no stale figures if it dies
        cmd = [sys.executable, "-m", "bench", "--only", name, "--out", str(out)]
        with self.log.open("w") as f:
            self.proc = subprocess.Popen(cmd + (["--quick"] if quick else []), stdout=f,
                                         stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "160"})

    def elapsed(self) -> str:
        s = int(time.monotonic() - self.t0)
        return f"{s // 60}:{s % 60:02d}"

    def finish(self, console: Console) -> bool:
        rc = self.proc.wait()
        path = self.out / f"{self.name}.json"
        if rc == 0 and path.exists():
            console.print(f"[bold]== bench/{self.name}[/] done in {self.elapsed()}")
            show(console, self.name, json.loads(path.read_text()))
            return True
        tail = self.log.read_text(errors="replace").splitlines()[-15:]
        console.print(f"[red]bench/{self.name} failed (exit {rc}, log {self.log}):[/]")
        for line in tail:
            console.print(f"  {line}", markup=False, highlight=False)
        return False


def run_shared(console: Console, names: list[str], quick: bool, out: Path) -> list[str]:
    """The PLACE schedule (module docstring); returns the names that failed."""
    by = {p: [n for n in names if place(n) == p] for p in PLACES}
    failed: list[str] = []
    running: list[Child] = []

    def start(name: str) -> Child:
        console.print(f"[bold]-> bench/{name}[/] started ({place(name)}; log {out / name}.log)")
        c = Child(name, quick, out)
        running.append(c)
        return c

    def reap() -> None:
        """Tables of every child that has ended (the background one too), as they end."""
        for c in [c for c in running if c.proc.poll() is not None]:
            running.remove(c)
            if not c.finish(console):
                failed.append(c.name)

    def wait(children: list[Child]) -> None:
        with console.status("") as status:
            while any(c.proc.poll() is None for c in children):
                status.update("running: " + ", ".join(f"{c.name} {c.elapsed()}" for c in running
                                                       if c.proc.poll() is None))
                time.sleep(0.5)
                reap()
        reap()

    background = [start(n) for n in by["background"]]
    wait([start(n) for n in by["together"]])
    for n in by["alone"]:
        wait([start(n)])
    wait(background)
    return failed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CI-sized runs (about 2 minutes in all)")
    ap.add_argument("--long", action="store_true",
                    help="the long runs: soak 1,000 cycles, fuzz 20,000 inputs per parser "
                         "(sets BENCH_SOAK_CYCLES and BENCH_FUZZ_INPUTS unless given)")
    ap.add_argument("--only", action="append", choices=modules(), help="run just this benchmark")
    ap.add_argument("--serial", action="store_true", help="one benchmark at a time")
    ap.add_argument("--readme", action="store_true",
                    help="only rewrite README.md's figures (and docs/benchmarks.md's tables) "
                         "from the JSON in --out, then stop; with --only, just those "
                         "benchmarks' (the others keep what they have)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    console = Console()
    if args.readme:
        console.print(_readme.update(args.out, only=args.only))
        return 0
    if args.long and args.quick:
        ap.error("--long and --quick do not go together")
    if args.long:
        for k, v in LONG.items():
            os.environ.setdefault(k, v)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["BENCH_OUT"] = str(args.out)      # fault_matrix.md goes beside the JSON
    names = args.only or modules()
    t0 = time.monotonic()
    if len(names) == 1 or args.serial:
        failed = [n for n in names if not run_here(console, n, args.quick, args.out)]
    else:
        failed = run_shared(console, names, args.quick, args.out)
    wall = time.monotonic() - t0
    console.print(f"{len(names) - len(failed)}/{len(names)} benchmarks in {wall / 60:.1f} min; "
                  f"JSON written to {args.out}/"
                  + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    (args.out / "SUMMARY.md").write_text(_readme.summary(args.out))
    console.print(f"Headline figures: {args.out}/SUMMARY.md (`python -m bench --readme` puts "
                  f"them in README.md)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
