"""A board file's constants without importing it: the RP2040 boards import `machine`, which
only exists on the board. Host code (the emulated Pico's bench, tests) reads their data here."""

from __future__ import annotations

import ast
from pathlib import Path

BOARDS = Path(__file__).resolve().parent.parent / "boards"


class BoardData:
    """The upper-case names of one board file, as attributes (board.STROKE_NL)."""

    def __init__(self, name: str, values: dict):
        self.name = name
        self.values = values
        for k, v in values.items():
            setattr(self, k, v)


def constants(name: str) -> BoardData:
    tree = ast.parse((BOARDS / f"{name}.py").read_text())
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id.isupper():
                values[target.id] = ast.literal_eval(node.value)
    return BoardData(name, values)
