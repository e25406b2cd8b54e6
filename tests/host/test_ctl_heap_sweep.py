"""An independently built SHA-512 CTL signed by a 4096-bit SAST verifies at every heap size
from the documented minimum up (docs/decisions.md, "CTL heap"), on both SHA-512 engines.

`phonelab ctl verify` used to refuse such a file at 96K while it passed at 94K and 98K (and,
with a 4096-bit SAST, at every size): success hung on where the heap's long-lived objects
happened to land. The file is written by the independent writer of test_ctl_interop.py
(from the format description, not host_tools/ctlbuild), with fresh keys each run, so the
layout is not one the firmware was tuned on. One MicroPython process per heap size, a few
at a time; the full sweep (every 512 bytes, both engines, with and without an anchor) is
marked slow."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from test_ctl_interop import hand_file, hand_record

from host_tools import fwbuild, micropython
from host_tools.commands.ctl import CTLTOOL

MIN_HEAP_K = 72          # documented in docs/decisions.md ("CTL heap") and the README
TOP_HEAP_K = 160
WORKERS = max(1, min(4, (os.cpu_count() or 2)))

# ctltool with the pure-Python SHA-512 engine, as on a port without a native emitter
PYTHON_ENGINE = """\
import sys
from phone import sha512
sha512.native = None
sys.path.append(%r)
import ctltool
"""


def _cert(cn: str, bits: int, serial: int):
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "VTG"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Lab"),
                      x509.NameAttribute(NameOID.LOCALITY_NAME, "Wellington"),
                      x509.NameAttribute(NameOID.COUNTRY_NAME, "NZ")])
    start = dt.datetime(2025, 1, 1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=3650))
            .sign(key, hashes.SHA256()))
    return cert, key


@pytest.fixture(scope="module")
def trust_list(tmp_path_factory) -> tuple[Path, Path]:
    """(CTL, SAST certificate DER): SAST 4096-bit, a second SAST and CCM+TFTP, CAPF and
    TFTP records with 2048-bit keys; SHA-512; about 9 KB."""
    out = tmp_path_factory.mktemp("ctlheap")
    sast, sast_key = _cert("SAST-ADN-heap", 4096, 0x5A57F001)
    recs = [("SAST", sast)]
    for i, role in enumerate(("SAST", "CCM+TFTP", "CAPF", "TFTP")):
        recs.append((role, _cert(f"cucm-{role.lower().replace('+', '-')}-{i}", 2048,
                                 0x7000 + i)[0]))
    body = b"".join(hand_record(role, c) for role, c in recs)
    data = hand_file(sast, sast_key, body, "CTLFile.tlv", "sha512")
    assert len(data) >= 8 * 1024
    ctl = out / "CTLFile.tlv"
    ctl.write_bytes(data)
    der = out / "sast.der"
    der.write_bytes(sast.public_bytes(serialization.Encoding.DER))
    (out / "python_engine.py").write_text(PYTHON_ENGINE % str(CTLTOOL.parent))
    return ctl, der


def _verify(ctl: Path, heap: int, engine: str, anchor: Path | None) -> dict:
    script = CTLTOOL if engine == "native" else ctl.parent / "python_engine.py"
    args = [str(script), "verify", str(ctl)] + (["--sast", str(anchor)] if anchor else [])
    proc = subprocess.run(micropython.command(args, heap=heap), env=fwbuild.environ(),
                          capture_output=True, text=True, timeout=120)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"valid": False, "reason": f"crashed: {(proc.stdout + proc.stderr)[-300:]}"}
    return json.loads(lines[-1])


def _sweep(ctl: Path, sizes: list[int], engine: str, anchor: Path | None) -> dict[int, dict]:
    with ThreadPoolExecutor(WORKERS) as pool:
        return dict(zip(sizes, pool.map(lambda h: _verify(ctl, h, engine, anchor), sizes)))


def _refused(results: dict[int, dict]) -> dict[int, str]:
    return {h: r.get("reason", "?") for h, r in results.items() if r.get("valid") is not True}


@pytest.mark.parametrize("engine", ["native", "python"])
def test_4096_bit_sha512_ctl_verifies_at_every_heap_from_the_minimum(trust_list, engine):
    ctl, der = trust_list
    sizes = [k * 1024 for k in range(MIN_HEAP_K, TOP_HEAP_K + 1, 2)]
    # first use (no anchor) on even steps of 4K, against the pinned SAST on the others
    tofu = _sweep(ctl, sizes[0::2], engine, None)
    pinned = _sweep(ctl, sizes[1::2], engine, der)
    assert _refused(tofu) == {} and _refused(pinned) == {}, (_refused(tofu), _refused(pinned))
    r = tofu[sizes[0]]
    assert (r["hash"], r["signature_length"], r["tofu"]) == ("sha512", 512, True)
    assert pinned[sizes[1]]["tofu"] is False


def test_below_the_minimum_it_is_a_memory_shortage_never_a_verdict(trust_list):
    """Too small a heap fails closed and says so: not valid, and not "bad signature"."""
    ctl, der = trust_list
    results = _sweep(ctl, [k * 1024 for k in (40, 48, 56)], "native", der)
    for heap, r in results.items():
        assert r["valid"] is False, heap
        assert "memory" in r["reason"], (heap, r["reason"])


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["native", "python"])
@pytest.mark.parametrize("anchored", [False, True])
def test_full_sweep_every_512_bytes(trust_list, engine, anchored):
    ctl, der = trust_list
    sizes = list(range(MIN_HEAP_K * 1024, TOP_HEAP_K * 1024 + 1, 512))
    refused = _refused(_sweep(ctl, sizes, engine, der if anchored else None))
    assert refused == {}, refused
