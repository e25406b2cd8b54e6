"""Benchmarks: each module here has `run(quick: bool) -> dict` and is run by
`python -m bench [--quick] [--only NAME ...]` (make bench / make bench-quick).

A result dict holds "title", "columns" and "rows" (printed as a table), optional "notes"
(lines printed under it) and anything else; the whole dict is written to out/bench/NAME.json."""
