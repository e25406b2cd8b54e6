"""After an outage with ICMP unreachable the board goes back to rest. A probe of the call
manager opened just before the WAN came back got an ICMP error for its SYN, and Linux keeps
reporting that as POLLERR on the established session until the socket's error queue is read
(without IP_RECVERR too): the link's reader was woken at once, forever, and the board spun at
a whole core after every such outage (phone.link._Opened.readinto now reads the queue off).
Found by the failover benchmark: its unreachable and link_down labs took 0.2 core each."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from host_tools.lab import netns

pytestmark = pytest.mark.netns


@pytest.mark.parametrize("kind", [
    "unreachable",
    pytest.param("link_down", marks=pytest.mark.long("the same after a link-down outage "
                                                     "(25 s); `make test-long`")),
])
def test_the_board_rests_after_the_outage(tmp_path: Path, kind: str) -> None:
    why = netns.unusable_reason()
    if why:
        pytest.skip(why)
    from bench import _rig
    from bench._rig import Rig, RigSpec
    spec = RigSpec(keepalive=30, secondary_keepalive=60,
                   settings={"monitor_s": 1, "retry_max_ms": 2000, "probe_after_ms": 2000})
    with Rig(tmp_path, spec) as rig:
        rig.wait("standby_up", rig.booted, 60)
        run, _lost = _rig.failover_cycle(rig, kind, 30, True, "virtual")
        assert run["over_standby"] and run["rehome_ms"] > 0
        time.sleep(0.5)
        c0, t0 = rig.cpu_ns(), time.monotonic()
        time.sleep(3)
        busy = (rig.cpu_ns() - c0) / 1e9 / (time.monotonic() - t0)
        # at rest a board takes well under 1% of a core; the defect took 100%
        assert busy < 0.1, f"the board is busy after the {kind} outage: {busy:.0%} of a core"
