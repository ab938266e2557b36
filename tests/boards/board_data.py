"""Read a board file's constants without importing it (the RP2040 boards import `machine`)."""

from pathlib import Path

from host_tools.boardlimits import board_data

BOARDS = Path(__file__).resolve().parents[2] / "boards"


class Board:
    def __init__(self, name: str, values: dict):
        self.name = name
        self.values = values
        for k, v in values.items():
            setattr(self, k, v)


def constants(name: str) -> Board:
    return Board(name, dict(board_data(name)))
