# Entry point inside the MicroPython VM: run one plan, print the result as one JSON line.
# Usage (from sim.runner): micropython sim/mpy_main.py PLAN.json
import json
import sys

from boards import virtual
from sim.engine import Engine


def main():
    with open(sys.argv[1]) as f:
        plan = json.load(f)
    engine = Engine(plan, virtual)
    summary = engine.run()
    out = {"summary": summary}
    if plan.get("trace"):
        out["trace"] = engine.trace
    print(json.dumps(out))


main()
