"""A first boot on the ESP32-faithful Olimex (virtual:olimex-esp32-poe-iso-wrover, its network
stack's own DHCP client holding UDP 68) provisions from option 150, against a dnsmasq that
gives option 150 only to the Cisco phone vendor class and whose siaddr is not the TFTP
server: the only way to the TFTP server is the firmware stopping the platform's client and
asking as a Cisco phone does (option 60, 12). Before the fix the agent's DHCPINFORM could not
bind UDP 68 there and the profile has no tftp_server: no provisioning at all."""
from __future__ import annotations

import pytest

from host_tools.lab import dnsmasq as dm
from net_lab_support import skip_without_libfaketime, skip_without_netns

pytestmark = [pytest.mark.netns, pytest.mark.slow,
              pytest.mark.skipif(dm.available() is not None, reason=str(dm.available()))]

BOARD = "virtual:olimex-esp32-poe-iso-wrover"
SCENARIO = """
name = "board-option150"
description = "First boot on a faithful board: DHCP option 150 by vendor class, then TFTP."
until = "provisioned"
timeout = "120s"

[lab]
short_timers = true

[expect]
events = ["provisioned"]
no_events = ["dhcp_unavailable", "network_failed", "provision_failed"]
"""


def _vendor_class_only(lab) -> None:
    """The lab's branch DHCP server again, giving option 150 only to "...Inc. IP Phone..."
    (dnsmasq matches a substring of option 60) and no siaddr pointing at the TFTP server."""
    from host_tools.lab.services import LoggedDnsmasq
    topo = lab.topology
    a = topo.addr
    tftp = lab.endpoints["tftp"][0]
    lab.dhcp.stop()
    lab.dhcp = LoggedDnsmasq(topo.branch_ns, topo.LAN_BRIDGE, dhcp_range=a.dhcp_range,
                             router=a.router, lease=lab.dhcp_lease,
                             workdir=lab.workdir / "dnsmasq-vclass",
                             extra=["--dhcp-vendorclass=set:ciscophone,Inc. IP Phone",
                                    f"--dhcp-option=tag:ciscophone,150,{tftp}"],
                             emit=lab._emitter("dhcp")).start()
    _seen["dhcp"] = lab.dhcp
    _seen["tftp"] = tftp
    _seen["router"] = a.router


_seen: dict = {}


def test_first_boot_provisions_from_option150_on_the_faithful_olimex(tmp_path):
    skip_without_netns()
    skip_without_libfaketime()
    from host_tools.scenario import report, runner, spec
    _seen.clear()
    sc = spec.loads(SCENARIO)
    res = runner.run(sc, runner.RunOptions(workdir=tmp_path, board=BOARD,
                                           on_lab=_vendor_class_only))
    text = report.summary(res) + "\n" + "\n".join(res.console[-30:])
    assert res.passed, text
    ev = [s.event for s in res.events]
    lease = [e for e in ev if e.ev == "dhcp_lease"]
    assert lease, text
    tftp = _seen["tftp"]
    assert lease[0]["tftp_servers"][0] == tftp, lease[0]
    assert tftp != _seen["router"]          # siaddr (dnsmasq itself) is not the TFTP server
    starts = [e for e in ev if e.ev == "tftp_start"]
    assert starts and starts[0]["server"] == tftp, starts[:1]
    prov = [e for e in ev if e.ev == "provisioned"]
    assert prov[0]["offline"] is False, prov
    d = _seen["dhcp"]
    d.wait_log(r"vendor class: Cisco Systems, Inc\. IP Phone CP-7911G")
    d.wait_log(r"client provides name: SEP[0-9A-F]{12}")
    d.wait_log(r"tags: ciscophone")
