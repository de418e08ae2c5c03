"""The venue kinds a node config may name (``[[venues]]`` with ``kind = ...``).

Each kind is a package under ``bastion.venues``: a config struct (with
``sends_market_data``, and a ``[[venues]]`` entry form tagged with its kind) and a
``build(config, context)`` next to its adapter. Adding a venue kind means adding its
package and one line to ``_KINDS`` and to ``VenueEntry`` below; nothing else in the
node names it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bastion.venues.base import VenueAdapter, VenueContext
from bastion.venues.fix import adapter as fix
from bastion.venues.fix.config import FixVenueConfig, FixVenueEntry
from bastion.venues.sim import venue as sim
from bastion.venues.sim.config import SimVenueConfig, SimVenueEntry

VenueEntry = SimVenueEntry | FixVenueEntry
"""A ``[[venues]]`` table: the config of one of the venue kinds, chosen by ``kind``."""

VenueConfig = SimVenueConfig | FixVenueConfig
"""Any venue's config (a ``[[venues]]`` entry, or the single-venue tables)."""

_KINDS: dict[type[Any], Callable[[Any, VenueContext], VenueAdapter]] = {
    SimVenueConfig: sim.build,
    FixVenueConfig: fix.build,
}


def build_venue(config: VenueConfig, context: VenueContext) -> VenueAdapter:
    """The adapter ``config`` describes."""
    for cls in type(config).__mro__:
        build = _KINDS.get(cls)
        if build is not None:
            return build(config, context)
    raise TypeError(f"no venue kind for {type(config).__name__}")  # pragma: no cover
