"""DER as element trees: parse, mutate the structure (lengths that lie, other tags, nesting
bombs, huge RSA exponents), encode again; PEM around it. For X.509, the CTL's certificates and
the certificate in cnf.xml."""
from __future__ import annotations

import base64
from dataclasses import dataclass

from host_tools.fuzz.gen.base import Src, chance, mutate_bytes, pick, roughen, truncate


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
    return roughen(src, b"".join(der_encode(r) for r in roots), 6)


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
