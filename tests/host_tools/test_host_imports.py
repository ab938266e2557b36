"""host_tools' imports, read from the source, beyond what tests/repo/test_imports.py holds for the
whole tree (no circles, no upward import): never the tests, and the firmware only at the top of
a module, where a reader sees what a module depends on."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "host_tools"


def modules() -> dict[str, Path]:
    out = {f"host_tools.{p.stem}": p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    out.update({f"host_tools.ui.{p.stem}": p for p in (PACKAGE / "ui").glob("*.py")
                if p.stem != "__init__"})
    return out


def imports(path: Path) -> list[tuple[str, bool]]:
    """(module named, at the top of the file) for every import in the file."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # `from host_tools import fmt` names the module host_tools.fmt
            out += [(f"{node.module}.{a.name}", id(node) in top) for a in node.names]
            out.append((node.module, id(node) in top))
    return out


def test_host_tools_never_imports_the_tests():
    for m, p in modules().items():
        bad = [n for n, _ in imports(p) if n.split(".")[0] == "tests"]
        assert not bad, f"{m} imports {bad}"


def test_the_firmware_is_imported_at_the_top_of_a_module():
    for m, p in modules().items():
        inside = [n for n, top in imports(p) if n.split(".")[0] == "firmware" and not top]
        assert not inside, f"{m} imports {inside} inside a function"


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import os\n\ndef g():\n    from firmware import codes\n")
    assert ("firmware.codes", False) in imports(f) and ("os", True) in imports(f)
