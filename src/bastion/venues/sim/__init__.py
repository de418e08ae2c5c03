"""The built-in simulated venue (matching engine driven by the quote stream)."""

from bastion.venues.sim.config import SimVenueConfig
from bastion.venues.sim.venue import SimVenue

__all__ = ["SimVenue", "SimVenueConfig"]
