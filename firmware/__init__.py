# Pump firmware. Every module here runs unchanged on MicroPython (the Pico and the unix VM)
# and on CPython (the simulator and its property tests); see docs/architecture.md.
