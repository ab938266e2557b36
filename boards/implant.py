# The implant's own electronics: the hardware the Pico dev board stands in for. Same RP2040 and
# the same HAL (boards/rp2_common.py), different pins, motor, sensor scaling and battery. The
# firmware runs on it unchanged: it only ever reads these names through the hal object.
# docs/hardware.md lists what differs and why.
#
# Parts: an RP2040 on the implant's board with an external 3.000 V reference (LM4040-3.0) on
# ADC_VREF; a TMC2209 driving a 10 mm can-stack micro stepper (20 steps/rev) through a 64:1
# planetary gearhead into a 3-roller head on 0.3 mm bore tubing; a piezoresistive gauge die on an
# INA333 instrumentation amplifier on the outlet; a Li/CFx-SVO primary cell, which also powers
# the motor through a boost converter (so it sags under the motor's load); a piezo transducer
# on the titanium can. No LED: nobody can see one.
from boards.rp2_common import Rp2Hal

NAME = "implant"

# ---- pins (GPIO numbers) --------------------------------------------------------------------
PIN_STEP = 10
PIN_DIR = 11
PIN_ENABLE = 12
PIN_DIAG = 13
PIN_UART_TX = 8              # UART1
PIN_UART_RX = 9
PIN_BUZZER = 16
PIN_PRESSURE_ADC = 27        # ADC1
PIN_BATTERY_ADC = 29         # ADC3
PIN_LED = None
PIN_SMPS_PWM = None          # no Pico regulator on this board
PIN_BUTTON = 14              # the provisioning reed switch (a magnet held over the implant)
BUTTON_ACTIVE = 0            # it pulls the line low; the pull-up is on
EN_ACTIVE = 0
DIR_FORWARD = 0              # the head is mounted mirrored
STEP_SM = 4                  # first machine of PIO1
DRIVER_UART = 1
DRIVER_ADDR = 1              # MS1 = VCC, MS2 = GND: address 1 and 1/32 microstepping

# ---- motor and pump head ----------------------------------------------------------------------
STEPS_PER_REV = 40960        # 20 full steps x 32 microsteps x 64:1 gearhead
HEAD_NL_PER_REV = 3600       # 0.3 mm bore tubing, measured in production on every unit
STEPS_PER_STROKE = 2276      # stepgen.steps_per_stroke(STROKE_NL, HEAD_NL_PER_REV, STEPS_PER_REV)
STROKE_NL = 200
STEP_HZ = 20000              # 114 ms a stroke
MOTOR_MAX_STEP_HZ = 32000
STROKE_OVERHEAD_MS = 40
STALL_SGTHRS = 40
MOTOR_IRUN = 10              # small motor, battery powered: keep the current low
MOTOR_IHOLD = 0

# ---- dose limits ----------------------------------------------------------------------------
MAX_STROKES_PER_MIN = 300    # 5 strokes a second (3.6 mL/h): priming and boluses only
MIN_RATE_NL_DAY = 48000
RESERVOIR_NL = 40000000      # 40 mL reservoir

# ---- interlocks -----------------------------------------------------------------------------
# Gauge die on an INA333, powered from the same 3.000 V reference as the ADC (ratiometric):
# 0 kPa at 1/16 of full scale, 0..300 kPa over 0.78 of full scale.
P_RAW_ZERO = 4096
P_RAW_PER_KPA = 170          # 0.78 * 65535 / 300
P_RAW_MIN = 1500
P_RAW_MAX = 60000
STROKE_RISE_PA = 12000       # a smaller stroke, but a stiffer catheter
OCCLUSION_PA = 30000
RESERVOIR_MIN_NL = 1000000   # the larger reservoir's dead volume
REFILL_TOLERANCE_NL = 2000000
REFILL_TOLERANCE_PCT = 15
CATHETER_NL = 150000
STALL_RETRIES = 2
# Battery: 1:1 divider (two 1 MΩ) into ADC3 with the 3.000 V reference: mV = raw * 6000 / 65535.
B_MV_NUM = 6000
B_MV_DEN = 65535
B_MV_MIN = 2000
B_MV_MAX = 3400
B_ERI_MV = 2600              # the Li/CFx-SVO cell's knee is lower than the bench cell's
B_EOS_MV = 2450
B_SAG_MIN_MV = 10            # the motor draws on the cell: every stroke must sag it
B_NOISE_MV = 100
CHECK_MS = 300000
WDT_TIMEOUT_MS = 8000
CLOCK_KEPT = True            # its RTC runs from the cell: a reset never loses the time

# ---- self-test ------------------------------------------------------------------------------
MEMTEST_CELLS = 128
# The temperature sensor against the 3.000 V reference: 0.706 V at 27 degC, -1.721 mV/degC.
DIE_RAW_27C = 15422
DIE_RAW_PER_100C = 3760
# In the body the die sits near 37 degC; above 45 something in the can is heating (the can's
# surface must stay within 2 degC of the tissue around it).
DIE_MIN_C = 20
DIE_MAX_C = 45

# ---- battery life ---------------------------------------------------------------------------
# Li/CFx-SVO: a long plateau, then a knee. On the plateau a few mV are many months of charge,
# which is why the estimate's band (docs/alarms.md) is widest in mid-life.
B_CURVE_MV = (3200, 3050, 2990, 2960, 2930, 2890, 2820, 2720, 2600, 2450, 2200)
B_CURVE_ERR_MV = 10
B_CAPACITY_UAH = 2000000     # 2 Ah
B_REST_NA = 9000             # sleeping RP2040, sensors off, RTC
B_STROKE_UAS = 6800          # 114 ms at about 60 mA through the boost converter
B_TONE_UAS = 4000            # one pattern on the piezo, averaged over the two kinds
B_WAKE_UAS = 30              # a wake-up of the control loop (about 1.5 ms at 20 mA)


class Hal(Rp2Hal):
    """The implant board (see boards/__init__.py for what each method promises)."""

    def __init__(self):
        Rp2Hal.__init__(self, globals())
