# Entry point inside the MicroPython VM: run one plan, print the result as one JSON line.
# Usage (from sim.runner): micropython sim/mpy_main.py PLAN.json
# A prescription the firmware refuses is reported as {"rx_error": [key, message]}, exit 0.
import gc
import json
import sys

from firmware.rx import RxError
from sim.engine import Engine, plan_board

# Importing the firmware set a collection after every 4 KB allocated (firmware/__init__.py packs
# a Pico's heap while its modules load); the pump's shell sets it back once booted
# (firmware/app.py), and so does this one: on the 64 MB heap the runner gives the VM, a
# collection every 4 KB made the simulated year about 30 times slower (docs/benchmarks.md).
if hasattr(gc, "threshold"):
    gc.threshold(-1)


def main():
    with open(sys.argv[1]) as f:
        plan = json.load(f)
    engine = Engine(plan, plan_board(plan))
    try:
        summary = engine.run()
    except RxError as e:
        print(json.dumps({"rx_error": [e.key, e.message]}))
        return
    out = {"summary": summary}  # type: dict[str, object]
    if plan.get("trace"):
        out["trace"] = engine.trace
    print(json.dumps(out))


main()
