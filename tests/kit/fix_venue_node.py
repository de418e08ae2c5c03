"""A kernel with an in-process venue A (instrument ``X.A``) and a FIX venue ``FIXV``
(instrument ``XYZ.FIXV``) whose session is linked in memory to an acceptor
(``kit.fix_link.Link``) that acknowledges every order; and ``Reconciler``, a stand-in for
``bastion.recovery.reconcile.reconcile`` that the venue watcher can run."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

from bastion.clock import SimClock
from bastion.config import InstrumentConfig, PaperConfig
from bastion.feeds.config import SyntheticFeedEntry
from bastion.fix.codec import FixMessage
from bastion.fix.session import FixSession
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide, OrderType
from bastion.model.orders import Order
from bastion.node.kernel import Kernel
from bastion.vault import MemorySecrets
from bastion.venues.fix.adapter import FixVenueAdapter
from bastion.venues.fix.config import FixVenueEntry
from bastion.venues.sim.config import SimVenueEntry
from kit.fix_link import IID, PASSWORD, VENUE, Link, execution

T0 = 1_704_205_800_000_000_000
X = "X.A"


class Reconciler:
    """Stands in for ``bastion.recovery.reconcile.reconcile``: records each call and, as
    the real one does, marks the venue reconciled on the logon it started on. While
    ``gate`` is clear, a reconciliation waits (a venue slow to answer)."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, kernel: Any, *, venue: Any, **_: Any) -> None:
        logon = venue.logons
        self.calls.append(logon)
        await self.gate.wait()
        venue.reconciled_logon = logon


def fix_venue_kernel(tmp_path: Path) -> tuple[Kernel, Link]:
    """The kernel (both instruments quoted) and the link of its FIX venue, logged off."""
    config = PaperConfig(
        instruments=[
            InstrumentConfig(id=X, venue="A", tick_size=Decimal("0.01")),
            InstrumentConfig(
                id=IID, venue=VENUE, tick_size=Decimal("0.01"), lot_size=Decimal("0.001")
            ),
        ],
        strategies=[],
        venues=[
            SimVenueEntry(name="A"),
            FixVenueEntry(
                name=VENUE,
                port=1,
                sender_comp_id="NODE",
                target_comp_id="EXCH",
                username="trader",
                password="secret:fix/trader",
            ),
        ],
        feeds=[SyntheticFeedEntry(name="house", instruments=[X, IID])],
    )
    secrets = MemorySecrets({"fix/trader": PASSWORD})
    kernel = Kernel(config=config, base_dir=tmp_path, clock=SimClock(T0), epoch=7, secrets=secrets)
    for iid in (X, IID):
        kernel.on_quote(QuoteTick(iid, T0, 10_000, 10_002, 500_000, 500_000))
    adapter = kernel.venues[VENUE]
    assert isinstance(adapter, FixVenueAdapter)
    link = Link(tmp_path, adapter)
    link.venue_app.answer = _acknowledge
    return kernel, link


def _acknowledge(session: FixSession, message: FixMessage) -> None:
    """The venue accepts every new order (a status of its own for each)."""
    if message.msg_type == "D":
        cl_ord_id = message.get(11) or ""
        session.send(execution(cl_ord_id, "0", f"ack-{cl_ord_id}"))


def buy(kernel: Kernel, iid: str) -> Order:
    """A resting one-lot limit buy through the risk gate, below the quotes."""
    order = kernel.execution.create_order(
        strategy_id="s",
        instrument_id=iid,
        venue=kernel.instruments[iid].venue,
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=kernel.instruments[iid].lot_raw,
        price=9_900,
    )
    assert kernel.risk.submit_order(order)
    kernel.flush()
    return order


def drop(link: Link) -> None:
    """The connection drops at both ends."""
    link.session.disconnect("line drop")
    link.venue.disconnect("line drop")
