"""firmware/__init__.py takes the boot loader main.py already loaded (loader.mpy at the root of
the flash, from a first install) as firmware.loader when it is this firmware's own version: one
copy of the code on the Pico's heap instead of two. That is right only while a change to
firmware/loader.py always comes with a new LOADER_V: each version is held to its text here."""

import hashlib
from pathlib import Path

from firmware import loader

ROOT = Path(__file__).resolve().parents[2]
# LOADER_V -> SHA-256 of firmware/loader.py at that version. A change to the loader: raise
# LOADER_V, the number firmware/__init__.py checks, and add the new text's hash.
TEXTS = {1: "a829d453e57992e5982f3acf3d8ef7334ac2ec36861edac92dceff36b0fec6c3"}


def test_each_loader_version_is_one_text():
    digest = hashlib.sha256((ROOT / "firmware" / "loader.py").read_bytes()).hexdigest()
    assert TEXTS.get(loader.LOADER_V) == digest, (
        "firmware/loader.py changed: raise LOADER_V (and the check in firmware/__init__.py) and "
        f"record its hash here: {loader.LOADER_V + 1}: {digest!r}")


def test_the_package_takes_only_its_own_version():
    text = (ROOT / "firmware" / "__init__.py").read_text()
    assert f'getattr(_boot, "LOADER_V", 0) == {loader.LOADER_V}' in text
