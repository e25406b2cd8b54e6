"""Certificates for the firmware's X.509 parser (phone.x509, phone.der): mutated DER and PEM,
nesting bombs, huge declared lengths."""
from __future__ import annotations

import struct

from host_tools.fuzz.gen.base import Src, chance, mutate_bytes, pick
from host_tools.fuzz.gen.corpus import Corpus
from host_tools.fuzz.gen.der import der_len, mutate_der, pem


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
