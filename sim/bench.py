"""make bench: measure the simulator and the pump, print one table.

Rows:
  - the calibration loop (CALIBRATION below: 10**7 additions to a global in a plain CPython
    loop, timed inside a fresh process, best of --repeat), the yardstick of the next rows;
  - a simulated year on each runtime: wall time of the real command (`pumpsim run SCENARIO
    --json`) in a fresh process, best of --repeat, start-up included; µs per simulated stroke;
    and the same time as a multiple of the calibration loop measured in the same run
    (interleaved with it, so both see the same load): a figure any machine can compare;
  - accuracy: the IEC 60601-2-24 trumpet curve (sim/accuracy.py) of a reference prescription,
    with an exact mechanism and with a stroke-volume tolerance;
  - occlusion: time to alarm across basal rates, and the bolus released when it clears;
  - rows measured elsewhere, through the hooks in HOOKS below (serial round trip,
    program-and-verify time, bundle size, heap of the running firmware). A hook returns
    (value, note) or None while it cannot measure yet; its row then says so.

Record the output in docs/benchmarks.md with the date and the machine. Nothing here is asserted
in a test: timings on a shared machine are not a pass/fail matter.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
YEAR = "examples/baclofen_year.toml"
ACCURACY_RX = "examples/prescriptions/morphine_flex.toml"
ACCURACY_WINDOWS = (2, 31, 60, 1440)
# The calibration loop: module-level code (so `total` and `i` are globals, as in a script), run
# by `python -c` in a fresh process of the same interpreter, timed from its first line to its
# last (start-up excluded). The simulated year's goal (issue 21) is stated as a multiple of it.
CALIBRATION = """\
import time
t0, c0 = time.perf_counter(), time.process_time()
total = 0
for i in range(10_000_000):
    total += i
print(time.perf_counter() - t0, time.process_time() - c0)
"""
# The goals, as multiples of the calibration loop (issue 21).
YEAR_GOALS = {"cpython": 3.0, "micropython": 6.0}
# Basal rates (mL/day) of the occlusion rows; the last is near the motor's maximum (9 mL/h).
OCCLUSION_RATES_ML_DAY = ("0.048", "1", "10", "100", "215")


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def time_run(scenario: str, runtime: str) -> tuple[float, float, dict]:
    """One run of `pumpsim run SCENARIO --json --runtime RUNTIME`: (wall s, CPU s of it and
    its children, such as the MicroPython VM, its JSON)."""
    pumpsim = [sys.executable, "-m", "sim.cli"]
    cpu = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.run([*pumpsim, "run", scenario, "--json", "--runtime", runtime],
                          capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"bench: {scenario} on {runtime} failed:\n{proc.stderr}")
    return wall, _children_cpu() - cpu, json.loads(proc.stdout)


def time_calibration() -> tuple[float, float]:
    """One run of the calibration loop (CALIBRATION): (wall s, CPU s)."""
    proc = subprocess.run([sys.executable, "-c", CALIBRATION], capture_output=True, text=True,
                          check=True)
    wall, cpu = proc.stdout.split()
    return float(wall), float(cpu)


# ---- rows ---------------------------------------------------------------------------------

def rows_year(scenario: str, repeat: int):
    """The calibration loop and the year on each runtime, interleaved, best of `repeat` each."""
    runtimes = ("cpython", "micropython")
    inf = float("inf")
    calib, calib_cpu = inf, inf
    best = dict.fromkeys(runtimes, inf)
    best_cpu = dict.fromkeys(runtimes, inf)
    result: dict[str, dict] = {}
    for _ in range(repeat):
        wall, cpu = time_calibration()
        calib, calib_cpu = min(calib, wall), min(calib_cpu, cpu)
        for runtime in runtimes:
            wall, cpu, result[runtime] = time_run(scenario, runtime)
            best[runtime] = min(best[runtime], wall)
            best_cpu[runtime] = min(best_cpu[runtime], cpu)
    yield ("calibration loop (CPython)", f"{calib:.3f} s",
           f"10**7 passes of `total += i` over range(), module level, in a fresh process, "
           f"start-up excluded; {calib_cpu:.3f} s of CPU")
    for runtime in runtimes:
        wall, r = best[runtime], result[runtime]
        ratio = wall / calib
        goal = YEAR_GOALS[runtime]
        yield (f"simulated year ({runtime})", f"{wall:.2f} s = {ratio:.1f}x",
               f"{ratio:.2f}x the calibration loop (goal {goal:g}x: "
               f"{'met' if ratio <= goal else 'not met'}); by CPU time "
               f"{best_cpu[runtime]:.2f} s = {best_cpu[runtime] / calib_cpu:.2f}x; "
               f"{wall / max(r['strokes'], 1) * 1e6:.2f} µs/stroke over {r['strokes']} strokes; "
               f"max error {r['max_abs_error_nl']} nL ({Path(scenario).name})")


def rows_accuracy(prescription: str):
    from sim.accuracy import analyse

    out = analyse(ROOT / prescription, 3 * 86_400_000, 20_000, 1)
    for key, name in (("exact", "exact mechanism"), ("tolerance", "±2 % strokes")):
        res = out[key]
        cells = []
        for w in res["windows"]:
            if w["window_min"] in ACCURACY_WINDOWS and w["n_windows"]:
                p = w["window_min"]
                label = f"{p} min" if p < 60 else f"{p // 60} h"
                cells.append(f"{label} {w['max_pct']:+.2f}/{w['min_pct']:+.2f}")
        yield (f"accuracy, {name}", f"A = {res['overall_pct']:+.3f} %",
               "Ep(max)/Ep(min) %: " + ", ".join(cells) + f" ({Path(prescription).name}, 3 d)")


def occlusion_case(rate_ml_day: str, severity: str = "full") -> dict:
    """One occlusion run on CPython: morphine 0.1 mg/mL at the given volume rate, occluded at
    1 h and cleared at 3 h. Returns the summary's first occlusion record and the stroke."""
    from host_tools.scenario import parse_scenario
    from sim.plan import build_plan
    from sim.runner import run_plan

    rate_mg = float(rate_ml_day) * 0.1
    # A quarter above the basal, but never above what the motor can pump in a day (the
    # firmware refuses a cap it could never reach): 216 mL/day, 21.6 mg at 0.1 mg/mL.
    cap_mg = min(round(rate_mg * 1.25 + 0.001, 4), 21.6)
    table = {
        "scenario": {"duration": "4 h", "start": "08:00", "reservoir": "20 mL", "seed": 3},
        "prescription": {"drug": "morphine", "concentration": "0.1 mg/mL",
                         "basal": {"rate": f"{rate_mg:g} mg/day"},
                         "limits": {"max_daily_dose": f"{cap_mg:g} mg",
                                    "low_reservoir": "2 mL"}},
        "plant": {"pressure_noise": "0.5 kPa"},
        "event": [{"at": "1 h", "do": "occlusion", "severity": severity},
                  {"at": "3 h", "do": "clear_occlusion"}],
    }
    s, _ = run_plan(build_plan(parse_scenario(table)), "cpython")
    return {"stroke_nl": s["stroke_nl"], **(s["occlusions"][0] if s["occlusions"] else {})}


def rows_occlusion():
    cases = [(r, "full") for r in OCCLUSION_RATES_ML_DAY] + [(OCCLUSION_RATES_ML_DAY[-1],
                                                              "partial")]
    for rate, severity in cases:
        o = occlusion_case(rate, severity)
        if o.get("time_to_alarm_s", -1) < 0:
            value = "no alarm"
        else:
            t = o["time_to_alarm_s"]
            value = "< 1 s" if t < 1 else f"{t} s" if t < 600 else f"{t / 60:.1f} min"
        yield (f"occlusion ({severity}) at {rate} mL/day", value,
               f"{o.get('strokes_to_alarm', -1)} strokes to alarm; released "
               f"{o.get('released_nl', -1)} nL when cleared")


# ---- hooks: rows that belong to other parts of the project ------------------------------------
# Each returns (value, note) or None. Fill them in where the measurement lives; keep the names.

def measure_serial_round_trip():
    """Round trip of one request over the virtual board's serial port."""
    from sim import boardbench

    return boardbench.serial_round_trip()


def measure_program_and_verify():
    """Time for `pumpctl program FILE --yes` to write, read back and verify a prescription."""
    from sim import boardbench

    return boardbench.program_and_verify()


def measure_bundle_size():
    """Bytes of the compiled firmware (`make build`, .mpy) and the board file copied to a Pico."""
    from sim import boardbench

    return boardbench.bundle_size()


def measure_running_heap():
    """Heap in use by the running firmware on the MicroPython VM (steady state)."""
    from sim import boardbench

    return boardbench.heap_row()


def measure_loop_cycle():
    """Worst-case duration of one control-loop cycle on the MicroPython VM."""
    from sim import boardbench

    return boardbench.cycle_row()


def measure_pico_heap():
    """gc.mem_free() on the emulated Pico after boot, and while delivering."""
    from sim import boardbench

    return boardbench.pico_heap_rows()


def measure_pico_cycle():
    """The slowest control-loop cycle on the emulated Pico, in its own clock."""
    from sim import boardbench

    return boardbench.pico_cycle_row()
def measure_pico_update_verify():
    """The update's signature check on the emulated Pico, in its own clock."""
    from sim import boardbench

    return boardbench.pico_rsa_row()


def measure_pico_update():
    """`make flash` of a version bump on the emulated Pico, and a real Pico's estimate."""
    from sim import boardbench

    return boardbench.pico_update_row()


def measure_pico_boot():
    """Power-on to the first stroke on the emulated Pico, in its own clock."""
    from sim import boardbench

    return boardbench.pico_boot_row()


def measure_pico_self_test():
    """The power-on self-test's time on the emulated Pico, in its own clock."""
    from sim import boardbench

    return boardbench.pico_self_test_row()


def measure_pico_checks():
    """The periodic checks' cost on the emulated Pico, in its own clock."""
    from sim import boardbench

    return boardbench.pico_check_row()


def measure_pico_serial():
    """The emulated Pico's work for each byte of a request, in its own cycles."""
    from sim import boardbench

    return boardbench.pico_serial_row()


def measure_pico_idle():
    """The emulated Pico's busy time while idle (the control loop's wake-ups)."""
    from sim import boardbench

    return boardbench.pico_idle_row()


_VERIFY_VM = """
import sys, time
from firmware import update
m, msg, sig = [bytes.fromhex(x) for x in open(sys.argv[1]).read().split()]
t0 = time.ticks_us()
for _ in range(20):
    assert update.rsa_verify(m, msg, sig)
print(time.ticks_diff(time.ticks_us(), t0) / 20000)
"""


def measure_update_verify():
    """The pump's check of an update's signature (RSA-3072, e = 65537) on the MicroPython VM."""
    import tempfile

    from host_tools import bundle
    from sim.runner import ROOT, micropython_exe

    key = bundle.load_update_key()
    msg = b'{"v":1,"version":"0.4.0","board":"pico","files":[]}'
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "sig.txt"
        data.write_text(" ".join(x.hex() for x in (bundle.modulus(key), msg,
                                                   bundle.sign(key, msg))))
        script = Path(tmp) / "verify.py"
        script.write_text(_VERIFY_VM)
        out = subprocess.run([micropython_exe(), str(script), str(data)], capture_output=True,
                             text=True, env=dict(os.environ, MICROPYPATH=f"{ROOT}:.frozen"),
                             timeout=120)
    ms = float(out.stdout.split()[-1])
    return (f"{ms:.1f} ms", "RSA-3072 PKCS#1 v1.5 on the unix VM, mean of 20; an RP2040 runs "
            "this 50-100x slower with half-width bignum digits: a few hundred ms to ~1 s")


HOOKS = [
    ("serial round trip", measure_serial_round_trip),
    ("program-and-verify", measure_program_and_verify),
    ("firmware bundle size", measure_bundle_size),
    ("heap of the running firmware", measure_running_heap),
    ("control-loop cycle, worst", measure_loop_cycle),
    ("heap on the emulated Pico", measure_pico_heap),
    ("control-loop cycle on the emulated Pico", measure_pico_cycle),
    ("update signature check", measure_update_verify),
    ("update signature check, emulated Pico", measure_pico_update_verify),
    ("update (make flash), emulated Pico", measure_pico_update),
    ("power-on to first stroke, emulated Pico", measure_pico_boot),
    ("power-on self-test, emulated Pico", measure_pico_self_test),
    ("periodic checks, emulated Pico", measure_pico_checks),
    ("serial line, emulated Pico", measure_pico_serial),
    ("idle chip time, emulated Pico", measure_pico_idle),
]


def rows_hooks():
    for name, hook in HOOKS:
        got = hook()
        if got is None:
            yield (name, "not measured yet", f"hook sim.bench.{hook.__name__}")
        else:
            yield (name, *got)


def main(argv=None) -> int:
    description = __doc__.splitlines()[0] if __doc__ else None
    p = argparse.ArgumentParser(prog="python -m sim.bench", description=description)
    p.add_argument("--repeat", type=int, default=3, help="runs per timed figure; the best is kept")
    p.add_argument("--only", choices=("year", "accuracy", "occlusion", "hooks"), action="append",
                   help="only these groups of rows (repeatable); default all")
    p.add_argument("scenario", nargs="?", default=YEAR, help=f"the year to time (default {YEAR})")
    args = p.parse_args(argv)
    groups = args.only or ["year", "accuracy", "occlusion", "hooks"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
          f"{platform.release()}, Python {platform.python_version()}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'benchmark':40} {'figure':>16}  note")
    print(f"{'-' * 40} {'-' * 16}  {'-' * 40}", flush=True)
    makers = {"year": lambda: rows_year(args.scenario, args.repeat),
              "accuracy": lambda: rows_accuracy(ACCURACY_RX),
              "occlusion": rows_occlusion, "hooks": rows_hooks}
    for g in groups:
        for name, value, note in makers[g]():
            print(f"{name:40} {value:>16}  {note}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
