"""A kernel with two in-process venues, A (instrument X.A) and B (Y.B), quoted, and a
helper that sends a one-lot buy through the risk gate."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from bastion.clock import SimClock
from bastion.config import InstrumentConfig, PaperConfig
from bastion.feeds.config import SyntheticFeedEntry
from bastion.journal import SqliteJournal
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide, OrderType
from bastion.model.orders import Order
from bastion.node.kernel import Kernel
from bastion.venues.sim.config import SimVenueEntry

T0 = 1_704_205_800_000_000_000
X, Y = "X.A", "Y.B"


def two_venue_config() -> PaperConfig:
    return PaperConfig(
        instruments=[
            InstrumentConfig(id=X, venue="A", tick_size=Decimal("0.01")),
            InstrumentConfig(id=Y, venue="B", tick_size=Decimal("0.01")),
        ],
        strategies=[],
        venues=[SimVenueEntry(name="A"), SimVenueEntry(name="B")],
        feeds=[SyntheticFeedEntry(name="house", instruments=[X, Y])],
    )


def two_venue_kernel(
    tmp_path: Path, journal: SqliteJournal | None = None, *, quoted: bool = True
) -> Kernel:
    kernel = Kernel(
        config=two_venue_config(), base_dir=tmp_path, clock=SimClock(T0), epoch=7, journal=journal
    )
    if quoted:
        for iid in (X, Y):
            kernel.on_quote(QuoteTick(iid, T0, 10_000, 10_002, 500, 500))
    return kernel


def send(kernel: Kernel, iid: str, price: int | None = 9_000) -> Order:
    order = kernel.execution.create_order(
        strategy_id="s",
        instrument_id=iid,
        venue=kernel.instruments[iid].venue,
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT if price is not None else OrderType.MARKET,
        quantity=1,
        price=price,
    )
    assert kernel.risk.submit_order(order)
    kernel.flush()
    return order
