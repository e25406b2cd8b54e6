"""What the lab's parts are called: the one definition that the lab, the scenario files, the
`phonelab` commands, the HIL plugin and the benchmarks all take their choices from."""
from __future__ import annotations

# WAN faults (host_tools.lab.topology does them; cm_reset is the call manager's part, lab.Lab)
WAN_KINDS = ("blackhole", "unreachable", "link_down", "cm_reset")
# servers a scenario or `phonelab lab kill/restart` can stop and start
SERVERS = ("callmanager", "srst", "tftp", "dhcp")
# the SCCP servers, which can also hang (TCP up, nothing answered)
SCCP_SERVERS = ("callmanager", "srst")
# the phones' signalling protocol (their SEP<MAC>.cnf.xml; the SIP lab runs Kamailio too)
PROTOCOLS = ("sccp", "sip")
# lab topologies: namespaces (root) or loopback; "auto" picks namespaces when they work
MODES = ("auto", "netns", "loopback")
# TFTP server: the lab's own or dnsmasq's ("auto": the lab's)
TFTP_KINDS = ("auto", "lab", "dnsmasq")

# The options that bring your own files into the lab (`phonelab run`, `phonelab lab up`)
PKI_HELP = ("the lab's certificates and keys from DIR: what `phonelab certs` wrote, or "
            "certutils-style files (certificate and key in NAME.pem) named sast, sast2, ccm, "
            "tftp, capf, srst, SEP<MAC>; keys under 2048 bits are used with a warning "
            "(docs/lab.md)")
TFTP_ROOT_HELP = ("serve DIR's files in place of the lab's: the lab writes no trust list if "
                  "DIR has one and no config for a phone DIR has one for; DIR's "
                  "SEP<MAC>.cnf.xml(.sgn) name the phones; what does not fit the lab is a "
                  "warning (docs/lab.md)")
