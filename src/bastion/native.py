"""Which modules run compiled, and whether a compiled build is out of date.

The modules in ``COMPILED_MODULES`` (the risk gate's per-order path, the market
data validators every quote passes, and the FIX data-dictionary check every inbound
FIX message passes) are plain typed Python that ``setup.py`` also
compiles to C extensions with mypyc when bastion is installed; an extension module
beside its ``.py`` file is the one Python imports. ``./test`` and ``./run`` rebuild
when one of ``build_inputs()`` changes; ``stale()`` tells a checkout whose build is
older than its sources (its tests would run yesterday's code).

``setup.py``, ``./test`` and ``./run`` read this file before bastion is installed
(``runpy``): it imports nothing of bastion.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

COMPILED_MODULES = (
    "bastion.risk.book",
    "bastion.risk.checks",
    "bastion.risk.collar",
    "bastion.risk.credit",
    "bastion.risk.gate",
    "bastion.risk.limits",
    "bastion.risk.market",
    "bastion.risk.positions",
    "bastion.risk.post_trade",
    "bastion.risk.reasons",
    "bastion.risk.self_trade",
    "bastion.risk.size",
    "bastion.risk.throttle",
    "bastion.feeds.validation.rules",
    "bastion.fix.validator",
    "bastion.feeds.validation.sink",
)

LIBRARY = "bastion_native__mypyc"
"""The extension that holds the compiled code (``group_name`` in ``setup.py``)."""


def source_path(module: str) -> str:
    """The source file of a compiled module, relative to the checkout."""
    return "src/" + module.replace(".", "/") + ".py"


def build_inputs(root: Path) -> list[Path]:
    """The files a compiled build depends on: the build's own files, and every module
    of a package that holds a compiled one (mypyc compiles against their types)."""
    packages = sorted({source_path(m).rpartition("/")[0] for m in COMPILED_MODULES})
    modules = [p for package in packages for p in sorted((root / package).glob("*.py"))]
    return [root / "pyproject.toml", root / "setup.py", root / "src/bastion/native.py", *modules]


def _origin(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    return None if spec is None or spec.origin is None else Path(spec.origin)


def compiled(package: str = "bastion") -> bool:
    """Whether every listed module in ``package`` (``bastion.risk``: the risk gate's
    per-order path; ``bastion.feeds.validation``: the validators) is a compiled
    extension."""
    return all(
        (origin := _origin(module)) is not None and origin.suffix != ".py"
        for module in COMPILED_MODULES
        if module.startswith(package + ".")
    )


def stale() -> list[str]:
    """The compiled modules whose source is newer than their build (the module's own
    extension, a small shim, or the library that holds the code of them all)."""
    library = importlib.util.find_spec(LIBRARY)
    built_all = 0.0
    if library is not None and library.origin is not None:
        built_all = Path(library.origin).stat().st_mtime
    out = []
    for module in COMPILED_MODULES:
        origin = _origin(module)
        if origin is None or origin.suffix == ".py":
            continue
        source = origin.with_name(module.rpartition(".")[2] + ".py")
        built = max(origin.stat().st_mtime, built_all)
        if source.exists() and source.stat().st_mtime > built:
            out.append(module)
    return out
