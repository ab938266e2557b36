# The few names MicroPython has and CPython lacks.
try:
    from micropython import const  # noqa: F401  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython: const() is only a hint to MicroPython's compiler

    def const(value):
        return value
