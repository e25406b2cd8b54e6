"""The trust downgrades of the fault matrix (bench/_cases_trust.py), end to end: a lab (namespaces
when root, loopback otherwise) whose TFTP server turns rogue, and a virtual board running the
agent. Each attack must end refused with its reason, the stored state kept, no plain-TCP try,
and the phone registered over TLS with the real call manager (the row's own judgement,
fault_matrix.play)."""
from __future__ import annotations

import pytest

from bench import _cases_trust, fault_matrix

CASES = [fault_matrix.Case(**row) for row in _cases_trust.CASES]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[f"{c.proc}-{'-'.join(map(str, c.args.values()))}"
                                             for c in CASES])
def test_trust_attack_is_refused(case: fault_matrix.Case) -> None:
    r = fault_matrix.play(case)
    assert r["tracebacks"] == 0, r
    assert r["passed"], f"{case.fault}: {r['observed']} (final state {r['final_state']})"


def test_every_trust_row_has_its_procedure() -> None:
    for c in CASES:
        assert c.proc in _cases_trust.PROCEDURES, c.proc
        assert fault_matrix.procedure(c.proc) is _cases_trust.PROCEDURES[c.proc]
