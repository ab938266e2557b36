"""pyright (pinned) over host_tools/ with the project's environment (pyright-host.json): the
host tools type-check clean. flash.py and bundle.py are left out until they are made clean
too. pyright-host.json names its own stub folder (host-typings, absent) so that the MicroPython
stubs `make typecheck` installs in typings/ are never taken for CPython's standard library."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LEFT_OUT = {"flash.py", "bundle.py"}


def test_pyright_finds_no_error_in_the_host_tools():
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "host_tools").rglob("*.py")
                   if p.name not in LEFT_OUT)
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "pyright"), "-p", "pyright-host.json",
                           *files], cwd=ROOT, capture_output=True, text=True, timeout=600)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0 and last.startswith("0 errors"), proc.stdout + proc.stderr
