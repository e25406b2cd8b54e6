"""Import firmware modules written in the common MicroPython/CPython subset (e.g. phone.sccp)
from host code, so host and board share one implementation.

The firmware imports `from micropython import const` as MicroPython code does; on CPython that
finds the stand-in below, the one CPython stub of the `micropython` module (const() only:
phone.sha512n's @micropython.viper stays MicroPython's, and phone.sha512 then uses its Python
rounds). MicroPython's time.ticks_* come from phone.compat."""
from __future__ import annotations

import sys
import types
from typing import TypeVar

from host_tools import FIRMWARE

_T = TypeVar("_T")


def _const(x: _T) -> _T:
    return x


if "micropython" not in sys.modules:
    _stub = types.ModuleType("micropython", "CPython stand-in for the firmware (host_tools.fw)")
    setattr(_stub, "const", _const)
    sys.modules["micropython"] = _stub

if str(FIRMWARE) not in sys.path:
    sys.path.insert(0, str(FIRMWARE))
