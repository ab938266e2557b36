# The virtual Pico's board: the HAL that firmware/app.py runs on inside the MicroPython VM (or
# CPython), backed by the simulated plant, a flash directory and virtual time.
#
# Runs on MicroPython's unix port and CPython alike (sim/vboard_main.py starts it). The serial
# line is a file descriptor (the pseudo-terminal's master side, set non-blocking by
# sim/board.py); the harness channel is a pair of pipes carrying one JSON object per line.
#
# Virtual time: the firmware sleeps through hal.wait(ms). At --speed N the board sleeps ms/N
# real milliseconds (less if a byte arrives) and moves virtual time on by what passed times N;
# at --speed max (0) it does not sleep at all. `advance` from the harness runs virtual time
# forward without sleeping, still answering the serial line, and replies when it is done.
import json
import select
import sys
import time
from array import array

from firmware import codes
from firmware.codes import DONE, NOT_DONE, UNCERTAIN
from firmware.compat import TYPE_CHECKING
from firmware.store import FileDev
from firmware.ticks import MASK
from sim.engine import (BAT_DAY_DRAIN, DAY_MS, PARTWAY, PLANT_FAULTS, TONE_TRACE_MAX, Plant, Rng,
                        plant_fault)

if TYPE_CHECKING:
    from firmware.hal import BoardData as _Data
else:
    _Data = object  # the board's constants are copied in at run time

CPYTHON = sys.implementation.name == "cpython"
BUTTON_HOLD_MS = 5000


class Reset(Exception):
    """The board resets: cause 0 (reset, power cycle) or 1 (the watchdog bit)."""

    def __init__(self, cause, clean=False):
        super().__init__("reset")
        self.cause = cause
        self.clean = clean


class Shutdown(Exception):
    """The harness asked the board process to save the plant and exit."""


class FlashDev(FileDev):
    """The flash directory, whose state-record writes can be made to fail (`flash_failing`):
    a worn sector under the pump's state record. The other records keep working, so the
    clinician can still reach the pump while its saves fail."""

    failing = False

    def write(self, path, data):
        if self.failing and path.startswith("state."):
            raise OSError(5, "EIO")
        FileDev.write(self, path, data)


def _now_real():
    return time.ticks_ms() if hasattr(time, "ticks_ms") else int(time.monotonic() * 1000)


def _real_diff(a, b):
    if hasattr(time, "ticks_diff"):
        return time.ticks_diff(a, b)
    return a - b


class VirtualHal(_Data):
    """The virtual Pico's board (the contract: firmware/hal.pyi)."""

    def __init__(self, board, flash_dir, ser_fd, ctl_in_fd, ctl_out_fd, speed, clock0_ts, seed):
        for name in dir(board):
            if name.isupper():
                setattr(self, name, getattr(board, name))
        self.flash_dir = flash_dir
        self.dev = FlashDev(flash_dir + "/data")
        self.speed = speed          # 0: as fast as possible
        self.vt = 0                 # virtual ms since this board process started
        self.ticks0 = 0x3FFF0000    # ticks wrap early in a run, as they do after ~12 days
        self.clock0_ts = clock0_ts  # pump clock at vt == 0
        self.clock_off = 0
        self.cause = 0
        self.wdt_ms = 0
        self.fed_at = 0
        self.hung = False
        self.target = -1            # vt an `advance` runs to (-1: none)
        self.pending = None         # a harness action that ends the firmware's run (reset...)
        self.tones = [0, 0]
        # [virtual_time_s, pattern] of each tone (the first TONE_TRACE_MAX), packed: a thousand
        # small lists kept alive across the heap would fragment the VM's memory
        self.tone_t = array("i", [0] * TONE_TRACE_MAX)
        self.tone_p = bytearray(TONE_TRACE_MAX)
        self.tone_n = 0
        self.delivered_nl = 0
        self.strokes = 0
        self.failed_strokes = 0
        self.uncertain_strokes = 0
        self.plant = Plant(board.STROKE_NL, 0, board.RESERVOIR_NL, Rng(seed), board, 0, seed)
        self.ser_in = _fdopen(ser_fd, "rb")
        self.ser_out = _fdopen(ser_fd, "wb")
        self.ctl_in = _fdopen(ctl_in_fd, "rb")
        self.ctl_out = _fdopen(ctl_out_fd, "wb")
        self.poller = select.poll()
        self.poller.register(self.ser_in, select.POLLIN)
        self.poller.register(self.ctl_in, select.POLLIN)
        self.ctl_buf = b""
        self.ser_ready = False
        self.button_until = -1      # vt until which the provisioning button is held
        self.app = None             # the running firmware's App (attach), for the harness
        self._load_plant()

    def attach(self, app):
        """firmware.app.main's `started`: the harness's shortcuts reach the pump through it."""
        self.app = app

    # ---- persistence of the physical world (the reservoir holds what it holds) ------------
    def _plant_path(self):
        return self.flash_dir + "/plant.json"

    def _load_plant(self):
        try:
            with open(self._plant_path()) as f:
                st = json.load(f)
        except (OSError, ValueError):
            return
        p = self.plant
        p.reservoir_nl = st["reservoir_nl"]
        p.charge = st["charge"]
        self.delivered_nl = st["delivered_nl"]
        self.strokes = st["strokes"]
        self.clock_off = st.get("clock_off", 0)
        # The pump clock never runs backwards across a restart of the board process (after a
        # flash, or `pumpsim board` started again): virtual time that ran faster than real time
        # is kept, so the log's stamps keep rising.
        last = st.get("clock_ts", 0)
        if self.clock_ts() < last:
            self.clock_off = last - self.clock0_ts

    def save_plant(self):
        p = self.plant
        charge = p.charge - (self.vt - p.charge_t) * BAT_DAY_DRAIN // DAY_MS
        st = {"reservoir_nl": p.reservoir_nl, "charge": charge if charge > 0 else 0,
              "delivered_nl": self.delivered_nl, "strokes": self.strokes,
              "clock_off": self.clock_off, "clock_ts": self.clock_ts()}
        with open(self._plant_path(), "w") as f:
            f.write(json.dumps(st))

    # ---- the HAL contract (boards/__init__.py) --------------------------------------------
    def ticks_ms(self):
        return (self.ticks0 + self.vt) & MASK

    def clock_ts(self):
        return self.clock0_ts + self.clock_off + self.vt // 1000

    def set_clock_ts(self, ts):
        self.clock_off = ts - self.clock0_ts - self.vt // 1000

    def reset_cause(self):
        return self.cause

    def stroke(self):
        p = self.plant
        if p.stalled == PARTWAY:
            # Stalls half way: half the stroke reaches the patient, and the driver can only
            # say it stalled (boards/__init__.py: 2, uncertain).
            p.stalled = True
            p.half_next = True
            vol = p.stroke()
            p.push(self.vt)
            self.delivered_nl += vol
            self.uncertain_strokes += 1
            return UNCERTAIN
        if p.stalled:
            self.failed_strokes += 1
            return NOT_DONE
        vol = p.stroke()
        p.push(self.vt)
        self.delivered_nl += vol
        self.strokes += 1
        return DONE

    def read_pressure(self):
        return self.plant.read_pressure(self.vt)

    def read_battery(self):
        return self.plant.read_battery(self.vt)

    def driver_status(self):
        return self.plant.driver_status()

    def read_die_temp(self):
        return self.plant.read_die_temp()

    def test_ram(self):
        return self.plant.test_ram()

    def driver_version(self):
        return self.plant.driver_version()

    def buzzer_check(self):
        return True

    def watchdog_test(self, timeout_ms):
        # The board's watchdog is the check in wait(); the test's reset is one it asked for.
        self.vt += timeout_ms
        raise Reset(2)

    def tone(self, pattern):
        self.tones[pattern - 1] += 1
        n = self.tone_n
        if n < TONE_TRACE_MAX:
            self.tone_t[n] = self.vt // 1000
            self.tone_p[n] = pattern
            self.tone_n = n + 1

    def led(self, on):
        pass

    def start_watchdog(self, timeout_ms):
        self.wdt_ms = timeout_ms
        self.fed_at = self.vt

    def feed(self):
        self.fed_at = self.vt

    def uid(self):
        data = self.dev.read("uid")
        if data is None:
            rng = Rng(_now_real() & 0xFFFFFF)
            data = ("%08x%08x" % (rng.below(1 << 30), rng.below(1 << 30))).encode()
            self.dev.write("uid", data)
        return data.decode()

    def storage(self):
        return self.dev

    def reset(self):
        raise Reset(0)

    def button_held(self):
        return self.vt < self.button_until

    def read_byte(self):
        if not self.ser_ready:
            return -1
        try:
            b = self.ser_in.read(1)
        except OSError:
            b = None
        if not b:
            self.ser_ready = False
            return -1
        return b[0]

    def read_into(self, buf):
        if not self.ser_ready:
            return 0
        try:
            n = self.ser_in.readinto(buf)   # the line is non-blocking: what is there
        except OSError:
            n = None
        if not n or n < len(buf):
            self.ser_ready = False          # all of it taken: wait() looks again
        return n or 0

    def write(self, data):
        try:
            self.ser_out.write(data)
        except OSError:
            pass  # nobody reads the line and its buffer is full: drop, as USB CDC does

    def wait(self, ms):
        """Sleep up to ms of virtual time, or until the serial line has a byte or the harness
        acts (then True: the loop looks at the line and the pump; False: nothing happened)."""
        if self.pending is not None:
            self._fire()
        if self.hung:
            # The loop is stuck: nothing feeds the watchdog, which resets the board.
            left = self.wdt_ms - (self.vt - self.fed_at)
            self.vt += left if left > 0 else 0
            self.hung = False
            raise Reset(1)
        if self.wdt_ms and self.vt - self.fed_at > self.wdt_ms:
            raise Reset(1)
        real = 0 if self.target >= 0 or self.speed == 0 else (ms + self.speed - 1) // self.speed
        t0 = _now_real()
        events = self.poller.poll(real)
        ser = False
        acted = False
        for ev in events:
            if ev[0] is self.ser_in or ev[0] == self.ser_in.fileno():
                ser = bool(ev[1] & select.POLLIN)
            else:
                self._control()
                acted = True
        self.ser_ready = ser
        if self.target >= 0:
            step = ms if not ser else 0
            if self.vt + step >= self.target:
                step = self.target - self.vt
                self.vt = self.target
                self.target = -1
                self._reply({"ok": True, "virtual_time_s": self.vt // 1000})
            else:
                self.vt += step
        elif self.speed == 0:
            self.vt += 0 if ser else ms
        else:
            spent = _real_diff(_now_real(), t0) * self.speed
            self.vt += ms if not ser and spent >= ms else min(spent, ms)
        return ser or acted

    # ---- the harness channel ----------------------------------------------------------------
    def _reply(self, obj):
        self.ctl_out.write((json.dumps(obj) + "\n").encode())

    def _control(self):
        # MicroPython's read(n) on a pipe waits for all n bytes: take one per wake-up there
        chunk = self.ctl_in.read(4096) if CPYTHON else self.ctl_in.read(1)
        if not chunk:
            raise Shutdown()
        self.ctl_buf += chunk
        while b"\n" in self.ctl_buf:
            line, self.ctl_buf = self.ctl_buf.split(b"\n", 1)
            try:
                self._act(json.loads(line))
            except (Reset, Shutdown):
                raise
            except Exception as e:
                self._reply({"ok": False, "error": repr(e)})

    def truth(self):
        p = self.plant
        return {"ok": True, "delivered_nl": self.delivered_nl, "reservoir_nl": p.reservoir_nl,
                "pressure_kpa": p.pressure(self.vt) // 1000, "virtual_time_s": self.vt // 1000,
                "strokes": self.strokes, "failed_strokes": self.failed_strokes,
                "uncertain_strokes": self.uncertain_strokes,
                "battery_mv": p.battery_mv(self.vt), "tones": self.tones,
                "tone_trace": [[self.tone_t[i], self.tone_p[i]] for i in range(self.tone_n)],
                "flash_failing": self.dev.failing,
                "clock_ts": self.clock_ts()}

    def _act(self, req):
        do = req["do"]
        args = req.get("args", {})
        if "at_program" in args or "at_step" in args:
            self._reply({"ok": False, "error": "at_program and at_step: only the emulated Pico "
                         "(pumpsim board --runtime rp2) cuts the power inside a flash write or "
                         "stalls the motor at a chosen step"})
            return
        if do == "truth":
            self._reply(self.truth())
        elif do == "advance":
            ms = args["ms"]
            if ms <= 0:
                self._reply({"ok": True, "virtual_time_s": self.vt // 1000})
            else:
                self.target = self.vt + ms  # replies when virtual time gets there
        elif do in PLANT_FAULTS:
            released = plant_fault(self.plant, self.vt, do, args)
            self._reply({"ok": True, "released_nl": released})
        elif do == "refill":
            # The clinician fills the reservoir through the septum; recording it in the pump is
            # `pumpctl refill`, a separate step (as on a real pump).
            self.plant.reservoir_nl = args["volume_nl"]
            self._reply({"ok": True})
        elif do == "flash_failing":
            self.dev.failing = bool(args.get("on", True))
            self._reply({"ok": True})
        elif do == "set_clock":
            self.clock_off += args["shift_ms"] // 1000  # the RTC jumps; the pump reads it at boot
            self._reply({"ok": True})
        elif do in ("patient_bolus", "stop", "resume", "ack"):
            self._harness_pump(do, args)
        elif do == "corrupt_code" and self._code_victim() is None:
            self._reply({"ok": False, "error": "corrupt_code: no firmware in this board's flash "
                         "directory (it runs the repository's tree, which is never changed): "
                         "`make flash` one first"})
        elif do in ("reboot", "power_loss", "hang", "corrupt_flash", "shutdown", "button",
                    "corrupt_keys", "corrupt_code"):
            self.pending = req
            self._reply({"ok": True})
        else:
            self._reply({"ok": False, "error": "unknown action " + str(do)})

    def _harness_pump(self, do, args):
        """The patient's button, and shortcuts a test harness may take past the protocol."""
        th = self.app.therapy
        now = self.ticks_ms()
        if do == "patient_bolus":
            r = th.patient_bolus(now)
            self._reply({"ok": r == 0, "reason": codes.REASON_NAMES.get(r, "")})
            return
        if do == "stop":
            th.stop(now, args.get("for_ms", 0))
        elif do == "resume":
            th.resume(now)
        else:
            for code in codes.ALARM_NAMES:
                if codes.ALARM_NAMES[code] == args.get("alarm"):
                    th.ack(now, code)
        self._reply({"ok": True})

    def _fire(self):
        req = self.pending
        self.pending = None
        do = req["do"]
        if do == "shutdown":
            raise Shutdown()
        if do == "reboot":
            raise Reset(0, True)
        if do == "hang":
            self.hung = True
            return
        if do == "button":
            # A person power-cycles the pump holding its button for BUTTON_HOLD_MS.
            self.button_until = self.vt + BUTTON_HOLD_MS
            raise Reset(0)
        if do == "corrupt_keys":
            self._corrupt(("auth.a", "auth.b"))
            raise Reset(0)
        if do == "corrupt_flash":
            self._corrupt(("state.a", "state.b", "settings.a", "settings.b"))
            raise Reset(0)
        if do == "corrupt_code":
            self._corrupt_code()
            raise Reset(0)
        if do == "power_loss":
            self.vt += req.get("args", {}).get("for_ms", 0)
            raise Reset(0)


    def _code_victim(self):
        """The file corrupt_code changes: firmware/march of the firmware running now (the
        directory the loader imported the package from), when that is in the flash directory;
        None when the board runs the repository's own tree."""
        import firmware

        pkg = firmware.__file__
        root = pkg[:pkg.rfind("/firmware/") + 1]
        if not root.startswith(self.flash_dir + "/"):
            return None
        for name in ("firmware/march.mpy", "firmware/march.py"):
            try:
                with open(root + name, "rb"):
                    return root + name
            except OSError:
                pass
        return None

    def _corrupt_code(self):
        """A file of the running firmware changes while the board is off (as sim/rp2flash.py's
        damage_code on the emulated Pico): a newline more at its end, which it still runs with,
        but which its manifest's size and SHA-256 no longer match."""
        path = self._code_victim()
        if path is not None:
            with open(path, "ab") as f:
                f.write(b"\n")

    def _corrupt(self, names):
        for name in names:
            data = self.dev.read(name)
            if data:
                buf = bytearray(data)
                buf[len(buf) // 2] ^= 0x5A
                self.dev.write(name, bytes(buf))


def _fdopen(fd, mode):
    """An unbuffered file object on a descriptor (MicroPython's are unbuffered already)."""
    return open(fd, mode, 0) if CPYTHON else open(fd, mode)
