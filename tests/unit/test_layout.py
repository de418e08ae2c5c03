"""The package layout: no import cycles in ``src/bastion``, and only the command line
imports the command line.

The graph is read from the source with ``ast``: every ``import`` counts, also those
under ``if TYPE_CHECKING:`` and inside functions (a lazy import still ties the two
modules together).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import bastion

SRC = Path(bastion.__file__).resolve().parent
PACKAGE = "bastion"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The ``bastion`` modules ``name`` imports (a ``from pkg import sub`` of a submodule
    counts as importing the submodule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return {m for m in found if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def _path_within(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One cycle through the component's first module, to show in the failure."""
    members = set(component)
    start = component[0]
    paths = [[start]]
    seen = {start}
    while paths:
        path = paths.pop(0)
        for nxt in sorted(graph[path[-1]] & members):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                paths.append([*path, nxt])
    return component  # pragma: no cover - a component always has a cycle


def test_when_import_graph_read_then_no_module_is_in_a_cycle() -> None:
    """No import cycle anywhere in src/bastion, TYPE_CHECKING and lazy imports included."""
    graph = _graph()
    cycles = [" -> ".join(_path_within(graph, c)) for c in _cycles(graph)]
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


def test_when_import_graph_read_then_only_the_cli_imports_the_cli() -> None:
    """Nothing outside bastion.cli (and bastion.__main__) imports the command line."""
    graph = _graph()
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if not (module == "bastion.cli" or module.startswith("bastion.cli."))
        and module != "bastion.__main__"
        for target in targets
        if target == "bastion.cli" or target.startswith("bastion.cli.")
    )
    assert offenders == []


STDLIB_NAMES_ALLOWED = {
    "bastion.secrets": (
        "the package configs and components name (issue 14); only ever imported as "
        "bastion.secrets, and no bastion module imports the standard library's secrets"
    ),
}


def test_when_module_names_read_then_none_is_a_standard_library_name() -> None:
    """No module or package of bastion is named like a standard-library module
    (``logging``, ``operator``, ``_csv`` ...), leading underscores included, but for the
    few allowed with a reason."""
    clashes = sorted(
        name
        for name in _modules()
        if name.rpartition(".")[2] in sys.stdlib_module_names
        or name.rpartition(".")[2].lstrip("_") in sys.stdlib_module_names
    )
    assert clashes == sorted(STDLIB_NAMES_ALLOWED)


def test_when_cycle_planted_then_the_check_finds_it() -> None:
    """The cycle finder reports a two-module loop and ignores a chain."""
    graph = {"a": {"b"}, "b": {"a", "c"}, "c": set()}
    assert _cycles(graph) == [["a", "b"]]
    assert _path_within(graph, ["a", "b"]) == ["a", "b", "a"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_when_relative_and_lazy_imports_read_then_they_count(tmp_path: Path) -> None:
    """Imports inside functions and under TYPE_CHECKING are edges of the graph."""
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from bastion.node.kernel import Kernel\n"
        "def f():\n    from bastion.venues import base\n    import bastion.clock\n"
    )
    known = {"bastion.node.kernel", "bastion.venues", "bastion.venues.base", "bastion.clock"}
    assert _imports("bastion.x", source, known) == {
        "bastion.node.kernel",
        "bastion.venues.base",
        "bastion.clock",
    }


def _adapter_classes() -> dict[str, str]:
    """Each venue adapter class (a ``VenueAdapter`` subclass under ``bastion.venues``)
    and the venue package that defines it."""
    found: dict[str, str] = {}
    for name, path in _modules().items():
        parts = name.split(".")
        if parts[:2] != ["bastion", "venues"] or len(parts) < 4:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(
                isinstance(base, ast.Name) and base.id == "VenueAdapter" for base in node.bases
            ):
                found[node.name] = ".".join(parts[:3])
    return found


def _names_used(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.ImportFrom):
            names.update(alias.name for alias in node.names)
    return names


# The venue simulator process runs the in-process venue's matching engine behind its
# FIX acceptor: it is a venue itself, not a node using one.
_VENUE_SERVER = "bastion.venue_server"


def test_when_source_read_then_only_a_venues_own_package_names_its_adapter() -> None:
    """The node, recovery, feeds and the rest reach venues through VenueAdapter and the
    registry: no module outside a venue's package names its adapter class."""
    adapters = _adapter_classes()
    assert {"SimVenue", "FixVenueAdapter"} <= set(adapters)
    offenders = sorted(
        f"{module} names {cls}"
        for module, path in _modules().items()
        for cls in _names_used(path) & set(adapters)
        if not (module == adapters[cls] or module.startswith(adapters[cls] + "."))
        and not module.startswith(_VENUE_SERVER)
    )
    assert offenders == []
