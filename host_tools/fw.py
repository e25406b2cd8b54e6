"""Import firmware modules written in the common MicroPython/CPython subset (e.g. phone.sccp)
from host code, so host and board share one implementation."""
from __future__ import annotations

import sys

from host_tools import FIRMWARE

if str(FIRMWARE) not in sys.path:
    sys.path.insert(0, str(FIRMWARE))
