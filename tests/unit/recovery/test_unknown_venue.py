"""An open order recovered at a venue the config no longer names can be neither
reconciled nor canceled: the node refuses to start, naming the order and the venue;
and a kill never stops part-way on such an order."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from bastion.clock import SimClock
from bastion.config import InstrumentConfig, PaperConfig, resolve_path
from bastion.errors import OperationalError
from bastion.feeds.config import SyntheticFeedEntry
from bastion.journal import SqliteJournal
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide, OrderStatus, OrderType
from bastion.model.events import OrderAccepted, OrderSubmitted
from bastion.model.orders import Order
from bastion.node.kernel import Kernel, KillCancels
from bastion.node.runner import recover_node
from bastion.venues.sim.config import SimVenueEntry
from kit.two_venues import T0, X, Y, send, two_venue_kernel


def config(venue: str) -> PaperConfig:
    return PaperConfig(
        instruments=[InstrumentConfig(id="X.A", venue=venue, tick_size=Decimal("0.01"))],
        strategies=[],
        venues=[SimVenueEntry(name=venue)],
        feeds=[SyntheticFeedEntry(name="house", instruments=["X.A"])],
        run_for_s=0.1,
    )


def test_when_an_open_order_is_at_a_venue_no_longer_configured_then_start_is_refused(
    tmp_path: Path,
) -> None:
    """The journal holds an order resting at venue SIM; the config now names only A."""
    before = config("SIM")
    journal = SqliteJournal(resolve_path(tmp_path, before.journal.path))
    try:
        kernel = Kernel(
            config=before, base_dir=tmp_path, clock=SimClock(T0), epoch=1, journal=journal
        )
        kernel.on_quote(QuoteTick("X.A", T0, 10_000, 10_002, 500, 500))
        resting = send(kernel, "X.A")
        assert resting.status is OrderStatus.ACCEPTED
    finally:
        journal.close()
    with pytest.raises(OperationalError) as refused:
        recover_node(config("A"), base_dir=tmp_path)
    message = str(refused.value)
    assert re.search(r"1 at venue 'SIM' \(" + re.escape(resting.client_order_id) + r"\)", message)
    assert "configured venues: A" in message
    # the journal was closed: the node that starts once SIM is back can open it
    code, report = recover_node(before, base_dir=tmp_path)
    assert code == 0 and report["open_orders"] == 1


def orphan(venue: str) -> Order:
    order = Order(
        client_order_id="node-1-2-1",
        strategy_id="s",
        instrument_id=X,
        venue=venue,
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=1,
        price=9_000,
        ts_init=T0,
    )
    ids = {"client_order_id": order.client_order_id, "strategy_id": "s", "instrument_id": X}
    order.apply(OrderSubmitted(ts_ns=T0, venue=venue, **ids))
    order.apply(OrderAccepted(ts_ns=T0, venue_order_id="v1", **ids))
    return order


def test_when_killed_with_an_order_at_an_unknown_venue_then_every_other_order_is_canceled(
    tmp_path: Path,
) -> None:
    """The order at the unknown venue is listed first: the kill goes on past it, leaving
    it as it is (never PENDING_CANCEL with no venue to answer)."""
    kernel = two_venue_kernel(tmp_path)
    lost = orphan("GONE")
    kernel.execution.restore([lost], [])
    at_a, at_b = send(kernel, X), send(kernel, Y)
    asked = kernel.kill("drill")
    assert asked == KillCancels(sent=2, pending_reconnect=0)
    assert (at_a.status, at_b.status) == (OrderStatus.CANCELED, OrderStatus.CANCELED)
    assert lost.status is OrderStatus.ACCEPTED
    assert kernel.execution.modify(lost, 2, 9_000) is False
    assert lost.status is OrderStatus.ACCEPTED
