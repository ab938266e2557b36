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


def scrub():
    """Words on the stack below here that still point at an unloaded module (the collector
    takes any word that looks like a pointer for one) are overwritten by this frame's."""
    a = b = c = d = e = f = g = h = i = j = k = m = n = o = p = q = 0
    return a + b + c + d + e + f + g + h + i + j + k + m + n + o + p + q


def unload(name):
    """Let module `name` (as "firmware.post") go: on MicroPython the heap gets its code back, for
    a module needed once a boot or now and then (the self-test, the update's transfer, the
    battery estimate, a board's arithmetic). The next import loads it afresh. A no-op on
    CPython, whose memory is not the concern and whose tests hold modules themselves."""
    import sys

    if sys.implementation.name != "micropython":
        return
    # A removed key's slot in a MicroPython dict keeps its old value, which the collector (it
    # scans the whole table) would take for a live reference: overwrite it first (with sys,
    # which lives for ever anyway).
    mods = sys.modules
    if name in mods:
        mods[name] = sys
        del mods[name]
    dot = name.rfind(".")
    pkg = mods.get(name[:dot])
    attr = name[dot + 1:]
    if pkg is not None and attr in pkg.__dict__:
        setattr(pkg, attr, None)
        delattr(pkg, attr)
