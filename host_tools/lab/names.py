"""What the lab's parts are called: the one definition that the lab, the scenario files, the
`phonelab` commands, the HIL plugin and the benchmarks all take their choices from."""
from __future__ import annotations

# WAN faults (host_tools.lab.topology does them; cm_reset is the call manager's part, lab.Lab)
WAN_KINDS = ("blackhole", "unreachable", "link_down", "cm_reset")
# servers a scenario or `phonelab lab kill/restart` can stop and start
SERVERS = ("callmanager", "srst", "tftp", "dhcp")
# the SCCP servers, which can also hang (TCP up, nothing answered)
SCCP_SERVERS = ("callmanager", "srst")
# lab topologies: namespaces (root) or loopback; "auto" picks namespaces when they work
MODES = ("auto", "netns", "loopback")
# TFTP server: the lab's own or dnsmasq's ("auto": the lab's)
TFTP_KINDS = ("auto", "lab", "dnsmasq")
