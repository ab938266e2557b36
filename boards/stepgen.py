# Step generation and pump-head arithmetic, as pure functions of board data.
#
# The RP2040 board files feed these numbers to a PIO state machine (boards/rp2_common.py); the
# host tests (tests/boards/test_stepgen.py) check them for every board, so a wrong constant shows
# up on a laptop, not as a pump that delivers twice the dose on the bench.
#
# Integers only, like the firmware: this module also runs on the board, whose floats are 32-bit.
#
# The PIO program spends exactly CYCLES_PER_STEP state-machine cycles on one step pulse: STEP is
# held high for HIGH_CYCLES and low for the rest, whatever the Python loop is doing. So the step
# rate is set by the state machine's clock alone:  sm_hz = step_hz * CYCLES_PER_STEP.
# The RP2040 derives that clock from the system clock through a 16.8 fixed-point divider between
# 1 and 65536, which bounds the step rates a board may ask for.

HIGH_CYCLES = 16              # STEP high: set(pins, 1) with a delay of 15
LOW_CYCLES = 16               # STEP low: set(pins, 0) with a delay of 14, then the loop's jmp
CYCLES_PER_STEP = HIGH_CYCLES + LOW_CYCLES
SYS_HZ = 125000000            # the RP2040's default system clock under MicroPython
DIV_MIN_256 = 256             # divider 1.0, in 1/256 units
DIV_MAX_256 = 65536 * 256     # divider 65536.0 (the register's 0 means 65536)
MIN_PULSE_NS = 100            # TMC2209: STEP high and low each at least 100 ns


def sm_freq_hz(step_hz):
    """The PIO state machine's clock for a step rate in steps per second."""
    if step_hz <= 0:
        raise ValueError("step rate must be positive")
    return step_hz * CYCLES_PER_STEP


def clock_divider_256(sm_hz, sys_hz=SYS_HZ):
    """The RP2040 clock divider for sm_hz, in 1/256 units (16 integer bits, 8 fractional), the
    way the hardware rounds it: down. Raises ValueError when no divider gives that clock."""
    if sm_hz <= 0:
        raise ValueError("state machine clock must be positive")
    div = sys_hz * 256 // sm_hz
    if div < DIV_MIN_256 or div > DIV_MAX_256:
        raise ValueError("state machine clock out of the divider's range")
    return div


def actual_step_hz_x1000(step_hz, sys_hz=SYS_HZ):
    """The step rate the hardware really produces after the divider's rounding, in mHz."""
    div = clock_divider_256(sm_freq_hz(step_hz), sys_hz)
    return sys_hz * 256 * 1000 // (div * CYCLES_PER_STEP)


def step_rate_range_hz(sys_hz=SYS_HZ):
    """(slowest, fastest) whole step rates that the divider can produce exactly or nearly."""
    slowest = -(-sys_hz * 256 // (DIV_MAX_256 * CYCLES_PER_STEP))  # ceiling
    fastest = sys_hz * 256 // (DIV_MIN_256 * CYCLES_PER_STEP)
    return slowest, fastest


def pulse_high_ns(step_hz):
    """How long STEP stays high at this step rate, in ns."""
    return HIGH_CYCLES * 1000000000 // sm_freq_hz(step_hz)


def stroke_ms(steps, step_hz):
    """How long one stroke's pulses take, rounded up to whole ms."""
    return -(-steps * 1000 // step_hz)


# ---- the pump head --------------------------------------------------------------------------
# One stroke is STEPS_PER_STROKE (micro)steps of the motor. The head moves HEAD_NL_PER_REV
# nanolitres per revolution of its rotor (measured on the bench, see docs/hardware.md), the rotor
# turns once per STEPS_PER_REV motor steps (full steps x microsteps x gear ratio).

def steps_per_stroke(stroke_nl, head_nl_per_rev, steps_per_rev):
    """Whole motor steps that move closest to stroke_nl (at least one)."""
    if stroke_nl <= 0 or head_nl_per_rev <= 0 or steps_per_rev <= 0:
        raise ValueError("volumes and steps must be positive")
    steps = (2 * stroke_nl * steps_per_rev + head_nl_per_rev) // (2 * head_nl_per_rev)
    return steps if steps > 0 else 1


def stroke_nl(steps, head_nl_per_rev, steps_per_rev):
    """The volume that `steps` motor steps move, in whole nL (rounded to nearest)."""
    return (2 * steps * head_nl_per_rev + steps_per_rev) // (2 * steps_per_rev)


def head_nl_per_rev_from_mass(mass_ug, strokes, steps, steps_per_rev, density_mg_ml=998):
    """Calibration: the head's nL per revolution from the mass of liquid `strokes` strokes of
    `steps` steps moved into a weighed vial (µg), for a liquid of this density (mg/mL; water
    at 20 °C is 998). One µg of a liquid of density 1000 mg/mL is one nL."""
    if mass_ug <= 0 or strokes <= 0 or steps <= 0 or density_mg_ml <= 0:
        raise ValueError("mass, strokes, steps and density must be positive")
    volume_nl = mass_ug * 1000 // density_mg_ml
    revs_den = strokes * steps
    return (2 * volume_nl * steps_per_rev + revs_den) // (2 * revs_den)


def max_strokes_per_min(steps, step_hz, overhead_ms):
    """The fastest stroke rate the motor and the loop can keep up: each stroke takes its
    pulses plus overhead_ms (pressure readings, bookkeeping) of the control loop."""
    per_stroke_ms = stroke_ms(steps, step_hz) + overhead_ms
    return 60000 // per_stroke_ms


def check_board(b):
    """Problems with a board's motor data, as a list of sentences (empty when it is sound).
    `b` is the board module (or any object with its upper-case names)."""
    problems = []
    lo, hi = step_rate_range_hz()
    if not lo <= b.STEP_HZ <= hi:
        problems.append("STEP_HZ %d is outside what the PIO divider can make (%d..%d)"
                        % (b.STEP_HZ, lo, hi))
        return problems
    if b.STEP_HZ > b.MOTOR_MAX_STEP_HZ:
        problems.append("STEP_HZ %d is above the motor's MOTOR_MAX_STEP_HZ %d"
                        % (b.STEP_HZ, b.MOTOR_MAX_STEP_HZ))
    if pulse_high_ns(b.STEP_HZ) < MIN_PULSE_NS:
        problems.append("the STEP pulse is shorter than the driver's %d ns" % MIN_PULSE_NS)
    want = steps_per_stroke(b.STROKE_NL, b.HEAD_NL_PER_REV, b.STEPS_PER_REV)
    if b.STEPS_PER_STROKE != want:
        problems.append("STEPS_PER_STROKE %d does not match STROKE_NL %d (want %d steps)"
                        % (b.STEPS_PER_STROKE, b.STROKE_NL, want))
    real_nl = stroke_nl(b.STEPS_PER_STROKE, b.HEAD_NL_PER_REV, b.STEPS_PER_REV)
    if abs(real_nl - b.STROKE_NL) * 100 > b.STROKE_NL:
        problems.append("STROKE_NL %d differs from what %d steps move (%d nL) by over 1 %%"
                        % (b.STROKE_NL, b.STEPS_PER_STROKE, real_nl))
    fastest = max_strokes_per_min(b.STEPS_PER_STROKE, b.STEP_HZ, b.STROKE_OVERHEAD_MS)
    if b.MAX_STROKES_PER_MIN > fastest:
        problems.append("MAX_STROKES_PER_MIN %d is above what the motor can do (%d)"
                        % (b.MAX_STROKES_PER_MIN, fastest))
    # A stroke blocks the loop; it must end long before the watchdog bites.
    if stroke_ms(b.STEPS_PER_STROKE, b.STEP_HZ) * 4 > b.WDT_TIMEOUT_MS:
        problems.append("one stroke takes over a quarter of the watchdog timeout")
    return problems
