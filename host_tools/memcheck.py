"""Heap figures of the firmware on the MicroPython unix port, loaded as .mpy as on a board
(host_tools.fwbuild): RAM and qstrs each module costs once imported; provisioning
(phone.boot.provision) run against a real TFTP server on loopback, at a given heap cap or
bisected down to the smallest that works; the whole story (provision, register, standby TLS,
failover, re-home) against the lab. Used by bench/memory.py and tests/host/test_provision_heap.py.

    fw = fwbuild.compiled()                          # folder holding phone/*.mpy
    with ProvisionLab(tmp / "lab") as lab:           # PKI, CTL/ITL, signed cnf.xml, TFTP server
        run = lab.provision(fw, heap="96K")           # a fresh board folder each time
        run.ok, run.ms, run.live_peak, run.events
        smallest = lab.min_heap(fw)                   # bytes, by bisection
    story(fw, "96K", tmp / "story")                   # StoryRun: ok, step, peak_live

Heap figures are those of the 64-bit unix port: objects are about twice the size they are on
a 32-bit ESP32, so a figure here is an upper bound for a board.
"""
from __future__ import annotations

import json
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable
from pathlib import Path

import host_tools.fw  # noqa: F401  (firmware/ on sys.path)
from host_tools import BOARDS, MPSCRIPTS, WORK, fwbuild, micropython
from host_tools.events import Event, EventReader
from phone.store import PHONE_CERT, PHONE_KEY  # type: ignore[import-not-found]

PROVISION_RUN = MPSCRIPTS / "provision_run.py"
MAC = "001122AABBCC"
# Import order of a boot: what provisioning loads, then the agent's side.
PROVISION_MODULES = ("events", "platform", "settings", "boot", "store", "provision", "dhcp",
                     "tftp", "der", "x509", "pkcs1", "ctl", "config")
AGENT_MODULES = ("sccp", "clock", "link", "sccplink", "agent")
# A TFTP server on loopback answers at once; retry quickly.
SETTINGS = {"tftp_timeout_ms": 1000, "tftp_retries": 3, "retry_min_ms": 200}


class MemcheckError(RuntimeError):
    pass


def firmware() -> Path:
    """The firmware as a board runs it: the cached .mpy build."""
    return fwbuild.compiled()


def _env(fw: Path, image: "Image | None" = None) -> dict[str, str]:
    env = fwbuild.environ()
    env["MICROPYPATH"] = ":".join([".frozen", "/rom" if image is not None else str(fw)])
    return env


# -- the agent from the image -------------------------------------------------------------------
# A board without PSRAM runs the agent from its image (docs/decisions.md, "Issue 12: the lease
# renewal on a board without PSRAM"): frozen in, or in a ROMFS partition. Either way a module's
# bytecode and names stay in flash and only the objects it makes take heap. The unix port has
# VfsRom: the .mpy build as a ROMFS image (`mpremote romfs build`, as virtual:wt32-eth01 gets
# it), read into one buffer at the bottom of the heap and mounted at /rom before anything else,
# imports in place. The buffer is flash on a board, so the heap cap grows by what it takes
# (Image.cap: Image.heap and the GC's tables for it) and every figure read back leaves it out.
_ROM_MOUNT = """import vfs, os
def _rom(p):
    b = bytearray(os.stat(p)[6])
    with open(p, 'rb') as f:
        f.readinto(b)
    vfs.mount(vfs.VfsRom(b), '/rom')
_rom(%r)
del _rom, vfs, os
"""
_USABLE_AT = "1M"
_ROM_HEAP = """import gc
gc.collect()
a = gc.mem_alloc()
%s
gc.collect()
print('@rom', gc.mem_alloc() - a)
"""


@dataclass(frozen=True)
class Image:
    path: Path      # the ROMFS image of the firmware's package
    heap: int       # bytes the mounted image takes in the unix port's heap (flash on a board)
    cap: int = 0    # what the heap cap grows by so that the rest is as large as without it
                    # (the GC's own tables grow with the cap)

    def mount(self) -> str:
        """MicroPython lines that mount the image at /rom (first thing in a main script)."""
        return _ROM_MOUNT % str(self.path)


def image(fw: Path) -> Image:
    """The firmware build `fw` as a board's ROMFS image (the package without the lab's
    modules), built once beside the build."""
    path = fw.with_name(fw.name + "-romfs.img")
    if not path.exists():
        with tempfile.TemporaryDirectory(dir=fw.parent) as d:
            src = Path(d) / "src"
            shutil.copytree(fw, src, ignore=shutil.ignore_patterns(
                *(Path(m).with_suffix(".mpy").name for m in fwbuild.LAB_MODULES)))
            tmp = Path(d) / "romfs.img"
            p = subprocess.run([sys.executable, "-m", "mpremote", "romfs", "--no-mpy", "-o",
                                str(tmp), "build", str(src)], capture_output=True, text=True,
                               timeout=120)
            if p.returncode != 0 or not tmp.exists():
                raise MemcheckError("cannot build the ROMFS image: "
                                    f"{(p.stderr or p.stdout)[-300:]}")
            tmp.replace(path)
    img = Image(path, 0)
    out = _run_script(None, _ROM_HEAP % img.mount(), [])
    heap = next(int(x.split()[1]) for x in out.splitlines() if x.startswith("@rom"))
    # the heap a cap gives to objects (mem_alloc + mem_free), to grow the cap in proportion
    out = _run_script(None, "import gc\nprint('@usable', gc.mem_alloc() + gc.mem_free())\n",
                      [], heap=_USABLE_AT)
    usable = next(int(x.split()[1]) for x in out.splitlines() if x.startswith("@usable"))
    return Image(path, heap, -(-heap * micropython.parse_size(_USABLE_AT) // usable))


# Per module: heap and qstrs it adds. The qstr pool grows in doubling chunks (at ~140, 300,
# 620 and 1260 qstrs on this port; the one at 620 is ~7 KB), which would land on whichever
# module crosses the line: the pool is grown first with throw-away names so each figure is the
# module's own.
_MODULE_RAM = """
import gc, sys, micropython
class O: pass
o = O()
for i in range(int(sys.argv[2])):
    setattr(o, 'zz%04d' % i, 1)
o = None
gc.collect()
import phone
def nq():
    sys.stdout.write('@q ')
    micropython.qstr_info()
for m in sys.argv[1].split(','):
    nq()
    gc.collect()
    a = gc.mem_alloc()
    __import__('phone.' + m)
    gc.collect()
    sys.stdout.write('@m %s %d\\n' % (m, gc.mem_alloc() - a))
nq()
"""

_TOTAL = """
import gc, sys, micropython
gc.collect()
a = gc.mem_alloc()
import phone
for m in sys.argv[1].split(','):
    __import__('phone.' + m)
gc.collect()
sys.stdout.write('@t %d\\n' % (gc.mem_alloc() - a))
sys.stdout.write('@q ')
micropython.qstr_info()
"""


def _run_script(fw: Path | None, text: str, args: list[str], heap: str = "1M",
                binary: Path | None = None, image: Image | None = None) -> str:
    """Run `text` on `binary` (default: the interpreter), the firmware from `fw` (from its
    image when `image` is given), or only from the binary's frozen modules when fw is None."""
    heap_b = micropython.parse_size(heap)
    if image is not None:
        text, heap_b = image.mount() + text, heap_b + image.cap
    with tempfile.TemporaryDirectory() as d:
        script = Path(d) / "memscript.py"
        script.write_text(text)
        env = _env(fw, image) if fw is not None else {**fwbuild.environ(), "MICROPYPATH": ".frozen"}
        p = subprocess.run(micropython.command([str(script), *args], heap=heap_b, binary=binary),
                           env=env, capture_output=True, text=True, timeout=60, cwd=d)
    if p.returncode != 0:
        raise MemcheckError(f"module RAM run failed:\n{p.stdout}{p.stderr}")
    return p.stdout


def _qstrs(line: str) -> int:
    m = re.search(r"n_qstr=(\d+)", line)
    return int(m.group(1)) if m else 0


def module_ram(fw: Path, modules: tuple[str, ...] = PROVISION_MODULES + AGENT_MODULES,
               image: Image | None = None) -> dict[str, dict[str, int]]:
    """{module: {"ram": bytes, "qstrs": new qstrs}} when imported in this order (a module's
    own imports of modules not yet loaded count towards it), plus "total": all of them in a
    fresh interpreter (with the qstr pool growing as it does on a board) and "qstrs": the
    dynamic qstrs then. image: imported from the firmware's image instead of .mpy files."""
    # past the ~1260-qstr growth step, so the modules (~800 qstrs) cause none of their own
    out = _run_script(fw, _MODULE_RAM, [",".join(modules), "1270"], image=image)
    qs = [_qstrs(x) for x in out.splitlines() if x.startswith("@q")]
    rows = [x.split() for x in out.splitlines() if x.startswith("@m")]
    res = {r[1]: {"ram": int(r[2]), "qstrs": qs[i + 1] - qs[i]} for i, r in enumerate(rows)}
    out = _run_script(fw, _TOTAL, [",".join(modules)], image=image)
    total = next(int(x.split()[1]) for x in out.splitlines() if x.startswith("@t"))
    res["total"] = {"ram": total, "qstrs": _qstrs(next(x for x in out.splitlines()
                                                       if x.startswith("@q")))}
    return res


# -- frozen into the image ----------------------------------------------------------------------
# scripts/build-frozen-unix.sh builds the unix port twice from one source: with the agent
# frozen in (firmware/image/unix.py) and without.
FROZEN_BUILD = WORK / "build" / "frozen-unix"


def frozen_saving(fw: Path, build: Path = FROZEN_BUILD,
                  modules: tuple[str, ...] = PROVISION_MODULES + AGENT_MODULES
                  ) -> dict[str, int] | None:
    """Heap and dynamic qstrs that importing `modules` takes (gc.mem_alloc() after
    gc.collect(), before and after, as module_ram's total): loaded from the .mpy build `fw` on
    the build without the agent ("mpy") and frozen into the other ("frozen"). None when
    scripts/build-frozen-unix.sh has not been run."""
    frozen, plain = build / "micropython", build / "micropython-plain"
    if not (frozen.exists() and plain.exists()):
        return None
    from host_tools import FIRMWARE, manifest
    newer = [e.target for e in manifest.files(FIRMWARE / "manifest.py", scripts=False)
             if e.source.stat().st_mtime > frozen.stat().st_mtime]
    if newer:
        raise MemcheckError(f"{frozen} is older than firmware/{newer[0]}: run "
                            f"`bash scripts/build-frozen-unix.sh` again")
    res = {}
    for key, binary, path in (("mpy", plain, fw), ("frozen", frozen, None)):
        out = _run_script(path, _TOTAL, [",".join(modules)], binary=binary)
        res[key] = next(int(x.split()[1]) for x in out.splitlines() if x.startswith("@t"))
        res[key + "_qstrs"] = _qstrs(next(x for x in out.splitlines() if x.startswith("@q")))
    res["saved"] = res["mpy"] - res["frozen"]
    return res


# -- provisioning -------------------------------------------------------------------------------
@dataclass
class ProvisionRun:
    heap: int
    ok: bool
    events: list[Event]
    output: str
    wall_s: float
    result: dict = field(default_factory=dict)

    @property
    def ms(self) -> int | None:
        return self.result.get("ms")

    @property
    def live_peak(self) -> int | None:
        return self.result.get("live_peak") or None

    def names(self) -> list[str]:
        return [e.ev for e in self.events]

    def first(self, name: str) -> Event | None:
        return next((e for e in self.events if e.ev == name), None)


class ProvisionLab:
    """A TFTP server on loopback serving what a phone downloads at boot, and fresh board
    folders provisioned from it: CTLFile.tlv (SAST x2, CCM, TFTP, CAPF) and ITLFile.tlv signed
    by the SAST, SEP<MAC>.cnf.xml with the SRST certificate and its .sgn signed by the TFTP
    certificate (as host_tools.lab.Lab writes them); DHCP off (`"dhcp": false` in the profile,
    TFTP server and port given). 2048-bit keys, as the lab's."""

    def __init__(self, workdir: Path, key_size: int = 2048, hash_name: str = "sha1",
                 mac: str = MAC) -> None:
        self.workdir = Path(workdir)
        self.key_size = key_size
        self.hash_name = hash_name
        self.mac = mac
        self.server = None
        self._n = 0

    def __enter__(self) -> "ProvisionLab":
        from host_tools import ctlbuild
        from host_tools import pki as labpki
        from host_tools.lab import cnfxml
        from host_tools.lab.tftp_server import TftpServer
        self.workdir.mkdir(parents=True, exist_ok=True)
        p = labpki.make_pki(self.workdir / "pki", [self.mac], self.key_size,
                            ips={"srst": "127.0.0.1", "ccm": "127.0.0.1", "tftp": "127.0.0.1"})
        self.pki = p
        root = self.workdir / "tftp"
        root.mkdir(exist_ok=True)
        for name, data in self.trust_lists().items():
            ctlbuild.write(root / name, data)
        cfg = cnfxml.write_cnf_xml(
            root, self.mac, [cnfxml.CallManagerRef("cucm1", "127.0.0.1", 2000)],
            cnfxml.SrstRef("srst-branch-7", "127.0.0.1", 2000, certificate=p.srst.cert_der))
        ctlbuild.write(cfg.with_name(cfg.name + ".sgn"), ctlbuild.build_sgn(
            p.tftp, cfg.read_bytes(), filename=cfg.name, hash_name=self.hash_name))
        self.tftp_root = root
        self.server = TftpServer(root).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def board_folder(self, folder: Path | None = None) -> Path:
        """A fresh board filesystem: board.json, settings.json, state/phone.{der,key}."""
        if folder is None:
            self._n += 1
            folder = self.workdir / f"board{self._n}"
        if folder.exists():
            shutil.rmtree(folder)
        state = folder / "state"
        state.mkdir(parents=True)
        prof = json.loads((BOARDS / "virtual.json").read_text())
        assert self.server is not None
        prof.update(dhcp=False, tftp_server="127.0.0.1", tftp_port=self.server.port,
                    ip="127.0.0.1", mac=self.mac, store="state")
        (folder / "board.json").write_text(json.dumps(prof, indent=2) + "\n")
        (folder / "settings.json").write_text(json.dumps(SETTINGS) + "\n")
        ident = self.pki.phones[self.mac]
        (state / PHONE_CERT).write_bytes(ident.cert_der)
        (state / PHONE_KEY).write_bytes(ident.key_der)
        return folder

    def provision(self, fw: Path, heap: str | int = "96K", sample: bool = False,
                  folder: Path | None = None, timeout: float = 60,
                  image: Image | None = None) -> ProvisionRun:
        """Provision a board folder (fresh unless given) under `heap`. sample=True: the live
        heap after a gc.collect() at every event (slower); its maximum is run.live_peak.
        image: the agent from the firmware's image (heap figures leave the image out)."""
        folder = folder or self.board_folder()
        script = PROVISION_RUN
        heap_b = micropython.parse_size(heap)
        if image is not None:
            script = folder / PROVISION_RUN.name
            script.write_text(image.mount() + PROVISION_RUN.read_text())
        args = [str(script)] + (["sample"] if sample else [])
        t0 = time.monotonic()
        p = subprocess.Popen(micropython.command(args, heap=heap_b + (image.cap if image else 0)),
                             env=_env(fw, image), cwd=folder,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        reader = EventReader()
        out = []
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        try:
            assert p.stdout is not None
            for line in p.stdout:
                out.append(line)
                reader.feed(line)
                # The server always answers here: a retry means this pass failed (out of
                # memory, say), and it would retry for ever.
                if line.startswith('{"t":') and '"ev":"provision_retry"' in line:
                    p.kill()
            p.wait()
        finally:
            timer.cancel()
            if p.poll() is None:
                p.kill()
                p.wait()
        wall = time.monotonic() - t0
        reader.flush()
        events = list(reader.events)
        res = next((e for e in reversed(events) if e.ev == "result"), None)
        # Passing means the secure outcome: both trust lists and the signed config accepted,
        # the trust list in force; a file the heap could not check must not look like a pass.
        prov = next((e for e in events if e.ev == "provisioned"), None)
        names = [e.ev for e in events]
        ok = (p.returncode == 0 and res is not None and bool(res.get("ok"))
              and prov is not None and prov.get("trust") is True and not prov.get("offline")
              and names.count("ctl_accepted") == 2 and "ctl_rejected" not in names
              and "config_rejected" not in names)
        result = dict(res.fields) if res is not None else {}
        if image is not None:
            for k in ("live_peak", "after", "heap_total"):
                if result.get(k):
                    result[k] -= image.heap
        return ProvisionRun(heap_b, ok, events, "".join(out), wall, result)

    def trust_lists(self, timestamp: int | None = None) -> dict[str, bytes]:
        """CTLFile.tlv and ITLFile.tlv as served (timestamp: the same lists signed again)."""
        from host_tools import ctlbuild
        p, R = self.pki, ctlbuild.Record
        ccm = R("CCM", p.ccm.cert, dns=p.ccm.cn, ip="127.0.0.1")
        tftp = R("TFTP", p.tftp.cert, dns=p.tftp.cn, ip="127.0.0.1")
        capf = R("CAPF", p.capf.cert)
        return {"CTLFile.tlv": ctlbuild.build_trust_list(
                    p.sast, [R("SAST", p.sast2.cert), ccm, tftp, capf],
                    hash_name=self.hash_name, timestamp=timestamp),
                "ITLFile.tlv": ctlbuild.build_trust_list(
                    p.sast, [tftp, ccm, capf], hash_name=self.hash_name, itl=True,
                    timestamp=timestamp)}

    def second_boot(self, fw: Path, heap: str | int = "96K", sample: bool = False,
                    new_lists: bool = False, image: Image | None = None) -> ProvisionRun:
        """Provision a folder that already holds the stored state of a first boot (stored
        trust list verified first, new downloads checked against its SASTs). new_lists: the
        server's CTL and ITL are signed again in between (other bytes, same SASTs), so both
        are verified again: the heaviest boot."""
        folder = self.board_folder()
        if not self.provision(fw, "1M", folder=folder).ok:
            raise MemcheckError("the first boot fails even with a 1M heap")
        if not new_lists:
            return self.provision(fw, heap, sample=sample, folder=folder, image=image)
        served = {n: (self.tftp_root / n).read_bytes() for n in ("CTLFile.tlv", "ITLFile.tlv")}
        try:
            # signed again later (a list older than the one in force is refused)
            for name, data in self.trust_lists(timestamp=int(time.time()) + 60).items():
                (self.tftp_root / name).write_bytes(data)
            return self.provision(fw, heap, sample=sample, folder=folder, image=image)
        finally:
            for name, data in served.items():
                (self.tftp_root / name).write_bytes(data)

    def passes(self, fw: Path, heap: str | int, again: bool = False,
               new_lists: bool = False, image: Image | None = None) -> bool:
        if again or new_lists:
            return self.second_boot(fw, heap, new_lists=new_lists, image=image).ok
        return self.provision(fw, heap, image=image).ok

    def min_heap(self, fw: Path, lo: str | int = "48K", hi: str | int = "160K",
                 step: int = 1024, again: bool = False, confirm: int = 2,
                 new_lists: bool = False, image: Image | None = None) -> int:
        """The smallest heap at which provisioning passes (again=True: a second boot;
        new_lists=True: a second boot with both trust lists signed again; image: the agent
        from the firmware's image)."""
        return smallest(lambda heap: self.passes(fw, heap, again, new_lists, image), lo, hi,
                        step, confirm, "provisioning")


def smallest(passes: Callable[[int], bool], lo: str | int, hi: str | int, step: int = 1024,
             confirm: int = 2, what: str = "the run") -> int:
    """The smallest heap (bytes, to `step`) at which passes(heap) holds, by bisection, then
    raised until the `confirm` heaps above it pass too (a fragmented heap is not monotonic:
    one size may fail where a smaller one passed)."""
    lo_u, hi_u = micropython.parse_size(lo) // step, micropython.parse_size(hi) // step
    top = hi_u
    if not passes(hi_u * step):
        raise MemcheckError(f"{what} fails even at {hi_u * step} bytes")
    while hi_u - lo_u > 1:
        mid = (lo_u + hi_u) // 2
        if passes(mid * step):
            hi_u = mid
        else:
            lo_u = mid
    best = hi_u
    k = 1
    while k <= confirm and best + k < top:
        if passes((best + k) * step):
            k += 1
        else:
            best += k
            k = 1
    return best * step


# -- the whole story ----------------------------------------------------------------------------
_STORY_MAIN = """
import gc, sys
from phone import events
def _l(ev, t, fields):
    gc.collect()
    sys.stdout.write('@heap %d %s\\n' % (gc.mem_alloc(), ev))
events.default.listeners.append(_l)
from phone import boot
boot.main()
"""

_STEPS = (("registered", "primary"), ("standby_up", None), ("cut", None),
          ("registered", "srst"), ("restore", None), ("rehomed", None), ("standby_up", None))
# Heap peaks are kept per phase, told apart by the board's own events: (phase, the event
# that ends it, its link, whether that event's sample still belongs to it). The listener
# prints its sample right after the event's line.
_PHASES = (("provisioning", "provisioned", None, True),
           ("registration", "registered", "primary", True),
           ("standby link", "standby_up", None, True),
           ("registered", "primary_lost", None, False),
           ("failover", "registered", "srst", True),
           ("fallback", "primary_reachable", None, False),
           ("re-home", "rehomed", None, True),
           ("standby again", None, None, True))


@dataclass
class StoryRun:
    heap: int
    ok: bool
    step: str                 # the step it got to ("done" when it all happened)
    peak_live: int | None     # largest live heap seen at an event (sampled, gc first)
    peak_at: str | None
    phases: dict[str, tuple[int, str]]   # phase -> (largest live heap, at which event)
    seconds: float
    output: str


def story(fw: Path, heap: str | int, workdir: Path, mode: str = "loopback",
          timeout: float = 45, sample: bool = True, image: Image | None = None) -> StoryRun:
    """Boot a virtual board on the lab (short timers): provision, register with the call
    manager, standby TLS to the SRST router, WAN cut -> registered with the SRST router,
    WAN restored -> re-homed, standby again. mode: "loopback" (TFTP server given by the
    profile) or "netns" (DHCP from dnsmasq; needs root). image: the agent from the
    firmware's image (heap figures leave the image out)."""
    from host_tools.lab.lab import Lab
    heap_b = micropython.parse_size(heap)
    t0 = time.monotonic()
    with Lab(Path(workdir) / "lab", mode=mode, short_timers=True) as lab:
        folder = lab.prepare_board_folder(Path(workdir) / "board")
        main = _STORY_MAIN if sample else "from phone import boot\nboot.main()\n"
        rom = cap = 0
        if image is not None:
            main, rom, cap = image.mount() + main, image.heap, image.cap
        (folder / "main.py").write_text(main)
        env = _env(fw, image)
        env.update(lab.phone_env())
        p = subprocess.Popen(lab.phone_prefix() + micropython.command(["main.py"],
                                                                      heap=heap_b + cap),
                             env=env, cwd=folder, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        q: queue.Queue = queue.Queue()
        out: list[str] = []
        peak: list = [None, None]
        phase = [0, False]          # index in _PHASES, move on after the next sample
        phases: dict[str, tuple[int, str]] = {}

        def pump() -> None:
            r = EventReader()
            assert p.stdout is not None
            for line in p.stdout:
                out.append(line)
                if line.startswith("@heap "):
                    _, n, ev = line.split()
                    live = int(n) - rom
                    if peak[0] is None or live > peak[0]:
                        peak[:] = [live, ev]
                    name = _PHASES[phase[0]][0]
                    if live > phases.get(name, (0, ""))[0]:
                        phases[name] = (live, ev)
                    if phase[1]:
                        phase[:] = [phase[0] + 1, False]
                    continue
                r.feed(line)
                for e in r.events:
                    _, end, link, inclusive = _PHASES[phase[0]]
                    if e.ev == end and (link is None or e.get("link") == link):
                        phase[:] = [phase[0], True] if inclusive else [phase[0] + 1, False]
                    q.put(e)
                r.events.clear()
            q.put(None)

        threading.Thread(target=pump, daemon=True).start()

        def wait(ev: str, link: str | None) -> bool:
            end = time.monotonic() + timeout
            while True:
                try:
                    e = q.get(timeout=max(0.01, end - time.monotonic()))
                except queue.Empty:
                    return False
                if e is None:
                    return False
                if e.ev == ev and (link is None or e.get("link") == link):
                    return True

        step = "boot"
        try:
            for ev, link in _STEPS:
                step = ev if link is None else f"{ev}:{link}"
                if ev == "cut":
                    lab.wan_cut("blackhole")
                elif ev == "restore":
                    lab.wan_restore()
                elif not wait(ev, link):
                    break
            else:
                step = "done"
        finally:
            p.kill()
            p.wait()
    return StoryRun(heap_b, step == "done", step, peak[0], peak[1], phases,
                    round(time.monotonic() - t0, 1), "".join(out))
