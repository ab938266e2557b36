# The pump simulator. engine.py also runs inside the MicroPython VM: keep imports here empty.
