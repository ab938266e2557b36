"""The tree's modules import in one direction (docs/architecture.md, STYLE.md habit 19): the
firmware at the bottom, then the boards, the host tools, the simulator; a lower floor never
imports a higher one, and outside the firmware no two modules import each other, not even from
inside a function. The graph is read from the sources (ast), so a test run imports nothing."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLOORS = ("firmware", "boards", "host_tools", "sim")
# The Pico's boot entry (copied to main.py at the top of its flash) picks the board to run on:
# the one firmware module that names the boards above it.
BOOT_ENTRY = "firmware.main"


def modules() -> dict[str, Path]:
    out = {}
    for top in FLOORS:
        for f in sorted((ROOT / top).glob("*.py")):
            out[top if f.stem == "__init__" else f"{top}.{f.stem}"] = f
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {}
    for name, path in mods.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name in mods)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                if node.module in mods:
                    found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names
                             if f"{node.module}.{a.name}" in mods)
        found.discard(name)
        edges[name] = found
    return edges


def floor(module: str) -> int:
    return FLOORS.index(module.split(".")[0])


def test_a_lower_floor_never_imports_a_higher_one():
    up = sorted(f"{m} -> {d}" for m, ds in graph().items() for d in ds
                if floor(d) > floor(m) and m != BOOT_ENTRY)
    assert up == []


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out = []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_no_import_circles_in_the_boards_the_host_tools_or_the_simulator():
    # The firmware's own are issue 18's (the firmware's restructuring).
    assert [c for c in cycles(graph()) if any(floor(m) > 0 for m in c)] == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_emulated_button_is_held_longer_than_the_firmware_asks():
    # sim/rp2board.py keeps its own figure for the person at the pump, so that it need not
    # import the firmware's application for one constant
    from firmware.app import BUTTON_HOLD_MS
    from sim.rp2board import BUTTON_PRESS_MS

    assert BUTTON_PRESS_MS > BUTTON_HOLD_MS
