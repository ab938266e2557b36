"""Read a board file's constants without importing it (the RP2040 boards import `machine`)."""

from sim.boarddata import BOARDS, BoardData as Board, constants  # noqa: F401
