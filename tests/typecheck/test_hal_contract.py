"""The HAL is a checked contract (firmware/hal.pyi): every board class in the simulator and the
tests is listed in hal_conformance.py, which pyright holds to it; the RP2040 boards hold
themselves to it under the rp2 stubs (test_typecheck.py). A board that breaks it fails."""

import ast
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PYRIGHT = ROOT / ".venv" / "bin" / "pyright"


def pyright_host(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(PYRIGHT), "-p", "pyright-host.json", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def board_classes() -> set[tuple[str, str]]:
    """(module, class) of every board class in sim/ and tests/: one that defines stroke() and
    read_pressure() without arguments (the plant's and the rp2 bench's take the time), or
    derives from one that does (its base resolved through the module's own classes and
    imports)."""
    bases: dict[tuple[str, str], list[tuple[str, str]]] = {}
    boards = set()
    for top in ("sim", "tests"):
        for path in (ROOT / top).rglob("*.py"):
            if "node_modules" in path.parts or path.parent.name == "fixtures":
                continue  # (fixtures: deliberately broken boards, scripts for old firmware)
            mod = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            tree = ast.parse(path.read_text())
            where = {a.asname or a.name: (n.module, a.name) for n in ast.walk(tree)
                     if isinstance(n, ast.ImportFrom) and n.module for a in n.names}
            classes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
            where.update({c.name: (mod, c.name) for c in classes})
            for node in classes:
                bare = {f.name for f in node.body if isinstance(f, ast.FunctionDef)
                        and len(f.args.args) == 1}
                if "stroke" in bare and "read_pressure" in bare:
                    boards.add((mod, node.name))
                bases[(mod, node.name)] = [where[b.id] for b in node.bases
                                           if isinstance(b, ast.Name) and b.id in where]
    while True:
        more = {k for k, bs in bases.items() if k not in boards and set(bs) & boards}
        if not more:
            return boards
        boards |= more


def listed() -> set[tuple[str, str]]:
    tree = ast.parse((HERE / "hal_conformance.py").read_text())
    return {(node.module, alias.name) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
            and node.module.split(".")[0] in ("sim", "tests") for alias in node.names}


def test_every_board_class_is_held_to_the_contract():
    boards = board_classes()
    assert ("sim.vboard", "VirtualHal") in boards and ("tests.testboard", "MemBoard") in boards
    # the emulated Pico's bench board runs on the device: it checks itself under the rp2 stubs
    boards.discard(("tests.rp2.device_loop", "BenchHal"))
    missing = boards - listed()
    assert not missing, "add these to tests/typecheck/hal_conformance.py: %s" % sorted(missing)


def test_the_boards_keep_the_contract():
    proc = pyright_host(HERE / "hal_conformance.py")
    assert proc.returncode == 0 and "0 errors" in proc.stdout, proc.stdout


def test_a_board_that_breaks_the_contract_fails_the_check():
    proc = pyright_host(HERE / "fixtures" / "bad_hal.py")
    assert proc.returncode != 0, proc.stdout
    assert '"stroke" is an incompatible type' in proc.stdout, proc.stdout
