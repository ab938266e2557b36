"""`make typecheck` checks the firmware against the MicroPython rp2 stubs, and it bites."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def pyright(path: Path) -> subprocess.CompletedProcess:
    # Same configuration (pyrightconfig.json: the rp2 stubs as typeshed), one file.
    return run(str(ROOT / ".venv/bin/pyright"), str(path))


def test_make_typecheck_passes_on_the_firmware_and_boards():
    proc = run("make", "-s", "typecheck")      # also installs the pinned stubs when missing
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 errors" in proc.stdout, proc.stdout
    assert (ROOT / "typings" / "machine.pyi").is_file()   # checked against the rp2 stubs


def test_a_wrong_call_into_the_rp2_api_fails_the_check():
    run("make", "-s", "typecheck")              # stubs present
    bad = pyright(FIXTURES / "bad_call.py")
    assert bad.returncode != 0, bad.stdout
    assert "bad_call.py:4" in bad.stdout and "reportArgumentType" in bad.stdout, bad.stdout
    good = pyright(FIXTURES / "good_call.py")  # the same call done right passes: the stubs work
    assert good.returncode == 0, good.stdout
