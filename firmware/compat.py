# The few names MicroPython has and CPython lacks.
try:
    from micropython import const  # noqa: F401  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython: const() is only a hint to MicroPython's compiler

    def const(value):
        return value


# False when the code runs, on every runtime; pyright takes `if TYPE_CHECKING:` as true, so a
# module may name a type (firmware/hal.pyi's board contract) that nothing imports at run time.
TYPE_CHECKING = False
