"""make build's compiler (host_tools/mpybuild.py): the integer constants other modules import are
written in where they are used, and each .mpy names its source by its module. Both only save the
Pico's interned names (its heap): the firmware must do exactly what it did. Proved here by
running the same checks on the MicroPython VM over the tree as it is and as make build rewrites
it, and by the rules one at a time."""

import os
import subprocess
from pathlib import Path

import pytest

from host_tools import mpybuild
from sim.runner import ROOT, micropython_exe

PICO = ["boards/__init__.py", "boards/pico.py", "boards/rp2_common.py", "boards/stepgen.py",
        "boards/tmc2209.py"]
FIRMWARE = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "firmware").glob("*.py")
                  if p.name != "main.py")
# Distinct names the Pico's bundle makes MicroPython intern (counted from the .mpy files: the
# port's own names among them are interned already). At 1,336 the emulated Pico held 1,214
# interned names after loading every module, 46 below the 1,260 at which MicroPython v1.28.0
# takes a new pool of 1,280 entries (7.7 KB of heap; docs/benchmarks.md, "The heap"). Raise
# this only with a new heap figure from the emulated Pico (make bench).
NAMES_BUDGET = 1370


def _rewrite(tmp: Path, rels: list[str]) -> Path:
    out = mpybuild.transform({r: (ROOT / r).read_text() for r in rels})
    for rel, text in out.items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_text(text)
    return tmp


def _vm(path: str, script: str, *args: str) -> str:
    proc = subprocess.run([micropython_exe(), script, *args], capture_output=True, text=True,
                          env=dict(os.environ, MICROPYPATH=f"{path}:.frozen"), timeout=300,
                          cwd=path)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("script", ["tests/vm/alloc_check.py", "tests/vm/continuity_check.py",
                                    "tests/repo/mpybuild_check.py"])
def test_the_rewritten_firmware_does_what_the_source_does_on_the_vm(tmp_path, script):
    rels = FIRMWARE + ["boards/__init__.py", "boards/virtual.py", "tests/testboard.py", script]
    rels = [r for r in rels if (ROOT / r).exists()]
    tree = _rewrite(tmp_path, rels)
    assert "const(" not in (tree / "firmware/codes.py").read_text()   # it really was rewritten
    assert "AL_OCCLUSION" not in (tree / "firmware/pump.py").read_text()
    args = [str(ROOT / "tests/firmware/fixtures")] if "continuity" in script else []
    want = _vm(str(ROOT), str(ROOT / script), *args)
    got = _vm(str(tree), str(tree / script), *args)
    assert "DONE" in want or "OK" in want
    assert got == want


def test_constants_are_written_in_across_modules_and_nothing_else_is():
    src = {
        "firmware/codes.py": "from firmware.compat import const\n"
                             "A = const(3)\nB = const(A << 2)\n_P = const(1)\n"
                             "NAMES = ('a', 'b')\nC = const(len(NAMES))\n",
        "firmware/one.py": "from firmware.codes import A, B as BB, NAMES\n"
                           "from firmware import codes\n"
                           "def f(x):\n    return x + A + BB + codes.B + len(NAMES)\n",
        "firmware/two.py": "from firmware import codes as c\n"
                           "def g():\n    return c.A\n",
        "firmware/three.py": "from firmware.codes import C\nX = C\n",
    }
    out = mpybuild.transform(src)
    one, two, codes = out["firmware/one.py"], out["firmware/two.py"], out["firmware/codes.py"]
    assert "return x + 3 + 12 + 12 + len(NAMES)" in one
    assert "import NAMES" in one and "import codes" not in one   # only constants were used
    assert "return 3" in two and "import" not in two
    assert "A = " not in codes and "B = " not in codes     # the definitions go
    assert "_P = const(1)" in codes and "NAMES = " in codes
    assert "C = const(len(NAMES))" in codes                 # does not fold: left alone
    assert "import C" in out["firmware/three.py"]


def test_a_name_some_module_rebinds_is_left_everywhere():
    src = {
        "firmware/codes.py": "from firmware.compat import const\nA = const(3)\nB = const(4)\n",
        "firmware/one.py": "from firmware.codes import A, B\ndef f(A):\n    return A + B\n",
        "firmware/two.py": "from firmware import codes as c\n"
                           "def g(c):\n    return c.A\n",
    }
    out = mpybuild.transform(src)
    assert "A = const(3)" in out["firmware/codes.py"] and "B = " not in out["firmware/codes.py"]
    assert "import A" in out["firmware/one.py"] and "return A + 4" in out["firmware/one.py"]
    assert "return c.A" in out["firmware/two.py"]      # `c` is a parameter there


def test_the_bundle_names_its_sources_by_module_and_stays_within_its_names(tmp_path):
    mpybuild.build(ROOT, FIRMWARE + PICO, tmp_path, loader=True)
    names = set()
    for mpy in sorted(tmp_path.rglob("*.mpy")):
        strings = mpybuild.interned_names(mpy.read_bytes())
        assert not any(s.endswith(".py") and "/" in s for s in strings), mpy
        rel = str(mpy.relative_to(tmp_path))
        assert (mpybuild.module_name(rel) if rel != "loader.mpy" else "loader") in strings, mpy
        names.update(strings)
    # the alarm and event codes' names no longer reach the Pico
    assert "AL_OCCLUSION" not in names and "EV_STROKE_REFUSED" not in names
    assert len(names) <= NAMES_BUDGET, (
        f"{len(names)} names: the Pico may take another pool of interned names (about 8 KB "
        "of heap); measure the heap on the emulated Pico before raising NAMES_BUDGET")


def test_build_refuses_a_file_that_is_not_there(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        mpybuild.main(["--out", str(tmp_path), "--root", str(ROOT), "firmware/nothere.py"])
    assert e.value.code == 2
    assert "no file firmware/nothere.py" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_a_module_read_inside_a_function_or_through_a_local_keeps_what_it_reads():
    """Regression: handlers.py reads update.MANIFEST_MAX through `update = _update()`, a local
    holding the module; the first rewrite took the constant out of update.py and every
    update_begin (and info's chunk_max) failed on the Pico with an AttributeError."""
    src = {
        "firmware/update.py": "from firmware.compat import const\n"
                              "MANIFEST_MAX = const(8192)\nCHUNK_MAX = const(768)\n"
                              "FILES_MAX = const(64)\n",
        "firmware/handlers.py": "def _update():\n    from firmware import update\n"
                                "    return update\n"
                                "def begin(n):\n    update = _update()\n"
                                "    return n <= update.MANIFEST_MAX\n"
                                "def chunk():\n    from firmware import update as u\n"
                                "    return u.CHUNK_MAX\n",
        "firmware/other.py": "from firmware.update import FILES_MAX\nX = FILES_MAX\n",
    }
    out = mpybuild.transform(src)
    assert "MANIFEST_MAX = const(8192)" in out["firmware/update.py"]   # kept: read via a local
    assert "update.MANIFEST_MAX" in out["firmware/handlers.py"]
    assert "return 768" in out["firmware/handlers.py"]     # a function's own import: written in
    assert "CHUNK_MAX" not in out["firmware/update.py"] and "FILES_MAX" not in out[
        "firmware/update.py"]
    assert "X = 64" in out["firmware/other.py"]


def test_a_use_it_cannot_follow_fails_the_build():
    src = {
        "firmware/codes.py": "from firmware.compat import const\nA = const(3)\n",
        "firmware/one.py": "from firmware.codes import A\nimport firmware\n"
                           "def f():\n    return A + getattr(firmware.codes, 'A')\n",
    }
    with pytest.raises(ValueError, match="'A' is still used"):
        mpybuild.transform(src)
