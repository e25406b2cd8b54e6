"""Fleet identities: the lab PKI plus one phone certificate per MAC, generated once and kept.

A fleet needs a certificate per phone, issued by the lab CA (`capf`), as every phone of the
Secure SRST lab has. 1024-bit keys would be quicker to make, but the simulators' OpenSSL
(Python's default security level 2) refuses them in TLS ("EE certificate key too weak"), so the
fleet uses 2048-bit keys (~32 ms each here) and keeps them in a cache folder:

    CACHE/pki/            host_tools.pki.make_pki: SAST x2, CCM, TFTP, CCM+TFTP, SRST, CAPF
    CACHE/phones/SEP<MAC>.der, SEP<MAC>.key.der   phone certificates (issued by CACHE/pki/capf)

Only the identities that are missing are made (in parallel, one process per core); a later run
with more phones adds to the cache. MACs are locally administered and numbered:
02:F1:EE:00:00:01, 02:F1:EE:00:00:02, ...
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from host_tools import WORK
from host_tools import pki as labpki

DEFAULT_CACHE = WORK / "out" / "fleet" / "pki-cache"
MAC_PREFIX = "02F1EE"
KEY_SIZE = 2048


@dataclass(frozen=True)
class PhoneId:
    mac: str                  # 12 hex digits
    cert_path: Path
    key_path: Path

    @property
    def device(self) -> str:
        return f"SEP{self.mac}"


@dataclass
class FleetPki:
    pki: labpki.Pki           # servers + CAPF; phones holds only the first phone (for Lab)
    phones: list[PhoneId]

    @property
    def macs(self) -> list[str]:
        return [p.mac for p in self.phones]


def fleet_macs(n: int, first: int = 1) -> list[str]:
    return [f"{MAC_PREFIX}{i:06X}" for i in range(first, first + n)]


def ensure(n: int, cache: Path = DEFAULT_CACHE, key_size: int = KEY_SIZE,
           progress: Callable[[str], None] | None = None) -> FleetPki:
    """The lab PKI and `n` phone identities, made where missing."""
    cache = Path(cache) / f"rsa{key_size}"
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache / ".lock"):      # two runs must not make two CAs
        return _ensure(n, cache, key_size, progress or (lambda msg: None))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _ensure(n: int, cache: Path, key_size: int, say: Callable[[str], None]) -> FleetPki:
    servers = cache / "pki"
    phones_dir = cache / "phones"
    if not (servers / "capf.key.pem").exists():
        say(f"making the lab PKI in {servers}")
        for old in phones_dir.glob("*") if phones_dir.exists() else []:
            old.unlink()                        # issued by a CA that is gone
        labpki.make_pki(servers, (), key_size)
    std = {stem: labpki.load_identity(servers / f"{stem}.pem", servers / f"{stem}.key.pem",
                                      name=stem, role=role)
           for stem, (role, _cn) in labpki.STANDARD.items()}
    macs = fleet_macs(n)
    phones_dir.mkdir(parents=True, exist_ok=True)
    missing = [m for m in macs if not (phones_dir / f"SEP{m}.key.der").exists()]
    if missing:
        say(f"making {len(missing)} phone certificates ({key_size}-bit keys, once; cached in {cache})")
        _make_phones(missing, servers, phones_dir, key_size)
    ids = [PhoneId(m, phones_dir / f"SEP{m}.der", phones_dir / f"SEP{m}.key.der") for m in macs]
    first = ids[0]
    lab_pki = labpki.Pki(out_dir=servers, **std)
    lab_pki.phones[first.mac] = labpki.load_identity(first.cert_path, first.key_path,
                                                     name=first.device, role="PHONE")
    return FleetPki(lab_pki, ids)


def _make_phones(macs: list[str], servers: Path, out: Path, key_size: int) -> None:
    workers = max(1, min(os.cpu_count() or 1, len(macs) // 8 or 1))
    chunks = [macs[i::workers] for i in range(workers)]
    if workers == 1:
        _make_chunk(chunks[0], str(servers), str(out), key_size)
        return
    with ProcessPoolExecutor(workers) as ex:
        for f in [ex.submit(_make_chunk, c, str(servers), str(out), key_size) for c in chunks]:
            f.result(timeout=3600)


def _make_chunk(macs: list[str], servers: str, out: str, key_size: int) -> int:
    capf = labpki.load_identity(Path(servers) / "capf.pem", Path(servers) / "capf.key.pem",
                                name="capf", role="CAPF")
    for mac in macs:
        ident = labpki.make_identity(f"SEP{mac}", "PHONE", cn=f"SEP{mac}", issuer=capf,
                                     key_size=key_size)
        base = Path(out) / f"SEP{mac}"
        _atomic(base.with_name(base.name + ".der"), ident.cert_der)
        # the key last: its presence marks the pair complete
        _atomic(base.with_name(base.name + ".key.der"), ident.key_der, 0o600)
    return len(macs)


def _atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    os.replace(tmp, path)
