"""TFTP: time to fetch 64 KB and 1 MB files with the firmware's client (phone.tftp on the
MicroPython unix port, .mpy, 96K heap, driven by bench/_mp_fetch.py) with
blksize/windowsize negotiation vs plain 512-byte blocks, and the `tftpy` client for
comparison, across a namespace pair (phone 192.0.2.10 <-veth-> server 192.0.2.1):

- dnsmasq's TFTP server (2.90 negotiates blksize and tsize, not windowsize: a windowed
  request goes on with window 1),
- the lab TFTP server (host_tools.lab.tftp_server, RFC 7440 windows),
- the lab TFTP server with 20 ms added per round trip (Faults.latency_s: before the OACK
  and before each window), where the window size decides.

Each figure is the client's own transfer time (ticks_us around phone.tftp's get(), one
Client reused as the agent does; perf_counter around tftpy's download), file writes
included; median of the repetitions. Quick: 64 KB
only. The 1 MB transfers with latency run once each, all at the same time (they only wait)."""
from __future__ import annotations

import json
import logging
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host_tools import fwbuild, micropython
from host_tools.lab import dnsmasq as dm
from host_tools.lab import netns
from host_tools.lab.tftp_server import Faults, TftpServer
from host_tools.scenario import runner

from bench import _rig

FETCH = Path(__file__).with_name("_mp_fetch.py")
HEAP = "96K"
PHONE_IP, SRV_IP, LAB_IP, SLOW_IP = "192.0.2.10", "192.0.2.1", "192.0.2.3", "192.0.2.4"
LATENCY_S = 0.02
SIZES = {"64 KB": 65536, "1 MB": 1 << 20}


@dataclass(frozen=True)
class Client:
    label: str
    kind: str                   # "fw" | "tftpy"
    blksize: int = 512
    windowsize: int = 1
    options: bool = True


CLIENTS = (
    Client("plain 512", "fw", options=False),
    Client("blksize 1428", "fw", 1428),
    Client("512 + window 8", "fw", 512, 8),
    Client("1428 + window 4 (agent)", "fw", 1428, 4),
    Client("1428 + window 8", "fw", 1428, 8),
    Client("tftpy 512", "tftpy", options=False),
    Client("tftpy 1428", "tftpy", 1428),
)


@dataclass(frozen=True)
class Server:
    label: str
    ip: str
    latency: bool = False


SERVERS = (Server("dnsmasq", SRV_IP), Server("lab", LAB_IP),
           Server(f"lab +{int(LATENCY_S * 1000)} ms RTT", SLOW_IP, True))


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.root = work / "root"
        self.fw = work / "fw"
        self.lab: netns.NamespaceSet | None = None
        self.phone: netns.Namespace | None = None

    def __enter__(self) -> "Bench":
        self.root.mkdir(parents=True)
        rng = random.Random(7)
        for label, n in SIZES.items():
            (self.root / _name(label)).write_bytes(rng.randbytes(n))
        _build_firmware(self.fw, self.work / "build")
        netns.sweep_stale()
        self.lab = netns.NamespaceSet("btftp")
        phone, srv = self.lab.namespace("phone"), self.lab.namespace("srv")
        self.lab.veth(phone, srv, a_addr=f"{PHONE_IP}/24", b_addr=f"{SRV_IP}/24",
                      a_name="eth0", b_name="eth0")
        srv.add_addr("lo", f"{LAB_IP}/32")
        srv.add_addr("lo", f"{SLOW_IP}/32")
        self.phone = phone
        dm.Dnsmasq(srv, "eth0", tftp_root=self.root, workdir=self.work / "dnsmasq").start()
        for ip, faults in ((LAB_IP, Faults()), (SLOW_IP, Faults(latency_s=LATENCY_S))):
            s = TftpServer(self.root, host=ip, port=69, netns=srv, faults=faults)
            s.start()
            self.lab.on_close(s.stop)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.lab is not None:
            self.lab.close()

    # -- one measurement: `reps` transfers of one file by one client ----------------------
    def measure(self, srv: Server, c: Client, size: str, reps: int) -> dict:
        if c.kind == "fw":
            return self._fw(srv, c, size, reps)
        return self._tftpy(srv, c, size, reps)

    def _fw(self, srv: Server, c: Client, size: str, reps: int) -> dict:
        assert self.phone is not None
        out = Path(tempfile.mkdtemp(prefix="out-", dir=self.work))
        args = {"server": srv.ip, "file": _name(size), "out": str(out / "got.bin"), "reps": reps,
                "tftp": {"blksize": c.blksize, "windowsize": c.windowsize, "options": c.options,
                         "timeout_ms": 1000, "retries": 5, "max_bytes": 2 << 20}}
        argfile = out / "args.json"
        argfile.write_text(json.dumps(args))
        env = fwbuild.environ()
        env["MICROPYPATH"] = ":".join([".frozen", str(self.fw)])
        cmd = self.phone.argv(micropython.command([str(FETCH), str(argfile)], heap=HEAP))
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
        done = [x for x in lines if "us" in x]
        same = (out / "got.bin").read_bytes() == (self.root / _name(size)).read_bytes() \
            if len(done) == reps else False
        shutil.rmtree(out, ignore_errors=True)
        if len(done) != reps:
            bad = [x["error"] for x in lines if "error" in x]
            return {"error": bad[0] if bad else (p.stdout + p.stderr)[-300:]}
        st = done[0]["stats"]
        return {"ms": [round(x["us"] / 1000, 2) for x in done], "blksize": st["blksize"],
                "windowsize": st["windowsize"], "negotiated": st["negotiated"],
                "retransmits": sum(x["stats"]["retransmits"] for x in done), "identical": same,
                "heap_free": min(x["heap_free"] for x in done)}

    def _tftpy(self, srv: Server, c: Client, size: str, reps: int) -> dict:
        assert self.phone is not None
        import tftpy
        logging.getLogger("tftpy").setLevel(logging.CRITICAL)
        dest = Path(tempfile.mkdtemp(prefix="tftpy-", dir=self.work)) / "got.bin"
        opts = {"blksize": c.blksize} if c.options else {}

        def once() -> float:
            t0 = time.perf_counter()
            tftpy.TftpClient(srv.ip, 69, options=dict(opts)).download(_name(size), str(dest),
                                                                      timeout=5)
            return (time.perf_counter() - t0) * 1000

        ms = [self.phone.call(once, timeout=300) for _ in range(reps)]
        same = dest.read_bytes() == (self.root / _name(size)).read_bytes()
        shutil.rmtree(dest.parent, ignore_errors=True)
        return {"ms": [round(x, 1) for x in ms], "blksize": c.blksize if c.options else 512,
                "windowsize": 1, "identical": same}


def _name(size: str) -> str:
    return f"file-{size.replace(' ', '').lower()}.bin"


def _build_firmware(dest: Path, build: Path) -> None:
    tmp = build / "board"
    runner.install_firmware(tmp, build)
    shutil.copytree(tmp / "phone", dest / "phone")


def run(quick: bool) -> dict:
    if netns.unusable_reason():
        raise RuntimeError(f"bench/tftp needs network namespaces: {netns.unusable_reason()}")
    if dm.available():
        raise RuntimeError(dm.available())
    sizes = ["64 KB"] if quick else list(SIZES)
    reps = {"64 KB": 3 if quick else 9, "1 MB": 3}
    work = Path(tempfile.mkdtemp(prefix="bench-tftp-"))
    cells: dict[tuple[str, str, str], dict] = {}
    try:
        with Bench(work) as b:
            for size in sizes:
                for srv in SERVERS:
                    if srv.latency:
                        continue
                    for c in CLIENTS:             # CPU-bound: one at a time
                        cells[(srv.label, size, c.label)] = b.measure(srv, c, size, reps[size])
            slow = [s for s in SERVERS if s.latency]
            with ThreadPoolExecutor(max_workers=len(CLIENTS)) as pool:   # latency-bound
                for size in sizes:
                    n = (3 if quick else 5) if size == "64 KB" else 1
                    futs = {(s.label, size, c.label): pool.submit(b.measure, s, c, size, n)
                            for s in slow for c in CLIENTS}
                    for k, f in futs.items():
                        cells[k] = f.result()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return summarize(cells, sizes)


def _fmt(ms: float | None) -> str:
    if ms is None:
        return "fail"
    if ms < 10:
        return f"{ms:.1f} ms"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def summarize(cells: dict[tuple[str, str, str], dict], sizes: list[str]) -> dict:
    rows, table = [], []
    for srv in SERVERS:
        for size in sizes:
            row: list[Any] = [srv.label, size]
            for c in CLIENTS:
                cell = cells.get((srv.label, size, c.label), {})
                med = statistics.median(cell["ms"]) if cell.get("ms") else None
                cell["median_ms"] = med
                mark = "" if cell.get("identical", med is None) else " (corrupt!)"
                if c.kind == "fw" and c.windowsize > 1 and cell.get("windowsize") == 1:
                    mark += "*"
                row.append(_fmt(med) + mark)
                table.append({"server": srv.label, "size": size, "client": c.label, **cell})
            rows.append(row)
    notes = ["Columns: the firmware client with the options it asks for, then tftpy 0.8 "
             "(blksize and tsize only; no windowsize). Median of 9 runs for 64 KB (5 with "
             "latency; quick: 3), 3 for 1 MB (1 with latency).",
             "Without latency the figures are a few milliseconds and vary with the host's "
             "scheduling from run to run; the latency row is the one where the options decide.",
             "* dnsmasq 2.90 leaves windowsize out of its OACK: the transfer ran with window 1."]
    for srv in SERVERS:
        for size in sizes:
            get = {t["client"]: t.get("median_ms") for t in table
                   if t["server"] == srv.label and t["size"] == size}
            # dnsmasq does not grant windowsize: compare what it does negotiate
            best = "blksize 1428" if srv.ip == SRV_IP else "1428 + window 8"
            plain, fast, other = get.get("plain 512"), get.get(best), get.get("tftpy 1428")
            if plain and fast:
                notes.append(f"{srv.label}, {size}: {best} {_fmt(fast)}, {plain / fast:.1f}x "
                             f"faster than plain 512-byte blocks"
                             + (f", {other / fast:.1f}x faster than tftpy with blksize 1428"
                                if other else "") + ".")
    errs = [f"{t['server']}/{t['size']}/{t['client']}: {t['error']}" for t in table if "error" in t]
    if errs:
        notes.append("failed: " + "; ".join(errs[:4]))
    return {"title": "TFTP fetch time: firmware client (MicroPython, 96K heap) vs plain "
                     "blocks vs tftpy, namespace pair",
            "columns": ["server", "file", *[c.label for c in CLIENTS]],
            "rows": rows, "notes": notes, "cells": table, "latency_s": LATENCY_S,
            "firmware": _rig.revision()}



PLACE = "alone"


def headline(res: dict) -> list[tuple[str, str, str]]:
    med = {(c["server"], c["size"], c["client"]): c.get("median_ms") for c in res.get("cells", [])}
    out = []
    for srv, size in (("lab +20 ms RTT", "1 MB"), ("lab +20 ms RTT", "64 KB"), ("dnsmasq", "1 MB")):
        agent_client = "1428 + window 4 (agent)" if srv != "dnsmasq" else "blksize 1428"
        ours, plain, other = (med.get((srv, size, c)) for c in (agent_client, "plain 512", "tftpy 1428"))
        if ours and plain:
            out.append((f"fetch {size} from {srv}, {agent_client}", _fmt(ours),
                        f"plain 512-byte blocks {_fmt(plain)} ({plain / ours:.1f}x)"
                        + (f", tftpy {_fmt(other)} ({other / ours:.1f}x)" if other else "")))
    return out
