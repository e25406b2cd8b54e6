"""The firmware's DHCP client (phone.dhcp on the MicroPython unix port) against real dnsmasq,
in a phone namespace and a server namespace joined by veth."""
from __future__ import annotations

import ipaddress
import re

import pytest

from host_tools.lab import dnsmasq as dm
from host_tools.lab import netns
from host_tools.lab.rogue_dhcp import RogueOffers
from net_lab_support import (ALT_IP, DOWN_IP, SRV_IP, content, firmware, mac_hex,
                             no_namespaces_left, pair, run_client)

pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(dm.available() is not None, reason=str(dm.available()))]

RANGE = ("192.0.2.100", "192.0.2.150")
FAST = {"first_ms": 500, "max_ms": 2000}


@pytest.fixture(scope="module")
def fw(tmp_path_factory):
    return firmware(tmp_path_factory)


@pytest.fixture
def dhcp_pair():
    with pair("dhcp", dhcp_client=True) as p:
        yield p


def in_range(ip: str) -> bool:
    a = ipaddress.ip_address(ip)
    return ipaddress.ip_address(RANGE[0]) <= a <= ipaddress.ip_address(RANGE[1])


def test_full_exchange_gets_address_and_option150(fw, dhcp_pair, tmp_path):
    p = dhcp_pair
    with dm.Dnsmasq(p.srv, "eth0", dhcp_range=RANGE, option150=[ALT_IP, SRV_IP],
                    workdir=tmp_path / "dm") as d:
        run = run_client(fw, {"op": "dhcp", "mac": p.mac, "dhcp": FAST, "total_ms": 20000},
                         ns=p.phone)
        assert run.result["ok"], run.output
        lease = run.result["lease"]
        assert in_range(lease["ip"])
        assert lease["mask"] == "255.255.255.0"
        assert lease["router"] == SRV_IP
        assert lease["server_id"] == SRV_IP
        assert lease["lease_s"] == 120
        assert lease["opt150"] == [ALT_IP, SRV_IP]
        # 150 in its order first; dnsmasq's siaddr (itself) is already in the list
        assert lease["tftp_servers"] == [ALT_IP, SRV_IP]
        names = run.names()
        assert names.index("dhcp_discover") < names.index("dhcp_offer") < \
            names.index("dhcp_request") < names.index("dhcp_lease")
        d.wait_log(r"DHCPACK\(eth0\) " + lease["ip"].replace(".", r"\."))
        assert any(e["mac"] == p.mac and e["ip"] == lease["ip"] for e in d.leases())
        # dnsmasq saw that we asked for 150 and 66
        assert d.wait_log(r"requested options:.*150:tftp-server-address")


def test_inform_from_an_address_the_platform_has(fw, tmp_path):
    with pair("inform", phone_addr="192.0.2.77/24") as p:
        # A platform with an address has its gateway too: the broadcast INFORM needs a route.
        p.phone.add_route("default", via=SRV_IP)
        with dm.Dnsmasq(p.srv, "eth0", dhcp_range=RANGE, option150=[SRV_IP],
                        workdir=tmp_path / "dm") as d:
            run = run_client(fw, {"op": "inform", "mac": p.mac, "ip": "192.0.2.77",
                                  "dhcp": FAST, "total_ms": 10000}, ns=p.phone)
            assert run.result["ok"], run.output
            lease = run.result["lease"]
            assert lease["kind"] == "inform"
            assert lease["ip"] == "192.0.2.77"
            assert lease["lease_s"] is None
            assert lease["tftp_servers"][0] == SRV_IP
            assert lease["mask"] == "255.255.255.0"
            d.wait_log(r"DHCPINFORM\(eth0\) 192\.0\.2\.77")


def test_option66_name_is_resolved_inside_the_namespace(fw, dhcp_pair, tmp_path):
    p = dhcp_pair
    p.phone.set_hosts({"tftp.branch.example": ALT_IP})
    with dm.Dnsmasq(p.srv, "eth0", dhcp_range=RANGE, option66="tftp.branch.example",
                    workdir=tmp_path / "dm"):
        run = run_client(fw, {"op": "dhcp", "mac": p.mac, "dhcp": FAST, "total_ms": 20000},
                         ns=p.phone)
        assert run.result["ok"], run.output
        lease = run.result["lease"]
        assert lease["opt66"] == "tftp.branch.example"
        assert lease["opt150"] == []
        # 66 (resolved) before siaddr (dnsmasq's own address)
        assert lease["tftp_servers"] == [ALT_IP, SRV_IP]


def test_malformed_offers_are_ignored_and_the_good_one_taken(fw, dhcp_pair, tmp_path):
    p = dhcp_pair
    rogue = RogueOffers(p.srv, "eth0")
    # dnsmasq answers a second late, so the bad OFFERs surely arrive first.
    with dm.Dnsmasq(p.srv, "eth0", dhcp_range=RANGE, option150=[SRV_IP], reply_delay_s=1,
                    workdir=tmp_path / "dm"), rogue:
        run = run_client(fw, {"op": "dhcp", "mac": p.mac, "total_ms": 20000,
                              "dhcp": {"first_ms": 2500, "max_ms": 4000}}, ns=p.phone)
    assert run.result["ok"], run.output
    lease = run.result["lease"]
    assert in_range(lease["ip"]) and lease["server_id"] == SRV_IP, lease
    assert lease["tftp_servers"] == [SRV_IP]
    kinds = [k for k, _ in rogue.sent]
    assert len(kinds) == 7, kinds
    ignored = run.all("dhcp_ignored")
    reasons = " | ".join(e["reason"] for e in ignored)
    assert len(ignored) == len(kinds), reasons
    for needle in ("runs past the end", "magic cookie", "option 150 has length 5",
                   "not a server reply", "no message type", "option 66 is not",
                   "option 53 has length 2"):
        assert needle in reasons, (needle, reasons)
    names = run.names()
    assert max(i for i, n in enumerate(names) if n == "dhcp_ignored") < names.index("dhcp_offer")


def test_provision_from_option150_skips_a_dead_server(fw, dhcp_pair, tmp_path):
    """DHCP gives 150 = [dead, dnsmasq]; the config comes from dnsmasq's TFTP server."""
    p = dhcp_pair
    root = tmp_path / "tftp"
    root.mkdir()
    name = f"SEP{mac_hex(p.mac)}.cnf.xml"
    body = content(20000, 3)
    (root / name).write_bytes(body)
    out = tmp_path / "out"
    out.mkdir()
    with dm.Dnsmasq(p.srv, "eth0", dhcp_range=RANGE, option150=[DOWN_IP, SRV_IP],
                    tftp_root=root, workdir=tmp_path / "dm") as d:
        run = run_client(fw, {"op": "provision", "mac": p.mac, "dev": "eth0", "dhcp": FAST,
                              "files": [name], "out_dir": str(out),
                              "tftp": {"timeout_ms": 250, "retries": 2}}, ns=p.phone)
        assert run.result["ok"], run.output
        d.wait_log(r"sent .*" + name)
    assert (out / name).read_bytes() == body
    st = run.result["transfers"][0]
    assert st["server"] == SRV_IP and st["attempt"] == 2
    assert st["negotiated"] and st["blksize"] == 1428 and st["tsize"] == len(body)
    nxt = run.first("tftp_next_server")
    assert nxt["failed"] == DOWN_IP and nxt["next"] == SRV_IP


# The lease keeper (phone.lease) on the unix port, with the platform's own interface code:
# the lease is applied to the phone namespace's eth0, then kept. dnsmasq gives T1/T2 as
# configured (options 58/59), so renewals come after seconds in a 2-minute lease.
KEEPER = r"""
import sys, json, time
import asyncio
from phone import dhcp, lease, platform
from phone.events import default as ev
from phone.settings import Settings
a = json.load(open(sys.argv[1]))
plat = platform.Platform({'name': 't', 'chip': 'unix', 'network': {'kind': 'HOST'}})
L = dhcp.acquire(plat.mac(), ev, total_ms=20000, first_ms=500, max_ms=2000)
plat.apply_lease(L)
k = lease.Keeper(plat, (L.ip, L.server_id, L.lease_s, L.t1_s, L.t2_s, L.acquired_ms), ev,
                 Settings(), None, None)
L = None
dhcp = None
sys.modules.pop('phone.dhcp')       # as provisioning drops it: the keeper must not need it

async def main():
    t = asyncio.create_task(k.run())
    t0 = time.ticks_ms()
    while k.renewals < a['renewals'] and time.ticks_diff(time.ticks_ms(), t0) < a['ms']:
        await asyncio.sleep_ms(50)
    t.cancel()
    await asyncio.sleep_ms(10)
asyncio.run(main())
ev.emit('result', ip=k.ip, renewals=k.renewals, server=k.sid, mods=sorted(sys.modules))
"""


def test_keeper_renews_with_dnsmasq_and_keeps_the_address(fw, dhcp_pair, tmp_path):
    import json
    import subprocess

    from host_tools import fwbuild, micropython
    from host_tools.events import EventReader
    p = dhcp_pair
    script = tmp_path / "keeper.py"
    script.write_text(KEEPER)
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"renewals": 2, "ms": 20000}))
    folder, heap = fw
    env = fwbuild.environ(PHONE_IF="eth0", PHONE_MAC=p.mac)
    env["MICROPYPATH"] = ":".join([".frozen", str(folder)])
    with dm.Dnsmasq(p.srv, "eth0", dhcp_range=RANGE, lease="2m",
                    extra=["--dhcp-option=58,3", "--dhcp-option=59,6"],
                    workdir=tmp_path / "dm") as d:
        proc = subprocess.run(p.phone.argv(micropython.command([str(script), str(args)],
                                                               heap=heap)),
                              env=env, capture_output=True, text=True, timeout=60)
        reader = EventReader()
        reader.feed(proc.stdout)
        reader.flush()
        out = proc.stdout + proc.stderr
        res = [e for e in reader.events if e.ev == "result"]
        assert res, out
        r = res[-1]
        assert r["renewals"] == 2, out
        renewed = [e for e in reader.events if e.ev == "dhcp_renewed"]
        assert [e["stage"] for e in renewed] == ["renewing", "renewing"], out
        assert all(e["ip"] == r["ip"] and e["server"] == SRV_IP for e in renewed), out
        sent = [e for e in reader.events if e.ev == "dhcp_renew"]
        assert all(e["stage"] == "renewing" and e["server"] == SRV_IP for e in sent), out
        assert not {"phone.dhcp", "phone.dhcpcore"} & set(r["mods"]), r["mods"]
        assert not [e for e in reader.events if e.ev == "dhcp_lost"], out
        # dnsmasq ACKed the lease three times (the first and two renewals) and still has it
        ip = r["ip"].replace(".", r"\.")
        acks = [line for line in d.log if re.search(rf"DHCPACK\(eth0\) {ip} ", line)]
        assert len(acks) == 3, d.log
        assert any(e["ip"] == r["ip"] and e["mac"] == p.mac for e in d.leases())
    assert any(a.startswith(r["ip"] + "/") for a in p.phone.addresses("eth0"))


def test_namespaces_are_gone_after_the_tests():
    if netns.unusable_reason():
        pytest.skip(netns.unusable_reason())
    netns.sweep_stale()
    assert no_namespaces_left()
