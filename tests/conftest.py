"""Shared test set-up: Hypothesis profiles and the repository on sys.path.

`make test` selects the `ci` profile: derandomized, a bounded number of examples, no deadlines,
so CI never fails by chance. `make test-deep` selects `deep`: many more random examples. Every
failure `deep` finds becomes an explicit @example in the test it broke.
"""

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=60,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "deep",
    max_examples=2000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_addoption(parser):
    g = parser.getgroup("hardware", "hardware in the loop (make test-hw)")
    g.addoption("--port", default=None,
                help="run the end-to-end tests against a flashed pump on this serial port "
                     "(a Pico: /dev/ttyACM0) instead of a virtual board; only tests/e2e runs, "
                     "and the tests that need the simulator's harness are deselected")
    g.addoption("--key", default=None, help="with --port: the pump's clinician key file")
    g.addoption("--patient-key", default=None, help="with --port: the pump's patient key file")
    g = parser.getgroup("rp2", "the emulated Pico (make test-rp2)")
    g.addoption("--rp2", action="store_true",
                help="collect tests/rp2 and run the end-to-end tests on `pumpsim board "
                     "--runtime rp2` (the MicroPython rp2 UF2 in an emulated RP2040)")


def pytest_ignore_collect(collection_path, config):
    """tests/rp2 needs inputs the repository does not carry (the UF2, the boot ROM): it runs in
    `make test-rp2` (pytest --rp2), not in `make test`."""
    if collection_path.name == "rp2" and collection_path.parent.name == "tests":
        return not config.getoption("--rp2")
    return None


def pytest_collection_modifyitems(config, items):
    """With --port, keep only end-to-end tests that need no simulator harness (faults, virtual
    time, the board registry): a real pump has none. They are deselected, not skipped."""
    if not config.getoption("--port"):
        return
    keep, drop = [], []
    for item in items:
        in_e2e = "tests/e2e/" in str(item.fspath).replace(os.sep, "/")
        if in_e2e and item.get_closest_marker("harness") is None:
            keep.append(item)
        else:
            drop.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
