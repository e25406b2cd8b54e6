"""`phonelab replay`: serve the network side of a capture (its DHCP answers and TFTP files)
back to a board, and report where the board's behaviour differs from the capture.

    pcap.py      pcap / pcapng reading down to UDP datagrams (Ethernet, SLL, raw IP; VLAN
                 tags; IPv4 fragments reassembled)
    bootp.py     DHCP/BOOTP packets: parse and encode
    dhcp.py      DHCP exchanges of a capture (OFFER/ACK options, timing)
    tftp.py      TFTP transfers of a capture (RRQ, OACK, DATA reassembly, errors, timing)
    capture.py   one capture analysed: the phone, its DHCP exchange, its transfers, its files
    addrmap.py   captured addresses -> the lab's documentation ranges
    plan.py      what the replay servers answer (mapped DHCP replies, files, errors, delays)
    servers.py   the replay DHCP responder and TFTP server
    session.py   namespaces + servers + a virtual board, run until provisioning ends
    compare.py   capture vs replay: differences, JSON report, summary

docs/replay.md describes the whole thing.
"""
