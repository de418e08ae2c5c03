"""Credit limits of the node's account: total exposure and cash usage.

Notionals of different instruments (other price and size scales, multipliers) are
added up as integers on one common scale: ``raw2 * weight[iid]`` is the notional in
units of ``1/denominator`` of the account currency, where ``raw2`` is
``quantity_raw * 2 * price_raw`` (prices doubled, so a mid is an integer). The
limits are converted once to that scale, so the per-order sums are pure integers.
"""

from __future__ import annotations

import math
from decimal import ROUND_FLOOR, Context, Decimal
from fractions import Fraction

from bastion.model.data import QuoteTick
from bastion.model.instruments import Instrument
from bastion.portfolio.portfolio import Portfolio
from bastion.risk.config import RiskConfig
from bastion.risk.reasons import Denial, DenyReason

# enough digits that limit * denominator is exact (denominators reach 10**25)
_EXACT = Context(prec=100)


class CreditLimits:
    """``max_total_exposure`` and ``max_cash_usage`` on the common integer scale."""

    def __init__(
        self,
        *,
        config: RiskConfig,
        instruments: dict[str, Instrument],
        portfolio: Portfolio,
        last_quotes: dict[str, QuoteTick],
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
        self._fills_seen = -1
        self._cash_room = 0  # working buys may add up to this before max_cash_usage

    def money(self, common: int) -> Decimal:
        return (Decimal(common) / self.denominator).quantize(Decimal("0.01"))

    def check(self, is_buy: bool, exposure: int, buys: int) -> Denial | None:
        """``exposure``: working orders' notional, the new order's included; ``buys``: the
        working buys' notional (new one included when it is a buy); both common-scale."""
        if self.max_exposure is not None:
            quotes = self._last_quotes
            portfolio = self._portfolio
            for iid, weight in self.weights.items():
                net = portfolio.net_quantity(iid)
                if net:
                    quote = quotes.get(iid)
                    if quote is None:
                        return DenyReason.NO_REFERENCE_PRICE, (
                            f"no quote to value the position in {iid} for max_total_exposure"
                        )
                    exposure += abs(net) * (quote.bid + quote.ask) * weight
            if exposure > self.max_exposure:
                return DenyReason.CREDIT_LIMIT, (
                    f"total exposure {self.money(exposure)} (positions + working orders) "
                    f"would exceed max_total_exposure {self._config.max_total_exposure}"
                )
        if self._cash_limit is not None and is_buy:
            portfolio = self._portfolio
            if portfolio.n_fills != self._fills_seen:  # cash only changes with fills
                self._fills_seen = portfolio.n_fills
                spent = portfolio.starting_cash - portfolio.cash()
                room = _EXACT.multiply(_EXACT.subtract(self._cash_limit, spent), self.denominator)
                self._cash_room = int(room.to_integral_value(ROUND_FLOOR, context=_EXACT))
            if buys > self._cash_room:
                spent_now = portfolio.starting_cash - portfolio.cash()
                return DenyReason.CREDIT_LIMIT, (
                    f"cash usage {spent_now + self.money(buys)} (spent + working buys) would "
                    f"exceed max_cash_usage {self._config.max_cash_usage}"
                )
        return None
