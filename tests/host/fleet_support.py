"""What every small fleet test checks of its phones (tests/host/test_fleet*.py)."""
from __future__ import annotations

from typing import Any

from host_tools.fleet.track import Tracker


def check_phones(tr: Tracker, res: dict[str, Any]) -> None:
    """Each phone's lines carry its own tag and tell its own story: registered with the call
    manager, standing by, lost it, registered with the SRST router, in FALLBACK at the end;
    the heap per phone is plausible."""
    assert tr.strays == 0
    for ph in tr.phones.values():
        assert all(ev.phone == ph.mac for _at, ev in ph.events)
        names = [ev.ev for _at, ev in ph.events]
        for want in ("agent_start", "registered", "standby_up", "primary_lost", "fleet_final"):
            assert want in names, (ph.mac, names)
        links = [ev.get("link") for _at, ev in ph.events if ev.ev == "registered"]
        assert links == ["primary", "srst"], (ph.mac, links)
        assert ph.final is not None and ph.final["state"] == "FALLBACK", ph.final
    # heap figures per process: phases in order, per-phone figure plausible
    m = res["memory"]
    assert 5_000 < m["heap_per_phone_bytes"] < 64_000, m
