"""SIP digest answers (phone.sipreg) against implementations we did not write: the RFC 2617 /
RFC 7616 formulas computed here with CPython's hashlib, and CPython's own HTTP digest client
(urllib.request.AbstractDigestAuthHandler, MD5 with qop=auth and without qop). The firmware
runs as deployed (.mpy under the MicroPython unix port) and under CPython (the lab's side).
The messages parsed under CPython too, and mutated ones raise only SipError there as well."""
from __future__ import annotations

import hashlib
import json
import random
import re
import subprocess
import urllib.request

import pytest

import host_tools.fw  # noqa: F401  (phone.* importable, micropython.const)
from host_tools import fwbuild, micropython
from phone import sip, sipreg  # noqa: E402

ALGS = ("MD5", "MD5-sess", "SHA-256", "SHA-256-sess")


def expected(case: dict) -> str:
    """RFC 2617 3.2.2.1-3 (RFC 7616 3.4.1-3 for SHA-256), written from the RFCs."""
    alg = case["algorithm"]
    h = {"MD5": "md5", "SHA-256": "sha256"}[alg.upper().removesuffix("-SESS")]

    def H(s: str) -> str:
        return hashlib.new(h, s.encode()).hexdigest()

    a1 = H(f"{case['user']}:{case['realm']}:{case['password']}")
    if alg.upper().endswith("-SESS"):
        a1 = H(f"{a1}:{case['nonce']}:{case['cnonce']}")
    qop = case["qop"]
    a2 = f"{case['method']}:{case['uri']}"
    if qop == "auth-int":
        a2 += ":" + H("")
    if qop:
        return H(f"{a1}:{case['nonce']}:{case['nc']:08x}:{case['cnonce']}:{qop}:{H(a2)}")
    return H(f"{a1}:{case['nonce']}:{H(a2)}")


def cases(n: int = 120) -> list[dict]:
    rnd = random.Random(15)
    chars = "abcXYZ019 :@/.-_é\"\\"
    out = []
    for i in range(n):
        alg = ALGS[i % len(ALGS)]
        qop = (None, "auth", "auth-int")[i // len(ALGS) % 3]
        if qop is None and alg.endswith("-sess"):
            qop = "auth"
        word = lambda k: "".join(rnd.choice(chars) for _ in range(rnd.randrange(1, k)))  # noqa: E731
        out.append({"algorithm": alg, "qop": qop, "user": word(12), "realm": word(20),
                    "password": word(16), "nonce": word(40), "cnonce": word(20),
                    "method": rnd.choice(("REGISTER", "INVITE", "GET")), "uri": "sip:" + word(20),
                    "nc": rnd.randrange(1, 1 << 16)})
    return out


def challenge(case: dict) -> dict:
    return {"scheme": "digest", "proxy": False, "realm": case["realm"], "nonce": case["nonce"],
            "opaque": None, "algorithm": case["algorithm"], "qop": case["qop"], "stale": False}


def test_digest_under_cpython_matches_the_rfc_formulas():
    for case in cases():
        got = sipreg.digest(challenge(case), case["user"], case["password"], case["method"],
                            case["uri"], case["cnonce"], case["nc"])
        assert got == expected(case), case


MP_SCRIPT = r"""
import sys, json
from phone import sipreg
for c in json.loads(open(sys.argv[1]).read()):
    ch = {'scheme': 'digest', 'proxy': False, 'realm': c['realm'], 'nonce': c['nonce'],
          'opaque': None, 'algorithm': c['algorithm'], 'qop': c['qop'], 'stale': False}
    print(sipreg.digest(ch, c['user'], c['password'], c['method'], c['uri'], c['cnonce'], c['nc']))
"""


def test_digest_under_micropython_matches_the_rfc_formulas(tmp_path):
    all_cases = cases()
    (tmp_path / "cases.json").write_text(json.dumps(all_cases))
    (tmp_path / "run.py").write_text(MP_SCRIPT)
    env = fwbuild.environ()
    env["MICROPYPATH"] = ":".join([".frozen", str(fwbuild.compiled())])
    p = subprocess.run(micropython.command([str(tmp_path / "run.py"), str(tmp_path / "cases.json")],
                                           heap="256K"),
                       env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    got = p.stdout.split()
    assert got == [expected(c) for c in all_cases]


class _Req:
    """What urllib's digest handler reads of a request."""

    def __init__(self, method: str, uri: str):
        self.method, self.selector, self.full_url, self.data = method, uri, uri, None

    def get_method(self) -> str:
        return self.method


@pytest.mark.parametrize("qop", [None, "auth"])
def test_digest_matches_cpythons_own_digest_client(qop):
    rnd = random.Random(5060)
    for i in range(40):
        user, pw = f"line{i}", f"pw-{rnd.getrandbits(40):x}"
        realm, nonce, cnonce = f"r{i}.example", f"{rnd.getrandbits(64):x}", f"{rnd.getrandbits(32):08x}"
        mgr = urllib.request.HTTPPasswordMgr()
        mgr.add_password(realm, "sip:cucm.example", user, pw)
        handler = urllib.request.AbstractDigestAuthHandler(mgr)
        handler.get_cnonce = lambda nonce, c=cnonce: c        # type: ignore[method-assign]
        chal = {"realm": realm, "nonce": nonce, "algorithm": "MD5"}
        if qop:
            chal["qop"] = qop
        theirs = handler.get_authorization(_Req("REGISTER", "sip:cucm.example"), chal)
        want = re.search(r'response="([0-9a-f]+)"', theirs).group(1)
        ch = {"scheme": "digest", "proxy": False, "realm": realm, "nonce": nonce,
              "opaque": None, "algorithm": "MD5", "qop": qop, "stale": False}
        line = sipreg.authorization(ch, user, pw, "REGISTER", "sip:cucm.example", cnonce, 1)
        assert f'response="{want}"' in line, (line, theirs)


def test_register_answer_parses_back_under_cpython():
    reg = sipreg.Reg("1001", "cucm.example", "192.0.2.50", 5061, "00:11:22:AA:BB:CC",
                     password="secret")
    first = sip.parse(reg.register())
    text = ("SIP/2.0 401 Unauthorized\r\n" + "".join(f"Via: {v}\r\n" for v in first.vias) +
            f"From: {first.from_}\r\nTo: {first.to};tag=x\r\nCall-ID: {first.call_id}\r\n"
            f"CSeq: {first.cseq} REGISTER\r\n"
            'WWW-Authenticate: Digest realm="cucm.example", nonce="n1", qop="auth", '
            "algorithm=SHA-256\r\nContent-Length: 0\r\n\r\n")
    assert reg.answer(sip.parse(text.encode())) is None
    again = reg.register().decode()
    fields = dict(re.findall(r'(\w+)="?([^",\r]*)"?', again.split("Authorization: Digest ")[1]
                             .split("\r\n")[0]))
    case = {"algorithm": "SHA-256", "qop": "auth", "user": "1001", "realm": "cucm.example",
            "password": "secret", "nonce": "n1", "cnonce": fields["cnonce"], "method": "REGISTER",
            "uri": "sip:cucm.example", "nc": int(fields["nc"], 16)}
    assert fields["response"] == expected(case)
    assert fields["uri"] == "sip:cucm.example" and fields["username"] == "1001"


def test_mutated_messages_raise_only_sip_error_under_cpython():
    rnd = random.Random(3261)
    seed = (b"SIP/2.0 401 Unauthorized\r\nv: SIP/2.0/TLS h;branch=z9hG4bK1, SIP/2.0/TLS g\r\n"
            b"f: <sip:a@d>;tag=1\r\nt: <sip:a@d>\r\ni: c\r\nCSeq: 1 REGISTER\r\n"
            b'WWW-Authenticate: Digest realm="d",\r\n nonce="n", qop="auth"\r\n'
            b'm: <sip:a@h>;expires=60;+sip.instance="<urn:uuid:x>"\r\nRetry-After: 5 (x)\r\n'
            b"l: 0\r\n\r\n")
    for _ in range(3000):
        b = bytearray(seed)
        for _ in range(rnd.randrange(1, 4)):
            at = rnd.randrange(len(b) + 1)
            k = rnd.randrange(4)
            if k == 0 and at < len(b):
                b[at] = rnd.randrange(256)
            elif k == 1:
                del b[at:at + rnd.randrange(1, 9)]
            elif k == 2:
                b[at:at] = bytes(rnd.choice(b'":;,<>= \t\r\n\\\x80\xff9') for _ in range(3))
            else:
                b[at:at] = b[at:at + rnd.randrange(1, 40)]
        try:
            m = sip.parse(bytes(b))
            if m.auth:
                sipreg.challenge(m)
        except sip.SipError as e:
            assert str(e)
