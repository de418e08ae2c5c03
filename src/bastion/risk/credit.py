"""Credit limits of the node's account: total exposure and cash usage.

Notionals of different instruments (other price and size scales, multipliers) are
added up as integers on one common scale: ``raw2 * weight[iid]`` is the notional in
units of ``1/denominator`` of the account currency, where ``raw2`` is
``quantity_raw * 2 * price_raw`` (prices doubled, so a mid is an integer). The
limits are converted once to that scale, so the per-order sums are pure integers.

Nothing is recounted per order: the positions' exposure is kept per instrument and
revalued only for an instrument whose last quote changed (or after a fill), and the
room left under ``max_cash_usage`` moves with each fill. Both are keyed on the
portfolio's fill count: when it is not the one they follow (a fill the gate did not
see, a restored portfolio), they are rebuilt from the portfolio.
"""

from __future__ import annotations

import math
from decimal import ROUND_FLOOR, Context, Decimal
from fractions import Fraction

from bastion.bus import MessageBus
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide
from bastion.model.events import OrderFilled
from bastion.model.instruments import Instrument
from bastion.portfolio.portfolio import Portfolio
from bastion.risk.config import RiskConfig
from bastion.risk.reasons import Denial, DenyReason

# Enum member lookups cost ~250 ns on CPython 3.11; hot paths use these aliases.
_BUY = OrderSide.BUY
_NO_QUOTE = object()  # a held instrument not valued yet

# enough digits that limit * denominator is exact (denominators reach 10**25)
_EXACT = Context(prec=100)


class _Held:
    """One instrument with a position: its exposure and the quote that valued it."""

    __slots__ = ("iid", "quote", "size_weight", "value")

    def __init__(self, iid: str, size_weight: int) -> None:
        self.iid = iid
        self.size_weight = size_weight  # |net| * weight: times the doubled mid, the exposure
        self.quote: object = _NO_QUOTE
        self.value = 0


class CreditLimits:
    """``max_total_exposure`` and ``max_cash_usage`` on the common integer scale."""

    def __init__(
        self,
        *,
        config: RiskConfig,
        instruments: dict[str, Instrument],
        portfolio: Portfolio,
        last_quotes: dict[str, QuoteTick],
        bus: MessageBus | None = None,
    ) -> None:
        self._config = config
        self._portfolio = portfolio
        self._last_quotes = last_quotes
        ratios = {iid: inst.multiplier.as_integer_ratio() for iid, inst in instruments.items()}
        digits = max(
            (i.price_precision + i.size_precision for i in instruments.values()), default=0
        )
        lcm = math.lcm(*(den for _, den in ratios.values())) if ratios else 1
        denominator: int = 2 * 10**digits * lcm
        self.denominator = denominator
        # money = raw2 * multiplier / (2 * 10**(pp + sp)) = raw2 * weight / denominator
        self.weights: dict[str, int] = {}
        for iid, inst in instruments.items():
            num, den = ratios[iid]
            scale: int = 10 ** (inst.price_precision + inst.size_precision)
            self.weights[iid] = num * denominator // (2 * scale * den)
        self.max_exposure: int | None = None
        if config.max_total_exposure is not None:
            self.max_exposure = math.floor(Fraction(config.max_total_exposure) * denominator)
        self._cash_limit = config.max_cash_usage
        self.checks_cash = self._cash_limit is not None
        # positions' exposure: the instruments held at fill count ``_held_fills``
        self._held_fills = -1
        self._held: list[_Held] = []
        self.positions_exposure = 0
        # (max_cash_usage - spent) * denominator, exact, at fill count ``_cash_fills``
        self._cash_fills = -1
        self._room_exact = Decimal(0)
        self._cash_room = 0  # working buys may add up to this (its floor)
        self._bus = bus
        if bus is not None and self.checks_cash:
            bus.subscribe(OrderFilled, self.on_fill)

    def detach(self) -> None:
        """Stop following fills (new limits replace these)."""
        if self._bus is not None and self.checks_cash:
            self._bus.unsubscribe(OrderFilled, self.on_fill)

    def money(self, common: int) -> Decimal:
        return (Decimal(common) / self.denominator).quantize(Decimal("0.01"))

    def check(self, is_buy: bool, exposure: int, buys: int) -> Denial | None:
        """``exposure``: working orders' notional, the new order's included; ``buys``: the
        working buys' notional (new one included when it is a buy); both common-scale."""
        max_exposure = self.max_exposure
        if max_exposure is not None:
            if self._portfolio.n_fills != self._held_fills:
                self._rebuild_held()
            quotes = self._last_quotes
            for held in self._held:
                quote = quotes.get(held.iid)
                if quote is not held.quote:
                    if quote is None:
                        return self._no_quote()
                    value = held.size_weight * (quote.bid + quote.ask)
                    self.positions_exposure += value - held.value
                    held.value = value
                    held.quote = quote
            if exposure + self.positions_exposure > max_exposure:
                return DenyReason.CREDIT_LIMIT, (
                    f"total exposure {self.money(exposure + self.positions_exposure)} "
                    f"(positions + working orders) would exceed max_total_exposure "
                    f"{self._config.max_total_exposure}"
                )
        if is_buy and self._cash_limit is not None:
            if self._portfolio.n_fills != self._cash_fills:  # cash only changes with fills
                self._recount_cash()
            if buys > self._cash_room:
                portfolio = self._portfolio
                spent_now = portfolio.starting_cash - portfolio.cash()
                return DenyReason.CREDIT_LIMIT, (
                    f"cash usage {spent_now + self.money(buys)} (spent + working buys) would "
                    f"exceed max_cash_usage {self._config.max_cash_usage}"
                )
        return None

    def _rebuild_held(self) -> None:
        portfolio = self._portfolio
        self._held_fills = portfolio.n_fills
        self._held = []
        for iid, weight in self.weights.items():
            net = portfolio.net_quantity(iid)
            if net:
                self._held.append(_Held(iid, abs(net) * weight))
        self.positions_exposure = 0

    def _no_quote(self) -> Denial:
        """The first instrument (in the instruments' order) held without a quote."""
        quotes = self._last_quotes
        iid = next(h.iid for h in self._held if quotes.get(h.iid) is None)
        return DenyReason.NO_REFERENCE_PRICE, (
            f"no quote to value the position in {iid} for max_total_exposure"
        )

    def _recount_cash(self) -> None:
        assert self._cash_limit is not None
        portfolio = self._portfolio
        self._cash_fills = portfolio.n_fills
        spent = portfolio.starting_cash - portfolio.cash()
        self._room_exact = _EXACT.multiply(
            _EXACT.subtract(self._cash_limit, spent), self.denominator
        )
        self._cash_room = int(self._room_exact.to_integral_value(ROUND_FLOOR, context=_EXACT))

    def on_fill(self, fill: OrderFilled) -> None:
        """Move the cash room by the fill's cash flow and fee (the portfolio applies the
        same fill before or after this; the fill count tells which)."""
        fills = self._portfolio.n_fills
        if self._cash_fills < 0:
            return  # not counted yet: the next check recounts
        if fills == self._cash_fills:  # the portfolio has not applied it yet
            self._cash_fills += 1
        elif fills == self._cash_fills + 1:  # it has
            self._cash_fills = fills
        else:
            self._cash_fills = -1  # out of step: recount at the next check
            return
        weight = self.weights.get(fill.instrument_id)
        if weight is None:
            self._cash_fills = -1
            return
        # a buy spends qty * px (raw2 = 2 * qty * px on the common scale), a sell earns it
        flow = 2 * fill.last_qty * fill.last_px * weight
        change = Decimal(-flow if fill.side is _BUY else flow)
        if fill.fee:
            change = _EXACT.subtract(change, _EXACT.multiply(fill.fee, self.denominator))
        self._room_exact = _EXACT.add(self._room_exact, change)
        self._cash_room = int(self._room_exact.to_integral_value(ROUND_FLOOR, context=_EXACT))
