# The few names MicroPython has and CPython lacks.


def const(value):
    """CPython: const() is only a hint to MicroPython's compiler (which folds `_NAME =
    const(...)` itself, whatever `const` names at run time)."""
    return value


try:
    from micropython import const  # noqa: F401, F811  # pyright: ignore
except ImportError:
    pass


# False when the code runs, on every runtime; pyright takes `if TYPE_CHECKING:` as true, so a
# module may name a type (firmware/hal.pyi's board contract) that nothing imports at run time.
TYPE_CHECKING = False
