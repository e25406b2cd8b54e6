"""`python -m bench --readme` rewrites the figures of the benchmarks whose JSON it has (or
those named with --only) and keeps every other benchmark's rows in README.md, the fault
matrix's block with them: rewriting one benchmark's figures never drops another's."""
from __future__ import annotations

import json
from pathlib import Path

from bench import _readme, soak

OLD = """<!-- generated ... -->

| benchmark | measure | figure | compared with | run |
|---|---|---|---|---|
| failover | silent WAN cut | median 7.18 s, worst 8.98 s | real phones | `make bench`, old |
|  | register over the open standby session | median 14 ms | no TLS handshake |  |
| soak | old soak row | +5 bytes | old | `make bench`, old |
| sha512 | SHA-512 native engine | 21661.9 KB/s | projected | `make bench`, old |

Fault matrix (30/30 cases passed, `make bench`):

| fault | phase | expected | observed | final state | result |
|---|---|---|---|---|---|
| WAN blackhole | registered | fails over | SRST 2.3 s | PRIMARY | pass |

- 30/30 cases passed.
"""


def _soak_json(out: Path) -> None:
    res = soak.summarize([{"kind": "blackhole", "failover_ms": 900, "rehome_ms": 300,
                           "heap_used": 80000}], 10, {"a": 1}, {"a": 1}, {"ok": True}, {}, 2, 0,
                         70000, 5.0, 4.0, True)
    (out / "soak.json").write_text(json.dumps({**res, "quick": True}))


def _readme_with(tmp_path: Path) -> Path:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{_readme.START}\n{OLD}{_readme.END}\noutro\n")
    return readme


def test_benchmarks_without_json_keep_their_rows_and_the_matrix(tmp_path: Path) -> None:
    _soak_json(tmp_path)
    readme = _readme_with(tmp_path)
    _readme.update(tmp_path, readme, None)
    text = readme.read_text()
    assert "old soak row" not in text and "| soak | 1 failover/re-home cycles" in text
    assert "| failover | silent WAN cut | median 7.18 s" in text
    assert "|  | register over the open standby session | median 14 ms |" in text
    assert "| sha512 | SHA-512 native engine |" in text
    assert "Fault matrix (30/30 cases passed" in text and "| WAN blackhole | registered |" in text
    # the order of ORDER: failover's rows before soak's, sha512's after
    assert text.index("| failover |") < text.index("| soak |") < text.index("| sha512 |")
    assert "Not run yet" in text
    not_run = text.split("Not run yet:")[1].split(".\n")[0]
    assert "failover" not in [n.strip() for n in not_run.split(",")], not_run
    assert text.startswith("intro\n") and text.endswith("outro\n")


def test_only_rewrites_the_named_benchmarks(tmp_path: Path) -> None:
    _soak_json(tmp_path)
    fo = {"title": "t", "columns": ["a"], "rows": [["x"]], "series": [], "quick": True,
          "register_over_standby": {"n": 3, "median": 99, "worst": 99}}
    (tmp_path / "failover.json").write_text(json.dumps(fo))
    readme = _readme_with(tmp_path)
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"<!-- bench:failover -->\nold failover table\n{_readme.END}\n"
                    f"<!-- bench:soak -->\nold soak table\n{_readme.END}\n")
    _readme.update(tmp_path, readme, docs, only=["soak"])
    text = readme.read_text()
    assert "| failover | silent WAN cut | median 7.18 s" in text and "median 99 ms" not in text
    assert "| soak | 1 failover/re-home cycles" in text
    assert "Not run yet" not in text          # the others' standing is left as it was
    assert "old failover table" in docs.read_text() and "old soak table" not in docs.read_text()
