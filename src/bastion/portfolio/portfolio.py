"""The portfolio: positions, cash, fees and PnL, updated from fills.

Applies each fill first, before the risk gate and the strategies see it
(``risk.fills`` states the order), so a strategy's ``on_fill`` sees the updated
position. Marks use the last quote: a long is marked at the bid and a short at the
ask (what closing it would get).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide
from bastion.model.events import OrderFilled
from bastion.model.instruments import Instrument
from bastion.portfolio.position import Exact, Position

# Enum member lookups cost ~250 ns on CPython 3.11; hot paths use these aliases.
_BUY = OrderSide.BUY
_ZERO = Decimal(0)


def to_decimal(value: Exact) -> Decimal:
    """Exact-as-possible Decimal for an int or Fraction (28 significant digits)."""
    if isinstance(value, int):
        return Decimal(value)
    return Decimal(value.numerator) / Decimal(value.denominator)


class Portfolio:
    """Positions per (strategy, instrument), account cash and fees."""

    def __init__(
        self,
        *,
        instruments: dict[str, Instrument],
        last_quotes: dict[str, QuoteTick],
        currency: str,
        starting_cash: Decimal,
    ) -> None:
        self._instruments = instruments
        self._last_quotes = last_quotes
        self.currency = currency
        self.starting_cash = starting_cash
        # read directly by the risk gate's per-order path (a method call costs more than
        # the check); only this class writes them
        self.by_key: dict[tuple[str, str], Position] = {}
        """Positions by (strategy, instrument)."""
        self.net: dict[str, int] = {}
        """The node's signed raw position per instrument (``net_quantity``)."""
        # raw cash flows per instrument (size_raw * price_raw units), exact ints
        self._cash_raw: dict[str, int] = {}
        self.fees = Decimal(0)
        self.strategy_fees: dict[str, Decimal] = {}
        """Fees per strategy (their sum is ``fees``): the risk accounts' cash usage."""
        self.n_fills = 0

    # -- updates ------------------------------------------------------------
    def on_fill(self, fill: OrderFilled) -> None:
        key = (fill.strategy_id, fill.instrument_id)
        position = self.by_key.get(key)
        if position is None:
            position = self.by_key[key] = Position(fill.strategy_id, fill.instrument_id)
        sign = 1 if fill.side is _BUY else -1
        position.apply_fill(sign, fill.last_qty, fill.last_px)
        iid = fill.instrument_id
        self.net[iid] = self.net.get(iid, 0) + sign * fill.last_qty
        self._cash_raw[iid] = self._cash_raw.get(iid, 0) - sign * fill.last_qty * fill.last_px
        if fill.fee:
            self.fees += fill.fee
            position.fees += fill.fee
            fees = self.strategy_fees
            fees[fill.strategy_id] = fees.get(fill.strategy_id, _ZERO) + fill.fee
        self.n_fills += 1

    # -- recovery -----------------------------------------------------------
    def export_state(self) -> tuple[list[Position], dict[str, int], Decimal, int]:
        """Positions, raw cash flows per instrument, fees and fill count (for snapshots)."""
        return list(self.by_key.values()), dict(self._cash_raw), self.fees, self.n_fills

    def restore_state(
        self,
        positions: list[Position],
        cash_raw: dict[str, int],
        fees: Decimal,
        n_fills: int,
        strategy_fees: dict[str, Decimal] | None = None,
    ) -> None:
        """Replace the state with a snapshot's (``export_state``'s output, and
        ``strategy_fees``: absent from older snapshots)."""
        self.by_key = {(p.strategy_id, p.instrument_id): p for p in positions}
        self.net = {}
        for p in positions:
            self.net[p.instrument_id] = self.net.get(p.instrument_id, 0) + p.quantity
        for iid in cash_raw:
            self.net.setdefault(iid, 0)
        self._cash_raw = dict(cash_raw)
        self.fees = fees
        self.strategy_fees = dict(strategy_fees or {})
        self.n_fills = n_fills

    # -- queries ------------------------------------------------------------
    def position(self, strategy_id: str, instrument_id: str) -> Position | None:
        return self.by_key.get((strategy_id, instrument_id))

    def positions(self) -> Iterator[Position]:
        return iter(self.by_key.values())

    def net_quantity(self, instrument_id: str) -> int:
        """Node-wide signed raw position in an instrument."""
        return self.net.get(instrument_id, 0)

    def instruments_traded(self) -> list[str]:
        return sorted(self.net)

    def mark_px(self, instrument_id: str, quantity: int) -> int | None:
        quote = self._last_quotes.get(instrument_id)
        if quote is None:
            return None
        return quote.bid if quantity > 0 else quote.ask

    def realized_pnl(self, instrument_id: str | None = None) -> Decimal:
        """Realized PnL (gross of fees) in the account currency."""
        total = Decimal(0)
        for (_, iid), position in self.by_key.items():
            if instrument_id is None or iid == instrument_id:
                total += self._money(iid, position.realized)
        return total

    def unrealized_pnl(self, instrument_id: str | None = None) -> Decimal:
        total = Decimal(0)
        for (_, iid), position in self.by_key.items():
            if instrument_id is not None and iid != instrument_id:
                continue
            if position.quantity:
                mark = self.mark_px(iid, position.quantity)
                if mark is not None:
                    total += self._money(iid, position.unrealized(mark))
        return total

    def cash(self) -> Decimal:
        """Starting cash plus every fill's cash flow, less fees."""
        flows = sum((self._money(iid, raw) for iid, raw in self._cash_raw.items()), Decimal(0))
        return self.starting_cash + flows - self.fees

    def market_value(self) -> Decimal:
        total = Decimal(0)
        for iid, qty in self.net.items():
            if qty:
                mark = self.mark_px(iid, qty)
                if mark is not None:
                    total += self._money(iid, qty * mark)
        return total

    def equity(self) -> Decimal:
        return self.cash() + self.market_value()

    def equity_change_raw(self) -> int | None:
        """Cash flows plus marked positions, before fees, in raw units summed over
        instruments: meaningful only when all instruments share one money scale.
        None while a position has no quote to mark it."""
        total = 0
        last_quotes = self._last_quotes
        cash_raw = self._cash_raw
        for iid, qty in self.net.items():
            total += cash_raw[iid]
            if qty:
                quote = last_quotes.get(iid)
                if quote is None:
                    return None
                total += qty * (quote.bid if qty > 0 else quote.ask)
        return total

    def _money(self, instrument_id: str, raw: Exact) -> Decimal:
        instrument = self._instruments[instrument_id]
        return instrument.money(raw if isinstance(raw, int) else to_decimal(raw))
