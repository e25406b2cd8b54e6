"""A small SIP fleet end to end (`phonelab fleet --sip`): 10 SIP phones in 2 MicroPython
processes register over mutual TLS with digest at the lab's Kamailio for the call manager,
stand by to the branch's Kamailio, and after a WAN cut all 10 register there over their
standby sessions; Kamailio's own counters and ul.dump agree with the phones. Then --target:
an outside SIP registrar (a Kamailio the fleet does not run, with its own certificate) as the
SRST router. Skipped without Kamailio."""
from __future__ import annotations

from pathlib import Path

import pytest
from fleet_support import check_phones
from sip_lab_support import skip_without_kamailio

from host_tools.fleet.run import FleetOptions, run
from host_tools.fleet.track import Tracker

N = 10


@pytest.mark.slow
def test_small_sip_fleet_registers_with_kamailio_and_fails_over(tmp_path: Path) -> None:
    skip_without_kamailio()
    seen: list[Tracker] = []
    res = run(FleetOptions(phones=N, procs=2, protocol="sip", fail_over=True, workdir=tmp_path,
                           boot_timeout=40, failover_timeout=30, on_done=seen.append))
    assert res["ok"], (res.get("failure_reasons"), res.get("failures"),
                       res.get("server_mismatch"), res.get("console_tail"))
    assert res["protocol"] == "sip" and res["exit_codes"] == {"0": 0, "1": 0}
    b, f = res["boot"], res["failover"]
    assert (b["registered"], b["standby"], f["on_srst"]) == (N, N, N)
    assert f["over_standby"] == N           # registered over the standby session

    # Kamailio's own view: every line registered at HQ after boot (ul.dump, by the line's
    # device), a TLS session per phone at the branch (the standby sessions), and after the cut
    # every line registered at the branch; its counters saw the digest dialogue
    sb, sf = res["servers_boot"], res["servers_failover"]
    assert sb["callmanager"]["registered"] == N, sb
    assert sb["srst"]["registered"] == 0 and sb["srst"]["tls_connections"] == N, sb
    assert sf["srst"]["registered"] == N, sf
    kb, kf = res["kamailio_boot"], res["kamailio_failover"]
    assert kb["registered"] == N and kb["registers_accepted"] == N, kb
    assert kb["registers_received"] >= 2 * N, kb        # each challenged once, then accepted
    assert kf["registered"] == N and kf["all_registered_s"] is not None, kf
    assert res["server_mismatch"] == []

    # every phone used the SIP link, on both registrars
    check_phones(seen[0], res)

@pytest.mark.slow
def test_sip_fleet_against_an_outside_registrar(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """--sip --target HOST:PORT: the phones pin the certificate the outside registrar
    presents, stand by to it and register there after the cut. It knows the lab's lines
    (here: the same numbering and, for the test, one password for all)."""
    skip_without_kamailio()
    from host_tools import pki
    from host_tools.fleet import identities
    from host_tools.lab import kamailio_cfg
    from host_tools.lab.kamailio import Kamailio, free_port

    monkeypatch.setattr(kamailio_cfg.secrets, "token_urlsafe", lambda n: "fleet-test-pw")
    fp = identities.ensure(4)
    ident = pki.make_identity("outside", "SRST", cn="sip-outside").write(tmp_path / "router")
    lines = kamailio_cfg.lab_lines(p.device for p in fp.phones[:4])
    port = free_port("127.0.0.1")
    cfg = kamailio_cfg.SipServerConfig(role="srst", host="127.0.0.1", port=port,
                                       cert=ident.cert_path, key=ident.key_path,  # type: ignore[arg-type]
                                       client_ca=fp.pki.capf.cert_path,  # type: ignore[arg-type]
                                       realm="sip-outside", lines=tuple(lines))
    with Kamailio(cfg, tmp_path / "outside") as router:
        res = run(FleetOptions(phones=4, procs=1, protocol="sip", target=f"127.0.0.1:{port}",
                               fail_over=True, workdir=tmp_path / "fleet", boot_timeout=30,
                               failover_timeout=30))
        assert res["ok"], (res.get("failure_reasons"), res.get("failures"),
                           res.get("server_mismatch"))
        assert res["mode"] == "loopback" and "srst" not in res["servers_boot"]
        assert res["failover"]["over_standby"] == 4
        assert router.status()["registered"] == [p.device for p in fp.phones[:4]]
