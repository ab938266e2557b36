# The simulated board that the simulator and the virtual Pico drive. Its mechanism constants
# match the Pico dev board's pump head (boards/pico.py) so simulated results carry over.
NAME = "virtual-pico"
STROKE_NL = 250               # nominal volume moved by one stroke of the pump head
MAX_STROKES_PER_MIN = 600     # the motor's limit: 10 strokes a second (9 mL/h)
MIN_RATE_NL_DAY = 48000       # slowest basal rate accepted: 0.048 mL/day
RESERVOIR_NL = 20000000       # 20 mL reservoir
