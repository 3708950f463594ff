"""Code shape rules of the package: no function or method longer than 60 lines."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "semipose"
MAX_LINES = 60


def _long_functions(root, limit):
    """(path, name, line, length) of every function under ``root`` longer than ``limit`` lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append((path.relative_to(root), node.name, node.lineno, length))
    return found


def test_the_checker_sees_a_long_function(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES))
    (tmp_path / "m.py").write_text(f"def short():\n    pass\n\n\ndef long():\n{body}")
    assert _long_functions(tmp_path, MAX_LINES) == [(Path("m.py"), "long", 5, MAX_LINES + 1)]


def test_no_function_longer_than_60_lines():
    assert PACKAGE.is_dir()
    offenders = _long_functions(PACKAGE, MAX_LINES)
    listing = "\n".join(f"  {p}:{line} {name} ({n} lines)" for p, name, line, n in offenders)
    assert not offenders, f"functions longer than {MAX_LINES} lines:\n{listing}"
