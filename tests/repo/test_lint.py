"""ruff (pinned in requirements.lock, rules in pyproject.toml) over the whole tree: the pyflakes
rules catch what review misses, such as a dictionary key written twice (firmware/codes.py once
had three) or a name used before it is defined."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUFF = ROOT / ".venv" / "bin" / "ruff"


def ruff(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([str(RUFF), "check", "--no-cache", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_ruff_finds_nothing_in_the_tree():
    proc = ruff(".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_catches_a_repeated_dictionary_key(tmp_path):
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (tmp_path / "codes.py").write_text('A = 1\nNAMES = {A: "a", A: "b"}\n')
    proc = ruff(".", cwd=tmp_path)
    assert proc.returncode == 1 and "F602" in proc.stdout, proc.stdout
