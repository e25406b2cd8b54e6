"""Fuzzing the firmware's parsers under MicroPython (docs/fuzzing.md).

- a short hypothesis run per parser (derandomized, so every run tries the same inputs):
  no crash, no hang, every rejection a documented error class with a message;
- every input that once broke a parser (tests/host/fuzz_cases/), run again: it must now be
  rejected with the documented error.

The parsers run as .mpy in long-lived MicroPython processes (host_tools.fuzz.runner), one per
parser, heap capped at 128K (the regression cases also at 96K, a board's heap)."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from host_tools.fuzz import gen, runner, strategies

CASES = Path(__file__).parent / "fuzz_cases"
EXAMPLES = 200      # per parser; `python -m bench --only fuzz` runs 20,000 each

# file in fuzz_cases/ -> (target, documented class, words the message must hold[, heap]);
# class "" when the input must now be accepted (answer "ok"), "Class?" when either is right
# (it depends on the heap); the words are checked at `heap` only when one is given
REGRESSIONS: dict[str, tuple] = {
    # x509.load of bytes starting "-----BEGIN " that are not UTF-8: UnicodeError (empty
    # message) instead of X509Error
    "x509-pem-not-utf8.bin": ("x509", "X509Error", "not text"),
    # a certificate whose name holds an OID of thousands of one-byte arcs: der.oid() made a
    # string per arc and ran out of memory (MemoryError, at any heap size)
    "x509-oid-thousands-of-arcs.bin": ("x509", "X509Error", "OID of"),
    # an ACK whose domain name (option 15) is not UTF-8: UnicodeError out of lease_from, so out
    # of acquire()/inform() (the fuzzer's input); a NAK whose message (option 56) is not
    # UTF-8: the same out of acquire() (made by hand after reading the code it pointed to)
    "dhcp-domain-not-utf8.bin": ("dhcp", "", ""),
    "dhcp-nak-message-not-utf8.bin": ("dhcp", "", ""),
    # cnf.xml with a close tag, or the text of a kept element, that is not UTF-8: a bare
    # UnicodeError (no message) out of config.parse_file instead of ConfigError
    "config-close-tag-not-utf8.bin": ("config", "ConfigError", "not UTF-8"),
    "config-text-not-utf8.bin": ("config", "ConfigError", "not UTF-8"),
    # 64 nested elements with 1000-byte names (the open names are kept): MemoryError
    "config-long-names-nested.bin.gz": ("config", "ConfigError", "element name longer"),
    # CTLs that exhaust the heap (MemoryError out of load_trust, past provision's `except
    # CtlError`): 67 records, most of them SAST (their certificates are kept until the count is
    # checked at the end); an 11 KB record whose buffer no longer fits the heap left by the
    # first pass. The reason depends on the heap left: "more than 64 records" / "two
    # certificates" when it suffices, "memory" when not; always a CtlError
    "ctl-64-sast-records.bin": ("ctl", "CtlError", ""),
    "ctl-11k-record.bin": ("ctl", "CtlError", ""),
    # a trust list (first use) whose SAST certificate has a 2000-byte RSA exponent: pow() ran
    # 0.9 s on the host (a minute on a board) before "bad signature". The fuzzer's slowest
    # input was a certificate with a 7000-byte one (1.75 s, x509 signed_by); this one, made
    # with its key_bomb mutation and signed, goes through load_trust
    "ctl-sast-exponent-16000-bits.bin": ("ctl", "CtlError", "exponent"),
    # a certificate checked with its own key (signed_by): a 7000-byte exponent, whose first
    # check (e >> 32) copied it and ran out of memory at 96K and 128K (the fuzzer's input); a
    # 30400-bit key with a signature to match: pow() ran out of memory at 96K (made by hand)
    "x509-exponent-7000-bytes.bin": ("x509", "", ""),
    "x509-key-30400-bits.bin": ("x509", "", ""),
    # a certificate whose names are BMPStrings of 3500 characters: a 13 KB string for the
    # subject, MemoryError out of x509.load at 96K and 128K; x509.parse now turns a
    # MemoryError into X509Error (at 128K it fits since the der.text fix)
    "x509-bmp-names-3500-chars.bin": ("x509", "X509Error?", "memory", "96K"),
    # a 15 KB PEM text (more than an 8 KB certificate can be): copied four times by
    # pem_to_der before the size check: MemoryError in a long fuzzing run's heap, "bad base64"
    # (the decoder ran out of memory) in a fresh one (made by hand, the fuzzer's was 14 KB)
    "x509-pem-15k.bin": ("x509", "X509Error", "too big"),
}

# file in fuzz_cases/ -> (target, most heap bytes the input may keep for good). MicroPython
# interns what chr() returns: text built with it kept heap for good, found as the free heap
# of a long fuzzing run shrinking in steps.
LEAKS: dict[str, tuple[str, int]] = {
    # der.text of a BMPString: 3942 distinct characters kept 35 KB (the fuzzer's input, read
    # by the DER walk); a certificate whose CN is a BMPString of 3000 (made by hand, through
    # x509.load): 33 KB kept, and a MemoryError at 128K
    "der-bmp-string-3942-chars.bin": ("x509", 2048),
    "x509-bmp-cn-3000-chars.bin": ("x509", 2048),
    # cnf.xml whose <certificate> holds 800 distinct numeric references (&#N;): config's
    # _unescape used chr() too, kept 16 KB and ran out of memory at 96K and 128K (made by
    # hand, after the der finding)
    "config-800-numeric-references.bin": ("config", 2048),
    # DisplayText frames holding the 128 latin-1 characters over 0x7F: sccp._text built text
    # with chr() too, 4 KB kept for good in the agent's heap (bounded by 128 characters; made
    # by hand)
    "sccp-display-latin1-128-chars.bin": ("sccp", 1024),
}


def warm_input(target: str, corpus: gen.Corpus) -> bytes:
    """A valid input: run first, so the modules a parser imports are loaded."""
    if target == "sccp":
        from phone import sccp_lab
        return bytes([0]) + sccp_lab.display_notify("hello") + sccp_lab.register_ack()
    return bytes([3]) + {"x509": corpus.certs[0], "config": corpus.configs[-1]}[target]


@pytest.fixture(scope="module")
def corpus() -> gen.Corpus:
    return gen.corpus()


@pytest.fixture(scope="module")
def session(corpus):
    s = runner.Session(corpus)
    s.cache = {}
    yield s
    s.close()


def harness(session, target: str, heap: str = runner.DEFAULT_HEAP) -> runner.Harness:
    h = session.cache.get((target, heap))
    if h is None:
        h = session.cache[(target, heap)] = session.harness(target, heap=heap)
    return h


@pytest.fixture
def fresh(session):
    """A new harness for one case: what fits the heap must not depend on the cases before."""
    made = []

    def start(target: str, heap: str) -> runner.Harness:
        made.append(session.harness(target, heap=heap))
        return made[-1]

    yield start
    for h in made:
        h.stop()


@pytest.mark.parametrize("target", list(runner.TARGETS))
def test_fuzz(target, session, corpus):
    """A short hypothesis run: no crash, no hang, every rejection a documented error with a
    message. Derandomized: every run tries the same inputs (the corpus is reproducible too);
    a failure is shrunk and printed as the input's hex."""
    h = harness(session, target)
    tally = runner.Tally(target)

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
    @given(strategies.inputs(target, corpus))
    def run(data: bytes):
        o = h.run(data)
        tally.add(data, o)
        assert not o.bad, f"{target}: {o}\ninput ({len(data)} bytes): {data[:4000].hex()}"

    run()
    assert tally.tried >= EXAMPLES
    assert tally.ok and tally.rejected, f"{target}: the generator should make both ({tally})"


@pytest.mark.parametrize("heap", ["128K", "96K"])
@pytest.mark.parametrize("case", sorted(REGRESSIONS))
def test_regression(case, heap, fresh):
    target, cls, words, *only = REGRESSIONS[case]
    if only and heap not in only:
        words = ""
    data = (CASES / case).read_bytes()
    if case.endswith(".gz"):        # big inputs (nesting bombs) are kept compressed
        data = gzip.decompress(data)
    o = fresh(target, heap).run(data)
    if cls.endswith("?") and o.kind == "ok":
        return
    cls = cls.rstrip("?")
    assert (o.kind, o.cls) == ("rejected" if cls else "ok", cls), f"{case} at {heap}: {o}"
    assert words in o.detail, f"{case}: {o.detail!r} should say {words!r}"


@pytest.mark.parametrize("case", sorted(LEAKS))
def test_no_heap_kept(case, fresh, corpus):
    target, most = LEAKS[case]
    h = fresh(target, runner.DEFAULT_HEAP)
    for _ in range(2):
        assert h.run(warm_input(target, corpus)).kind in ("ok", "rejected")
    before = h.mem_free()
    o = h.run((CASES / case).read_bytes())
    assert not o.bad, f"{case}: {o}"
    kept = before - h.mem_free()
    assert kept <= most, f"{case}: {kept} bytes of heap kept after the input"


FAKE = """
import sys, time
sys.stdout.write('ready 1\\n')
while True:
    h = sys.stdin.buffer.read(4)
    if len(h) < 4:
        break
    n = int.from_bytes(h, 'big')
    data = sys.stdin.buffer.read(n)
    if data[:1] == b'\\xff':
        time.sleep(3600)                  # a hang
    elif data[:1] == b'\\xfe':
        sys.exit(3)                       # the interpreter dies
    elif data[:1] == b'\\xfd':
        sys.stdout.write('rejected:SccpError:\\n')
    elif data[:1] == b'\\xfb':
        time.sleep(0.6)                   # slow, not stuck
        sys.stdout.write('ok\\n')
    else:
        sys.stdout.write('crash:IndexError:Traceback\\\\n  line 1\\n' if data[:1] == b'\\xfc' else 'ok\\n')
"""


def test_runner_tells_crashes_hangs_and_unclear_rejections(tmp_path, monkeypatch):
    """The host side: a hang is cut at the timeout, the process restarted and the input tried
    once more with ten times the time (slow is not stuck), a dead interpreter is a crash, an
    undocumented exception a crash, a message-less rejection unclear; inputs after each of
    them are answered again."""
    script = tmp_path / "fake_harness.py"
    script.write_text(FAKE)
    monkeypatch.setattr(runner, "HARNESS", script)
    h = runner.Harness(runner.TARGETS["sccp"], tmp_path, tmp_path, timeout_s=0.3)
    t = runner.Tally("sccp")
    with h:
        for data in (b"\x00", b"\xff", b"\x00", b"\xfe", b"\x00", b"\xfc", b"\xfd", b"\xfb", b"\x00"):
            t.add(data, h.run(data))
        assert h.starts == 5
    assert (t.tried, t.ok, t.hangs, t.crashes, t.unclear) == (9, 5, 1, 2, 1)
    assert t.max_ms >= 600
    kinds = sorted(f.outcome.kind + ":" + f.outcome.cls for f in t.findings.values())
    assert kinds == ["crash:IndexError", "crash:InterpreterDied", "hang:", "unclear:SccpError"]
    assert t.findings[next(k for k in t.findings if "IndexError" in k)].outcome.detail == "Traceback\n  line 1"
