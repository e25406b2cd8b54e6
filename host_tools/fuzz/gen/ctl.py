"""CTL/ITL files and .sgn signed files for the firmware's parser (phone.ctl) as element trees:
header and record mutations, re-signed with the corpus's keys so the parser gets past the
signature into the trust rules and the payload."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Callable

from host_tools.fuzz.gen.base import Src, chance, mutate_bytes, pick, roughen
from host_tools.fuzz.gen.config import config_payload
from host_tools.fuzz.gen.corpus import Corpus
from host_tools.fuzz.gen.der import mutate_der


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
    return roughen(src, tf.encode(key, _hash_code(tf)), 8)


def gen_ctl(src: Src, corpus: Corpus) -> bytes:
    return bytes([src.int(0, 7)]) + _trust_file(src, corpus, corpus.ctls, False, None)


def gen_sgn(src: Src, corpus: Corpus) -> bytes:
    return bytes([src.int(0, 3)]) + _trust_file(src, corpus, corpus.sgns, True,
                                                lambda: config_payload(src, corpus))
