# Raspberry Pi Pico (RP2040) dev board: the bench stand-in for the implant's electronics.
# Wiring, parts and the calibration procedure: docs/hardware.md. The HAL itself is shared with
# the implant board (boards/rp2_common.py); this file is data.
#
# Parts: TMC2209 stepper driver (STEP/DIR/EN, DIAG high on a stall or a driver fault, set up
# over its single-wire UART), a NEMA 17 stepper (200 steps/rev) driving a 3-roller peristaltic
# head on 0.51 mm bore tubing, a Honeywell ABP2 analog gauge pressure sensor (3.3 V, liquid
# media, output 10 %..90 % of the supply) on the outlet, a piezo transducer and the Pico's LED.
# The motor runs from its own 12 V supply; the "battery" is a 3 V lithium cell (or a bench
# supply standing in for one) read through a divider.
from boards.rp2_common import Rp2Hal

NAME = "pico"

# ---- pins (GPIO numbers) --------------------------------------------------------------------
PIN_STEP = 2
PIN_DIR = 3
PIN_ENABLE = 4               # TMC2209 EN (active low)
PIN_DIAG = 5
PIN_UART_TX = 0              # UART0 TX: through 1 kΩ to the driver's PDN_UART
PIN_UART_RX = 1              # UART0 RX: straight to PDN_UART
PIN_BUZZER = 15
PIN_PRESSURE_ADC = 26        # ADC0
PIN_BATTERY_ADC = 28         # ADC2
PIN_LED = 25                 # the Pico's own LED
PIN_SMPS_PWM = 23            # Pico only: high puts the 3.3 V regulator in low-ripple PWM mode
PIN_BUTTON = None            # the provisioning button: None is the Pico's BOOTSEL button
BUTTON_ACTIVE = 0            # level of PIN_BUTTON when pressed (unused for BOOTSEL)
EN_ACTIVE = 0
DIR_FORWARD = 1              # the level that turns the head so fluid leaves by the outlet
STEP_SM = 0                  # PIO state machine for the step pulses (0..7)
DRIVER_UART = 0
DRIVER_ADDR = 0              # MS1 = MS2 = GND: UART address 0 and 1/8 microstepping

# ---- motor and pump head (calibrate: docs/hardware.md) ---------------------------------------
STEPS_PER_REV = 1600         # 200 full steps x 8 microsteps (MS1/MS2 wiring), no gearbox
HEAD_NL_PER_REV = 16000      # measured with a scale; nominal for 0.51 mm tubing in this head
STEPS_PER_STROKE = 25        # stepgen.steps_per_stroke(STROKE_NL, HEAD_NL_PER_REV, STEPS_PER_REV)
STROKE_NL = 250              # what STEPS_PER_STROKE steps move (stepgen.stroke_nl)
STEP_HZ = 2000               # steps per second during a stroke: 12.5 ms a stroke
MOTOR_MAX_STEP_HZ = 6000     # above this the motor loses steps under the head's load
STROKE_OVERHEAD_MS = 40      # pressure readings and bookkeeping around each stroke
STALL_SGTHRS = 60            # StallGuard threshold: higher stalls sooner (tune on the bench)
MOTOR_IRUN = 16              # run current, 0..31 of the VREF-set full scale
MOTOR_IHOLD = 0              # no holding current: the rollers hold the tube shut unpowered

# ---- dose limits ----------------------------------------------------------------------------
MAX_STROKES_PER_MIN = 600    # 10 strokes a second (9 mL/h), well under stepgen's maximum
MIN_RATE_NL_DAY = 48000      # slowest basal rate accepted: 0.048 mL/day
RESERVOIR_NL = 20000000      # 20 mL syringe or bag on the bench

# ---- interlocks -----------------------------------------------------------------------------
# ABP2 analog, 0..60 psi (413.7 kPa) gauge, supplied from the same 3.3 V as the ADC reference,
# so the reading is ratiometric: 0 kPa at 10 % of full scale, 80 % of full scale over the range.
P_RAW_ZERO = 6554            # 0.10 * 65535
P_RAW_PER_KPA = 127          # 0.80 * 65535 / 413.7
P_RAW_MIN = 3000             # below: broken wire or dead sensor (it never outputs under 10 %)
P_RAW_MAX = 62000            # above: sensor saturated or shorted to 3.3 V
STROKE_RISE_PA = 10000       # measured on the bench with the catheter stand-in (a 1 m line)
OCCLUSION_PA = 25000
RESERVOIR_MIN_NL = 500000
REFILL_TOLERANCE_NL = 1000000
REFILL_TOLERANCE_PCT = 15
CATHETER_NL = 200000
STALL_RETRIES = 2
# Battery: 200 kΩ over 100 kΩ (3:1) into ADC2 with the 3.3 V reference.
B_MV_NUM = 9900
B_MV_DEN = 65535
B_MV_MIN = 2000
B_MV_MAX = 3600
B_ERI_MV = 2850
B_EOS_MV = 2750
# The motor has its own supply on the bench, so the cell does not sag when the motor runs: the
# sag check (which catches a stuck battery reading on the implant) is off here.
B_SAG_MIN_MV = 0
B_NOISE_MV = 150
CHECK_MS = 300000
WDT_TIMEOUT_MS = 8000        # RP2040 watchdog: at most about 8.3 s
# No battery-backed clock: MicroPython restarts the RTC at 2021-01-01 after every hard reset, so
# the pump carries on from its last saved clock and raises clock_lost until the clock is set.
CLOCK_KEPT = False

# ---- self-test ------------------------------------------------------------------------------
MEMTEST_CELLS = 128          # 256 bytes of RAM kept for the memory test (a march, hourly)
# The RP2040's temperature sensor (ADC channel 4) against the 3.3 V reference: 0.706 V at
# 27 degC, -1.721 mV per degC (RP2040 datasheet, 4.9.5).
DIE_RAW_27C = 14020
DIE_RAW_PER_100C = 3418
DIE_MIN_C = 5
DIE_MAX_C = 70               # the bench: well below the RP2040's 85 degC rating

# ---- battery life ---------------------------------------------------------------------------
# The bench's "battery" stands in for the cell the simulator models (sim/engine.py's Plant, as
# boards/virtual.py describes it): its curve, capacity and draws are that cell's, not the
# Pico's own draw from USB.
B_CURVE_MV = (3200, 3150, 3100, 3050, 3000, 2950, 2900, 2850, 2800, 2750, 2700)
B_CURVE_ERR_MV = 10
B_CAPACITY_UAH = 1000000
B_REST_NA = 16292
B_STROKE_UAS = 72
B_TONE_UAS = 0
B_WAKE_UAS = 0


class Hal(Rp2Hal):
    """The Pico dev board (see boards/__init__.py for what each method promises)."""

    def __init__(self):
        Rp2Hal.__init__(self, globals())
