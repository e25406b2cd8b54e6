"""Fault-matrix procedures: TFTP servers that drip or do not answer: provisioning bounded in time.
Same contract as bench/_cases.py: each procedure drives one Rig and returns
(passed, observed text, figures); CASES are the matrix rows (fault_matrix.Case fields)."""
from __future__ import annotations

from typing import Any, Callable

from bench._cases import Result
from bench._rig import Rig

PROCEDURES: dict[str, Callable[..., Result]] = {}
CASES: list[dict[str, Any]] = []
