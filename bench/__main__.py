"""Run the benchmarks, print their tables and ratios, write JSON into out/bench/."""
from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

import bench

OUT = Path("out/bench")


def modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))


def show(console: Console, name: str, res: dict) -> None:
    t = Table(title=f"{res.get('title', name)}  [dim](bench/{name}.py)[/]")
    for c in res.get("columns", []):
        t.add_column(str(c))
    for row in res.get("rows", []):
        t.add_row(*[f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v) for v in row])
    console.print(t)
    for line in res.get("notes", []):
        console.print(f"  {line}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="CI-sized runs (seconds, not minutes)")
    ap.add_argument("--only", action="append", choices=modules(), help="run just this benchmark")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    console = Console()
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in args.only or modules():
        console.print(f"[bold]== bench/{name}[/] ({'quick' if args.quick else 'full'})")
        t0 = time.monotonic()
        try:
            res = importlib.import_module(f"bench.{name}").run(args.quick)
        except Exception as e:  # one broken benchmark must not hide the others' figures
            console.print(f"[red]bench/{name} failed: {type(e).__name__}: {e}[/]")
            failed.append(name)
            continue
        res.setdefault("seconds", round(time.monotonic() - t0, 1))
        res.setdefault("quick", args.quick)
        (args.out / f"{name}.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
        show(console, name, res)
    console.print(f"JSON written to {args.out}/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
