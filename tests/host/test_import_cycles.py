"""No import cycles in host_tools, bench or the firmware (firmware/phone), by reading the
sources with ast (nothing is imported, so MicroPython-only modules are read too).

Every import counts, also one inside a function: a lazy import keeps a cycle from failing at
import time, not from tying the modules together. Only `if TYPE_CHECKING:` blocks are left
out (they never run). An import is an edge to the module it names: `import a.b.c` and
`from a.b import c` (c a module) to a.b.c, `from a.b import name` to a.b; not to the packages
above it, which Python loads first but which the importer does not use.

host_tools and bench: no cycle at all. firmware/phone: none outside KNOWN_FIRMWARE_CYCLES,
which lists the cycles issue 13 found there and other work is removing; it must only shrink
(a listed cycle that is gone fails too, so the list is kept true) and should end empty.
"""
from __future__ import annotations

import ast
from pathlib import Path

from host_tools import ROOT

TREES = {"host_tools": ROOT / "host_tools", "bench": ROOT / "bench",
         "phone": ROOT / "firmware" / "phone"}

# Each entry: the modules of one cycle (a strongly connected component), as found when it was
# listed. Remove an entry when its cycle is gone; never add one.
KNOWN_FIRMWARE_CYCLES: list[frozenset[str]] = []


def modules() -> dict[str, Path]:
    out = {}
    for top, folder in TREES.items():
        for path in folder.rglob("*.py"):
            parts = [top, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _known(name: str, mods: dict[str, Path]) -> str | None:
    """`name` or the closest package above it that is one of ours."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def imports(name: str, path: Path, mods: dict[str, Path]) -> dict[str, int]:
    """The modules of ours that `name` imports, each with the line of its first import."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, int] = {}

    def add(target: str | None, line: int) -> None:
        if target is not None:
            found.setdefault(target, line)

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    add(_known(alias.name, mods), child.lineno)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[:len(package.split(".")) - child.level + 1]
                    source = ".".join(base + ([child.module] if child.module else []))
                else:
                    source = child.module or ""
                for alias in child.names:
                    sub = f"{source}.{alias.name}"
                    add(sub if sub in mods else _known(source, mods), child.lineno)
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


def graph() -> dict[str, dict[str, int]]:
    mods = modules()
    return {name: imports(name, path, mods) for name, path in mods.items()}


def cycles(g: dict[str, dict[str, int]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module, or one that imports
    itself (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[frozenset[str]] = []
    for root in g:
        if root in index:
            continue
        work = [(root, iter(g[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(g[w])))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1 or v in g[v]:
                    out.append(frozenset(comp))
    return out


def describe(cycle: frozenset[str], g: dict[str, dict[str, int]]) -> str:
    edges = [f"{a} -> {b} (line {g[a][b]})" for a in sorted(cycle) for b in sorted(g[a])
             if b in cycle]
    return "; ".join(edges)


def test_the_graph_sees_the_imports():
    g = graph()
    assert "host_tools.lab.names" in g["host_tools.scenario.spec"]              # from X import a, b
    assert "host_tools.fuzz.gen.base" in g["host_tools.fuzz.gen.der"]          # a subpackage
    assert "host_tools.fuzz.gen" in g["host_tools.fuzz.strategies"]            # from pkg import mod
    assert "host_tools.lab.names" in g["bench.soak"]                           # bench -> host_tools
    assert "phone.der" in g["phone.x509"]                                      # firmware
    assert "host_tools.fw" in g["host_tools.scenario.spec"]                    # import a.b, in a def
    assert len(g) > 150


def test_the_cycle_finder_finds_cycles():
    g = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1, "d": 1}, "d": {}, "e": {"e": 1}, "f": {}}
    assert sorted(map(sorted, cycles(g))) == [["a", "b", "c"], ["e"]]


def test_no_import_cycle_in_host_tools_or_bench():
    g = graph()
    found = [c for c in cycles(g) if not all(m.startswith("phone") for m in c)]
    assert not found, "import cycles:\n" + "\n".join(describe(c, g) for c in found)


def test_firmware_cycles_only_the_known_ones_and_those_still_exist():
    g = graph()
    found = [c for c in cycles(g) if all(m.startswith("phone") for m in c)]
    new = [c for c in found if c not in KNOWN_FIRMWARE_CYCLES]
    gone = [c for c in KNOWN_FIRMWARE_CYCLES if c not in found]
    assert not new, "new import cycles in the firmware:\n" + "\n".join(describe(c, g) for c in new)
    assert not gone, ("no longer cycles (remove them from KNOWN_FIRMWARE_CYCLES): "
                      + "; ".join(", ".join(sorted(c)) for c in gone))
