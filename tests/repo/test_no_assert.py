"""The boards' bundles are compiled with `mpy-cross -O3` (Makefile MPY_FLAGS), which also
drops every `assert` statement and makes `__debug__` False. So the code that goes onto a board
holds neither: a check written as an assert would pass on CPython and in the tests, and vanish
on the pump. Checks in the firmware are `if` statements that act."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _board_sources():
    for top in ("firmware", "boards"):
        yield from sorted((ROOT / top).glob("*.py"))


def test_no_assert_or_debug_in_what_goes_onto_a_board():
    found = []
    for path in _board_sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Assert) or (isinstance(node, ast.Name)
                                                and node.id == "__debug__"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, "stripped by mpy-cross -O3 on the board: " + ", ".join(found)

