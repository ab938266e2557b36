# The simulated board that the simulator and the virtual Pico drive. Its mechanism constants
# match the Pico dev board's pump head (boards/pico.py) so simulated results carry over.
NAME = "virtual-pico"
STROKE_NL = 250               # nominal volume moved by one stroke of the pump head
MAX_STROKES_PER_MIN = 600     # the motor's limit: 10 strokes a second (9 mL/h)
MIN_RATE_NL_DAY = 48000       # slowest basal rate accepted: 0.048 mL/day
RESERVOIR_NL = 20000000       # 20 mL reservoir

# ---- interlocks (issue: safety) ---------------------------------------------------------------
# Outlet pressure sensor on a 16-bit ADC reading (read_u16): 0 kPa at P_RAW_ZERO, P_RAW_PER_KPA
# counts per kPa (a 0..400 kPa gauge part spanning 10 %..90 % of the ADC). Readings outside
# P_RAW_MIN..P_RAW_MAX mean a broken wire or sensor, not a pressure.
P_RAW_ZERO = 6554
P_RAW_PER_KPA = 131
P_RAW_MIN = 3000
P_RAW_MAX = 62000
# The catheter's compliance (about 25 nL per kPa) makes each 250 nL stroke raise the outlet
# pressure by about 10 kPa; through an open catheter it falls back within milliseconds. A
# residual pressure of 2.5 strokes' worth before a stroke means the last strokes had nowhere
# to go: an occlusion, caught on the third stroke into it.
STROKE_RISE_PA = 10000
OCCLUSION_PA = 25000
# Reservoir: delivery stops with this much left, before air can reach the catheter.
RESERVOIR_MIN_NL = 500000
# A measured residual at refill may differ from the pump's account by this much (nL, plus
# REFILL_TOLERANCE_PCT of the account) before it is logged and alarmed.
REFILL_TOLERANCE_NL = 1000000
REFILL_TOLERANCE_PCT = 15
CATHETER_NL = 200000          # drug held in the catheter: the bridge after a concentration change
STALL_RETRIES = 2             # a failed stroke is retried this many times, then motor_stall
# Battery: a 3:1 divider into the 3.3 V ADC; mV = raw * B_MV_NUM // B_MV_DEN.
B_MV_NUM = 9900
B_MV_DEN = 65535
B_MV_MIN = 2000               # readings outside this range are a sensor fault
B_MV_MAX = 3600
B_ERI_MV = 2850               # elective replacement indicator (about 30 % left)
B_EOS_MV = 2750               # end of service: delivery stops (about 10 % left)
B_SAG_MIN_MV = 10             # the cell always sags at least this much under the motor's load
B_NOISE_MV = 150              # more back-and-forth than this across the averaged readings: a fault
CHECK_MS = 300000             # battery, occlusion-clear and sensor checks, alarm tones: every 5 min
WDT_TIMEOUT_MS = 8000         # RP2040 watchdog (at most about 8.3 s)
# Whether the clock survives resets and power cuts. The virtual Pico's clock is the host's, kept
# across both, unlike a Pico's (boards/pico.py; docs/hardware.md says why).
CLOCK_KEPT = True
# ---- the self-test (firmware/selftest.py, docs/alarms.md) -------------------------------------
# The memory test marches over this many 16-bit cells every hour; the simulator runs years of
# virtual time, so its region is small (the Pico's holds 256).
MEMTEST_CELLS = 16
# The RP2040's temperature sensor on ADC channel 4: 0.706 V at 27 degC, falling 1.721 mV per
# degC, read against 3.3 V (RP2040 datasheet, 4.9.5): raw = 14020 at 27 degC, 3418 less per 100.
DIE_RAW_27C = 14020
DIE_RAW_PER_100C = 3418
DIE_MIN_C = 5                 # die_temperature (a warning) outside this band
DIE_MAX_C = 70
# ---- the battery's life in days (firmware/lifetime.py) --------------------------------------
# The simulator's cell (sim/engine.py's Plant): its rest voltage falls in a straight line from
# 3200 mV full to 2700 mV empty, over 1 Ah; it draws 391 000 charge units (of 10**9) a day at
# rest, about 16.3 uA, and 20 units (72 uA s) a stroke; a tone or a wake-up costs it nothing
# beyond the rest draw.
B_CURVE_MV = (3200, 3150, 3100, 3050, 3000, 2950, 2900, 2850, 2800, 2750, 2700)
B_CURVE_ERR_MV = 5            # the ADC's step and the averaging
B_CAPACITY_UAH = 1000000
B_REST_NA = 16292
B_STROKE_UAS = 72
B_TONE_UAS = 0
B_WAKE_UAS = 0
