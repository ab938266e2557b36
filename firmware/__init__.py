# Pump firmware. Every module here runs unchanged on MicroPython (the Pico and the unix VM)
# and on CPython (the simulator and its property tests); see docs/architecture.md.
#
# The Pico's heap is small and never compacted: while the firmware's modules load, a collection
# after every few KB frees each module's leftovers before the next one loads, so the code packs
# together and the records find a hole large enough when the pump boots (a state record is
# read whole: 6 KB). The shell (firmware/app.py) sets the threshold back once it has booted.
try:
    import gc

    gc.threshold(4096)
except (ImportError, AttributeError):
    pass   # CPython has no gc.threshold(n): nothing to pack there

# The boot loader main.py ran is this firmware's own (firmware/loader.py LOADER_V): use it, not
# a second copy of the same code.
try:
    import sys

    _boot = sys.modules.get("loader")
    if _boot is not None and getattr(_boot, "LOADER_V", 0) == 1:
        sys.modules["firmware.loader"] = _boot
        loader = _boot
    del _boot
except (ImportError, AttributeError):
    pass
