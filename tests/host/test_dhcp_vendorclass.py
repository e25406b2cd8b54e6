"""Many sites give option 150 only to Cisco phones, by the vendor class they send (option 60).
dnsmasq configured so (--dhcp-vendorclass + a tagged --dhcp-option) answers the firmware's
DHCP client (phone.dhcp, MicroPython unix port) with option 150, and a client on the same
segment that does not send the class without it. dnsmasq's log shows what the phone sent."""
from __future__ import annotations

import pytest

from host_tools.lab import dnsmasq as dm
from net_lab_support import ALT_IP, firmware, mac_hex, pair, run_client

pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(dm.available() is not None, reason=str(dm.available()))]

RANGE = ("192.0.2.100", "192.0.2.150")
FAST = {"first_ms": 500, "max_ms": 2000}
OTHER_MAC = "02:00:5e:10:00:99"
# dnsmasq matches a substring of option 60; its command line cannot carry the comma of
# "Cisco Systems, Inc. IP Phone", so the part after it is matched.
VENDOR_MATCH = "Inc. IP Phone"
CISCO_ONLY = [f"--dhcp-vendorclass=set:ciscophone,{VENDOR_MATCH}",
              f"--dhcp-option=tag:ciscophone,150,{ALT_IP}"]


@pytest.fixture(scope="module")
def fw(tmp_path_factory):
    return firmware(tmp_path_factory)


def test_option150_only_to_the_cisco_phone_vendor_class(fw, tmp_path):
    with pair("vclass", dhcp_client=True) as p, \
            dm.Dnsmasq(p.srv, "eth0", dhcp_range=RANGE, extra=CISCO_ONLY,
                       workdir=tmp_path / "dm") as d:
        name = "SEP" + mac_hex(p.mac)
        run = run_client(fw, {"op": "dhcp", "mac": p.mac, "total_ms": 20000,
                              "dhcp": dict(FAST, hostname=name)}, ns=p.phone)
        assert run.result["ok"], run.output
        assert run.result["lease"]["opt150"] == [ALT_IP]
        assert run.result["lease"]["tftp_servers"][0] == ALT_IP
        d.wait_log(r"vendor class: Cisco Systems, Inc\. IP Phone CP-7911G")
        d.wait_log(r"client provides name: " + name)
        d.wait_log(r"tags: ciscophone")
        # the same server, a client without the phone's vendor class: no option 150
        other = run_client(fw, {"op": "dhcp", "mac": OTHER_MAC, "total_ms": 20000,
                                "dhcp": dict(FAST, vendor_class=None)}, ns=p.phone)
        assert other.result["ok"], other.output
        assert other.result["lease"]["opt150"] == []
        assert ALT_IP not in other.result["lease"]["tftp_servers"]
