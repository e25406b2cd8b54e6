"""Input generators for the firmware parsers: structure-aware mutations of valid packets and
files built by host_tools (rogue_dhcp offers, sccp_lab frames, pki certificates, ctlbuild
trust lists and .sgn files, cnfxml configs) and of the committed fixtures, plus plain byte
mutations (bit flips, truncations, interesting values).

Every generator is `gen(src, corpus) -> bytes`: the input the harness reads (a flags byte, then
the payload). `src` is where the choices come from: `RandomSrc` (a seeded random.Random, for the
bench) or `strategies.DrawSrc` (hypothesis draws, for the tests, which then shrink a failure),
so the same code serves both.
"""
from __future__ import annotations

import base64
import hashlib
import random
import re
import struct
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence, TypeVar

import host_tools.fw  # noqa: F401 - firmware/ on sys.path (phone.sccp_lab)
from host_tools import ROOT

FIXTURES = ROOT / "tests" / "firmware" / "fixtures"
FIXTURE_DATA = FIXTURES / "data"
# The harness's DHCP client identity (host_tools/mpscripts/fuzz_harness.py).
XID = 0x5EED1234
MAC = bytes.fromhex("001122334455")

T = TypeVar("T")


class Src(Protocol):
    def int(self, lo: int, hi: int) -> int: ...
    def bytes(self, n: int) -> bytes: ...


class RandomSrc:
    def __init__(self, seed: int | str = 0):
        self.r = random.Random(seed)

    def int(self, lo: int, hi: int) -> int:
        return self.r.randint(lo, hi)

    def bytes(self, n: int) -> bytes:
        return self.r.randbytes(n)


def pick(src: Src, seq: Sequence[T]) -> T:
    return seq[src.int(0, len(seq) - 1)]


def chance(src: Src, k: int) -> bool:
    """True one time in k."""
    return src.int(1, k) == 1


# ------------------------------------------------------------------------------ bytes
INTERESTING8 = (0, 1, 0x7F, 0x80, 0xFF, 0x20, 0x0D, 0x1E)
INTERESTING16 = (0, 1, 3, 4, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)
INTERESTING32 = (0, 1, 4, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x10000, 2052, 2053)


def mutate_bytes(src: Src, b: bytes, ops: int | None = None, other: bytes | None = None) -> bytes:
    """Byte-level havoc: bit flips, interesting values, deletions, insertions, duplicated
    ranges, truncation, a splice with `other`."""
    out = bytearray(b)
    for _ in range(ops if ops is not None else src.int(1, 4)):
        n = len(out)
        op = src.int(0, 9)
        if not n and op not in (5, 9):
            op = 5
        if op == 0:
            i = src.int(0, n - 1)
            out[i] ^= 1 << src.int(0, 7)
        elif op == 1:
            out[src.int(0, n - 1)] = pick(src, INTERESTING8)
        elif op == 2:
            out[src.int(0, n - 1)] = src.int(0, 255)
        elif op == 3 and n >= 2:
            i = src.int(0, n - 2)
            struct.pack_into(pick(src, (">H", "<H")), out, i, pick(src, INTERESTING16))
        elif op == 4 and n >= 4:
            i = src.int(0, n - 4)
            struct.pack_into(pick(src, (">I", "<I")), out, i, pick(src, INTERESTING32))
        elif op == 5:
            i = src.int(0, n)
            out[i:i] = src.bytes(src.int(1, 16))
        elif op == 6:
            i = src.int(0, n - 1)
            del out[i:i + src.int(1, min(64, n - i))]
        elif op == 7:
            i = src.int(0, n - 1)
            k = src.int(1, min(64, n - i))
            j = src.int(0, n)
            out[j:j] = out[i:i + k]
        elif op == 8:
            del out[src.int(0, n):]
        elif op == 9 and other:
            i = src.int(0, len(out))
            j = src.int(0, len(other))
            out = out[:i] + bytearray(other[j:])
    return bytes(out)


def truncate(src: Src, b: bytes) -> bytes:
    return b[:src.int(0, max(0, len(b) - 1))]


# ------------------------------------------------------------------------------ DER trees
@dataclass
class Der:
    """One DER element: primitive (`content`) or constructed (`kids`); `wrap` marks a BIT
    STRING / OCTET STRING whose content is itself DER (kept as kids, re-encoded with the
    prefix). `length` overrides the encoded length bytes (a lie)."""
    tag: int
    content: bytes = b""
    kids: list["Der"] | None = None
    prefix: bytes = b""
    length: bytes | None = None
    raw: bytes | None = None            # opaque encoded bytes (a nesting bomb)


def der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _der_items(b: bytes, pos: int, end: int) -> list[tuple[int, int, int]] | None:
    out = []
    while pos < end:
        if pos + 2 > end:
            return None
        tag, n = b[pos], b[pos + 1]
        if tag & 0x1F == 0x1F:
            return None
        pos += 2
        if n & 0x80:
            k = n & 0x7F
            if not 0 < k <= 4 or pos + k > end:
                return None
            n = int.from_bytes(b[pos:pos + k], "big")
            pos += k
        if pos + n > end:
            return None
        out.append((tag, pos, pos + n))
        pos += n
    return out


def der_parse(b: bytes, start: int = 0, end: int | None = None, depth: int = 0) -> list[Der] | None:
    """The elements of b[start:end] as trees, or None when it is not a sequence of them."""
    end = len(b) if end is None else end
    items = _der_items(b, start, end)
    if items is None:
        return None
    out = []
    for tag, s, e in items:
        node = Der(tag, bytes(b[s:e]))
        if depth < 40:
            if tag & 0x20:
                node.kids = der_parse(b, s, e, depth + 1)
            elif tag == 0x03 and e - s > 1 and b[s] == 0 and b[s + 1] in (0x30, 0x31):
                kids = der_parse(b, s + 1, e, depth + 1)
                if kids:
                    node.kids, node.prefix = kids, b"\x00"
            elif tag == 0x04 and e - s > 1 and b[s] in (0x30, 0x31, 0x02, 0x03, 0x04):
                kids = der_parse(b, s, e, depth + 1)
                if kids:
                    node.kids = kids
        out.append(node)
    return out


def der_encode(node: Der) -> bytes:
    if node.raw is not None:
        return node.raw
    body = node.prefix + b"".join(der_encode(k) for k in node.kids) if node.kids is not None \
        else node.content
    return bytes([node.tag]) + (node.length if node.length is not None else der_len(len(body))) + body


def _body_len(node: Der) -> int:
    if node.kids is None:
        return len(node.content)
    return len(node.prefix) + sum(len(der_encode(k)) for k in node.kids)


def _nodes(nodes: list[Der], out=None) -> list[tuple[Der, list[Der]]]:
    """Every node with the list that holds it."""
    out = [] if out is None else out
    for n in nodes:
        out.append((n, nodes))
        if n.kids:
            _nodes(n.kids, out)
    return out


def _big_int(src: Src) -> bytes:
    k = pick(src, (1, 2, 9, 65, 129, 257, 513, 1100, 2500))
    b = bytearray(src.bytes(k))
    b[0] = pick(src, (0x7F, 0x01, b[0] & 0x7F))
    return bytes(b)


def _time_text(src: Src) -> tuple[int, bytes]:
    good = (0x17, b"250101120000Z") if chance(src, 2) else (0x18, b"20250101120000Z")
    tag, t = good
    op = src.int(0, 6)
    if op == 0:
        t = t[:-1] + pick(src, (b"z", b"+", b"0"))
    elif op == 1:
        i = src.int(0, len(t) - 2)
        t = t[:i] + pick(src, (b"a", b"/", b":", b" ", b"\xff")) + t[i + 1:]
    elif op == 2:
        t = t[:src.int(0, len(t))]
    elif op == 3:
        tag = 0x18 if tag == 0x17 else 0x17
    elif op == 4:
        i = 2 if tag == 0x17 else 4
        t = t[:i] + pick(src, (b"13", b"00", b"99")) + t[i + 2:]
    elif op == 5:
        t = t[:-1] + b".5Z"
    return tag, t


def _oid_content(src: Src) -> bytes:
    return pick(src, (
        b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01", b"\x55\x04\x03", b"\x2a\x86\x48\x86\xf7\x0d\x01\x01",
        b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0b\x80", b"\xff" * src.int(1, 3000), b"\x88\x37",
        b"\x00", b"\x80", b"\x81\x80\x80\x80\x80\x80\x80\x80\x80\x01", src.bytes(src.int(1, 20)),
        b"\x2a" * src.int(100, 7000),      # thousands of one-byte arcs
    ))


def _string_content(src: Src) -> bytes:
    return pick(src, (
        b"", b"\xff\xfe\xfd", b"caf\xc3\xa9", b"\xc3", b"\xed\xa0\x80", b"A" * src.int(100, 5000),
        b"\x00" * 3, b"\x00A\x00", src.bytes(src.int(1, 40)), "名前".encode(),
        b"".join((0x4E00 + i).to_bytes(2, "big") for i in range(src.int(1, 3500))),  # many characters
    ))


def mutate_der_tree(src: Src, roots: list[Der]) -> None:
    """One structural change somewhere in the tree (in place)."""
    nodes = _nodes(roots)
    if not nodes:
        return
    node, siblings = pick(src, nodes)
    op = src.int(0, 11)
    if op == 0:                      # a length that lies
        n = _body_len(node)
        node.length = pick(src, (
            der_len(n + 1), der_len(max(0, n - 1)), der_len(n + src.int(2, 70000)), b"\x80",
            b"\x85\x00\x00\x00\x00\x05", b"\x84\xff\xff\xff\xff", b"\x82\x00" + bytes([min(n, 255)]),
            b"\xff", b"\x81\x05", der_len(max(0, n - src.int(2, 50)))))
    elif op == 1:                    # another tag
        node.tag = pick(src, (src.int(0, 255), node.tag ^ 0x20, 0x1F, 0x3F, 0x02, 0x06, 0x30,
                              0x31, 0x17, 0x18, 0x0C, 0x1E, 0x03, 0x05, 0xA0, 0xA3, 0x13))
    elif op == 2 and node.kids is None:
        t = node.tag
        if t == 0x02:
            node.content = pick(src, (_big_int(src), b"", b"\x80", b"\xff\xff", b"\x00" * 30))
        elif t == 0x06:
            node.content = _oid_content(src)
        elif t in (0x17, 0x18):
            node.tag, node.content = _time_text(src)
        elif t in (0x0C, 0x13, 0x14, 0x16, 0x1E):
            node.content = _string_content(src)
        else:
            node.content = src.bytes(src.int(0, 80))
    elif op == 3 and len(siblings) > 0:
        siblings.remove(node)
    elif op == 4:
        siblings.insert(siblings.index(node), Der(node.tag, node.content,
                                                  None if node.kids is None else list(node.kids),
                                                  node.prefix, node.length))
    elif op == 5 and len(siblings) > 1:
        i, j = siblings.index(node), src.int(0, len(siblings) - 1)
        siblings[i], siblings[j] = siblings[j], siblings[i]
    elif op == 6:                    # nesting bomb
        depth = pick(src, (30, 100, 400, 2000))
        raw = der_encode(node)
        for _ in range(depth):
            raw = bytes([pick(src, (0x30, 0x31, 0xA0, 0xA3))]) + der_len(len(raw)) + raw
        siblings[siblings.index(node)] = Der(0x30, raw=raw)
    elif op == 7:                    # trailing element
        siblings.append(Der(pick(src, (0x05, 0x02, 0x30, 0x04)), src.bytes(src.int(0, 8))))
    elif op == 8 and node.kids is not None:
        node.kids = []
    elif op == 9 and node.kids is not None and node.prefix:
        node.prefix = pick(src, (b"\x07", b"", b"\x00\x00"))
    elif op == 10 and node.kids is None:
        c = bytearray(node.content)
        if c:
            c[src.int(0, len(c) - 1)] ^= 1 << src.int(0, 7)
        node.content = bytes(c)
    else:
        node.content = truncate(src, node.content)
        node.kids = None


def _rsa_keys(roots: list[Der]) -> list[Der]:
    """RSAPublicKey SEQUENCEs (two INTEGERs) inside BIT STRINGs."""
    return [k for n, _ in _nodes(roots) if n.tag == 0x03 and n.kids
            for k in n.kids if k.tag == 0x30 and k.kids and len(k.kids) == 2
            and all(x.tag == 0x02 for x in k.kids)]


def key_bomb(src: Src, roots: list[Der]) -> None:
    """An RSA key whose exponent (or modulus) is huge: the cost of pow(s, e, n)."""
    for key in _rsa_keys(roots):
        i = 1 if not chance(src, 4) else 0
        k = pick(src, (8, 64, 600, 2000, 4000, 7000))
        key.kids[i].content = b"\x01" + b"\xff" * (k - 2) + b"\x01"


def mutate_der(src: Src, b: bytes) -> bytes:
    roots = der_parse(b)
    if not roots or chance(src, 12):
        return mutate_bytes(src, b)
    if chance(src, 25):
        key_bomb(src, roots)
    for _ in range(src.int(0 if chance(src, 3) else 1, 3)):
        mutate_der_tree(src, roots)
    out = b"".join(der_encode(r) for r in roots)
    if chance(src, 6):
        out = mutate_bytes(src, out, src.int(1, 2))
    if chance(src, 10):
        out = truncate(src, out)
    return out


def pem(src: Src, der: bytes) -> bytes:
    text = base64.encodebytes(der)
    op = src.int(0, 6)
    if op == 1:
        text = text[:src.int(0, len(text))]
    elif op == 2:
        text = text.replace(b"A", b"\xff", 1)
    elif op == 3:
        text = text.replace(b"\n", b"", 3) + b"="
    body = b"-----BEGIN CERTIFICATE-----\n" + text
    if op != 4:
        body += b"-----END CERTIFICATE-----\n"
    if op == 5:
        body = body.replace(b"BEGIN CERTIFICATE", b"BEGIN CERTIFICATE\xc3")
    if op == 6:
        body = b"-----BEGIN \xff\xfe junk"
    return body


# ------------------------------------------------------------------------------ corpus
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


# ------------------------------------------------------------------------------ DHCP
def _ip(text: str) -> bytes:
    return bytes(int(x) for x in text.split("."))


def _dhcp_opts(src: Src, mtype: int, server: bytes) -> list[tuple[int, bytes]]:
    opts = [(53, bytes([mtype])), (54, server), (1, _ip("255.255.255.0")), (51, struct.pack(">I", 600))]
    extra = src.int(0, 6)
    for _ in range(extra):
        code = pick(src, (3, 6, 15, 66, 150, 58, 59, 56, 12, 43, 125, 224, 57, 52, src.int(1, 254)))
        if code in (3, 6, 150):
            k = pick(src, (1, 2, 3))
            v = b"".join(_ip(pick(src, ("192.0.2.1", "0.0.0.0", "198.51.100.7", "255.255.255.255")))
                         for _ in range(k))
            if chance(src, 4):
                v = v[:len(v) - src.int(1, 3)] if chance(src, 2) else v + b"\x01"
        elif code in (15, 56, 12):
            v = pick(src, (b"lab.example", b"\xff\xfe", b"caf\xc3\xa9", b"x\x00\x00", b"",
                           src.bytes(src.int(1, 30)), b"A" * 255))
        elif code == 66:
            v = pick(src, (b"192.0.2.9", b"tftp.lab", b"192.0.2.9,198.51.100.3 tftp2", b"tftp\x00",
                           b"\x00\x00", b"\x01\x02", b"t\x7f", b"caf\xc3\xa9", b"", b" ", b"," * 5,
                           b"256.1.1.1", b"1.2.3", b"A" * 255))
        elif code in (51, 58, 59):
            v = pick(src, (struct.pack(">I", 0xFFFFFFFF), struct.pack(">I", 0), b"\x00\x01", b""))
        elif code == 57:
            v = pick(src, (b"\x02\x40", b"\x00", b"\xff\xff\xff"))
        elif code == 52:
            v = bytes([src.int(0, 4)]) if chance(src, 4) else bytes([pick(src, (1, 2, 3))])
        else:
            v = src.bytes(src.int(0, 40))
        opts.append((code, v))
    if chance(src, 6):
        del opts[src.int(0, len(opts) - 1)]
    if chance(src, 8):                         # RFC 3396: a repeated option concatenates
        opts.append(pick(src, opts))
    if chance(src, 8):
        opts.insert(0, (53, bytes([pick(src, (1, 3, 4, 7, 8, 9, 0, 255))])))
    return opts


def _encode_opts(src: Src, opts: list[tuple[int, bytes]]) -> bytes:
    out = bytearray()
    lie = src.int(0, len(opts)) if chance(src, 5) else -1
    for i, (code, v) in enumerate(opts):
        if chance(src, 20):
            out += b"\x00" * src.int(1, 5)     # pads
        n = len(v) & 0xFF
        if i == lie:
            n = pick(src, (0, 255, (n + 1) & 0xFF, max(0, n - 1), src.int(0, 255)))
        out += bytes([code, n]) + v[:255]
    if not chance(src, 8):
        out.append(255)
    if chance(src, 8):
        out += src.bytes(src.int(1, 20))
    return bytes(out)


def dhcp_packet(src: Src, mtype: int, yiaddr: str = "192.0.2.50", server: str = "192.0.2.1") -> bytes:
    from host_tools.lab import rogue_dhcp
    xid = XID if not chance(src, 12) else src.int(0, 0xFFFFFFFF)
    mac = MAC if not chance(src, 12) else src.bytes(6)
    opts = _dhcp_opts(src, mtype, _ip(server))
    raw = _encode_opts(src, opts)
    pkt = bytearray(rogue_dhcp.offer(xid, mac, yiaddr, server, options=raw,
                                     op=2 if not chance(src, 16) else src.int(0, 3),
                                     cookie=rogue_dhcp.COOKIE if not chance(src, 16) else src.bytes(4)))
    if any(c == 52 for c, _ in opts) or chance(src, 10):   # options in sname (44..108), file (108..236)
        for lo, hi in ((44, 108), (108, 236)):
            if chance(src, 2):
                more = _encode_opts(src, [(pick(src, (66, 150, 15, 3, 53)), src.bytes(src.int(0, 70)))])
                more = more[:hi - lo]
                pkt[lo:lo + len(more)] = more
    if chance(src, 12):
        pkt[1], pkt[2] = pick(src, ((1, 6), (6, 1), (1, 16), (0, 0)))
    if chance(src, 4):
        pkt = bytearray(mutate_bytes(src, bytes(pkt)))
    if chance(src, 10):
        pkt = bytearray(truncate(src, bytes(pkt)))
    return bytes(pkt)


def pack_datagrams(dgs: Sequence[bytes]) -> bytes:
    return b"".join(struct.pack(">H", min(len(d), 0xFFFF)) + d[:0xFFFF] for d in dgs)


def gen_dhcp(src: Src, corpus: Corpus) -> bytes:
    flags = src.int(0, 3)
    inform = bool(flags & 2)
    yi = pick(src, ("192.0.2.50", "0.0.0.0", "192.0.2.51"))
    sv = pick(src, ("192.0.2.1", "192.0.2.2"))
    if inform:
        dgs = [dhcp_packet(src, pick(src, (5, 5, 6, 2)), "0.0.0.0", sv)]
    else:
        dgs = [dhcp_packet(src, pick(src, (2, 2, 5, 6)), yi, sv)]
        if not chance(src, 3):
            dgs.append(dhcp_packet(src, pick(src, (5, 5, 6, 2)), pick(src, (yi, "192.0.2.77")),
                                   pick(src, (sv, sv, "192.0.2.3"))))
    while chance(src, 4) and len(dgs) < 8:
        dgs.insert(src.int(0, len(dgs)), pick(src, (
            src.bytes(src.int(0, 300)), dhcp_packet(src, src.int(0, 9)), b"", b"\x02" * 239,
            dgs[0][:240])))
    return bytes([flags]) + pack_datagrams(dgs)


# ------------------------------------------------------------------------------ TFTP
def _tftp_oack(src: Src, blksize: int, tsize: int, window: int) -> bytes:
    opts = []
    for name, value in (("blksize", blksize), ("tsize", tsize), ("windowsize", window), ("timeout", 1)):
        if not chance(src, 4):
            opts.append((name, str(value)))
    if chance(src, 3):
        i = src.int(0, max(0, len(opts) - 1))
        name = opts[i][0] if opts else "blksize"
        val = pick(src, ("0", "-1", "", " 12", "abc", "1e3", "0x10", "9" * 60, "65465", "7",
                         "65464", "256", "1_0", "\xff", "٣"))
        opts[i:i + 1] = [(name, val)]
    if chance(src, 6):
        opts.append((pick(src, ("BLKSIZE", "multicast", "tsize", "", "rollover")), pick(src, ("1", "", "0"))))
    out = b"\x00\x06" + b"".join(k.encode() + b"\x00" + v.encode() + b"\x00" for k, v in opts)
    if chance(src, 8):
        out = out[:-1]                       # last field not NUL-terminated
    if chance(src, 10):
        out += b"odd\x00"                    # a name without a value
    if chance(src, 10):
        out = out.replace(b"blksize", b"blk\xffsize")
    return out


def _tftp_error(src: Src) -> bytes:
    code = pick(src, (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 255, 0xFFFF))
    msg = pick(src, (b"File not found", b"", b"\xff\xfe bad", b"x" * 600, b"caf\xc3\xa9"))
    out = struct.pack(">HH", 5, code) + msg
    return out if chance(src, 4) else out + b"\x00"


def _tftp_data(blk: int, n: int, fill: int = 0x41) -> bytes:
    return struct.pack(">HH", 3, blk & 0xFFFF) + bytes([fill]) * n


def gen_tftp(src: Src, corpus: Corpus) -> bytes:
    flags = src.int(0, 127)
    blk = (512, 1428, 8, 64)[(flags >> 1) & 3]
    negotiated = not flags & 1 and not chance(src, 5)
    dgs: list[bytes] = []
    if flags & 1 == 0 and chance(src, 8):
        dgs.append(struct.pack(">HH", 5, 8) + b"no options\x00")     # refused: retry plain
        negotiated = False
    if negotiated:
        b2 = pick(src, (blk, blk, 8, max(8, blk // 2), blk + 1, 512))
        nblocks = src.int(0, 12)
        size = b2 * nblocks + src.int(0, b2 - 1)
        tsize = pick(src, (size, size, size + 1, max(0, size - 1), 0, 1 << 40, 5000))
        win = pick(src, (4, 1, 2, 16, 3))
        dgs.append(_tftp_oack(src, b2, tsize, win))
    else:
        b2 = 512
        nblocks = src.int(0, 6)
        size = b2 * nblocks + src.int(0, b2 - 1)
    blocks = []
    for i in range(size // b2 + 1):
        n = min(b2, size - i * b2)
        blocks.append(_tftp_data(i + 1, n))
    if chance(src, 3):                                   # network disorder
        for _ in range(src.int(1, 4)):
            if not blocks:
                break
            op = src.int(0, 4)
            i = src.int(0, len(blocks) - 1)
            if op == 0:
                blocks.insert(i, blocks[i])              # duplicate
            elif op == 1:
                j = src.int(0, len(blocks) - 1)
                blocks[i], blocks[j] = blocks[j], blocks[i]
            elif op == 2:
                del blocks[i]                            # lost
            elif op == 3:
                blocks[i] = blocks[i][:2] + struct.pack(">H", pick(src, (0, 0xFFFF, 0x8000, i + 40))) + blocks[i][4:]
            else:
                blocks[i] = blocks[i] + b"B" * src.int(1, 2000)  # longer than blksize
    dgs += blocks
    while chance(src, 4) and len(dgs) < 80:
        dgs.insert(src.int(0, len(dgs)), pick(src, (
            _tftp_error(src), b"", b"\x00", b"\x00\x03", b"\x00\x03\x00", b"\x00\x04\x00\x01",
            src.bytes(src.int(0, 40)), b"\x00\x06blksize\x00512\x00", struct.pack(">H", src.int(0, 0xFFFF)))))
    if dgs and chance(src, 4):
        i = src.int(0, len(dgs) - 1)
        dgs[i] = mutate_bytes(src, dgs[i])
    return bytes([flags]) + pack_datagrams(dgs)


# ------------------------------------------------------------------------------ SCCP
def _display_text(src: Src) -> bytes:
    return pick(src, (b"Hello", b"\x1e\x0a", b"\x1e\x0c rest", b"\x80\x05x", b"\x1e", b"\x80",
                      b"\xe9t\xe9", b"A" * 40, b"\xff" * 31, b"", src.bytes(src.int(1, 32))))


def _sccp_frame(src: Src) -> bytes:
    from phone import sccp_lab as L
    op = src.int(0, 17)
    if op == 0:
        return L.register_ack(pick(src, (30, 0, 0xFFFFFFFF)), pick(src, (60, 0)),
                              pick(src, ("M/D/YA", "", "ZZZZZZZZ")), src.int(0, 255), src.int(0, 0xFFFF))
    if op == 1:
        return L.register_reject(pick(src, ("Unknown device", "", "é" * 20, "x" * 40)))
    if op == 2:
        return L.capabilities_req()
    if op == 3:
        return L.keepalive_ack()
    if op == 4:
        return L.button_template(tuple((src.int(0, 255), src.int(0, 255)) for _ in range(src.int(0, 50))))
    if op == 5:
        return L.define_time_date(2025, 1, 1, 12, 0, 0)
    if op == 6:
        return L.reset(pick(src, (1, 2, 3, 0, 0xFFFFFFFF)))
    if op == 7:
        return L.unregister_ack(src.int(0, 3))
    if op == 8:
        return L.register_token_ack()
    if op == 9:
        return L.register_token_reject(src.int(0, 0xFFFFFFFF))
    if op == 10:
        return L.display_notify(_display_text(src).decode("latin-1"), src.int(0, 60))
    if op == 11:
        return L.display_prompt_status(_display_text(src).decode("latin-1"))
    if op == 12:
        return L.clear_notify()
    if op == 13:
        return L.frame(L.DISPLAY_TEXT, _display_text(src))
    if op == 14:
        return L.frame(L.DISPLAY_PRI_NOTIFY, struct.pack("<II", 0, 1) + _display_text(src))
    if op == 15:                             # a known message with a short body
        mid = pick(src, (L.REGISTER_ACK, L.RESET, L.UNREGISTER_ACK, L.REGISTER_TOKEN_REJECT,
                         L.DISPLAY_NOTIFY, L.DISPLAY_PRI_NOTIFY, L.DISPLAY_PROMPT_STATUS, L.DISPLAY_TEXT))
        return L.frame(mid, src.bytes(src.int(0, 9)))
    if op == 16:                             # anything else (skipped by the reader)
        return L.frame(pick(src, (0x0000, 0x0001, 0x0110, 0x0111, 0x0143, src.int(0, 0xFFFFFFFF))),
                       src.bytes(pick(src, (0, 5, 100, 600, 2048))))
    return L.register_ack()


def gen_sccp(src: Src, corpus: Corpus) -> bytes:
    flags = src.int(0, 63)
    frames = [bytearray(_sccp_frame(src)) for _ in range(src.int(1, 8))]
    for _ in range(src.int(0, 2)):
        f = pick(src, frames)
        op = src.int(0, 4)
        n = len(f) - 8
        if len(f) < 12:
            continue
        if op == 0:                          # the length field lies
            struct.pack_into("<I", f, 0, pick(src, (0, 1, 3, 4, n + 1, max(0, n - 1), 2052, 2053,
                                                    516, 517, 20, 104, 0x7FFFFFFF, 0xFFFFFFFF,
                                                    n + src.int(2, 3000))))
        elif op == 1:
            struct.pack_into("<I", f, 4, pick(src, (1, 0x16, 0xFFFFFFFF)))
        elif op == 2:
            del f[src.int(0, len(f)):]
        elif op == 3:
            f[:] = mutate_bytes(src, bytes(f))
        else:
            struct.pack_into("<I", f, 8, src.int(0, 0x200))
    out = b"".join(frames)
    if chance(src, 6):
        out = truncate(src, out)
    return bytes([flags]) + out


# ------------------------------------------------------------------------------ X.509
def gen_x509(src: Src, corpus: Corpus) -> bytes:
    flags = src.int(0, 3)
    op = src.int(0, 19)
    if op == 0 and corpus.pems:
        data = mutate_bytes(src, pick(src, corpus.pems))
    elif op == 1:
        data = pem(src, mutate_der(src, pick(src, corpus.certs)))
    elif op == 2:                            # a bomb on its own
        depth = pick(src, (64, 500, 3000))
        data = b""
        for _ in range(depth):
            data = b"\x30" + der_len(len(data)) + data
        if chance(src, 2):
            data = data[:len(data) - src.int(1, 3)]
    elif op == 3:
        data = src.bytes(src.int(0, 200))
    elif op == 4:                            # a huge element declared, not given
        data = b"\x30\x84" + struct.pack(">I", src.int(0, 0xFFFFFFFF)) + src.bytes(src.int(0, 30))
    else:
        data = mutate_der(src, pick(src, corpus.certs))
        if op == 5 and len(corpus.certs) > 1:
            data = mutate_bytes(src, data, 1, other=pick(src, corpus.certs))
    return bytes([flags]) + data


# ------------------------------------------------------------------------------ CTL / ITL / .sgn
@dataclass
class Tlv:
    tag: int
    value: bytes = b""
    kids: list["Tlv"] | None = None     # header containers 3/7/9
    length: int | None = None           # a lie
    raw: bytes | None = None            # opaque encoded bytes (a nesting bomb)

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        if self.tag == 13 and self.kids is None and not self.value and self.length is None:
            return b"\x0d"
        body = b"".join(k.encode() for k in self.kids) if self.kids is not None else self.value
        n = len(body) if self.length is None else self.length
        return struct.pack(">BH", self.tag, n & 0xFFFF) + body


def _tlvs(b: bytes, pos: int, end: int, header: bool) -> list[Tlv] | None:
    out = []
    while pos < end:
        tag = b[pos]
        if header and tag == 13:
            out.append(Tlv(13))
            pos += 1
            continue
        if pos + 3 > end:
            return None
        n = struct.unpack_from(">H", b, pos + 1)[0]
        vs, ve = pos + 3, pos + 3 + n
        if ve > end:
            return None
        t = Tlv(tag, b[vs:ve])
        if header and tag in (3, 7, 9):
            t.kids = _tlvs(b, vs, ve, True)
            if t.kids is None:
                return None
            t.value = b""
        out.append(t)
        pos = ve
    return out


@dataclass
class TrustFile:
    """A CTL/ITL or .sgn as element trees: header (after version and length elements),
    records (CTL: each a list of elements, after the record length) or payload (.sgn)."""
    version: bytes
    header: list[Tlv]
    records: list[list[Tlv]] | None
    payload: bytes = b""
    header_len: int | None = None          # a lie
    record_lens: dict[int, int] = field(default_factory=dict)   # index -> a lie

    @classmethod
    def parse(cls, b: bytes, sgn: bool) -> "TrustFile | None":
        if len(b) < 10 or b[0] != 1 or b[5] != 2:
            return None
        hlen = struct.unpack_from(">H", b, 8)[0]
        header = _tlvs(b, 10, hlen, True)
        if header is None:
            return None
        if sgn:
            return cls(b[3:5], header, None, b[hlen:])
        recs = []
        pos = hlen
        while pos < len(b):
            if pos + 5 > len(b) or b[pos] != 1:
                return None
            rlen = struct.unpack_from(">H", b, pos + 3)[0]
            els = _tlvs(b, pos + 5, pos + rlen, False)
            if els is None:
                return None
            recs.append(els)
            pos += rlen
        return cls(b[3:5], header, recs)

    def encode(self, key=None, hash_code: int | None = None) -> bytes:
        """The file; signed with `key` (an RSA private key) when given, over the file minus
        the signature element, as ctlbuild does."""
        head = b"".join(t.encode() for t in self.header)
        hlen = 10 + len(head) if self.header_len is None else self.header_len
        start = b"\x01\x00\x02" + self.version[:2].ljust(2, b"\x00") + b"\x02\x00\x02" + struct.pack(">H", hlen & 0xFFFF)
        if self.records is None:
            body = self.payload
        else:
            parts = []
            for i, els in enumerate(self.records):
                inner = b"".join(t.encode() for t in els)
                n = self.record_lens.get(i, 5 + len(inner))
                parts.append(b"\x01\x00\x02" + struct.pack(">H", n & 0xFFFF) + inner)
            body = b"".join(parts)
        data = start + head + body
        if key is not None:
            data = _resign(data, key, hash_code)
        return data

    def sig(self) -> Tlv | None:
        for t in self.header:
            if t.tag == 12:
                return t
        return None


def _resign(data: bytes, key, hash_code: int | None) -> bytes:
    """Replace the value of the header's signature element with a real signature over the
    file minus that element (only when the element is where a reader finds it)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    algo = {1: hashes.SHA1, 2: hashes.SHA256, 3: hashes.SHA512}.get(hash_code or 0)
    if algo is None or len(data) < 10:
        return data
    hlen = struct.unpack_from(">H", data, 8)[0]
    pos = 10
    while pos + 3 <= min(hlen, len(data)):
        tag = data[pos]
        if tag == 13:
            pos += 1
            continue
        n = struct.unpack_from(">H", data, pos + 1)[0]
        if tag == 12:
            if n != key.key_size // 8 or pos + 3 + n > len(data):
                return data
            unsigned = data[:pos] + data[pos + 3 + n:]
            sig = key.sign(unsigned, padding.PKCS1v15(), algo())
            return data[:pos + 3] + sig + data[pos + 3 + n:]
        pos = pos + 3 if tag in (3, 7, 9) else pos + 3 + n
    return data


def _hash_code(tf: TrustFile) -> int | None:
    for t in _flat(tf.header):
        if t.tag == 8 and len(t.value) == 1:
            return t.value[0]
    return None


def _flat(tlvs: list[Tlv]) -> list[Tlv]:
    out = []
    for t in tlvs:
        out.append(t)
        if t.kids:
            out += _flat(t.kids)
    return out


def _text_value(src: Src) -> bytes:
    return pick(src, (b"", b"\x00", b"CN=x;OU=y\x00", b"\xff\xfe\x00", b"A" * 3000,
                      b"no-nul", "é".encode() * 10 + b"\x00"))


def _mutate_header(src: Src, tf: TrustFile) -> None:
    els = _flat(tf.header)
    op = src.int(0, 11)
    t = pick(src, els) if els else None
    if op == 0 and t is not None:
        t.length = pick(src, (0, 1, 0xFFFF, len(t.value) + 1, max(0, len(t.value) - 1), 2048))
    elif op == 1 and t is not None:
        t.tag = pick(src, (1, 2, 3, 7, 9, 12, 13, 5, 8, 11, 15, 28, 255, src.int(0, 40)))
        if t.tag in (3, 7, 9) and t.kids is None:
            t.kids = []
    elif op == 2:                                # hash algorithm / modulus index
        for x in els:
            if x.tag == 8 and chance(src, 2):
                x.value = pick(src, (b"\x00", b"\x01", b"\x02", b"\x03", b"\x04", b"\xff", b"", b"\x02\x02"))
            if x.tag == 11 and chance(src, 2):
                x.value = pick(src, (b"\x00", b"\x01", b"\x02", b"\x03", b"\x04", b"\xff", b""))
    elif op == 3 and t is not None:
        for lst in [tf.header] + [x.kids for x in els if x.kids]:
            if any(x is t for x in lst):
                lst[:] = [x for x in lst if x is not t]
    elif op == 4 and t is not None:
        tf.header.insert(src.int(0, len(tf.header)), Tlv(t.tag, t.value, None if t.kids is None else list(t.kids)))
    elif op == 5:                                # padding / container bombs
        k = pick(src, (10, 300, 1500))
        if chance(src, 2):
            for _ in range(k):
                tf.header.insert(src.int(0, len(tf.header)), Tlv(13))
        else:
            raw = b"\x05\x00\x01\x01"
            for _ in range(min(k, 600)):
                raw = struct.pack(">BH", pick(src, (3, 7, 9)), len(raw)) + raw
            tf.header.append(Tlv(3, raw=raw))
    elif op == 6:
        tf.header_len = pick(src, (0, 9, 10, 11, 2049, 0xFFFF, 10 + sum(len(x.encode()) for x in tf.header) + src.int(-6, 6)))
    elif op == 7:                                # signature
        s = tf.sig()
        if s is not None:
            s.value = pick(src, (b"", s.value[:64], s.value + b"\x00", b"\x00" * len(s.value),
                                 b"\xff" * len(s.value), s.value[:-1]))
        else:
            tf.header.append(Tlv(12, src.bytes(128)))
    elif op == 8 and t is not None and t.kids is None:
        t.value = _text_value(src) if t.tag in (4, 6, 14) else src.bytes(src.int(0, 30))
    elif op == 9:
        tf.version = pick(src, (b"\x01\x02", b"\x01\x00", b"\x00\x00", b"\xff\xff", b"\x01"))
    elif op == 10:                               # serial of the signer
        for x in els:
            if x.tag == 5 and x.kids is None:
                x.value = pick(src, (b"", b"\x00" + x.value, x.value[:-1], b"\x00" * 40, src.bytes(20)))
    else:
        tf.header.append(Tlv(pick(src, (1, 2, 12, 28, 15, 8)), src.bytes(src.int(0, 4))))


def _mutate_records(src: Src, tf: TrustFile, corpus: Corpus) -> None:
    recs = tf.records
    assert recs is not None
    if not recs:
        recs.append([Tlv(4, b"\x00\x01")])
    i = src.int(0, len(recs) - 1)
    rec = recs[i]
    op = src.int(0, 11)
    if op == 0:
        tf.record_lens[i] = pick(src, (0, 5, 7, 8, 12289, 0xFFFF, 5 + sum(len(t.encode()) for t in rec) + src.int(-5, 5)))
    elif op == 1:
        del recs[i]
    elif op == 2:                                # many records
        recs.extend([rec] * pick(src, (1, 2, 63, 64, 70)))
    elif op == 3:                                # role
        for t in rec:
            if t.tag == 4:
                t.value = pick(src, (b"\x00\x00", b"\x00\x03", b"\x00\x02", b"\x00\x15", b"\xff\xff", b"\x00", b""))
    elif op == 4:                                # the certificate, mutated as DER
        for t in rec:
            if t.tag == 9:
                t.value = mutate_der(src, t.value) if not chance(src, 6) else pick(src, corpus.certs)
    elif op == 5 and rec:
        t = pick(src, rec)
        t.length = pick(src, (0, 0xFFFF, len(t.value) + 1, max(0, len(t.value) - 1)))
    elif op == 6 and rec:
        rec.remove(pick(src, rec))
    elif op == 7 and rec:
        rec.append(pick(src, rec))               # two certificates, two roles...
    elif op == 8:
        for t in rec:
            if t.tag == 10:
                t.value = pick(src, (b"\x01\x02\x03", b"\x01\x02\x03\x04\x05", b""))
            elif t.tag in (3, 5, 2):
                t.value = _text_value(src)
            elif t.tag == 6:
                t.value = pick(src, (b"", b"\x00" + t.value, src.bytes(8), b"\x00"))
    elif op == 9:
        rec.append(Tlv(pick(src, (1, 2, 10, 11, 12, 99)), src.bytes(src.int(0, 6))))
    elif op == 10 and len(recs) > 1:
        j = src.int(0, len(recs) - 1)
        recs[i], recs[j] = recs[j], recs[i]
    else:                                        # a foreign certificate under this serial
        for t in rec:
            if t.tag == 9:
                t.value = pick(src, corpus.certs)


def _trust_file(src: Src, corpus: Corpus, seeds: list[bytes], sgn: bool, payload: Callable[[], bytes] | None) -> bytes:
    seed = pick(src, seeds)
    tf = TrustFile.parse(seed, sgn)
    if tf is None or chance(src, 12):
        return mutate_bytes(src, seed)
    if payload is not None and chance(src, 2):
        tf.payload = payload()
    for _ in range(src.int(1, 3)):
        if sgn or chance(src, 3):
            _mutate_header(src, tf)
        else:
            _mutate_records(src, tf, corpus)
    key = None
    signer = corpus.tftp if sgn else corpus.signer
    if signer is not None and seed in (corpus.signed_sgns if sgn else corpus.signed_ctls) and not chance(src, 4):
        key = signer.key                         # signed for real: the trust rules come next
    out = tf.encode(key, _hash_code(tf))
    if chance(src, 8):
        out = mutate_bytes(src, out, src.int(1, 2))
    if chance(src, 10):
        out = truncate(src, out)
    return out


def gen_ctl(src: Src, corpus: Corpus) -> bytes:
    return bytes([src.int(0, 7)]) + _trust_file(src, corpus, corpus.ctls, False, None)


def gen_sgn(src: Src, corpus: Corpus) -> bytes:
    return bytes([src.int(0, 3)]) + _trust_file(src, corpus, corpus.sgns, True,
                                                lambda: config_payload(src, corpus))


# ------------------------------------------------------------------------------ cnf.xml
_TOKEN = re.compile(rb"<[^<>]*>|[^<]+|<")
_FIELDS = (b"ethernetPhonePort", b"processNodeName", b"name", b"deviceSecurityMode",
           b"connectionMonitorDuration", b"ipAddr1", b"ipAddr2", b"port1", b"port2", b"isSecure",
           b"certificate", b"certHash", b"srstOption")


def _weird_text(src: Src, corpus: Corpus) -> bytes:
    op = src.int(0, 5)
    if op == 0 and corpus.certs:
        der = pick(src, corpus.certs)
        if chance(src, 2):
            der = mutate_der(src, der)
        text = base64.b64encode(der)
        return pick(src, (text, text[:src.int(0, len(text))], b"-----BEGIN CERTIFICATE-----\n" + text
                          + b"\n-----END CERTIFICATE-----", b"-----BEGIN CERTIFICATE-----" + text,
                          base64.encodebytes(der)))
    if op == 1 and corpus.certs:
        d = hashlib.sha256(pick(src, corpus.certs)).digest()
        return pick(src, (base64.b64encode(d), d.hex().encode(), b"zz" * 32, b"AAAA", b"=" * 44))
    return pick(src, (
        b"", b" ", b"-1", b"0", b"65535", b"99999999999999999999999", b"0x10", b"1e3", "٣".encode(),
        b"abc", b"&#x110000;", b"&#xD800;", b"&#-5;", b"&#;", b"&amp;&lt;&gt;&quot;&apos;", b"&#0;",
        b"&#65;&#x42;", b"&unknown;", b"&", b"&amp", b"\xff\xfe", b"caf\xc3\xa9", b"A" * 300,
        b"B" * 9000, b"2", b"3", b"true", b"TRUE", b"192.0.2.1", b"  7  ", b"<![CDATA[5]]>",
        b"<![CDATA[&amp;]]>", b"&#1114111;", b"&#x7f;", b"&#55296;",
        b"".join(b"&#%d;" % (0x4E00 + i) for i in range(src.int(1, 1000)))))  # many characters


def _mutate_xml(src: Src, x: bytes, corpus: Corpus) -> bytes:
    toks = _TOKEN.findall(x)
    if not toks:
        return mutate_bytes(src, x)
    op = src.int(0, 13)
    i = src.int(0, len(toks) - 1)
    if op == 0:
        del toks[i]
    elif op == 1:
        toks.insert(i, toks[src.int(0, len(toks) - 1)])
    elif op == 2:                                # nesting bomb
        n = pick(src, (62, 63, 64, 65, 300, 5000))
        name = b"a" if chance(src, 2) else b"n" * pick(src, (100, 500, 1000, 1020))
        if len(name) > 1:
            n = min(n, 64)
        toks.insert(i, (b"<" + name + b">") * n + b"x" + (b"</" + name + b">") * (n if not chance(src, 4) else n - 1))
    elif op in (3, 4, 5):                        # a field's text
        cands = [k for k, t in enumerate(toks) if t.startswith(b"<") and not t.startswith(b"</")
                 and t[1:].split(b" ")[0].rstrip(b">/") in _FIELDS]
        if cands:
            k = pick(src, cands)
            if k + 1 < len(toks) and not toks[k + 1].startswith(b"<"):
                toks[k + 1] = _weird_text(src, corpus)
            else:
                toks.insert(k + 1, _weird_text(src, corpus))
    elif op == 6:                                # priority attributes
        cands = [k for k, t in enumerate(toks) if t.startswith(b"<member")]
        if cands:
            toks[pick(src, cands)] = pick(src, (b'<member priority="x">', b"<member priority='5'>",
                                                b"<member priority=5>", b'<member priority="">',
                                                b'<member priority="5>', b"<member priority>",
                                                b'<member priority="-3" other="1">',
                                                b'<member  priority = "2" >', b"<member/>",
                                                b'<member priority="99999999999999999999">'))
    elif op == 7:                                # long tag
        toks.insert(i, b"<x a=\"" + b"v" * pick(src, (1000, 1030, 5000)) + b"\"/>")
    elif op == 8:
        toks.insert(i, pick(src, (b"<!-- c -->", b"<!--", b"<![CDATA[", b"<![CDATA[x]]>", b"<?pi x?>",
                                  b"<?pi", b"<!DOCTYPE d>", b"<!", b"<", b"</", b"<>", b"</>", b"< >",
                                  b"<a", b"<a b='>'>", b'<a b=">', b"<\xff>", b"</\xff>",
                                  b"<\xff/>", b"<a\xc3>", b"</device>", b"<device>", b"]]>", b"-->")))
    elif op == 9:
        toks = [t.replace(b"srstInfo", b"srst\xffInfo") if chance(src, 2) else t for t in toks]
    elif op == 10:
        return truncate(src, b"".join(toks))
    elif op == 11:
        return mutate_bytes(src, b"".join(toks))
    elif op == 12:                               # close tags that do not match
        cands = [k for k, t in enumerate(toks) if t.startswith(b"</")]
        if cands:
            toks[pick(src, cands)] = pick(src, (b"</wrong>", b"</ name>", b"</name >", b"</\xc3\xa9>"))
    else:
        toks.insert(i, src.bytes(src.int(1, 20)))
    return b"".join(toks)


def config_payload(src: Src, corpus: Corpus) -> bytes:
    x = pick(src, corpus.configs)
    for _ in range(src.int(1, 3)):
        x = _mutate_xml(src, x, corpus)
    return x


def gen_config(src: Src, corpus: Corpus) -> bytes:
    return bytes([src.int(0, 3)]) + config_payload(src, corpus)


GENERATORS: dict[str, Callable[[Src, Corpus], bytes]] = {
    "dhcp": gen_dhcp, "tftp": gen_tftp, "sccp": gen_sccp, "x509": gen_x509,
    "ctl": gen_ctl, "sgn": gen_sgn, "config": gen_config,
}
