"""Provisioning fits under the 96 KB heap cap: phone.boot.provision (the firmware as .mpy, as
deployed) on the MicroPython unix port with -X heapsize=96K, against a real TFTP server on
loopback serving a CTL and ITL signed by the SAST and a config signed by the TFTP
certificate. First boot (trust on first use) and second boot (the stored trust list checked
first, downloads against its SASTs). Figures: bench/memory.py."""
from __future__ import annotations

import pytest

from host_tools import memcheck

CAP = "96K"


@pytest.fixture(scope="module")
def fw():
    return memcheck.firmware()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with memcheck.ProvisionLab(tmp_path_factory.mktemp("provheap")) as lab:
        yield lab


def _secure(run: memcheck.ProvisionRun) -> None:
    assert run.ok, run.output
    prov = run.first("provisioned")
    assert prov["trust"] is True and prov["offline"] is False and prov["security_mode"] == 3
    assert [e["kind"] for e in run.events if e.ev == "ctl_accepted"] == ["CTL", "ITL"]
    assert run.first("config_accepted")["signed"] is True
    assert not {"ctl_rejected", "config_rejected", "provision_failed"} & set(run.names())
    assert run.result["heap_total"] <= 96 * 1024


def test_first_boot_provisions_at_96k(fw, lab):
    run = lab.provision(fw, CAP)
    _secure(run)
    assert run.first("ctl_accepted")["first_use"] is True
    assert run.first("srst_pinned") is not None
    # what unload() leaves for the agent: the boot modules, interned names, the result
    assert run.result["after"] < 40 * 1024, run.result


def test_second_boot_provisions_at_96k(fw, lab):
    run = lab.second_boot(fw, CAP)
    _secure(run)
    assert run.first("ctl_accepted")["unchanged"] is True   # same CTL: no second RSA check


def test_second_boot_checks_new_trust_lists_at_96k(fw, lab):
    """A CTL and ITL signed again since the last boot (other bytes, same SASTs) are both
    verified against the SASTs in force, at 96K: the heaviest boot."""
    run = lab.second_boot(fw, CAP, new_lists=True)
    _secure(run)
    for ctl in [e for e in run.events if e.ev == "ctl_accepted"]:
        assert ctl["first_use"] is False and "unchanged" not in ctl.fields
