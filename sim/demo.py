"""`make demo`: the whole user journey on a virtual Pico.

Boots a factory-fresh virtual Pico (firmware on the MicroPython VM), programs the example
prescription into it with `pumpctl` over its serial port, records a refill, runs a simulated
day at full speed with a patient bolus in it, then prints `pumpctl status` and what the plant
really delivered. Each step prints the command it runs, so it doubles as a tutorial.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from host_tools import fmt

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PRESCRIPTION = ROOT / "examples" / "prescriptions" / "morphine_flex.toml"


def _show(cmd: list[str]) -> None:
    shown = [Path(c).name if i == 0 else c for i, c in enumerate(cmd)]
    print("\n$ " + " ".join(f'"{c}"' if " " in c else c for c in shown), flush=True)


def _run(cmd: list[str], capture: bool = False) -> str:
    _show(cmd)
    out = subprocess.run(cmd, text=True, capture_output=capture, timeout=600)
    if out.returncode != 0:
        if capture:
            print(out.stdout + out.stderr)
        raise SystemExit(f"demo: step failed with exit status {out.returncode}")
    if capture:
        print(out.stdout.rstrip())
    return out.stdout if capture else ""


def main() -> int:
    flash = Path(tempfile.mkdtemp(prefix="pump-demo-"))
    board_cmd = [str(BIN / "pumpsim"), "board", "--flash", str(flash)]
    _show(board_cmd)
    board = subprocess.Popen(board_cmd, stdout=subprocess.PIPE, text=True)
    try:
        line = board.stdout.readline() if board.stdout is not None else ""
        if not line:
            raise SystemExit("demo: the virtual board did not start")
        info = json.loads(line)
        print(line.rstrip())
        port = ["--port", info["port"], "--key", info["clinician_key"]]
        pumpctl = [str(BIN / "pumpctl"), *port]
        inject = [str(BIN / "pumpsim"), "inject", "--control", info["control"]]
        _run([*pumpctl, "info"])
        # A new pump: fill the reservoir first (the physical fill is in the plant already),
        # record it, then program.
        _run([*pumpctl, "refill", "--volume", "20 mL", "--yes"])
        # 2 mg/day is more than an opioid-naive patient may start on (drugs.toml): this
        # patient comes from another pump, and the override says so (it is stored in the pump).
        _run([*pumpctl, "program", str(PRESCRIPTION.relative_to(ROOT)), "--yes",
              "--override-titration", "already on 2.5 mg/day intrathecal morphine"])
        _run([*inject, "advance", "3h"], capture=True)
        _run([str(BIN / "pumpctl"), "--port", info["port"], "--key", info["patient_key"],
              "patient-bolus", "--yes"])
        _run([*inject, "advance", "21h"], capture=True)
        _run([*pumpctl, "status"])
        truth = json.loads(_run([*inject, "truth"], capture=True))
        print(f"\nThe plant (the simulated mechanism) really moved {fmt.vol(truth['delivered_nl'])}"
              f" in {fmt.span(truth['virtual_time_s'])} of simulated time "
              f"({truth['strokes']} strokes); {fmt.vol(truth['reservoir_nl'])} are left.")
        return 0
    finally:
        board.send_signal(signal.SIGTERM)
        try:
            board.wait(15)
        except subprocess.TimeoutExpired:
            board.kill()
        shutil.rmtree(flash, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
