"""Fuzzing: every parser that reads network or file input (DHCP, TFTP, SCCP, DER/X.509,
CTL/ITL, .sgn, cnf.xml) fed generated inputs while it runs as .mpy under MicroPython, one
long-lived process per parser, heap capped at 128K (host_tools/fuzz, docs/fuzzing.md).

Per parser: inputs tried, accepted, rejected by error class, crashes (an exception the parser
does not document, or the interpreter dying), hangs (no answer within 5 s, nor within 50 s
when tried again in a fresh process), unclear rejections (a documented class without a
message), the slowest answer, and the heap the second half of the run kept for good (a leak
shows there). Inputs come from the structure-aware generators of host_tools/fuzz/gen/
driven by a seeded PRNG (the tests drive the same generators through hypothesis); the corpus
is built with seeded keys, so a run is reproducible: same seed, same inputs. Quick: 1,000
inputs per parser; full: 5,000; --long (or BENCH_FUZZ_INPUTS): 20,000. Two parsers run at a
time (one MicroPython process each).
Inputs that crash or hang a parser, and each parser's slowest, go to out/bench/fuzz/."""
from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from host_tools.fuzz import gen, runner

SEED = os.environ.get("FUZZ_SEED", "srst-fuzz-1")
OUT = Path("out/bench/fuzz")
# slowest first, so the two workers finish together
ORDER = ("ctl", "sgn", "config", "dhcp", "tftp", "x509", "sccp")


def run(quick: bool) -> dict:
    count = int(os.environ.get("BENCH_FUZZ_INPUTS") or (1000 if quick else 5000))
    t0 = time.monotonic()
    shutil.rmtree(OUT, ignore_errors=True)
    corpus = gen.corpus()
    with runner.Session(corpus) as session:
        with ThreadPoolExecutor(2) as pool:
            tallies = list(pool.map(lambda name: runner.campaign(session, name, count, SEED, corpus), ORDER))
    wall = time.monotonic() - t0
    by_name = {t.target: t for t in tallies}
    rows, saved = [], []
    for name in runner.TARGETS:
        t = by_name[name]
        saved += [str(p) for p in t.save(OUT)]
        rejected = " ".join(f"{cls} {n:,}" for cls, n in t.rejected.most_common())
        rows.append([runner.TARGETS[name].short, t.tried, t.ok, rejected or "-", t.crashes, t.hangs,
                     t.unclear, round(t.max_ms), "?" if t.heap_kept is None else t.heap_kept,
                     round(t.seconds, 1)])
    total = sum(t.tried for t in tallies)
    bad = sum(t.crashes + t.hangs + t.unclear for t in tallies)
    notes = [
        f"{total:,} inputs in {wall:.0f} s (2 parsers at a time), seed {SEED!r} (FUZZ_SEED), "
        f"heap {runner.DEFAULT_HEAP}, {runner.TARGETS['ctl'].timeout_s:g} s per input before a hang",
        "heap kept: free heap lost over the second half of the run, bytes (a few hundred either "
        "way is the last exception and such; a leak grows with the inputs)",
        f"{bad} crashes, hangs or unclear rejections" + (f"; inputs in {OUT}/" if bad else ""),
    ]
    slow = [t for t in tallies if t.slowest is not None]
    if slow:
        notes.append("answers over 1 s (SHA-512 in Python over a big file, mostly): "
                     + ", ".join(f"{t.target} {t.slow}" for t in slow))
    return {
        "title": f"Fuzzing the firmware parsers under MicroPython ({count:,} inputs each)",
        "columns": ["parser", "inputs", "ok", "rejected", "crash", "hang", "unclear",
                    "max ms", "heap kept", "s"],
        "rows": rows,
        "notes": notes,
        "seed": SEED,
        "findings": saved,
        "targets": {t.target: {"tried": t.tried, "ok": t.ok, "rejected": dict(t.rejected),
                               "crashes": t.crashes, "hangs": t.hangs, "unclear": t.unclear,
                               "slow": t.slow, "max_ms": round(t.max_ms, 1),
                               "heap_kept": t.heap_kept, "heap_free": t.heap_free,
                               "restarts": t.restarts, "seconds": round(t.seconds, 1),
                               "findings": [str(f.outcome)[:500] for f in t.findings.values()]}
                    for t in tallies},
    }


PLACE = "alone"         # two MicroPython processes flat out: the whole machine


def headline(res: dict) -> list[tuple[str, str, str]]:
    t = res.get("targets", {})
    tried = sum(x["tried"] for x in t.values())
    bad = {k: sum(x[k] for x in t.values()) for k in ("crashes", "hangs", "unclear")}
    each = min((x["tried"] for x in t.values()), default=0)
    return [(f"generated inputs to {len(t)} firmware parsers under MicroPython ({each:,} each)",
             f"{tried:,} inputs: {bad['crashes']} crashes, {bad['hangs']} hangs, "
             f"{bad['unclear']} unclear rejections", "every rejection a named error class")]
