"""Fixtures for the host tools' tests."""

import pytest

from serial_peer import Peer


@pytest.fixture
def peer():
    """The far end of a pty, scripted by the test (serial_peer.py)."""
    p = Peer()
    yield p
    p.close()
