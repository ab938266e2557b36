"""The bench around the emulated Pico's pins: what the firmware's pins drive and read, over the
simulated plant that the other runtimes use (sim/engine.py's `Plant`).

The chip (sim/rp2/chip.mjs) handles the electrical side: the TMC2209's UART, counting step
pulses while EN is active, raising DIAG, observing the buzzer's PWM registers. It reports what
happened to this object, which keeps the physical truth:

- a stroke window (EN active, then inactive) with the pulses the driver received: the pump head
  moves the plant's stroke volume for a whole stroke, a share of it for a cut-short one, and
  nothing while it is jammed (`motor_stall`);
- an ADC conversion on the pressure or the battery channel: the plant's reading at that instant
  (the catheter's pressure after the strokes pushed into it, the battery's voltage), as the
  16-bit value MicroPython's read_u16() scales to;
- a change of the buzzer's frequency: a new tone pattern when it starts from silence, told apart
  by its first frequency (firmware/codes.py TONE_PATTERNS).

Virtual time is the chip's emulated time in ms since `pumpsim board` started, carried across
watchdog resets and power cuts.
"""

from __future__ import annotations

import json
from pathlib import Path

from firmware import codes
from sim.engine import BAT_DAY_DRAIN, DAY_MS, PLANT_FAULTS, Plant, Rng, plant_fault
from sim.faults import DRIVER_FAULTS, DRIVER_STOPS

STALL_AT_STEP = 5   # StallGuard needs a few steps of a jammed rotor before DIAG rises
TONE_GAP_MS = 20    # silence shorter than this is a change of note inside one pattern


class Bench:
    def __init__(self, board, flash_dir: Path, seed: int):
        self.board = board
        self.steps_per_stroke = board.STEPS_PER_STROKE
        self.plant = Plant(board.STROKE_NL, 0, board.RESERVOIR_NL, Rng(seed), board, 0, seed)
        self.path = Path(flash_dir) / "plant.json"
        self.t = 0                  # the latest virtual time the chip reported (ms)
        self.delivered_nl = 0
        self.pulses = 0             # step pulses the driver received while enabled
        self.windows = 0            # stroke windows (EN active, then inactive)
        self.stalled_windows = 0    # ... of which the head was jammed
        self.stall_at_step = STALL_AT_STEP
        self.tones = [0, 0]         # critical, warning patterns started
        self.tone_trace: list[list[int]] = []   # [virtual_time_s, pattern]
        self.sounding = False
        self.silent_at = -TONE_GAP_MS
        self.boots = 0
        self.watchdog_resets = 0    # the watchdog's timer ran out
        self.resets = 0             # the firmware reset the chip (machine.reset())
        self.boot_t = 0             # when the chip last started (virtual ms)
        self.boot_to_stroke_ms = None   # from then to its first stroke (the chip's clock)
        self._load()

    # ---- persistence: the physical world outlives the board process -------------------------
    def _load(self) -> None:
        try:
            st = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        self.plant.reservoir_nl = st["reservoir_nl"]
        self.plant.charge = st["charge"]
        self.delivered_nl = st["delivered_nl"]
        self.pulses = st["pulses"]

    def save(self) -> None:
        p = self.plant
        charge = p.charge - (self.t - p.charge_t) * BAT_DAY_DRAIN // DAY_MS
        st = {"reservoir_nl": p.reservoir_nl, "charge": max(charge, 0),
              "delivered_nl": self.delivered_nl, "pulses": self.pulses}
        self.path.write_text(json.dumps(st))

    # ---- what the chip reports ---------------------------------------------------------------
    def at(self, t: int) -> None:
        if t > self.t:
            self.t = t

    def adc(self, what: str, t: int) -> int:
        """The 16-bit reading of the pressure or the battery channel at virtual time t."""
        self.at(t)
        if what == "pressure":
            return self.plant.read_pressure(self.t)
        if what == "die":
            return self.plant.read_die_temp()
        return self.plant.read_battery(self.t)

    def stroke(self, t: int, pulses: int) -> None:
        """The driver was enabled for `pulses` step pulses, then disabled."""
        self.at(t)
        if self.boot_to_stroke_ms is None:
            self.boot_to_stroke_ms = self.t - self.boot_t
        self.pulses += pulses
        self.windows += 1
        p = self.plant
        if p.stalled:
            self.stalled_windows += 1
            return   # a jammed head moves nothing
        full = p.stroke()
        moved = full if pulses >= self.steps_per_stroke else full * pulses // self.steps_per_stroke
        p.reservoir_nl += full - moved
        self.delivered_nl += moved
        p.push(self.t)

    def tone(self, t: int, hz: int) -> None:
        """The buzzer's frequency changed (0: silent). A pattern starts when it sounds after a
        real silence; while the firmware changes note the registers pass through silent or odd
        states for no time at all."""
        self.at(t)
        if hz and not self.sounding and self.t - self.silent_at >= TONE_GAP_MS:
            pattern = self._pattern(hz)
            if pattern:
                self.tones[pattern - 1] += 1
                self.tone_trace.append([self.t // 1000, pattern])
        if not hz and self.sounding:
            self.silent_at = self.t
        self.sounding = hz > 0

    @staticmethod
    def _pattern(hz: int) -> int:
        for pattern, steps in codes.TONE_PATTERNS.items():
            if abs(steps[0][0] - hz) * 50 <= steps[0][0]:   # within 2 %: the PWM divider rounds
                return pattern
        return 0

    def booted(self, t: int, cause: str) -> None:
        """The chip started: "power", "watchdog" (its timer ran out: the firmware stopped
        feeding it) or "reset" (the firmware forced the reset through the watchdog's trigger,
        as machine.reset() does on the RP2040: an update's switch, maintenance)."""
        self.at(t)
        self.boots += 1
        self.boot_t = self.t
        self.boot_to_stroke_ms = None
        if cause == "watchdog":
            self.watchdog_resets += 1
        elif cause == "reset":
            self.resets += 1

    # ---- harness actions on the plant ----------------------------------------------------------
    def fault(self, action: str, args: dict) -> dict:
        released = plant_fault(self.plant, self.t, action, args)
        return {"ok": True, "released_nl": released}

    def chip_faults(self) -> list[dict]:
        """The chip's requests that put the plant's driver and RAM faults on its pins and in
        its RAM (sent again to each new chip: a broken part outlives a power cut)."""
        p = self.plant
        flags = DRIVER_FAULTS[p.driver]
        ram = p.ram
        return [{"op": "driver", "flags": max(flags, 0), "silent": flags < 0,
                 "diag": p.driver in DRIVER_STOPS},
                {"op": "ram", "on": ram.cell >= 0, "cell": ram.cell,
                 "bit": (0xFFFF & ~ram.keep).bit_length() - 1}]

    def refill(self, volume_nl: int) -> None:
        self.plant.reservoir_nl = volume_nl

    def truth(self) -> dict:
        p = self.plant
        return {"ok": True, "delivered_nl": self.delivered_nl, "reservoir_nl": p.reservoir_nl,
                "pressure_kpa": p.pressure(self.t) // 1000, "virtual_time_s": self.t // 1000,
                "strokes": self.pulses // self.steps_per_stroke, "pulses": self.pulses,
                "stroke_windows": self.windows, "failed_strokes": self.stalled_windows,
                "battery_mv": p.battery_mv(self.t), "tones": list(self.tones),
                "tone_trace": [list(x) for x in self.tone_trace], "boots": self.boots,
                "watchdog_resets": self.watchdog_resets, "resets": self.resets,
                "boot_to_stroke_ms": self.boot_to_stroke_ms}


__all__ = ["Bench", "PLANT_FAULTS", "STALL_AT_STEP"]
