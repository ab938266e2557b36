# The interlocks' sensing: outlet pressure around each stroke and the battery, read through the
# board's ADCs and judged with board data only. Integers throughout; no allocation after
# construction, so the stroke path may call it with the heap locked.
#
# Pressure. Before a stroke the outlet pressure should have fallen back to about zero through
# the open catheter; a residual of OCCLUSION_PA means the last strokes had nowhere to go. Right
# after a stroke it should have risen by about STROKE_RISE_PA: a sensor whose reading does not
# follow the strokes (stuck) or jumps far beyond them (noisy) is faulty, and without it an
# occlusion would go unseen.
#
# Battery. Read once a check (every CHECK_MS) at rest, averaged over the last 8 readings, and
# now and then right after a stroke, when the cell must sag under the motor's load: a reading
# that never sags is stuck.
from array import array

from firmware.compat import TYPE_CHECKING, const

if TYPE_CHECKING:
    from firmware.hal import Mechanism

_BAD_RISES = const(3)      # consecutive implausible rises before the pressure sensor is faulted
_FLAT_SAGS = const(3)      # consecutive loaded readings without a sag before the battery is
_AVG_N = const(8)

BAD = const(-(1 << 29))   # pressure_pa / check_battery: the reading cannot be trusted


class Monitor:
    def __init__(self, hal: "Mechanism") -> None:
        self.hal = hal
        self.p_zero = hal.P_RAW_ZERO
        self.p_per_kpa = hal.P_RAW_PER_KPA
        self.p_min = hal.P_RAW_MIN
        self.p_max = hal.P_RAW_MAX
        self.rise = hal.STROKE_RISE_PA
        self.occlusion_pa = hal.OCCLUSION_PA
        self.bad_rises = 0
        self.mv = array("i", [0] * _AVG_N)
        self.mv_n = 0           # readings in the ring (up to _AVG_N)
        self.mv_i = 0
        self.mv_avg = 0
        self.flat_sags = 0
        self.probe = False      # read the battery under load after the next stroke

    # ---- pressure -------------------------------------------------------------------------
    def pressure_pa(self):
        """The outlet pressure in Pa, or BAD if the reading is out of the sensor's range."""
        raw = self.hal.read_pressure()
        if raw < self.p_min or raw > self.p_max:
            return BAD
        return (raw - self.p_zero) * 1000 // self.p_per_kpa

    def rise_ok(self, before):
        """Right after a stroke: read the pressure and judge the stroke's rise from `before`
        (what the kernel read before it); False once _BAD_RISES in a row were implausible.
        (The reading is pressure_pa()'s, inline: one call less per stroke.)"""
        raw = self.hal.read_pressure()
        if raw < self.p_min or raw > self.p_max:
            after = BAD
        else:
            after = (raw - self.p_zero) * 1000 // self.p_per_kpa
        d = after - before
        if d < self.rise // 4 or d > self.rise * 3:
            self.bad_rises += 1
            return self.bad_rises < _BAD_RISES
        self.bad_rises = 0
        return True

    # ---- battery --------------------------------------------------------------------------
    def _mv(self):
        hal = self.hal
        return hal.read_battery() * hal.B_MV_NUM // hal.B_MV_DEN

    def check_battery(self):
        """One reading at rest. Returns the average in mV, or BAD if the reading is
        impossible or the readings spread more than the board allows (a noisy sensor)."""
        hal = self.hal
        mv = self._mv()
        if mv < hal.B_MV_MIN or mv > hal.B_MV_MAX:
            return BAD
        ring = self.mv
        ring[self.mv_i] = mv
        self.mv_i = (self.mv_i + 1) % _AVG_N
        if self.mv_n < _AVG_N:
            self.mv_n += 1
        # Noise is the back-and-forth: the path the readings travel, oldest to newest, beyond
        # the net change between the ends (a real step of the voltage travels no more than it).
        n = self.mv_n
        i = (self.mv_i - n) % _AVG_N
        first = prev = ring[i]
        total = 0
        path = 0
        for _ in range(n):
            v = ring[i]
            total += v
            path += v - prev if v >= prev else prev - v
            prev = v
            i += 1
            if i == _AVG_N:
                i = 0
        net = prev - first if prev >= first else first - prev
        if path - net > hal.B_NOISE_MV:
            return BAD
        self.mv_avg = total // n
        self.probe = True
        return self.mv_avg

    def probe_under_load(self):
        """Right after a stroke: False once _FLAT_SAGS loaded readings in a row did not sag."""
        self.probe = False
        if self.mv_avg - self._mv() < self.hal.B_SAG_MIN_MV:
            self.flat_sags += 1
            return self.flat_sags < _FLAT_SAGS
        self.flat_sags = 0
        return True

    def reset_battery(self):
        self.mv_n = 0
        self.mv_i = 0
        self.flat_sags = 0
