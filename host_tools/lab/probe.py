"""A TCP connect as a probe of what the lab's network lets through (the topology tests run it
inside a namespace with Topology.run_in)."""
from __future__ import annotations

import socket
import time


def tcp_probe(host: str, port: int, timeout: float = 1.0) -> str:
    """'open', 'refused', 'unreachable' (ICMP), 'timeout' or the error, for a TCP connect."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    t0 = time.monotonic()
    try:
        s.connect((host, port))
        return "open"
    except ConnectionRefusedError:
        return "refused"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        if e.errno in (113, 101):        # EHOSTUNREACH, ENETUNREACH
            return "unreachable"
        return f"error: {e} after {time.monotonic() - t0:.1f}s"
    finally:
        s.close()
