"""Fixtures of the emulated Pico tier (make test-rp2, pytest --rp2): see tests/rp2/pico.py."""

import pytest

from tests.rp2.pico import Pico

# The tests that send a whole firmware bundle (minutes each on the emulator), and the page's
# refill visit (about two minutes), start first, so that two workers (pytest -n 2) finish
# together instead of one waiting on a late long test.
LONG_FIRST = ("test_update.py", "test_flash.py", "test_device.py", "test_ui.py")


@pytest.fixture
def pico(tmp_path):
    board = Pico(tmp_path / "flash")
    try:
        yield board
    finally:
        assert board.close() == 0


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = item.path.name
        return LONG_FIRST.index(name) if name in LONG_FIRST else len(LONG_FIRST)
    items.sort(key=rank)   # stable: the rest keep their order
