"""cnf.xml for the firmware's configuration parser (phone.config): token-level mutations,
nesting bombs, odd field text (numbers, entities, certificates) and broken markup."""
from __future__ import annotations

import base64
import hashlib
import re

from host_tools.fuzz.gen.base import Src, chance, mutate_bytes, pick, truncate
from host_tools.fuzz.gen.corpus import Corpus
from host_tools.fuzz.gen.der import mutate_der


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
