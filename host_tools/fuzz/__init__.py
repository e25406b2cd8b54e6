"""Fuzzing the firmware's parsers under MicroPython (docs/fuzzing.md).

Inputs are generated on the host (`gen`: structure-aware mutations of packets and files built
by host_tools; `strategies`: the same generators as hypothesis strategies) and fed to the
firmware's own parsers, compiled to .mpy and running in one long-lived MicroPython process per
parser under a heap cap (`runner.Harness`, host_tools/mpscripts/fuzz_harness.py).

    with runner.Session() as s:                       # .mpy build, trust files, temp dir
        h = s.harness("ctl")
        out = h.run(data)                             # Outcome: ok | rejected | crash | hang
"""
