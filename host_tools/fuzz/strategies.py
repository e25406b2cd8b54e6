"""The generators of `gen` as hypothesis strategies: every choice a generator makes is a
hypothesis draw, so a failing input shrinks (fewer mutations, smaller values, earlier seeds)."""
from __future__ import annotations

from hypothesis import strategies as st

from host_tools.fuzz import gen


class DrawSrc:
    def __init__(self, draw):
        self.draw = draw

    def int(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def bytes(self, n: int) -> bytes:
        return self.draw(st.binary(min_size=n, max_size=n))


def inputs(target: str, corpus: gen.Corpus) -> st.SearchStrategy[bytes]:
    """Inputs for one harness target (a flags byte, then the payload)."""
    fn = gen.GENERATORS[target]

    @st.composite
    def build(draw) -> bytes:
        return fn(DrawSrc(draw), corpus)

    return build()
