"""The whole suite's one rule on time: a test marked `long` ("why") is left out of `make
test` (the CI budget: docs/development.md, "Where things are") and run by `make test-long`
(PHONELAB_LONG=1), which runs everything."""
from __future__ import annotations

import os

import pytest

LONG_RUN = bool(os.environ.get("PHONELAB_LONG"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if LONG_RUN:
        return
    for item in items:
        m = item.get_closest_marker("long")
        if m is not None:
            why = m.args[0] if m.args else "lasts minutes"
            item.add_marker(pytest.mark.skip(reason=f"{why}: make test-long (PHONELAB_LONG=1) runs it"))
