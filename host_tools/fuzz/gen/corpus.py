"""The valid inputs the generators mutate: the committed fixtures, and a signed set built by
host_tools (pki, ctlbuild, cnfxml) from keys made by a seeded PRNG, the same bytes on every run."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

from host_tools import ROOT


FIXTURES = ROOT / "tests" / "firmware" / "fixtures"
FIXTURE_DATA = FIXTURES / "data"


@dataclass
class Corpus:
    """Valid inputs to mutate. `signer`/`tftp` (host_tools.pki identities with their keys),
    when present, let the CTL/.sgn generators sign what they mutate, so the parsers get past
    the signature into the trust rules and the payload; `trust` is the CTL (bytes) naming
    them, which the harness is given as its trust list."""
    certs: list[bytes] = field(default_factory=list)
    pems: list[bytes] = field(default_factory=list)
    ctls: list[bytes] = field(default_factory=list)
    sgns: list[bytes] = field(default_factory=list)
    configs: list[bytes] = field(default_factory=list)
    signer: object | None = None
    tftp: object | None = None
    trust: bytes | None = None
    signed_ctls: list[bytes] = field(default_factory=list)
    signed_sgns: list[bytes] = field(default_factory=list)


def fixture_corpus() -> Corpus:
    """Committed fixtures and the deterministic builders only (the same on every run)."""
    c = Corpus()
    for p in sorted(FIXTURE_DATA.glob("*.der")):
        c.certs.append(p.read_bytes())
    c.pems = [p.read_bytes() for p in sorted(FIXTURE_DATA.glob("*.pem"))]
    c.ctls = [p.read_bytes() for p in sorted(FIXTURE_DATA.glob("*.tlv"))]
    c.sgns = [p.read_bytes() for p in sorted(FIXTURE_DATA.glob("*.sgn"))]
    c.configs = [p.read_bytes() for p in sorted(FIXTURES.glob("*.cnf.xml"))]
    c.configs += [_cnf(certs) for certs in ((), (c.certs[0],), (c.certs[1], c.certs[2]))]
    return c


def _cnf(certs: Sequence[bytes], security: int = 3) -> bytes:
    from host_tools.lab import cnfxml
    cms = [cnfxml.CallManagerRef(f"cucm{i}", f"192.0.2.{10 + i}", 2000 + i) for i in range(1 + len(certs))]
    srst = cnfxml.SrstRef("srst-branch", "198.51.100.1", 2000, certs[0] if certs else None) \
        if certs else None
    return cnfxml.build_cnf_xml("001122334455", cms, srst, security_mode=security).encode()


_SMALL_PRIMES = (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73)


def _probable_prime(n: int, r: random.Random, rounds: int = 32) -> bool:
    """Miller-Rabin."""
    d, s = n - 1, 0
    while not d & 1:
        d >>= 1
        s += 1
    for _ in range(rounds):
        x = pow(r.randrange(2, n - 1), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(r: random.Random, bits: int) -> int:
    while True:
        n = r.getrandbits(bits) | (3 << (bits - 2)) | 1
        if all(n % p for p in _SMALL_PRIMES) and _probable_prime(n, r):
            return n


def seeded_key(seed: str, bits: int = 1024):
    """An RSA key made from a seeded PRNG: the same key on every run, so the corpus (and
    with it every generated input) is reproducible. For fuzzing only."""
    import math

    from cryptography.hazmat.primitives.asymmetric import rsa
    r = random.Random(seed)
    e = 65537
    while True:
        p, q = _prime(r, bits // 2), _prime(r, bits // 2)
        phi = (p - 1) * (q - 1)
        if p == q or math.gcd(e, phi) != 1 or (p * q).bit_length() != bits:
            continue
        d = pow(e, -1, phi)
        return rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p),
                                     rsa.RSAPublicNumbers(e, p * q)).private_key()


def add_signed(c: Corpus, key_size: int = 1024) -> Corpus:
    """Identities with their keys (seeded, fixed dates and serials: the same bytes on every
    run), the trust lists and signed configs ctlbuild/pki/cnfxml make with them."""
    import datetime as dt

    from host_tools import ctlbuild, pki

    start = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)

    def ident(name: str, role: str, cn: str, serial: int, **kw):
        return pki.make_identity(name, role, cn=cn, key=seeded_key(name, key_size), key_size=key_size,
                                 serial=serial, not_before=start, days=365 * 50, **kw)

    sast = ident("sast", "SAST", "SAST-FUZZ", 0x5A57)
    tftp = ident("tftp", "TFTP", "tftp-fuzz", 0x7F7F)
    ccm = ident("ccm", "CCM", "cucm-fuzz", 0xCC01)
    srst = ident("srst", "SRST", "srst-fuzz", 0x5257, ip="198.51.100.1")
    both = ident("ccm_tftp", "CCM+TFTP", "cucm-tftp-fuzz", 0xCC02, hash_alg="sha512")
    for i in (sast, tftp, ccm, srst, both):
        c.certs.append(i.cert_der)
        c.pems.append(i.cert_pem)
    recs = [ctlbuild.Record("TFTP", tftp.cert), ctlbuild.Record("CCM", ccm.cert, dns="cucm.lab", ip="192.0.2.10"),
            ctlbuild.Record("CCM+TFTP", both.cert)]
    c.signer, c.tftp = sast, tftp
    c.trust = ctlbuild.build_trust_list(sast, recs, hash_name="sha256", timestamp=1767225600)
    c.signed_ctls = [c.trust,
                     ctlbuild.build_trust_list(sast, recs[:1], hash_name="sha1", itl=True,
                                               timestamp=1767225600),
                     ctlbuild.build_trust_list(sast, recs, hash_name="sha512", timestamp=0)]
    c.ctls += c.signed_ctls
    cfg = _cnf([srst.cert_der, ccm.cert_der])
    c.configs.append(cfg)
    c.signed_sgns = [ctlbuild.build_sgn(tftp, cfg, filename="SEP001122334455.cnf.xml.sgn",
                                        timestamp=1767225600, hash_name=h) for h in ("sha256", "sha1")]
    c.sgns += c.signed_sgns
    return c


def corpus() -> Corpus:
    """Everything: the fixtures and the signed set (reproducible)."""
    return add_signed(fixture_corpus())
