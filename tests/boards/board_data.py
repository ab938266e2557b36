"""Read a board file's constants without importing it (the RP2040 boards import `machine`)."""

import ast
from pathlib import Path

BOARDS = Path(__file__).resolve().parents[2] / "boards"


class Board:
    def __init__(self, name: str, values: dict):
        self.name = name
        self.values = values
        for k, v in values.items():
            setattr(self, k, v)


def constants(name: str) -> Board:
    tree = ast.parse((BOARDS / f"{name}.py").read_text())
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id.isupper():
                values[target.id] = ast.literal_eval(node.value)
    return Board(name, values)
