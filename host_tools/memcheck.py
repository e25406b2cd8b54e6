"""Heap figures of the firmware on the MicroPython unix port, loaded as .mpy as on a board:
RAM each module costs once imported, and provisioning (phone.boot.provision) run against a
real TFTP server on loopback, at a given heap cap or bisected down to the smallest that works.
Used by bench/memory.py and tests/host/test_provision_heap.py.

    fw = build_mpy(tmp / "fw")                       # folder holding phone/*.mpy
    with ProvisionLab(tmp / "lab") as lab:           # PKI, CTL/ITL, signed cnf.xml, TFTP server
        run = lab.provision(fw, heap="96K")           # a fresh board folder each time
        run.ok, run.ms, run.live_peak, run.events
        smallest = lab.min_heap(fw)                   # bytes, by bisection
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from host_tools import BOARDS, FIRMWARE, ROOT, micropython
from host_tools.events import Event, EventReader

PROVISION_RUN = ROOT / "host_tools" / "mpscripts" / "provision_run.py"
MAC = "001122AABBCC"
# Import order of a boot: what stays loaded while provisioning, then the agent's side.
PROVISION_MODULES = ("events", "platform", "settings", "boot", "store", "provision", "der",
                     "x509", "pkcs1", "ctl", "config", "tftp", "dhcp", "sha512")
AGENT_MODULES = ("sccp", "link", "agent")
# SHORT settings: a TFTP server on loopback answers at once.
SETTINGS = {"tftp_timeout_ms": 1000, "tftp_retries": 3, "retry_min_ms": 200}


class MemcheckError(RuntimeError):
    pass


def mpy_format() -> "object":
    from host_tools import deploy
    out = subprocess.run(micropython.command(["-c", "import sys; print(sys.implementation._mpy)"],
                                             heap=None), capture_output=True, text=True,
                         timeout=30, env=micropython.environ()).stdout.strip()
    return deploy.MpyFormat.from_sys(int(out))


def build_mpy(out: Path) -> Path:
    """Compile firmware/phone/*.py with mpy-cross into out/phone/*.mpy (as deployed)."""
    from host_tools import deploy
    cmd = deploy.mpy_cross_command(mpy_format())  # type: ignore[arg-type]
    if out.exists():
        shutil.rmtree(out)
    for src in sorted((FIRMWARE / "phone").glob("*.py")):
        deploy.compile_file(cmd, src, f"phone/{src.name}", out / "phone" / f"{src.stem}.mpy")
    return out


def _env(fw: Path) -> dict[str, str]:
    env = micropython.environ()
    env["MICROPYPATH"] = ":".join([".frozen", str(fw)])
    return env


_MODULE_RAM = """
import gc, sys
gc.collect()
import phone
out = []
for m in sys.argv[1].split(','):
    gc.collect()
    a = gc.mem_alloc()
    __import__('phone.' + m)
    gc.collect()
    out.append('%s=%d' % (m, gc.mem_alloc() - a))
gc.collect()
print('@@' + ' '.join(out) + ' total=%d' % gc.mem_alloc())
"""


def module_ram(fw: Path, modules: tuple[str, ...] = PROVISION_MODULES + AGENT_MODULES,
               heap: str = "512K") -> dict[str, int]:
    """Heap bytes each module adds when imported in this order (a module's own imports of
    modules not yet loaded count towards it), plus 'total' (all of them and the runtime)."""
    with tempfile.TemporaryDirectory() as d:
        script = Path(d) / "modram.py"
        script.write_text(_MODULE_RAM)
        p = subprocess.run(micropython.command([str(script), ",".join(modules)], heap=heap),
                           env=_env(fw), capture_output=True, text=True, timeout=60, cwd=d)
    line = next((x for x in p.stdout.splitlines() if x.startswith("@@")), None)
    if line is None:
        raise MemcheckError(f"module RAM run failed:\n{p.stdout}{p.stderr}")
    return {k: int(v) for k, v in (kv.split("=") for kv in line[2:].split())}


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
    TFTP server and port given)."""

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
        R = ctlbuild.Record
        ccm = R("CCM", p.ccm.cert, dns=p.ccm.cn, ip="127.0.0.1")
        tftp = R("TFTP", p.tftp.cert, dns=p.tftp.cn, ip="127.0.0.1")
        capf = R("CAPF", p.capf.cert)
        ctlbuild.write(root / "CTLFile.tlv", ctlbuild.build_trust_list(
            p.sast, [R("SAST", p.sast2.cert), ccm, tftp, capf], hash_name=self.hash_name))
        ctlbuild.write(root / "ITLFile.tlv", ctlbuild.build_trust_list(
            p.sast, [tftp, ccm, capf], hash_name=self.hash_name, itl=True))
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
        (state / "phone.der").write_bytes(ident.cert_der)
        (state / "phone.key").write_bytes(ident.key_der)
        return folder

    def provision(self, fw: Path, heap: str | int = "96K", sample: bool = False,
                  folder: Path | None = None, timeout: float = 60) -> ProvisionRun:
        """Provision a board folder (fresh unless given) under `heap`."""
        folder = folder or self.board_folder()
        args = [str(PROVISION_RUN)] + (["sample"] if sample else [])
        heap_b = micropython.parse_size(heap)
        t0 = time.monotonic()
        p = subprocess.Popen(micropython.command(args, heap=heap_b), env=_env(fw), cwd=folder,
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
                # The server always answers here: a retry means this pass failed (a
                # MemoryError caught as a failed download, say), and it would retry forever.
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
        ok = (p.returncode == 0 and res is not None and bool(res.get("ok"))
              and any(e.ev == "provisioned" for e in events))
        return ProvisionRun(heap_b, ok, events, "".join(out), wall,
                            dict(res.fields) if res is not None else {})

    def min_heap(self, fw: Path, lo: str | int = "32K", hi: str | int = "256K",
                 step: int = 1024, again: bool = False) -> int:
        """The smallest heap (bytes, to `step`) at which provisioning passes, by bisection.
        again=True provisions a folder that already holds the stored state (a second boot)."""
        lo_b, hi_b = micropython.parse_size(lo) // step, micropython.parse_size(hi) // step

        def passes(units: int) -> bool:
            folder = self.board_folder()
            if again:
                if not self.provision(fw, "512K", folder=folder).ok:
                    raise MemcheckError("provisioning fails even at 512K")
            return self.provision(fw, units * step, folder=folder).ok

        if not passes(hi_b):
            raise MemcheckError(f"provisioning fails even at {hi_b * step} bytes")
        while hi_b - lo_b > 1:
            mid = (lo_b + hi_b) // 2
            if passes(mid):
                hi_b = mid
            else:
                lo_b = mid
        return hi_b * step
