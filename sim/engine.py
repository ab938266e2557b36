# The simulation engine: a virtual clock, the plant, and the firmware's timing core.
#
# This module runs both on CPython and inside the MicroPython VM (sim/mpy_main.py), so it keeps
# to the subset both accept. It takes a plan (plain integers and strings, see sim/plan.py) and
# returns a summary and, if asked, the full event trace.
#
# Time is event-driven: the engine asks the firmware when it next needs servicing, and jumps
# straight to the earliest of that, the next scenario event and the next basal step; it never
# ticks through idle milliseconds. The engine keeps its own truth (what the plant delivered, the
# ideal integral of the prescription) and never trusts the firmware's account of itself.
from firmware import codes
from firmware.compat import TYPE_CHECKING, const
from firmware.record import state_clock_ts, state_reservoir_nl
from firmware.rx import RxError, catheter_nl
from firmware.store import MemDev, RecordStore, pack_ints, unpack_ints
from firmware.therapy import Therapy
from firmware.ticks import MASK
from sim.faults import DIE_C, DRIVER_FAULTS, DRIVER_STOPS, TMC2209_VERSION, RamCells, die_raw


class micropython:
    """`@micropython.native` has the MicroPython VM compile a method to machine code: its
    compiler knows the decorator by name and never looks this class up. On CPython it is
    this no-op. Only the simulator's own per-stroke methods use it, never firmware code."""

    @staticmethod
    def native(f):
        return f


# const(): the MicroPython VM's compiler folds these into the per-stroke code of this module
# (a module-level name looked up per stroke costs hundreds of instructions there); they stay
# importable.
DAY_MS = const(86400000)
HASH_MOD = const(2147483647)
# The motor's outcomes (firmware.codes DONE, NOT_DONE, UNCERTAIN), inlined: a module-level name
# looked up per stroke costs hundreds of instructions on the MicroPython VM.
_DONE = const(1)
_NOT_DONE = const(0)
_UNCERTAIN = const(2)
# firmware.ticks.MASK, for the hot loop (a name imported from another module is looked up
# at every use on the MicroPython VM)
_TICKS_MASK = const((1 << 30) - 1)
# Rng.below(2000001)'s bound (draws at or above it are thrown away), for Engine._run.
_TOL_TOP = const((1 << 24) - (1 << 24) % 2000001)


class BoardData:
    """A board made of its constants (plan["board"], read from boards/<name>.py by the host),
    so a run can be on any board's numbers, on either runtime."""

    def __init__(self, constants):
        for name in constants:
            setattr(self, name, constants[name])


def plan_board(plan):
    """The board a plan runs on: its own constants, or the virtual board's."""
    if plan.get("board"):
        return BoardData(plan["board"])
    from boards import virtual

    return virtual


def rate_nl_day(rate_ng_day, conc_ng_ml):
    """The prescription's volume rate: nearest whole nL/day (the documented programming step)."""
    return (rate_ng_day * 1000000 + conc_ng_ml // 2) // conc_ng_ml


class Rng:
    """A small deterministic generator, identical on every runtime."""

    def __init__(self, seed):
        self.s = (seed * 2654435761 + 1) & 0x7FFFFFFF

    @micropython.native
    def below(self, n):
        """A value in 0..n-1, uniform for n up to 2**24 (draws at or above the largest multiple
        of n that fits are thrown away, so small values are not favoured)."""
        top = (1 << 24) - (1 << 24) % n if n <= (1 << 24) else 1 << 24
        while True:
            self.s = (self.s * 1103515245 + 12345) & 0x7FFFFFFF
            v = self.s >> 7
            if v < top:
                return v % n


# 2**(-i/16) in 1/65536ths: pressure decays by halves, exactly the same on every runtime.
HALF_16 = (65536, 62757, 60097, 57549, 55109, 52773, 50535, 48393, 46341, 44376, 42495, 40693,
           38968, 37316, 35734, 34219)
COMPLIANCE_NL_PER_KPA = 25     # the catheter's compliance
OPEN_HALF_MS = const(7)        # pressure half-life through an open catheter
PARTIAL_HALF_MS = 400          # ... through a partly occluded one (a kinked catheter)
NOISY_PA = 40000               # a failing sensor's noise
BAT_FULL = const(1000000000)   # battery charge units
BAT_DAY_DRAIN = const(391000)  # about 7 years from full to empty at rest
BAT_STROKE_DRAIN = const(20)
BAT_EMPTY_MV = const(2700)     # open-circuit voltage at 0 % ...
BAT_FULL_MV = const(3200)      # ... and at 100 %
BAT_SAG_MV = const(40)         # under the motor's load
BAT_NOISY_MV = 400
PARTWAY = 2                    # Plant.stalled: the next stroke stalls partway, then it is stuck
TONE_TRACE_MAX = 1000          # tones kept in the trace (the counts go on)


class Plant:
    """The pump mechanism, catheter, reservoir, battery and sensors as they really are."""

    def __init__(self, stroke_nl, tolerance_ppm, reservoir_nl, rng, board, noise_pa, seed):
        self.stroke_nl = stroke_nl
        self.tol = tolerance_ppm
        self.reservoir_nl = reservoir_nl
        self.rng = rng
        self.board = board
        self.sensor_rng = Rng(seed + 7919)  # sensor noise does not disturb the stroke volumes
        self.noise_pa = noise_pa
        # Rng.below(2 * noise_pa + 1)'s modulus and bound, once (sense_pressure draws inline)
        m = 2 * noise_pa + 1
        self.noise_m = m
        self.noise_top = (1 << 24) - (1 << 24) % m if m <= (1 << 24) else 1 << 24
        self.stalled = False       # True, or PARTWAY: the next stroke stops half way
        self.half_next = False
        self.rise_pa = stroke_nl * 1000 // COMPLIANCE_NL_PER_KPA
        self.p_pa = 0              # outlet pressure at p_t
        self.p_t = 0
        self.half_ms = OPEN_HALF_MS  # 0: fully occluded, nothing flows
        self.p_mode = "ok"
        self.p_stuck = 0
        self.b_mode = "ok"
        self.b_stuck = 0
        self.charge = BAT_FULL
        self.charge_t = 0
        self.last_stroke_t = -1
        self.occluded_strokes = 0  # strokes pushed since the catheter was last occluded
        # the chip's own parts, for its self-test (sim/faults.py)
        self.ram = RamCells(board.MEMTEST_CELLS)
        self.driver = "ok"         # a sim/faults.py DRIVER_FAULTS name
        self.die_c = DIE_C
        self.die_raw_c = None      # the temperature die_raw was last computed for
        self.die_raw = 0
        self.t = 0                 # virtual time (ms) the sensors read at: sense_pressure()
        self.p_zero = board.P_RAW_ZERO
        self.peaks = []            # the pressure right after each stroke (SampledPlant only)
        self.p_per_kpa = board.P_RAW_PER_KPA
        self.b_mv_num = board.B_MV_NUM
        self.b_mv_den = board.B_MV_DEN

    # ---- the chip's own parts (the self-test's: firmware/selftest.py) ---------------------
    def driver_status(self):
        return DRIVER_FAULTS[self.driver]

    def driver_version(self):
        return -1 if self.driver == "silent" else TMC2209_VERSION

    def read_die_temp(self):
        c = self.die_c
        if c != self.die_raw_c:  # the reading changes only with the temperature
            self.die_raw = die_raw(self.board, c)
            self.die_raw_c = c
        return self.die_raw

    def test_ram(self):
        """The memory test's cells: the plain array while they are healthy (a march over it
        costs the simulator little), the faulty view of the same array while a bit sticks."""
        ram = self.ram
        return ram if ram.cell >= 0 else ram.cells

    # ---- catheter pressure ---------------------------------------------------------------
    # The pressure is kept as it was at p_t and decayed in closed form when it is read: one
    # step of whole 1/16 half-lives, floored, per reading. Readings at other times would round
    # differently, so the rule is: decay at every reading (and stroke) while there is pressure
    # to decay, exactly as the first version of the model did. At zero nothing can change, and
    # p_t only matters once a stroke has raised the pressure (push sets it), so a reading at
    # zero, or a second reading at the same instant, skips the decay: the common case between
    # two strokes of an open catheter costs no arithmetic at all.
    @micropython.native
    def pressure(self, t):
        """Outlet pressure (Pa) at virtual time t, decayed through the catheter since p_t."""
        dt = t - self.p_t
        self.p_t = t
        p = self.p_pa
        if p and dt > 0 and self.half_ms:
            q = dt * 16 // self.half_ms
            p = 0 if q >= 16 * 40 else ((p >> (q >> 4)) * HALF_16[q & 15]) >> 16
            self.p_pa = p
        return p

    @micropython.native
    def push(self, t):
        """A stroke into the catheter at t."""
        if self.p_pa:
            self.pressure(t)
        self.p_t = t
        self.p_pa += self.rise_pa
        self.last_stroke_t = t
        if self.half_ms != OPEN_HALF_MS:
            self.occluded_strokes += 1
        self.charge -= BAT_STROKE_DRAIN

    def read_pressure(self, t):
        """The pressure sensor's ADC reading at t (the plant's clock moves to t)."""
        self.t = t
        return self.sense_pressure()

    @micropython.native
    def sense_pressure(self):
        """The pressure sensor's ADC reading now (at self.t): the engine's HAL calls it as is."""
        mode = self.p_mode
        n = self.noise_pa
        m = self.noise_m
        top = self.noise_top
        if mode != "ok":
            if mode == "out_of_range":
                return 65535
            if mode == "stuck":
                return self.p_stuck
            if mode == "noisy":
                n = NOISY_PA
                m = 2 * n + 1
                top = (1 << 24) - (1 << 24) % m
        pa = self.p_pa
        if pa:
            t = self.t
            dt = t - self.p_t
            if dt:
                # self.pressure(t), inline: the first reading at a new instant (the decay
                # happens at exactly the readings it always did)
                self.p_t = t
                half_ms = self.half_ms
                if dt > 0 and half_ms:
                    q = dt * 16 // half_ms
                    pa = 0 if q >= 640 else ((pa >> (q >> 4)) * HALF_16[q & 15]) >> 16
                    self.p_pa = pa
        if n:
            # self.sensor_rng.below(2 * n + 1), inline
            rng = self.sensor_rng
            s = rng.s
            while True:
                s = (s * 1103515245 + 12345) & 0x7FFFFFFF
                v = s >> 7
                if v < top:
                    break
            rng.s = s
            pa += v % m - n
        raw = self.p_zero + pa * self.p_per_kpa // 1000
        return 0 if raw < 0 else 65535 if raw > 65535 else raw

    # ---- battery ---------------------------------------------------------------------------
    def battery_mv(self, t):
        c = self.charge - (t - self.charge_t) * BAT_DAY_DRAIN // DAY_MS
        if c < 0:
            c = 0
        return BAT_EMPTY_MV + (BAT_FULL_MV - BAT_EMPTY_MV) * c // BAT_FULL

    def set_battery(self, t, level_ppm):
        self.charge = level_ppm * 1000
        self.charge_t = t

    def read_battery(self, t):
        """The battery's ADC reading at t (the plant's clock moves to t)."""
        self.t = t
        return self.sense_battery()

    @micropython.native
    def sense_battery(self):
        """The battery's ADC reading now (at self.t)."""
        t = self.t
        mode = self.b_mode
        if mode != "ok":
            if mode == "out_of_range":
                return 0
            if mode == "stuck":
                return self.b_stuck
        # self.battery_mv(t), inline
        c = self.charge - (t - self.charge_t) * BAT_DAY_DRAIN // DAY_MS
        if c < 0:
            c = 0
        mv = BAT_EMPTY_MV + (BAT_FULL_MV - BAT_EMPTY_MV) * c // BAT_FULL
        if t == self.last_stroke_t:
            mv -= BAT_SAG_MV
        if mode == "noisy":
            mv += self.sensor_rng.below(2 * BAT_NOISY_MV + 1) - BAT_NOISY_MV
        return mv * self.b_mv_den // self.b_mv_num + 1

    @micropython.native
    def stroke(self):
        vol = self.stroke_nl
        if self.half_next:
            vol //= 2        # a stall partway: half the stroke got out (the HAL said "uncertain")
            self.half_next = False
        if self.tol:
            u = self.rng.below(2000001) - 1000000
            # to the nearest nL (flooring would take half a nL off every stroke on average)
            vol += (vol * self.tol * u + 500000000000) // 1000000000000
        if vol > self.reservoir_nl:
            vol = self.reservoir_nl
        self.reservoir_nl -= vol
        return vol


class SampledPlant(Plant):
    """The plant of a sampled run (plan["sample_ms"]): it also notes the outlet pressure
    right after each stroke (its peak), in step with Engine.pending. A subclass, so a run
    without samples pays nothing per stroke for it."""

    @micropython.native
    def push(self, t):
        Plant.push(self, t)
        self.peaks.append(self.p_pa)


# What only a clinician (or the pump's owner) does: refused while the pump is off.
CLINICIAN_ACTIONS = ("program", "clinician_bolus", "refill", "stop", "resume", "ack")

PLANT_FAULTS = ("occlusion", "clear_occlusion", "motor_stall", "clear_motor_stall",
                "sensor_fault", "battery", "driver", "die_temperature", "memory_fault")


def plant_fault(plant, t, action, args):
    """Apply a fault (or its end) to the plant at virtual time t: shared by the scenario engine
    and the virtual Pico. Returns the volume (nL) an occlusion released when it cleared."""
    released = 0
    if action == "occlusion":
        plant.pressure(t)
        plant.half_ms = 0 if args.get("severity", "full") == "full" else PARTIAL_HALF_MS
        plant.occluded_strokes = 0
    elif action == "clear_occlusion":
        # What the catheter held under pressure now flows to the patient at once.
        released = plant.pressure(t) * COMPLIANCE_NL_PER_KPA // 1000
        plant.half_ms = OPEN_HALF_MS
    elif action == "motor_stall":
        plant.stalled = PARTWAY if args.get("partway") else True
    elif action == "clear_motor_stall":
        plant.stalled = False
    elif action == "sensor_fault":
        mode = args["mode"]
        if args["sensor"] == "pressure":
            plant.p_stuck = plant.read_pressure(t)
            plant.p_mode = mode
        else:
            plant.b_stuck = plant.read_battery(t)
            plant.b_mode = mode
    elif action == "battery":
        plant.set_battery(t, args["level_ppm"])
    elif action == "driver":
        # A driver that shut down, shorted or lost a coil moves nothing (DIAG: a stall); when it
        # recovers, a stall it caused ends with it.
        fault = args["fault"]
        if fault in DRIVER_STOPS:
            plant.stalled = True
        elif plant.driver in DRIVER_STOPS:
            plant.stalled = False
        plant.driver = fault
    elif action == "die_temperature":
        plant.die_c = args["celsius"]
    elif action == "memory_fault":
        if args.get("on", True):
            plant.ram.stick(args.get("cell", 5), args.get("bit", 3), 1)
        else:
            plant.ram.unstick()
    return released


class Flash:
    """What survives a restart: the settings and the state record, kept in the firmware's
    power-loss-safe A/B store. While the pump runs, `state` is the buffer it last saved (it
    writes that buffer only when it saves); the record goes into the store when the pump stops,
    which is the same as writing every save and keeping the last."""

    def __init__(self):
        self.params = None  # type: dict | None
        self.state = None  # type: list | None
        self.saves = 0
        self.failed_saves = 0
        self.store = RecordStore(MemDev(), "state")
        self.journal = None        # the firmware's journal buffer (its last write) ...
        self.journal_saved = None  # ... and what the flash holds of it after the pump stopped
        self.failing = False       # corrupt_flash: the records are found damaged at next boot
        self.write_fails = False   # flash_failing: every state save fails (a worn sector)

    def keep_journal(self, buf):
        """The firmware's journal port (before each stroke): it writes buf only when it
        journals, so keeping a reference is a copy of its last write."""
        self.journal = buf
        return True

    def fail_writes(self, on):
        if on and not self.write_fails and self.state is not None:
            self.state = list(self.state)  # the last good record, kept apart from the buffer
        self.write_fails = on

    def commit(self):
        if self.state is not None:
            self.store.save(pack_ints(self.state))
            self.state = None
        if self.journal is not None:
            self.journal_saved = [self.journal[0], self.journal[1]]
            self.journal = None

    def load(self):
        """(state as a list or None, whether a damaged record was seen)."""
        if self.failing:
            self.failing = False
            self.corrupt()
        payload = self.store.load()
        state = list(unpack_ints(payload)) if payload is not None else None
        return state, self.store.corrupt

    def corrupt(self):
        """Damage every stored record (a failing flash part)."""
        files = self.store.dev.files
        for path in files:
            data = bytearray(files[path])
            data[len(data) // 2] ^= 0x5A
            files[path] = bytes(data)


if TYPE_CHECKING:
    from firmware.hal import BoardData as _Data
    from firmware.pump import Pump
else:
    _Data = object  # the board's constants are copied in at run time


class Hal(_Data):
    """The board as the firmware's rooms see it (firmware/hal.pyi's Mechanism), backed by the
    engine's plant and flash; save_state and save_journal are the shell's save ports. The
    engine keeps the plant's clock (plant.t) at its own virtual time, so the sensors are the
    plant's own methods, called by the firmware without a layer in between."""

    def __init__(self, board, engine):
        for name in dir(board):
            if name.isupper():
                setattr(self, name, getattr(board, name))  # the board's constants
        self.engine = engine
        plant = engine.plant
        self.plant = plant
        self.pending = engine.pending
        self.read_pressure = plant.sense_pressure
        self.read_battery = plant.sense_battery
        # The self-test's readings at every periodic check, also the plant's own methods.
        self.driver_status = plant.driver_status
        self.read_die_temp = plant.read_die_temp
        if isinstance(plant, SampledPlant):
            self.stroke = self._stroke_sampled  # its push also notes the peak

    @micropython.native
    def stroke(self):
        plant = self.plant
        if plant.stalled:
            return self._stalled(plant)
        t = plant.t
        self.pending.append(t)  # the engine accounts it (the volume, the truth) when it settles
        # plant.push(t), inline
        p = plant.p_pa
        if p:
            p = plant.pressure(t)
        plant.p_t = t
        plant.p_pa = p + plant.rise_pa
        plant.last_stroke_t = t
        if plant.half_ms != OPEN_HALF_MS:
            plant.occluded_strokes += 1
        plant.charge -= BAT_STROKE_DRAIN
        return _DONE

    def _stroke_sampled(self):
        plant = self.plant
        if plant.stalled:
            return self._stalled(plant)
        t = plant.t
        self.pending.append(t)
        plant.push(t)
        return _DONE

    def _stalled(self, plant):
        if plant.stalled == PARTWAY:
            # The motor stalls partway through this stroke: part of it reaches the patient
            # and the driver cannot say how much (boards/__init__.py: 2, uncertain).
            engine = self.engine
            plant.stalled = True
            engine._settle()           # the strokes before it, at their own volumes
            self.pending.append(plant.t)
            plant.push(plant.t)
            plant.half_next = True
            engine._settle()
            engine._break()
            return _UNCERTAIN
        return _NOT_DONE

    def driver_status(self):  # (bound to the plant's in __init__)
        return self.engine.plant.driver_status()

    def read_die_temp(self):  # (idem)
        return self.engine.plant.read_die_temp()

    def test_ram(self):
        return self.engine.plant.test_ram()

    def tone(self, pattern):
        engine = self.engine
        engine.tones[pattern - 1] += 1
        if len(engine.tone_trace) < TONE_TRACE_MAX:
            engine.tone_trace.append([engine.t // 1000, pattern])

    def save_state(self, buf):
        # The firmware only writes buf when it saves, so keeping a reference is a copy of the
        # last saved record (the engine copies it when the firmware stops).
        fl = self.engine.flash
        if fl.write_fails:
            fl.failed_saves += 1
            return False
        fl.state = buf
        fl.saves += 1
        return True

    def save_journal(self, buf):
        # The engine hands the firmware Flash.keep_journal itself (one call less per stroke).
        return self.engine.flash.keep_journal(buf)


class Log:
    """The firmware's event sink: the engine reads events as they happen."""

    def __init__(self, engine):
        self.engine = engine

    def add(self, code, now, a, b):
        self.engine.on_event(code, a, b)


class Engine:
    def __init__(self, plan, board):
        self.plan = plan
        self.board = board
        self.stroke_nl = board.STROKE_NL
        self.end = plan["duration_ms"]
        self.tod0 = plan["start_tod_ms"]
        self.ticks0 = plan["start_ticks"]
        self.events = plan["events"]
        self.want_trace = plan.get("trace", False)
        self.trace = []
        self.hash = 1
        self.rng = Rng(plan["seed"])
        # Sampled series for reports and the accuracy method (sim/report.py, sim/accuracy.py):
        # every sample_ms of virtual time one row of SERIES_COLUMNS. Off (0) by default.
        self.sample_ms = plan.get("sample_ms", 0)
        self.next_sample = 0
        self.series = []
        self.marks = []            # firmware events [t, code, a, b] of a sampled run
        self.acts = []             # scenario actions [t, action] of a sampled run
        self.peak_pa = 0           # highest stroke peak since the last sample
        self.plant = (SampledPlant if self.sample_ms else Plant)(
            self.stroke_nl, plan.get("tolerance_ppm", 0), plan["reservoir_nl"], self.rng, board,
            plan.get("pressure_noise_pa", 0), plan["seed"])
        self.tones = [0, 0]        # critical, warning patterns sounded
        self.tone_trace = []       # [t_s, pattern] of each (the first TONE_TRACE_MAX)
        self.occlusions = []       # [start_t, strokes before the alarm, alarm_t, released_nl]
        self.boot_cause = 0
        self.flash = Flash()
        self.t = 0                 # virtual ms since the start of the run (and plant.t)
        self.acc_t = 0             # the ideal is accounted up to here
        self.pending = []          # times of strokes not yet accounted
        self.hal = Hal(board, self)
        self.log = Log(self)
        self.boot_t = 0            # when the running firmware booted
        self.clock_shift = 0       # set_clock shifts of the pump's real-time clock
        self.powered = True
        self.power_on_at = 0
        self.clock_kept = True     # False: the board lost its clock (a Pico after a power cut)
        self.pump: "Pump | None" = None
        self.th: "Therapy | None" = None
        self.reservoir_account = 0
        # The prescription as the engine knows it (for the ideal).
        self._set_rx(plan["rx"])
        # Truth and accounting.
        self.delivered_nl = 0      # what the plant really moved
        self.strokes = 0
        self.ideal_nl = 0          # the ideal integral: ideal_nl + ideal_frac / DAY_MS
        self.ideal_frac = 0
        self.seg_ideal_nl = 0
        self.seg_ideal_frac = 0
        self.seg_dlv = 0
        self.seg_cmd = 0
        self.max_err = 0
        self.max_err_cmd = 0
        self.fault_free = True
        self.win_t = []            # stroke times and volumes of the last 24 h (truth)
        self.win_v = []
        self.win_head = 0
        self.win_sum = 0
        # The same window as drug mass, in units of conc_unit nL (conc_unit: the largest
        # concentration every concentration of the run is a multiple of, plan["conc_unit"]),
        # so each stroke adds a small integer: vol * its concentration's multiple.
        self.conc_unit = plan.get("conc_unit") or plan["rx"]["conc_ng_ml"]
        self.conc_mult = plan["rx"]["conc_ng_ml"] // self.conc_unit
        self.win_m = []
        self.win_msum = 0
        self.max_24h = 0
        self.last_ms = 0           # ideal volume of the last millisecond, nL*ms/day units
        self.boluses = []          # active boluses for the ideal: [start_t, dose_nl, dur_ms, last]
        self.pb_requested = 0
        self.pb_delivered = 0
        self.pb_denied = 0
        self.denials = {}
        self.alarms = []
        self.active_alarms = 0
        self.stopped = False
        self.missed = 0
        # Refusals from the firmware of what the scenario asked: [t_ms, action, reason name].
        self.refused = []
        # One row per concentration in the reservoir: [t_ms, conc_ng_ml, delivered_nl,
        # ideal_nl] when it began (the host integrates drug mass per row, sim/mass.py).
        self.concs = [[0, plan["rx"]["conc_ng_ml"], 0, 0]]
        # One row per prescription in force (a program or a new concentration starts one):
        # [t_ms, conc_ng_ml, max_daily_ng, cap_nl the firmware enforces, the highest rolling
        # 24 h of truth among windows ending in it, as mass in conc_unit nL].
        self.periods = []
        self.period_max = 0

    # ---- the prescription as the engine sees it ---------------------------------------------
    def _set_rx(self, params):
        conc = params["conc_ng_ml"]
        self.rx_params = params
        self.step_ms = [s[0] * 60000 for s in params["steps"]]
        self.step_rate = [rate_nl_day(s[1], conc) for s in params["steps"]]
        pb = params.get("pb")
        self.pb_dur_ms = pb[1] * 1000 if pb else 0
        self.basal = 0
        self.step_end = 0

    def tod(self, t):
        return (self.tod0 + t + self.clock_shift) % DAY_MS

    def clock_ts(self, t):
        """The pump's real-time clock (s since 2024-01-01): the run starts on that day."""
        return (self.tod0 + t + self.clock_shift) // 1000

    def ticks(self, t):
        return (self.ticks0 + t - self.boot_t) & MASK

    def _find_step(self, t):
        """The basal rate at virtual time t and when (absolute) it next changes."""
        tod = self.tod(t)
        i = len(self.step_ms) - 1
        while self.step_ms[i] > tod:
            i -= 1
        self.basal = self.step_rate[i]
        nxt = self.step_ms[i + 1] if i + 1 < len(self.step_ms) else DAY_MS
        self.step_end = t + nxt - tod

    def _delivering(self):
        return self.powered and not self.stopped and not (self.active_alarms & codes.CRITICAL_MASK)

    # ---- the ideal ----------------------------------------------------------------------------
    def _accrue(self, t_next):
        """Add the ideal delivery from self.acc_t to t_next. The rate is constant in between:
        the engine settles its accounts before anything can change it (a step boundary, an
        event from the firmware, a scenario action)."""
        dt = t_next - self.acc_t
        self.acc_t = t_next
        if dt <= 0 or not self._delivering():
            return
        per_ms = self.basal
        add = per_ms * dt
        if self.boluses:
            for b in self.boluses:
                per_ms += b[1] * DAY_MS // b[2]
                k = t_next - b[0]
                if k > b[2]:
                    k = b[2]
                now_val = b[1] * DAY_MS * k // b[2]
                add += now_val - b[3]
                b[3] = now_val
            self.boluses = [b for b in self.boluses if t_next - b[0] < b[2]]
        self.last_ms = per_ms
        frac = self.ideal_frac + add
        if frac >= DAY_MS:
            whole = frac // DAY_MS
            self.ideal_nl += whole
            frac -= whole * DAY_MS
        self.ideal_frac = frac
        frac = self.seg_ideal_frac + add
        if frac >= DAY_MS:
            whole = frac // DAY_MS
            self.seg_ideal_nl += whole
            frac -= whole * DAY_MS
        self.seg_ideal_frac = frac

    def _anchor(self):
        """Start a new fault-free segment: the error is measured from here."""
        self.seg_ideal_nl = 0
        self.seg_ideal_frac = 0
        self.seg_dlv = 0
        self.seg_cmd = 0
        self.fault_free = True

    def _break(self):
        self.fault_free = False

    # ---- settling the accounts ------------------------------------------------------------
    def _settle(self):
        """Account every stroke the firmware made since the last settlement, each at its own
        time and in order, then bring the ideal up to now. Strokes are only queued while the
        firmware runs (Hal.stroke), which keeps the hot loop short."""
        if self.sample_ms:
            self._settle_sampled()
            return
        pending = self.pending
        if pending:
            if self.plant.half_next or not self._delivering():
                accrue = self._accrue
                account = self._account
                for ts in pending:
                    accrue(ts)
                    account(ts)
            else:
                self._run(pending)
            pending.clear()  # (del pending[:] makes a slice object on MicroPython)
        self._accrue(self.t)

    @micropython.native
    def _run(self, pending):
        """_settle's common case: strokes while the pump delivers, none stalled partway. What
        _accrue and _account do per stroke, with the state in local variables for the whole
        run and written back once: the same integer arithmetic in the same order, so every
        figure is the same. The ideal is carried in the segment's accumulator only; the run
        adds the same amount to the whole-run ideal, which is brought up at the end."""
        plant = self.plant
        nominal = self.stroke_nl
        basal = self.basal
        bol = self.boluses
        if not bol:
            self.last_ms = basal
        last_ms = self.last_ms
        acc = self.acc_t
        snl = snl0 = self.seg_ideal_nl
        sfrac = sfrac0 = self.seg_ideal_frac
        free = self.fault_free
        sdlv = self.seg_dlv
        scmd = self.seg_cmd
        max_err = self.max_err
        max_cmd = self.max_err_cmd
        wt = self.win_t
        wv = self.win_v
        wm = self.win_m
        h = self.win_head
        s = self.win_sum
        ms = self.win_msum
        mult = self.conc_mult
        max24 = self.max_24h
        pmax = self.period_max
        hsh = self.hash
        trace = self.trace if self.want_trace else None
        tol = plant.tol
        res = plant.reservoir_nl
        rng = plant.rng
        seed = rng.s
        delivered = self.delivered_nl
        for ts in pending:
            # The plant's stroke (Plant.stroke and Rng.below, inline).
            vol = nominal
            if tol:
                while True:
                    seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
                    u = seed >> 7
                    if u < _TOL_TOP:
                        break
                vol += (vol * tol * (u % 2000001 - 1000000) + 500000000000) // 1000000000000
            if vol > res:
                vol = res
            res -= vol
            delivered += vol
            # The ideal up to the stroke (_accrue).
            dt = ts - acc
            acc = ts
            if dt > 0:
                add = basal * dt
                if bol:
                    per_ms = basal
                    ended = False
                    for b in bol:
                        dur = b[2]
                        per_ms += b[1] * DAY_MS // dur
                        k = ts - b[0]
                        if k >= dur:
                            k = dur
                            ended = True
                        v = b[1] * DAY_MS * k // dur
                        add += v - b[3]
                        b[3] = v
                    if ended:
                        bol = [b for b in bol if ts - b[0] < b[2]]
                    last_ms = per_ms
                else:
                    last_ms = basal
                f = sfrac + add
                w = f // DAY_MS
                snl += w
                sfrac = f - w * DAY_MS
            if free:
                # The gap around the stroke, as _account measures it.
                before = snl - ((last_ms - sfrac) // DAY_MS)
                under_cmd = before - scmd
                under = before - sdlv
                sdlv += vol
                scmd += nominal
                over_cmd = scmd - snl
                over = sdlv - snl
                m = under if under > over else over
                if m > max_err:
                    max_err = m
                m = under_cmd if under_cmd > over_cmd else over_cmd
                if m > max_cmd:
                    max_cmd = m
            # Rolling 24 h of truth, window (ts - 24 h, ts].
            wt.append(ts)
            wv.append(vol)
            m = vol * mult
            wm.append(m)
            s += vol
            ms += m
            limit = ts - DAY_MS
            while wt[h] <= limit:
                s -= wv[h]
                ms -= wm[h]
                h += 1
            if h > 4096:
                del wt[:h]
                del wv[:h]
                del wm[:h]
                h = 0
            if s > max24:
                max24 = s
            if ms > pmax:
                pmax = ms
            # _record(ts, 0, vol, 0)
            hsh = (hsh * 1000003 + ts * 31 + vol * 3) % HASH_MOD
            if trace is not None:
                trace.append([ts, 0, vol, 0])
        rng.s = seed
        plant.reservoir_nl = res
        self.boluses = bol
        self.last_ms = last_ms
        self.strokes += len(pending)
        self.delivered_nl = delivered
        self.acc_t = acc
        f = self.ideal_frac + (sfrac - sfrac0)
        w = f // DAY_MS
        self.ideal_nl += snl - snl0 + w
        self.ideal_frac = f - w * DAY_MS
        self.seg_ideal_nl = snl
        self.seg_ideal_frac = sfrac
        self.seg_dlv = sdlv
        self.seg_cmd = scmd
        self.max_err = max_err
        self.max_err_cmd = max_cmd
        self.win_head = h
        self.win_sum = s
        self.win_msum = ms
        self.max_24h = max24
        self.period_max = pmax
        self.hash = hsh

    def _settle_sampled(self):
        """_settle for a sampled run: the same accounts, with a sample taken at every grid
        time passed on the way. The ideal is integer arithmetic that adds up exactly in pieces,
        so the extra stops change no figure and no trace."""
        pending = self.pending
        peaks = self.plant.peaks
        for j in range(len(pending)):
            ts = pending[j]
            self._sample_before(ts)
            self._accrue(ts)
            self._account(ts)
            if peaks[j] > self.peak_pa:
                self.peak_pa = peaks[j]
        pending.clear()
        peaks.clear()
        self._sample_before(self.t)
        self._accrue(self.t)

    def _sample_before(self, t):
        """Take the samples due strictly before t (a stroke at a sample's own time counts in
        that sample). Strokes still to come at t are not known yet, hence strictly."""
        g = self.next_sample
        if g >= t:
            return
        step = self.sample_ms
        plant = self.plant
        while g < t and g <= self.end:
            self._accrue(g)
            p = self.peak_pa
            self.peak_pa = 0
            if plant.half_ms == 0 and plant.p_pa > p:
                p = plant.p_pa  # a fully occluded catheter holds its pressure
            on = self._delivering()
            self.series.append([g, self.delivered_nl, self.ideal_nl, self.ideal_frac,
                                plant.reservoir_nl, p, self.basal,
                                self.last_ms if on else 0, self.active_alarms,
                                1 if on else 0])
            g += step
        self.next_sample = g

    def _account(self, t):
        vol = self.plant.stroke()
        self.strokes += 1
        self.delivered_nl += vol
        if self.fault_free:
            # The firmware keeps time in whole milliseconds, so the gap is sampled on that grid:
            # one millisecond before the stroke (ideal - delivered is largest there) and right
            # after it (delivered - ideal is largest there). Values are rounded up to whole nL.
            # ideal 1 ms earlier, rounded up: seg_ideal_nl + ceil((frac - last_ms) / DAY_MS)
            before = self.seg_ideal_nl - ((self.last_ms - self.seg_ideal_frac) // DAY_MS)
            under_cmd = before - self.seg_cmd
            under = before - self.seg_dlv
            self.seg_dlv += vol
            self.seg_cmd += self.stroke_nl
            over_cmd = self.seg_cmd - self.seg_ideal_nl
            over = self.seg_dlv - self.seg_ideal_nl
            m = under if under > over else over
            if m > self.max_err:
                self.max_err = m
            m = under_cmd if under_cmd > over_cmd else over_cmd
            if m > self.max_err_cmd:
                self.max_err_cmd = m
        # Rolling 24 h of truth, window (t - 24 h, t].
        self.win_t.append(t)
        self.win_v.append(vol)
        m = vol * self.conc_mult
        self.win_m.append(m)
        s = self.win_sum + vol
        ms = self.win_msum + m
        h = self.win_head
        limit = t - DAY_MS
        wt = self.win_t
        while wt[h] <= limit:
            s -= self.win_v[h]
            ms -= self.win_m[h]
            h += 1
        if h > 4096:
            del self.win_t[:h]
            del self.win_v[:h]
            del self.win_m[:h]
            h = 0
        self.win_head = h
        self.win_sum = s
        self.win_msum = ms
        if s > self.max_24h:
            self.max_24h = s
        if ms > self.period_max:
            self.period_max = ms
        self._record(t, 0, vol, 0)

    def on_event(self, code, a, b):
        self._settle()
        t = self.t
        if code == codes.EV_PB_START:
            self.pb_delivered += 1
            self.boluses.append([t, a, self.pb_dur_ms, 0])
        elif code == codes.EV_CB_START:
            self.boluses.append([t, a, b, 0])
        elif code == codes.EV_PB_DENIED:
            self.pb_denied += 1
            name = codes.REASON_NAMES.get(a, str(a))
            self.denials[name] = self.denials.get(name, 0) + 1
        elif code == codes.EV_BOLUS_END and b:
            self.boluses = []  # cut short: the rest of the bolus is no longer meant
            self._break()
        elif code == codes.EV_ALARM:
            self.alarms.append([t // 1000, codes.ALARM_NAMES.get(a, str(a)), codes.priority(a)])
            if a == codes.AL_OCCLUSION and self.occlusions and self.occlusions[-1][2] < 0:
                occ = self.occlusions[-1]
                occ[1] = self.plant.occluded_strokes
                occ[2] = t
            self.active_alarms |= 1 << a
            self._break()
        elif code == codes.EV_ALARM_CLEAR:
            self.active_alarms &= ~(1 << a)
            if not self.active_alarms:
                self._anchor()
        elif code == codes.EV_STOP:
            self.stopped = True
            self._break()
        elif code == codes.EV_RESUME:
            self.stopped = False
            self._anchor()
        elif code == codes.EV_PROGRAM:
            # A new prescription restarts the stroke clock: the error is measured from here.
            if not self.active_alarms and not self.stopped:
                self._anchor()
        if self.sample_ms:
            self.marks.append([t, code, a, b])
        self._record(t, code, a, b)

    def _record(self, t, code, a, b):
        self.hash = (self.hash * 1000003 + t * 31 + code * 7 + a * 3 + b) % HASH_MOD
        if self.want_trace:
            self.trace.append([t, code, a, b])

    # ---- what the firmware refused, and the limits in force --------------------------------
    def _refuse(self, action, reason):
        self.refused.append([self.t, action, codes.REASON_NAMES.get(reason, str(reason))])

    def _period(self, params):
        """A new prescription or concentration: a new limit period from now."""
        self._settle()
        if self.periods:
            self.periods[-1][4] = self.period_max
        self.period_max = self.win_msum  # windows ending from now still hold what came before
        rx = self.pump.rx if self.pump is not None else None
        cap = rx.max_daily_nl if rx is not None else 0
        self.periods.append([self.t, params["conc_ng_ml"], params["max_daily_ng"], cap, 0])

    def _new_conc(self, conc):
        self._settle()
        self.concs.append([self.t, conc, self.delivered_nl, self.ideal_nl])
        self.conc_mult = conc // self.conc_unit

    # ---- life cycle ------------------------------------------------------------------------
    def _boot(self):
        self.boot_t = self.t
        self.boluses = []
        self.active_alarms = 0
        th = Therapy(self.hal, self.log, self.hal.save_state, self.flash.keep_journal)
        self.th = th
        self.pump = th.pump
        fl = self.flash
        state, damaged = fl.load()
        lost = not self.clock_kept
        self.clock_kept = True
        if lost:
            # A board without a kept clock (a Pico) restarts it after a power cut: the pump
            # carries on from the clock saved with its last record (firmware/app.py does the
            # same), so its clock, and its schedule with it, are behind by the time it was off.
            saved = state_clock_ts(state)
            if saved >= 0:
                self.clock_shift += saved * 1000 - (self.tod0 + self.t + self.clock_shift)
                self._find_step(self.t)
        th.boot(self.ticks(self.t), self.tod(self.t), fl.params, state, self.boot_cause,
                damaged, -1 if lost else self.clock_ts(self.t), fl.journal_saved)
        if lost:
            self.log.add(codes.EV_CLOCK_LOST, 0, 0, 0)
            th.sup.raise_alarm(codes.AL_CLOCK_LOST, self.ticks(self.t))
        self.boot_cause = 0
        self.stopped = th.pump.stopped
        self.active_alarms = th.sup.alarms  # alarms kept from before the restart
        self._anchor()
        if self.active_alarms & codes.CRITICAL_MASK:
            self._break()

    def _running(self):
        """The firmware's timing core running now (there is one whenever the board is
        powered)."""
        pump = self.pump
        if pump is None:
            raise RuntimeError("the pump is off")
        return pump

    def _therapy(self):
        """The firmware's therapy room running now (its verbs: refill, program, ...)."""
        th = self.th
        if th is None:
            raise RuntimeError("the pump is off")
        return th

    def _shutdown(self, clean, hung=False):
        pump = self._running()
        if not hung:
            pump.service(self.ticks(self.t))
        self._settle()
        self.missed += pump.missed
        if clean:
            self._therapy().save(True)
        fl = self.flash
        self.reservoir_account = state_reservoir_nl(fl.state)
        fl.commit()
        self.pump = None
        self.boluses = []

    def _apply(self, ev):
        action = ev[1]
        args = ev[2]
        pump = self.th if self.pump is not None else None
        now = self.ticks(self.t)
        if self.sample_ms:
            self.acts.append([self.t, action])
        if action == "patient_bolus":
            self.pb_requested += 1
            if pump is None:
                self.pb_denied += 1
                self.denials["no_power"] = self.denials.get("no_power", 0) + 1
            else:
                pump.patient_bolus(now)
        elif pump is None:
            self._record(self.t, 100, 0, 0)  # the pump is off: nothing else can reach it
            if action in CLINICIAN_ACTIONS:
                self.refused.append([self.t, action, "no_power"])
        elif action == "program":
            params = args["rx"]
            try:
                pump.program(now, params, args.get("assume_ng", -1))
            except RxError:
                self._record(self.t, 101, 0, 0)  # refused: the old prescription runs on
                self._refuse(action, codes.R_BAD_VALUE)
            else:
                self._settle()
                self._set_rx(params)
                self.flash.params = params
                self._find_step(self.t)
                self._period(params)
        elif action == "clinician_bolus":
            r = pump.clinician_bolus(now, args["dose_nl"], args.get("duration_ms", 0))
            if r:
                self._refuse(action, r)
        elif action == "refill":
            conc = args.get("conc_ng_ml", 0)
            # The clinician saw the bridge volume (the patient's catheter) the host showed and
            # confirmed it.
            r = pump.refill(now, args["volume_nl"], conc, args.get("residual_nl", -1),
                            catheter_nl(self.rx_params) if conc else -1,
                            args.get("stable_s", 0))
            if r:
                self._refuse(action, r)
            elif conc and conc != self.rx_params["conc_ng_ml"]:
                self._settle()
                params = {}
                for k in self.rx_params:
                    params[k] = self.rx_params[k]
                params["conc_ng_ml"] = conc
                self._set_rx(params)
                self.flash.params = params
                self._find_step(self.t)
                self._new_conc(conc)
                self._period(params)
            self.plant.reservoir_nl = args["volume_nl"]
        elif action == "reboot":
            self._shutdown(True)
            self._boot()
        elif action == "power_loss":
            self._shutdown(False)
            self.clock_kept = getattr(self.board, "CLOCK_KEPT", True)  # a Pico's is lost
            self.powered = False
            self.power_on_at = self.t + args["for_ms"]
        elif action == "stop":
            pump.stop(now, args.get("for_ms", 0))
        elif action == "resume":
            pump.resume(now)
        elif action in PLANT_FAULTS:
            released = plant_fault(self.plant, self.t, action, args)
            if action == "occlusion":
                self.occlusions.append([self.t, -1, -1, -1])
            elif action == "clear_occlusion" and self.occlusions and self.occlusions[-1][3] < 0:
                self.occlusions[-1][3] = released
        elif action == "set_clock":
            shift = args["shift_ms"]
            self._settle()
            self.clock_shift += shift
            pump.set_time_of_day(now, self.tod(self.t), self.clock_ts(self.t))
            self._find_step(self.t)
        elif action == "ack":
            for code in codes.ALARM_NAMES:
                if codes.ALARM_NAMES[code] == args["alarm"]:
                    if not pump.ack(now, code):
                        self.refused.append([self.t, action, "not_active"])
        elif action == "corrupt_flash":
            self.flash.failing = True  # the records are found damaged at the next boot
        elif action == "flash_failing":
            self.flash.fail_writes(bool(args.get("on", True)))
        elif action == "hang":
            # The loop stops; the watchdog resets the board when its timeout runs out.
            self._shutdown(False, True)
            self.clock_kept = getattr(self.board, "CLOCK_KEPT", True)
            self.powered = False
            self.boot_cause = 1
            self.power_on_at = self.t + self.board.WDT_TIMEOUT_MS
        else:
            raise ValueError("unsupported action " + action)

    @micropython.native
    def _strokes_until(self, horizon):
        """The hot loop: wake the firmware at each deadline it asks for, before `horizon` (the
        next scenario event or basal step). Accounting waits for _settle()."""
        pump = self._running()
        plant = self.plant
        base = self.ticks0 - self.boot_t
        tn = self.t + pump.next_in_ms((base + self.t) & _TICKS_MASK)
        while tn < horizon:
            self.t = tn
            plant.t = tn
            tn += pump.service((base + tn) & _TICKS_MASK)

    def run(self):
        self.flash.params = self.rx_params
        self._find_step(0)
        self._boot()
        # The scenario's starting reservoir is the pump's first fill.
        r = self._therapy().refill(self.ticks(0), self.plan["reservoir_nl"], 0, -1, -1,
                             self.plan.get("fill_stable_s", 0))
        if r:
            self._refuse("refill", r)  # the scenario's starting reservoir
        self._period(self.rx_params)
        self._therapy().save()
        events = self.events
        n = len(events)
        i = 0
        end = self.end
        while True:
            nxt = end
            if i < n and events[i][0] < nxt:
                nxt = events[i][0]
            if self.t >= self.step_end:
                self._find_step(self.t)
            if self.powered:
                self._strokes_until(nxt if nxt < self.step_end else self.step_end)
            t = self.t
            if self.powered:
                wait = t + self._running().next_in_ms(self.ticks(t))
                if wait < nxt:
                    nxt = wait
                if self.step_end < nxt:
                    nxt = self.step_end
            elif self.power_on_at < nxt:
                nxt = self.power_on_at
            self._settle()
            self.t = nxt
            self.plant.t = nxt
            if self.powered:
                self._running().service(self.ticks(nxt))
                self._settle()
            elif nxt >= self.power_on_at:
                self._settle()  # the time off is not time the pump was meant to deliver
                self.powered = True
                self._boot()
            while i < n and events[i][0] <= nxt:
                self._apply(events[i])
                i += 1
            if nxt >= end:
                break
        self.account_24h = -1
        if self.pump is not None:
            self.reservoir_account = self._therapy().reservoir.nl
            self.account_24h = self._therapy().guard.given_nl(self.stroke_nl)
            self.missed += self.pump.missed
        if self.sample_ms:
            self._sample_before(end + 1)
        self._settle()
        self.periods[-1][4] = self.period_max
        return self.summary()

    def summary(self):
        out = self._summary()
        if self.sample_ms:
            out["series"] = self.sampled()
        return out

    def _summary(self):
        return {
            "duration_s": self.end // 1000,
            "stroke_nl": self.stroke_nl,
            "strokes": self.strokes,
            "delivered_nl": self.delivered_nl,
            "ideal_nl": self.ideal_nl + (1 if self.ideal_frac * 2 >= DAY_MS else 0),
            "max_abs_error_nl": self.max_err,
            "max_abs_error_commanded_nl": self.max_err_cmd,
            "max_rolling_24h_nl": self.max_24h,
            "patient_boluses": {"requested": self.pb_requested, "delivered": self.pb_delivered,
                                "denied": self.pb_denied, "denied_by_reason": self.denials},
            "alarms": [{"t_s": a[0], "code": a[1], "priority": a[2]} for a in self.alarms],
            "reservoir_nl": self.reservoir_account,
            "account_24h_nl": self.account_24h,   # the pump's own last 24 h at the end
            "plant_reservoir_nl": self.plant.reservoir_nl,
            "flash_saves": self.flash.saves,
            "flash_failed_saves": self.flash.failed_saves,
            "missed_strokes": self.missed,
            "trace_hash": self.hash,
            "tones": {"critical": self.tones[0], "warning": self.tones[1]},
            "tone_trace": self.tone_trace,
            "occlusions": [{"t_s": o[0] // 1000, "strokes_to_alarm": o[1],
                            "time_to_alarm_s": (o[2] - o[0]) // 1000 if o[2] >= 0 else -1,
                            "released_nl": o[3]} for o in self.occlusions],
            "plant_pressure_kpa": self.plant.pressure(self.t) // 1000,
            "board": self.board.NAME,
            "catheter_nl": self.board.CATHETER_NL,
            "refused": [{"t_s": r[0] // 1000, "action": r[1], "reason": r[2]}
                        for r in self.refused],
            "concentrations": [{"t_s": c[0] // 1000, "conc_ng_ml": c[1], "delivered_nl": c[2],
                                "ideal_nl": c[3]} for c in self.concs],
            "limit_periods": [{"t_s": p[0] // 1000, "conc_ng_ml": p[1], "max_daily_ng": p[2],
                               "cap_nl": p[3], "max_rolling_24h_ng":
                                   p[4] * self.conc_unit // 1000000}
                              for p in self.periods],
        }

    def sampled(self):
        """The sampled series of a run with plan["sample_ms"] (see SERIES_COLUMNS)."""
        return {"sample_ms": self.sample_ms, "columns": SERIES_COLUMNS, "rows": self.series,
                "events": self.marks, "actions": self.acts}


# One row per sample: time (ms from the start); delivered (truth, nL); the ideal as
# ideal_nl + ideal_frac / 86400000; the plant's reservoir (nL); the highest outlet pressure since
# the previous sample (Pa); the programmed basal rate and the ideal total rate (basal and
# boluses, 0 while not delivering), nL/day; the active alarms (bit mask); delivering (1/0).
SERIES_COLUMNS = ["t_ms", "delivered_nl", "ideal_nl", "ideal_frac", "reservoir_nl",
                  "pressure_pa", "basal_nl_day", "rate_nl_day", "alarms", "delivering"]
