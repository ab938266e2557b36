"""The Pico's boot path (firmware/loader.py boot_board, what main.py calls) on the MicroPython
VM: a production firmware that fails is logged and the board reset, never left at the REPL; a
development build stops with the exception (the REPL's traceback)."""

import hashlib
import json
import os
import subprocess

from sim.runner import ROOT, micropython_exe

SCRIPT = ROOT / "tests" / "vm" / "boot_check.py"


def slot_with(root, kind):
    files = {"firmware/__init__.py": b"",
             "firmware/buildinfo.py": f'KIND = "{kind}"\n'.encode(),
             "firmware/app.py": b"raise ValueError('app broke at import')\n"}
    slot = root / "fw" / "a"
    for name, data in files.items():
        (slot / name).parent.mkdir(parents=True, exist_ok=True)
        (slot / name).write_bytes(data)
    man = {"v": 1, "files": [[n, len(d), hashlib.sha256(d).hexdigest()]
                             for n, d in files.items()]}
    (slot / "manifest.json").write_text(json.dumps({"manifest": json.dumps(man), "sig": ""}))
    (root / "fw" / "boot").write_text(json.dumps({"v": 1, "active": "a", "prev": "base",
                                                  "tries": 3}))


def boot(root, kind):
    # Only the slot and the loader are on the path: nothing of the repository's firmware.
    env = dict(os.environ, MICROPYPATH=".frozen")
    out = subprocess.run([micropython_exe(), str(SCRIPT), str(root), kind, str(ROOT / "firmware")],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr + out.stdout
    return dict(line.split(" ", 1) for line in out.stdout.strip().splitlines())


def test_a_production_firmware_that_fails_is_logged_and_reset(tmp_path):
    slot_with(tmp_path, "production")
    got = boot(tmp_path, "production")
    assert got["RETURNED"] == "resets 1"
    assert got["CRASH"] == "a: ValueError: app broke at import"
    assert json.loads(got["POINTER"])["tries"] == 2      # this boot took one try


def test_a_development_build_stops_at_the_exception(tmp_path):
    slot_with(tmp_path, "development")
    got = boot(tmp_path, "development")
    assert got["RAISED"] == "ValueError resets 0"
    assert got["CRASH"].startswith("a: ValueError")
