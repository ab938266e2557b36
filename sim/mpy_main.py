# Entry point inside the MicroPython VM: run one plan, print the result as one JSON line.
# Usage (from sim.runner): micropython sim/mpy_main.py PLAN.json
# A prescription the firmware refuses is reported as {"rx_error": [key, message]}, exit 0.
import json
import sys

from firmware.rx import RxError
from sim.engine import Engine, plan_board


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
