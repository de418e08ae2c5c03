"""Position limits: ``max_long_quantity``, ``max_short_quantity`` and
``max_gross_notional``, of an instrument (``[risk]`` or its override) or of one
strategy in it (``[risk.strategies.NAME]``).

The worst case on the order's side counts the position, the side's working orders and
what the order adds (``risk.book`` keeps the first two per instrument and per strategy
in it). ``PositionLimits.check`` is the rule, once; a denial keeps the figures it
compared, and its message is built from them only when the denial is published.
"""

from __future__ import annotations

from typing import final

from bastion.model.instruments import Instrument
from bastion.risk.book import Sides
from bastion.risk.config import InstrumentRiskConfig, StrategyRiskConfig
from bastion.risk.reasons import Denial, DenyReason
from bastion.risk.units import notional_raw, qty_raw
from bastion.risk.usage import LimitUse


@final
class PositionLimits:
    """One set of position limits, in raw units: an instrument's (``strategy`` None) or
    a strategy's in one instrument."""

    __slots__ = (
        "config",
        "instrument",
        "is_set",
        "max_gross2_raw",
        "max_long_raw",
        "max_short_raw",
        "strategy",
    )

    def __init__(
        self,
        config: InstrumentRiskConfig | StrategyRiskConfig,
        instrument: Instrument,
        strategy: str | None = None,
    ) -> None:
        self.config = config
        self.instrument = instrument
        self.strategy = strategy
        self.max_long_raw = qty_raw(config.max_long_quantity, instrument)
        self.max_short_raw = qty_raw(config.max_short_quantity, instrument)
        self.max_gross2_raw = notional_raw(config.max_gross_notional, instrument, 2)
        self.is_set = (
            self.max_long_raw is not None
            or self.max_short_raw is not None
            or self.max_gross2_raw is not None
        )

    def check(self, sides: Sides, is_buy: bool, change: int, mid2: int) -> Denial | None:
        """The worst case on the order's side (the position, the side's working orders
        and ``change``, what the order adds) against these limits. ``mid2``: twice the
        valuing price, 0 if there is none."""
        if is_buy:
            worst = sides.buys + change + sides.position
            max_side_raw = self.max_long_raw
        else:
            worst = sides.sells + change - sides.position
            max_side_raw = self.max_short_raw
        if max_side_raw is not None and worst > max_side_raw:
            return PositionDenied(self, is_buy, worst, 0)
        max_gross2_raw = self.max_gross2_raw
        if max_gross2_raw is not None:
            if mid2 == 0:
                return Denial(
                    DenyReason.NO_REFERENCE_PRICE,
                    f"no quote to value the position in {self.instrument.id} for "
                    "max_gross_notional",
                )
            if worst * mid2 > max_gross2_raw:
                return PositionDenied(self, is_buy, worst, mid2)
        return None

    def usage(self, sides: Sides, mid2: int, scope: str) -> list[LimitUse]:
        """What counts against each of these limits now, as ``check`` counts it before an
        order (``mid2`` 0: no quote, the gross notional is not reported)."""
        instrument = self.instrument
        config = self.config
        long_worst = sides.buys + sides.position
        short_worst = sides.sells - sides.position
        out: list[LimitUse] = []
        if config.max_long_quantity is not None:
            used = instrument.size(max(0, long_worst))
            out.append(LimitUse("max_long_quantity", scope, used, config.max_long_quantity))
        if config.max_short_quantity is not None:
            used = instrument.size(max(0, short_worst))
            out.append(LimitUse("max_short_quantity", scope, used, config.max_short_quantity))
        if config.max_gross_notional is not None and mid2:
            worst = max(0, long_worst, short_worst)
            gross = instrument.money(worst * mid2) / 2
            out.append(LimitUse("max_gross_notional", scope, gross, config.max_gross_notional))
        return out

    def scope(self) -> str:
        iid = self.instrument.id
        strategy = self.strategy
        if strategy is None:
            return f'instrument {iid} (risk.instruments."{iid}" or [risk])'
        return f"strategy {strategy} in {iid} (risk.strategies.{strategy})"


@final
class PositionDenied(Denial):
    """``POSITION_LIMIT``: the worst case beyond the side's limit (``mid2`` 0), or its
    gross notional at ``mid2`` beyond ``max_gross_notional``."""

    def __init__(self, limits: PositionLimits, is_buy: bool, worst: int, mid2: int) -> None:
        super().__init__(DenyReason.POSITION_LIMIT)
        self.limits = limits
        self.is_buy = is_buy
        self.worst = worst
        self.mid2 = mid2

    def message(self) -> str:
        limits = self.limits
        config = limits.config
        instrument = limits.instrument
        if self.mid2:
            gross = instrument.money(self.worst * self.mid2) / 2
            return (
                f"worst-case gross notional {gross} exceeds max_gross_notional "
                f"{config.max_gross_notional} for {limits.scope()}"
            )
        is_buy = self.is_buy
        max_side = config.max_long_quantity if is_buy else config.max_short_quantity
        key = "max_long_quantity" if is_buy else "max_short_quantity"
        side = "long" if is_buy else "short"
        return (
            f"worst-case {side} {instrument.size(self.worst)} (position + working orders) "
            f"exceeds {key} {max_side} for {limits.scope()}"
        )
