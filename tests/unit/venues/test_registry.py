"""The venue registry: every ``[[venues]]`` kind builds its adapter, which reports that
kind; nothing else needs to know the adapter's class."""

from __future__ import annotations

import typing
from decimal import Decimal
from pathlib import Path

from bastion.clock import SimClock
from bastion.model.instruments import Instrument
from bastion.venues.base import VenueAdapter, VenueContext
from bastion.venues.fix.config import FixVenueEntry
from bastion.venues.registry import VenueEntry, build_venue
from bastion.venues.sim.config import SimVenueEntry

INSTRUMENTS = {
    "A.SIM": Instrument(
        id="A.SIM",
        venue="SIM",
        tick_size=Decimal("0.01"),
        lot_size=Decimal(1),
        quote_currency="USD",
    ),
    "B.FIX": Instrument(
        id="B.FIX",
        venue="FIXSIM",
        tick_size=Decimal("0.01"),
        lot_size=Decimal(1),
        quote_currency="USD",
    ),
}


def test_when_each_kind_built_then_adapter_has_its_kind_name_and_instruments(
    tmp_path: Path,
) -> None:
    """sim and fix entries build adapters of their kind; the FIX one trades only its own
    instruments and keeps its session store relative to the config's directory."""
    context = VenueContext(
        clock=SimClock(0), instruments=INSTRUMENTS, base_dir=tmp_path, epoch=3, live=True
    )
    sim = build_venue(SimVenueEntry(name="SIM"), context)
    fix = build_venue(
        FixVenueEntry(name="FIXSIM", port=9878, sender_comp_id="N", target_comp_id="V"),
        context,
    )
    try:
        assert isinstance(sim, VenueAdapter) and isinstance(fix, VenueAdapter)
        assert (sim.kind, sim.name, sim.matches_on_quotes) == ("sim", "SIM", True)
        assert (fix.kind, fix.name, fix.matches_on_quotes) == ("fix", "FIXSIM", False)
        assert fix.connected is False and sim.connected is True
        assert set(fix.instruments) == {"B.FIX"}  # type: ignore[attr-defined]
        assert (tmp_path / "fix-sessions.sqlite").is_file()  # relative to base_dir
    finally:
        fix.store.close()  # type: ignore[attr-defined]


def test_when_entry_kinds_listed_then_each_has_a_distinct_tag() -> None:
    """Every [[venues]] kind is tagged, and no two share a tag."""
    tags = [t.__struct_config__.tag for t in typing.get_args(VenueEntry)]
    assert sorted(tags) == ["fix", "sim"]
