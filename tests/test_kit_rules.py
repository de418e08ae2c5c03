"""How tests share code: through the test kit (tests/kit), never by importing each other.

Under tests/, outside kit/, a Python file is a test module (``test_*.py``), a conftest, or
one of the scripts that tests run as child processes (``SUBPROCESS_SCRIPTS``). No file
imports a module that lives under tests/ outside kit/ (a test module, a conftest, a
script), and a conftest only defines fixtures and pytest hooks: no helpers for tests to
import, no ``importlib`` to load or reload modules, no ``sys.path`` changes.
"""

from __future__ import annotations

import ast
from pathlib import Path

from kit.paths import TESTS_DIR

KIT_DIR = TESTS_DIR / "kit"

# Run as child processes, never imported; they import shared code from the kit.
SUBPROCESS_SCRIPTS = frozenset(
    {
        "interop/qf_peer.py",
        "interop/qf_initiator.py",
        "chaos/strategies/chaos_trader.py",
        "integration/strategies/misbehaving.py",
        "integration/strategies/hostile.py",
    }
)

# What a conftest may bind at module level besides fixtures and hooks.
CONFTEST_NAMES = frozenset({"pytest_plugins", "collect_ignore", "collect_ignore_glob"})


def python_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def local_modules(root: Path) -> set[str]:
    """Module names a file under ``root`` outside kit/ could be imported by (the way
    pytest's rootdir-relative imports would find it), plus ``tests`` itself."""
    kit = root / "kit"
    names = {root.name}
    for path in python_files(root):
        if not path.is_relative_to(kit):
            names.add(path.stem)
    return names


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, top-level module name) of every import, nested ones included; a relative
    import shows as ``.``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append((node.lineno, "."))
            elif node.module is not None:
                found.append((node.lineno, node.module.split(".")[0]))
    return sorted(found)


def import_violations(root: Path) -> list[str]:
    """Each import, anywhere under ``root``, of a module that lives under ``root``
    outside kit/ (or a relative import)."""
    local = local_modules(root) - {"kit"}
    problems = []
    for path in python_files(root):
        rel = path.relative_to(root).as_posix()
        for line, module in imported_modules(ast.parse(path.read_text(), str(path))):
            if module == "." or module in local:
                problems.append(f"{rel}:{line} imports {module!r} (share code via tests/kit)")
    return problems


def stray_helpers(root: Path, scripts: frozenset[str]) -> list[str]:
    """Python files outside kit/ that are neither tests, conftests nor listed scripts."""
    kit = root / "kit"
    problems = []
    for path in python_files(root):
        rel = path.relative_to(root).as_posix()
        if path.is_relative_to(kit) or rel in scripts:
            continue
        if not (path.name.startswith("test_") or path.name == "conftest.py"):
            problems.append(f"{rel} is a helper module outside tests/kit")
    return problems


def _is_fixture(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Attribute) and target.attr == "fixture"


def conftest_violations(root: Path) -> list[str]:
    """What a conftest does beyond fixtures and hooks: module-level helpers, classes or
    constants, ``importlib``, ``sys.path`` changes."""
    problems = []
    for path in python_files(root):
        if path.name != "conftest.py":
            continue
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(), str(path))
        for line, module in imported_modules(tree):
            if module == "importlib":
                problems.append(f"{rel}:{line} uses importlib")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "path"
                and isinstance(node.value, ast.Name)
                and node.value.id == "sys"
            ):
                problems.append(f"{rel}:{node.lineno} touches sys.path")
            if isinstance(node, ast.Name) and node.id == "__import__":
                problems.append(f"{rel}:{node.lineno} calls __import__")
        for i, node in enumerate(tree.body):
            if isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue  # the module docstring
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
                node.name.startswith("pytest_") or any(map(_is_fixture, node.decorator_list))
            ):
                continue
            if isinstance(node, ast.Assign) and all(
                isinstance(t, ast.Name) and t.id in CONFTEST_NAMES for t in node.targets
            ):
                continue
            what = getattr(node, "name", type(node).__name__)
            problems.append(f"{rel}:{node.lineno} defines {what}, not a fixture or hook")
    return problems


def test_when_tests_import_code_then_only_from_the_kit() -> None:
    """No file under tests/ imports a test module, a conftest or a script."""
    assert import_violations(TESTS_DIR) == []


def test_when_a_file_outside_the_kit_is_not_a_test_then_it_is_a_listed_script() -> None:
    """Shared helpers live in tests/kit; the only other files are the listed scripts."""
    assert stray_helpers(TESTS_DIR, SUBPROCESS_SCRIPTS) == []
    missing = {s for s in SUBPROCESS_SCRIPTS if not (TESTS_DIR / s).is_file()}
    assert missing == set(), "a listed script no longer exists: drop it from the list"


def test_when_conftests_are_read_then_they_only_define_fixtures_and_hooks() -> None:
    """No conftest holds helpers, loads modules with importlib or changes sys.path."""
    assert conftest_violations(TESTS_DIR) == []


def test_when_a_test_imports_another_test_then_the_rules_name_it(tmp_path: Path) -> None:
    """The checks catch what they are for: a test importing a test, a conftest or a
    stray helper, a relative import, a helper outside the kit, an importlib conftest."""
    (tmp_path / "kit").mkdir()
    (tmp_path / "kit" / "__init__.py").write_text("")
    (tmp_path / "kit" / "waiting.py").write_text("def eventually() -> None: ...\n")
    (tmp_path / "unit").mkdir()
    (tmp_path / "unit" / "test_a.py").write_text("X = 1\n")
    (tmp_path / "unit" / "helpers.py").write_text("Y = 2\n")
    (tmp_path / "unit" / "test_b.py").write_text(
        "from kit.waiting import eventually\n"
        "from test_a import X\n"
        "def test_b() -> None:\n"
        "    from helpers import Y\n"
        "    import conftest\n"
        "from . import test_a\n"
    )
    (tmp_path / "conftest.py").write_text(
        '"""Doc."""\n'
        "import importlib.util\n"
        "import sys\n"
        "import pytest\n"
        "sys.path.insert(0, 'x')\n"
        "def helper() -> int:\n"
        "    return 1\n"
        "@pytest.fixture\n"
        "def fine() -> int:\n"
        "    return 1\n"
        "def pytest_sessionstart(session: object) -> None: ...\n"
    )

    assert import_violations(tmp_path) == [
        "unit/test_b.py:2 imports 'test_a' (share code via tests/kit)",
        "unit/test_b.py:4 imports 'helpers' (share code via tests/kit)",
        "unit/test_b.py:5 imports 'conftest' (share code via tests/kit)",
        "unit/test_b.py:6 imports '.' (share code via tests/kit)",
    ]
    assert stray_helpers(tmp_path, frozenset()) == [
        "unit/helpers.py is a helper module outside tests/kit"
    ]
    assert stray_helpers(tmp_path, frozenset({"unit/helpers.py"})) == []
    assert conftest_violations(tmp_path) == [
        "conftest.py:2 uses importlib",
        "conftest.py:5 touches sys.path",
        "conftest.py:5 defines Expr, not a fixture or hook",
        "conftest.py:6 defines helper, not a fixture or hook",
    ]
