"""Fault-matrix procedures: the DHCP lease over time: renewal, rebinding, a server gone mid-lease.
Same contract as bench/_cases.py: each procedure drives one Rig and returns
(passed, observed text, figures); CASES are the matrix rows (fault_matrix.Case fields)."""
from __future__ import annotations

from typing import Any, Callable

from bench._cases import Result
from bench._rig import Rig

PROCEDURES: dict[str, Callable[..., Result]] = {}
CASES: list[dict[str, Any]] = []
