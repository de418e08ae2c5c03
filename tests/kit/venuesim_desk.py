"""A VenueSimEngine on a SimClock and a ledger file, its reports collected (``Desk``)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from bastion.clock import SimClock
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide, OrderType, TimeInForce
from bastion.model.instruments import Instrument
from bastion.venue_server.engine import VenueSimEngine
from bastion.venue_server.ledger import OrderRow, PositionRow, VenueLedger
from bastion.venue_server.messages import (
    CancelReject,
    CancelRequest,
    ExecReport,
    NewOrderRequest,
    ReplaceRequest,
    Report,
)
from bastion.venues.sim.config import SimVenueConfig

BUY, SELL = OrderSide.BUY, OrderSide.SELL
GTC, IOC, DAY = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.DAY
NS_PER_DAY = 86_400_000_000_000
T0 = 1_704_205_800_000_000_000  # 2024-01-02T14:30:00Z
MIDNIGHT = (T0 // NS_PER_DAY + 1) * NS_PER_DAY
SYM = "XYZ"
XYZ = Instrument(
    id=SYM, venue="SIM", tick_size=Decimal("0.01"), lot_size=Decimal(1), quote_currency="USD"
)


class Desk:
    """One simulator process: ``restart`` drops it and starts another on the same ledger."""

    def __init__(self, path: Path, **config: object) -> None:
        self.path = path
        self.config = SimVenueConfig(**config)  # type: ignore[arg-type]
        self.clock = SimClock(T0)
        self.reports: list[tuple[str, Report]] = []
        self._start()

    def _start(self) -> None:
        self.ledger = VenueLedger(self.path)
        self.engine = VenueSimEngine(
            instruments={SYM: XYZ},
            sim_config=self.config,
            ledger=self.ledger,
            clock=self.clock,
            on_report=lambda account, report: self.reports.append((account, report)),
        )

    def restart(self) -> None:
        """A new process at the same time: fresh clock (no old timers), same ledger file."""
        self.ledger.close()
        self.clock = SimClock(self.clock.timestamp_ns())
        self._start()

    def close(self) -> None:
        self.ledger.close()

    # -- requests ---------------------------------------------------------------------
    def new(
        self,
        cl_ord_id: str,
        side: OrderSide = BUY,
        qty: str | int = 5,
        price: str | None = "100.00",
        tif: TimeInForce = GTC,
        *,
        account: str = "A",
        symbol: str = SYM,
        poss_dup: bool = False,
    ) -> None:
        self.engine.new_order(
            account,
            NewOrderRequest(
                cl_ord_id=cl_ord_id,
                symbol=symbol,
                side=side,
                order_type=OrderType.MARKET if price is None else OrderType.LIMIT,
                quantity=Decimal(qty),
                price=None if price is None else Decimal(price),
                time_in_force=tif,
                poss_dup=poss_dup,
            ),
        )

    def cancel(
        self, cl_ord_id: str, orig: str, side: OrderSide = BUY, *, account: str = "A"
    ) -> None:
        self.engine.cancel(
            account,
            CancelRequest(cl_ord_id=cl_ord_id, orig_cl_ord_id=orig, symbol=SYM, side=side),
        )

    def replace(
        self,
        cl_ord_id: str,
        orig: str,
        qty: str | int,
        price: str | None,
        side: OrderSide = BUY,
        *,
        account: str = "A",
    ) -> None:
        self.engine.replace(
            account,
            ReplaceRequest(
                cl_ord_id=cl_ord_id,
                orig_cl_ord_id=orig,
                symbol=SYM,
                side=side,
                quantity=Decimal(qty),
                price=None if price is None else Decimal(price),
            ),
        )

    def quote(
        self, bid: int, ask: int, bid_size: int = 10, ask_size: int = 10, ts_ns: int | None = None
    ) -> None:
        ts = self.clock.timestamp_ns() if ts_ns is None else ts_ns
        self.clock.advance_to(ts)
        self.engine.on_quote(QuoteTick(SYM, ts, bid, ask, bid_size, ask_size))

    # -- what came back ---------------------------------------------------------------
    def take(self, account: str | None = None) -> list[Report]:
        """Reports (to ``account``, or all) since the last call."""
        taken, self.reports[:] = list(self.reports), []
        return [r for a, r in taken if account is None or a == account]

    def execs(self) -> list[ExecReport]:
        reports = self.take()
        assert all(isinstance(r, ExecReport) for r in reports), reports
        return [r for r in reports if isinstance(r, ExecReport)]

    def order(self, order_id: str) -> OrderRow:
        order = self.ledger.order(order_id)
        assert order is not None, order_id
        return order

    def position(self, account: str) -> PositionRow:
        position = self.ledger.position(account, SYM)
        assert position is not None, account
        return position

    def reject(self) -> CancelReject:
        (report,) = self.take()
        assert isinstance(report, CancelReject), report
        return report


def kinds(reports: list[ExecReport]) -> list[tuple[str, str]]:
    """(ExecType, OrdStatus) of each report."""
    return [(r.exec_type, r.ord_status) for r in reports]
