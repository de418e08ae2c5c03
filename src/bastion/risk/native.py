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
    "post_trade",
    "throttle",
)


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
    """The compiled modules whose source is newer than their extension."""
    out = []
    for name in COMPILED_MODULES:
        origin = _origin(name)
        if origin is None or origin.suffix == ".py":
            continue
        source = origin.with_name(f"{name}.py")
        if source.exists() and source.stat().st_mtime > origin.stat().st_mtime:
            out.append(name)
    return out
