"""Fleets of virtual phones: many agents per MicroPython process, several processes, booting
and failing over at once against the SRST router simulator (or an outside SRST router), as a
load test. `phonelab fleet`, `bench/fleet.py`, docs/fleet.md.

    identities  the lab PKI + one 2048-bit phone certificate per MAC, made once and cached
    spec        the files each process reads (a fleet skips DHCP/TFTP provisioning)
    procs       the MicroPython processes (host_tools/mpscripts/fleet_run.py) and /proc figures
    track       per-phone state from the tagged event lines, on the agents' own clock
    metrics     registrations/s, time to all-on-SRST, memory per phone, failures
    cpu         CPU per process and per simulator thread (where the bottleneck is)
    sipside     a SIP fleet's lines and the Kamailio registrars' own counts (--sip)
    run         the whole run: lab, processes, WAN cut, figures
"""
