"""Fixtures of the emulated Pico tier (make test-rp2, pytest --rp2): see tests/rp2/pico.py."""

import pytest

from tests.rp2.pico import Pico


@pytest.fixture
def pico(tmp_path):
    board = Pico(tmp_path / "flash")
    try:
        yield board
    finally:
        assert board.close() == 0
