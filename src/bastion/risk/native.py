"""Whether the risk gate runs compiled, and whether a compiled build is out of date.

The modules in ``COMPILED_MODULES`` are plain typed Python that ``setup.py`` also
compiles to C extensions with mypyc when bastion is installed; an extension module
beside its ``.py`` file is the one Python imports. ``./test`` and ``./run`` rebuild
when one of these sources changes; ``stale()`` tells a checkout whose build is older
than its sources (its tests would run yesterday's code).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

COMPILED_MODULES = (
    "book",
    "checks",
    "collar",
    "credit",
    "gate",
    "limits",
    "market",
    "positions",
    "post_trade",
    "reasons",
    "self_trade",
    "size",
    "throttle",
)

LIBRARY = "bastion_risk__mypyc"
"""The extension that holds the compiled code (``group_name`` in ``setup.py``)."""


def _origin(name: str) -> Path | None:
    spec = importlib.util.find_spec(f"bastion.risk.{name}")
    return None if spec is None or spec.origin is None else Path(spec.origin)


def compiled() -> bool:
    """Whether every module of the per-order path is a compiled extension."""
    return all(
        (origin := _origin(name)) is not None and origin.suffix != ".py"
        for name in COMPILED_MODULES
    )


def stale() -> list[str]:
    """The compiled modules whose source is newer than their build (the module's own
    extension, a small shim, or the library that holds the code of them all)."""
    library = importlib.util.find_spec(LIBRARY)
    built_all = 0.0
    if library is not None and library.origin is not None:
        built_all = Path(library.origin).stat().st_mtime
    out = []
    for name in COMPILED_MODULES:
        origin = _origin(name)
        if origin is None or origin.suffix == ".py":
            continue
        source = origin.with_name(f"{name}.py")
        built = max(origin.stat().st_mtime, built_all)
        if source.exists() and source.stat().st_mtime > built:
            out.append(name)
    return out
