"""Fault-matrix procedures: servers that misbehave after registration, and the backoff of failed TLS links.
Same contract as bench/_cases.py: each procedure drives one Rig and returns
(passed, observed text, figures); CASES are the matrix rows (fault_matrix.Case fields)."""
from __future__ import annotations

from typing import Any, Callable

from bench._cases import Result
from bench._rig import Rig

PROCEDURES: dict[str, Callable[..., Result]] = {}
CASES: list[dict[str, Any]] = []
