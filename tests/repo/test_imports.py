"""The import graph (STYLE.md: no import circles): every import in firmware/, boards/,
host_tools/ and sim/ counts, inside functions and under TYPE_CHECKING too. No module imports
itself round a circle; no package imports one on a higher floor (firmware < boards < host_tools
< sim), save the device's entry firmware/main.py, the one place that picks a board; and the
diagram of the firmware in docs/architecture.md has exactly the firmware's imports."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLOORS = {"firmware": 0, "boards": 1, "host_tools": 2, "sim": 3}
ENTRY = "firmware.main"
# Leaves nearly every module imports; the diagram leaves them out to stay readable.
LEAVES = {"compat", "codes", "ticks", "version", "buildinfo", "wirejson"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    out = {}
    for pkg in FLOORS:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if "node_modules" not in path.parts:
                out[module_name(path)] = path
    return out


def graph() -> dict[str, set[str]]:
    """module -> the tree's modules it imports (a package's __init__ only when nothing more
    precise is named)."""
    mods = modules()
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                subs = {node.module + "." + a.name for a in node.names}
                named = subs & mods.keys()
                deps |= named if named else {node.module}
        edges[name] = {d for d in deps if d in mods and d != name}
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def floor(mod: str) -> int:
    return FLOORS[mod.split(".")[0]]


def test_no_import_circles():
    assert circles(graph()) == []


def test_the_circle_check_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_upward_imports():
    up = sorted((m, d) for m, deps in graph().items() for d in deps
                if floor(d) > floor(m) and m != ENTRY)
    assert up == [], "a lower floor imports a higher one (hand it a callback instead): %s" % up


def test_only_the_entry_picks_a_board():
    pickers = sorted(m for m, deps in graph().items() if m.startswith("firmware.")
                     and any(d.startswith("boards.") for d in deps))
    assert pickers == [ENTRY]


def drawn(doc: str) -> set[tuple[str, str]]:
    """The edges of the ```mermaid graph under "## Who imports whom" in the doc."""
    section = doc[doc.index("## Who imports whom"):]
    start = section.index("```mermaid")
    block = section[start:section.index("```", start + 3)]
    return set(re.findall(r"^\s*(\w+) --> (\w+)\s*$", block, re.M))


def test_the_architecture_diagram_is_the_firmwares_import_graph():
    edges = {(m.split(".")[1], d.split(".")[1]) for m, deps in graph().items()
             if m.startswith("firmware.") for d in deps if d.startswith("firmware.")}
    edges = {(a, b) for a, b in edges if a not in LEAVES and b not in LEAVES}
    doc = (ROOT / "docs" / "architecture.md").read_text()
    have = drawn(doc)
    assert have == edges, "missing from the diagram: %s; drawn but not imported: %s" % (
        sorted(edges - have), sorted(have - edges))


def test_test_modules_outside_packages_have_distinct_names():
    """pytest imports a test file that is not in a package by its base name: two of them with
    the same name stop the whole run at collection ("import file mismatch")."""
    seen: dict[str, Path] = {}
    clashes = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        if (path.parent / "__init__.py").exists():
            continue
        if path.name in seen:
            clashes.append(f"{seen[path.name].relative_to(ROOT)} and {path.relative_to(ROOT)}")
        seen.setdefault(path.name, path)
    assert clashes == []
