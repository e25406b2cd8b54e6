"""The SIP fault matrix's pure parts (issue 15), without a lab: bench/fault_matrix_sip.py's plan
(every SCCP row for a SIP phone with the same expectation, the rows that cannot apply listed
with their reason and never played, a small quick set holding the refusals), its table and
headline, its refusal without Kamailio, the README section keeping both matrices' blocks, and
the lab's hang and cm_reset of a Kamailio as the cm_reset rows use them."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import _readme, _rig, fault_matrix as fm, fault_matrix_sip as sip

REFUSALS = {("SRST certificate replaced", "registered"),
            ("call manager certificate not in the CTL", "registered"),
            ("rogue TFTP: CTL from a rogue SAST + unsigned mode-1 config, SAST pinned",
             "first boot")}


def test_every_sccp_row_is_in_the_sip_matrix_with_the_same_expectation() -> None:
    sccp, sips = fm.cases(), sip.cases()
    assert [(c.fault, c.phase, c.expected, c.final, c.proc) for c in sccp] == \
        [(c.fault, c.phase, c.expected, c.final, c.proc) for c in sips]
    assert all(c.protocol == "sip" for c in sips)
    assert all(c.protocol == "sccp" and not c.na for c in sccp)      # SCCP unchanged
    na = {c.proc for c in sips if c.na}
    assert na == set(sip.NOT_APPLICABLE) and "srst_cert_reissued" in na
    assert all(len(c.na) > 20 for c in sips if c.na)                # a reason, not a flag
    for kind in fm.KINDS:                                           # every WAN kind x phase runs
        for phase in fm.PHASES:
            assert any(c.fault == f"WAN {kind}" and c.phase == phase and not c.na for c in sips)


def test_quick_is_a_few_rows_with_the_refusals() -> None:
    quick = sip.plan(True)
    played = [c for c in quick if not c.na]
    assert len(played) <= 4 and {fm._key(c) for c in played} >= REFUSALS
    assert any(c.fault.startswith("WAN ") for c in played)
    assert {fm._key(c) for c in played} == sip.QUICK              # each QUICK key names a row
    assert [c for c in quick if c.na] == [c for c in sip.cases() if c.na]


def test_rows_that_do_not_apply_are_listed_not_played(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    played: list[fm.Case] = []

    def fake_parallel(fn, tasks, jobs=None):
        played.extend(tasks)
        return [{"fault": c.fault, "phase": c.phase, "expected": c.expected,
                 "expected_final": c.final, "observed": "o", "final_state": c.final,
                 "passed": True} for c in tasks]

    monkeypatch.setattr(_rig, "parallel", fake_parallel)
    monkeypatch.setenv("BENCH_OUT", str(tmp_path))
    todo = sip.plan(True)
    res = fm.run_plan(todo, True, sip.NAME)
    assert not [c for c in played if c.na] and len(played) == len(sip.QUICK)
    assert all(c.protocol == "sip" for c in played)
    assert [r[:2] for r in res["rows"]] == [[c.fault, c.phase] for c in todo]   # plan order
    na_rows = [r for r in res["rows"] if r[-1] == "n/a"]
    assert len(na_rows) == res["not_applicable"] == len(sip.NOT_APPLICABLE) + 1  # 2 quirk rows
    assert all(r[3].startswith("not applicable: ") and r[4] == "-" for r in na_rows)
    assert (res["passed"], res["total"], res["protocol"]) == (4, 4, "sip")
    assert res["title"].startswith("Fault matrix for SIP phones")
    md = (tmp_path / "fault_matrix_sip.md").read_text()
    assert "`python -m bench --only fault_matrix_sip` (quick" in md and "| n/a |" in md
    assert sip.headline(res) == [(
        "fault matrix for SIP phones against Kamailio: the SCCP matrix's rows, the same "
        "expectations", "4/4 cases as expected, 3 not applicable", "table below")]
    res["cases"][0]["passed"] = False
    assert sip.headline(res)[0][2] == "failed: WAN blackhole / registered"


def test_without_kamailio_the_sip_matrix_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sip.kamailio, "available", lambda: "Kamailio is not installed")
    res = sip.run(True)
    assert res["rows"] and all(len(r) == len(res["columns"]) for r in res["rows"])
    assert res["passed"] == res["total"] == 0
    assert sip.headline(res) == [("fault matrix for SIP phones", "not run",
                                  "Kamailio is not installed")]


OLD = """<!-- generated ... -->

| benchmark | measure | figure | compared with | run |
|---|---|---|---|---|
| fault_matrix | fault matrix | 30/30 cases as expected | table below | `make bench`, old |

Fault matrix (30/30 cases passed, `make bench`):

| fault | phase | expected | observed | final state | result |
|---|---|---|---|---|---|
| WAN blackhole | registered | fails over | SCCP kept row | PRIMARY | pass |

- 30/30 cases passed.

Fault matrix for SIP phones (1/1 cases passed, `make bench`):

| fault | phase | expected | observed | final state | result |
|---|---|---|---|---|---|
| WAN blackhole | registered | fails over | old SIP row | PRIMARY | pass |

- 1/1 cases passed.
"""


def test_readme_keeps_one_matrix_while_rewriting_the_other(tmp_path: Path) -> None:
    res = fm.summarize([fm.not_applicable(c) for c in sip.cases() if c.na] + [
        {"fault": "WAN blackhole", "phase": "registered", "expected": "e",
         "expected_final": "PRIMARY", "observed": "new SIP row", "final_state": "PRIMARY",
         "passed": True}], False, "sip")
    (tmp_path / "fault_matrix_sip.json").write_text(json.dumps(res))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{_readme.START}\n{OLD}{_readme.END}\noutro\n")
    _readme.update(tmp_path, readme, None, only=["fault_matrix_sip"])
    text = readme.read_text()
    assert "SCCP kept row" in text and "Fault matrix (30/30 cases passed" in text
    assert "old SIP row" not in text and "new SIP row" in text
    assert "Fault matrix for SIP phones (1/1 cases passed, 3 not applicable, `make bench`)" in text
    assert text.index("SCCP kept row") < text.index("new SIP row")
    assert "| fault_matrix_sip | fault matrix for SIP phones" in text
    once = text
    _readme.update(tmp_path, readme, None, only=["fault_matrix_sip"])
    assert readme.read_text() == once                 # nothing grows on a second rewrite
    # the SIP block kept when only the SCCP matrix is rewritten
    (tmp_path / "fault_matrix.json").write_text(json.dumps(fm.summarize([], False)))
    _readme.update(tmp_path, readme, None, only=["fault_matrix"])
    text = readme.read_text()
    assert "SCCP kept row" not in text and "new SIP row" in text


class _Registrar:
    """A Kamailio as the lab's hang and cm_reset use it, without the process."""

    def __init__(self) -> None:
        self.running, self.frozen, self.calls = True, False, []

    def freeze(self, on: bool) -> list[int]:
        from host_tools.lab.kamailio import KamailioError
        if not self.running:
            raise KamailioError("Kamailio (callmanager) is not running")
        self.calls.append(on)
        self.frozen = on
        return [101, 102]

    def stop(self) -> None:
        if self.frozen and self.running:
            self.freeze(False)
        self.calls.append("stop")
        self.running, self.frozen = False, False


def _sip_lab(k: _Registrar) -> Any:
    from types import SimpleNamespace

    from host_tools.lab.lab import Lab
    lab = Lab.__new__(Lab)
    lab.protocol, lab.events, lab._stopped = "sip", None, set()
    lab.sip = SimpleNamespace(servers={"callmanager": k})  # type: ignore[assignment]
    return lab


def test_lifting_the_hang_of_a_stopped_registrar_does_nothing() -> None:
    """The cm_reset rows of the registration and re-home phases hang the call manager, cut
    (cm_reset stops HQ's Kamailio) and lift the hang: nothing left to lift, no error."""
    from host_tools.lab.kamailio import KamailioError
    k = _Registrar()
    lab = _sip_lab(k)
    lab.hang("callmanager", True)
    k.running = False                                   # stopped (and continued)
    lab.hang("callmanager", False)
    assert k.calls == [True]
    with pytest.raises(KamailioError):                  # hanging a stopped one still says so
        lab.hang("callmanager", True)


def test_a_hung_registrar_reset_is_killed_before_it_can_answer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """cm_reset of a hung HQ Kamailio: SIGKILL to its stopped processes first (continued for
    SIGTERM it would answer the REGISTER it had read), as the SCCP reset answers nothing."""
    import signal

    from host_tools.lab import lab as lablib
    killed: list[tuple[int, int]] = []
    monkeypatch.setattr(lablib.os, "kill", lambda pid, sig: killed.append((pid, sig)))
    k = _Registrar()
    lab = _sip_lab(k)
    lab.hang("callmanager", True)
    lab._sip_cm_reset(True)
    assert killed == [(101, signal.SIGKILL), (102, signal.SIGKILL)]
    assert k.calls[-1] == "stop" and "callmanager" in lab._stopped
    killed.clear()
    k2 = _Registrar()                                  # not hung: a plain stop (SIGTERM)
    _sip_lab(k2)._sip_cm_reset(True)
    assert not killed and k2.calls == ["stop"]
