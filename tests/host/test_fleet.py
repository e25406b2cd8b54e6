"""A small fleet end to end: 10 phones in 2 MicroPython processes (5 agents per interpreter,
each with its own certificate) boot against the lab's call manager and SRST router simulators,
register with standby, and after a WAN cut all 10 are on the SRST router; every phone's event
stream is its own. Namespaces when root, loopback otherwise."""
from __future__ import annotations

from pathlib import Path

import pytest
from fleet_support import check_phones

from host_tools.fleet.run import FleetOptions, run
from host_tools.fleet.track import Tracker

N = 10


@pytest.mark.slow
def test_small_fleet_boots_and_fails_over(tmp_path: Path) -> None:
    seen: list[Tracker] = []
    res = run(FleetOptions(phones=N, procs=2, fail_over=True, workdir=tmp_path,
                           boot_timeout=30, failover_timeout=20, on_done=seen.append))
    assert res["ok"], (res.get("failure_reasons"), res.get("failures"), res.get("console_tail"))
    assert res["procs"] == 2 and res["exit_codes"] == {"0": 0, "1": 0}
    b, f = res["boot"], res["failover"]
    assert (b["registered"], b["standby"], f["on_srst"]) == (N, N, N)
    assert f["over_standby"] == N           # no handshake on the critical path

    # What the simulators saw, by device name / certificate CN: every phone, once.
    cm, sr = res["servers_boot"]["callmanager"], res["servers_boot"]["srst"]
    assert (cm["registered"], sr["standby"]) == (N, N), res["servers_boot"]
    assert res["servers_failover"]["srst"]["registered"] == N, res["servers_failover"]
    # Messages per phone per minute each simulator received, beside a real phone's 12/min at
    # the short timers' 5 s keepalive: every phone counted, the worst at least the average.
    for name in ("callmanager", "srst"):
        ld = res["messages_per_min"][name]
        assert (ld["phones"], ld["keepalive_s"], ld["real_phone_per_min"]) == (N, 5, 12.0), ld
        assert 0 < ld["per_min_avg"] <= ld["per_min_max"], ld

    # One console per process, one stream per phone: each phone's lines carry its own tag
    # and tell its own story; no line names a phone of another process.
    tr = seen[0]
    assert sorted(len([p for p in tr.phones.values() if p.proc == i]) for i in (0, 1)) == [5, 5]
    check_phones(tr, res)

@pytest.mark.slow
def test_fleet_against_an_outside_router(tmp_path: Path) -> None:
    """--target HOST:PORT: a router the fleet does not run (here a separate SRST router
    simulator with its own certificate, trusting the fleet's CA). The fleet pins the
    certificate the router presents, stands by to it and fails over to it."""
    from host_tools import pki
    from host_tools.fleet import identities
    from host_tools.lab.nsloop import NsLoop
    from host_tools.lab.srst import SrstRouter

    fp = identities.ensure(4)
    ident = pki.make_identity("outside", "SRST", cn="srst-outside").write(tmp_path / "router")
    loop = NsLoop("outside").start()
    router = SrstRouter(cert=ident.cert_path, key=ident.key_path, phone_ca=fp.pki.capf.cert_path,
                        host="127.0.0.1", port=0, max_phones=10)
    try:
        loop.run(router.start(), 10)
        port = router.ports["tls"]
        res = run(FleetOptions(phones=4, procs=1, target=f"127.0.0.1:{port}", fail_over=True,
                               workdir=tmp_path / "fleet", boot_timeout=30, failover_timeout=20))
        assert res["ok"], (res.get("failure_reasons"), res.get("failures"))
        assert res["mode"] == "loopback"
        evs = loop.call(lambda: list(router.events))
        want = [p.device for p in fp.phones[:4]]
        assert sorted(e["device"] for e in evs if e["ev"] == "standby") == want
        assert sorted(e["device"] for e in evs if e["ev"] == "registered") == want
    finally:
        loop.run(router.stop(), 10)
        loop.stop()
