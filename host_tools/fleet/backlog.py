"""A deeper listen queue for the lab's SCCP listeners during a fleet run.

asyncio listens with a backlog of 100. When hundreds of phones connect at once, the call
manager simulator's queue overflows (measured: 49 ListenOverflows at 300 phones) and each
dropped SYN costs its phone a 1 s retransmission, which is the simulator's limit, not the
phones'. Calling listen() again on a listening socket only changes its backlog (Linux), so this
re-listens a duplicate of each listening descriptor: the call manager's and SRST router's TLS
listeners and, in loopback mode, the WAN relay's. The kernel caps it at net.core.somaxconn.
"""
from __future__ import annotations

import os
import socket
from typing import Any, Iterable


def _listening(server: Any) -> Iterable[Any]:
    return list(getattr(server, "sockets", None) or ())


def raise_backlog(lab: Any, backlog: int) -> int:
    """Returns how many listening sockets got the new backlog."""
    servers: list[Any] = []
    for srv in (lab.callmanager, lab.srst):
        servers += [acc.server for acc in getattr(srv, "_acceptors", ()) if acc.server is not None]
    relay = getattr(lab.topology, "relay", None)
    for r in getattr(relay, "relays", ()):
        if getattr(r, "server", None) is not None:
            servers.append(r.server)
    n = 0
    for server in servers:
        for ts in _listening(server):
            dup = socket.socket(fileno=os.dup(ts.fileno()))
            try:
                dup.listen(backlog)
                n += 1
            finally:
                dup.close()
    return n
