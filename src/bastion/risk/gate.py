"""The risk gate: every order command passes through here, and only here.

Strategies hold a reference to the gate, never to the execution engine, so an
order cannot reach a venue without the checks below. A denial is an
``OrderDenied`` event with a machine-readable reason code (``DenyReason``) and a
message naming the limit and its value; modify requests that fail a check produce
a ``CommandDenied`` event. Cancels are always allowed, whatever the trading state
or message rate, because they only reduce risk.

Checks here: trading state (HALTED denies everything; REDUCING allows only orders
that shrink the node's net position without flipping it), instrument and venue
known, quantity on lot and price on tick, max order quantity and notional (per
instrument). The configurable controls (permissions, price collar, duplicates,
throttle, position, credit, self-trade) live in ``risk.checks``; the gate builds
them only when one is configured, so an unconfigured node pays one attribute test.
"""

from __future__ import annotations

from collections.abc import Collection

import structlog

from bastion.bus import MessageBus
from bastion.clock import Clock
from bastion.execution.engine import ExecutionEngine
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide, TradingState
from bastion.model.events import CommandDenied, TradingStateChanged
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.portfolio.portfolio import Portfolio
from bastion.risk.checks import PreTradeChecks
from bastion.risk.config import RiskConfig
from bastion.risk.limits import InstrumentLimits
from bastion.risk.reasons import Denial, DenyReason

__all__ = ["DenyReason", "RiskGate"]

# Enum member lookups cost ~250 ns on CPython 3.11; hot paths use these aliases.
_BUY = OrderSide.BUY
_HALTED = TradingState.HALTED
_REDUCING = TradingState.REDUCING


log = structlog.get_logger("bastion.risk")
CONFIGURED_STATE_REASON = "configured"
"""``state_reason`` while the trading state is the config's (no change journaled yet)."""


class RiskGate:
    """Pre-trade checks and the node's trading state."""

    def __init__(
        self,
        *,
        config: RiskConfig,
        bus: MessageBus,
        clock: Clock,
        execution: ExecutionEngine,
        portfolio: Portfolio,
        instruments: dict[str, Instrument],
        last_quotes: dict[str, QuoteTick],
        venues: set[str],
        strategies: Collection[str] | None = None,
    ) -> None:
        """``strategies``: the node's strategy names, to reject overrides for unknown ones
        (``ConfigError``); instrument and venue overrides are checked always."""
        config.check_names(
            set(instruments), None if strategies is None else set(strategies), venues
        )
        self._config = config
        self._bus = bus
        self._clock = clock
        self._execution = execution
        self._portfolio = portfolio
        self._instruments = instruments
        self._last_quotes = last_quotes
        self._venues = venues
        self._limits = {
            iid: InstrumentLimits(config.for_instrument(iid), inst)
            for iid, inst in instruments.items()
        }
        self._checks: PreTradeChecks | None = None
        if PreTradeChecks.needed(config, self._limits):
            self._checks = PreTradeChecks(
                config=config,
                bus=bus,
                clock=clock,
                portfolio=portfolio,
                instruments=instruments,
                last_quotes=last_quotes,
                limits=self._limits,
                venues=venues,
            )
        self.state = config.trading_state
        self.state_reason = CONFIGURED_STATE_REASON
        self.denials: dict[str, int] = {}

    # -- trading state ------------------------------------------------------------------
    def set_trading_state(self, state: TradingState, reason: str) -> None:
        if state is self.state:
            return
        log.warning("trading_state_changed", old=self.state.value, new=state.value, reason=reason)
        self.state = state
        self.state_reason = reason
        self._bus.publish(
            TradingStateChanged(ts_ns=self._clock.timestamp_ns(), state=state, reason=reason)
        )

    # -- commands ---------------------------------------------------------------------
    def submit_order(self, order: Order) -> bool:
        """Check ``order`` and send it on, or deny it. Returns True if it was sent."""
        denial = self._check(
            order, order.side, order.quantity, order.price, is_increase=True, is_new=True
        )
        if denial is not None:
            self._deny(order, denial, "order_denied")
            return False
        self._send(order)
        return True

    def submit_flatten(self, order: Order) -> bool:
        """The kill switch's flatten order: for the operator path only (``Kernel.flatten``).

        It passes every check but the trading state (HALTED would block it), so the
        price collar, reference price, order size, throttle and permissions still apply.
        It must close part or all of the node's net position in its instrument without
        flipping it (else ``REDUCING_ONLY``); position and credit limits treat it as
        reducing. Strategies cannot reach this method: ``GateView`` does not expose it.
        """
        net = self._portfolio.net_quantity(order.instrument_id)
        signed = order.quantity if order.side is _BUY else -order.quantity
        denial: Denial | None = None
        if net == 0 or (net > 0) == (signed > 0) or abs(signed) > abs(net):
            denial = DenyReason.REDUCING_ONLY, "a flatten order must reduce the net position"
        else:
            denial = self._check_order(
                order,
                order.side,
                order.quantity,
                order.price,
                is_increase=False,
                is_new=True,
                reducing=False,
            )
        if denial is not None:
            self._deny(order, denial, "flatten_order_denied", warn=True)
            return False
        self._send(order)
        return True

    def _deny(self, order: Order, denial: Denial, log_event: str, *, warn: bool = False) -> None:
        reason, message = denial
        self.denials[reason.value] = self.denials.get(reason.value, 0) + 1
        (log.warning if warn else log.info)(
            log_event, client_order_id=order.client_order_id, reason=reason.value, detail=message
        )
        self._execution.deny(order, reason.value, message)

    def _send(self, order: Order) -> None:
        """Send an approved order; first cancel the resting orders self-trade prevention
        marked (``self_trade = "cancel_resting"``)."""
        checks = self._checks
        if checks is None:
            self._execution.submit(order)
            return
        for resting in checks.to_cancel:
            log.info(
                "self_trade_resting_canceled",
                client_order_id=resting.client_order_id,
                incoming=order.client_order_id,
            )
            if self._execution.cancel(resting):
                checks.canceled(resting)
        self._execution.submit(order)
        checks.sent(order, order.quantity, order.price, is_new=True)

    def cancel_order(self, order: Order) -> bool:
        if not order.is_open:
            self._deny_command(order, DenyReason.ORDER_NOT_OPEN, "order is not open")
            return False
        if not self._execution.cancel(order):
            return False
        if self._checks is not None:
            self._checks.canceled(order)
        return True

    def modify_order(self, order: Order, quantity: int, price: int | None) -> bool:
        if not order.is_open:
            self._deny_command(order, DenyReason.ORDER_NOT_OPEN, "order is not open")
            return False
        denial = self._check(
            order, order.side, quantity, price, is_increase=quantity > order.quantity, is_new=False
        )
        if denial is not None:
            self._deny_command(order, *denial)
            return False
        checks = self._checks
        if checks is None:
            return self._execution.modify(order, quantity, price)
        for resting in checks.to_cancel:
            if self._execution.cancel(resting):
                checks.canceled(resting)
        if not self._execution.modify(order, quantity, price):
            return False
        checks.sent(order, quantity, price, is_new=False)
        return True

    # -- checks -------------------------------------------------------------------------
    def _check(
        self,
        order: Order,
        side: OrderSide,
        quantity: int,
        price: int | None,
        *,
        is_increase: bool,
        is_new: bool,
    ) -> Denial | None:
        state = self.state
        if state is _HALTED:
            return DenyReason.TRADING_HALTED, "trading is halted"
        return self._check_order(
            order,
            side,
            quantity,
            price,
            is_increase=is_increase,
            is_new=is_new,
            reducing=state is _REDUCING,
        )

    def _check_order(
        self,
        order: Order,
        side: OrderSide,
        quantity: int,
        price: int | None,
        *,
        is_increase: bool,
        is_new: bool,
        reducing: bool,
    ) -> Denial | None:
        """Every check but HALTED (``_check`` tests that first)."""
        instrument = self._instruments.get(order.instrument_id)
        if instrument is None:
            return DenyReason.UNKNOWN_INSTRUMENT, f"unknown instrument {order.instrument_id}"
        if order.venue not in self._venues:
            return DenyReason.UNKNOWN_VENUE, f"unknown venue {order.venue}"
        if quantity <= 0 or quantity % instrument.lot_raw:
            return DenyReason.INVALID_QUANTITY, (
                f"quantity {instrument.size(quantity)} is not a positive multiple of lot size "
                f"{instrument.lot_size}"
            )
        if price is not None and (price <= 0 or price % instrument.tick_raw):
            return DenyReason.INVALID_PRICE, (
                f"price {instrument.price(price)} is not a positive multiple of tick size "
                f"{instrument.tick_size}"
            )
        if reducing and is_increase:
            net = self._portfolio.net_quantity(order.instrument_id)
            signed = quantity if side is _BUY else -quantity
            # working orders on the same side would close part of the position first
            for working in self._execution.open_orders(instrument_id=order.instrument_id):
                if working is not order and working.side is side:
                    leaves = working.quantity - working.filled_qty
                    signed += leaves if side is _BUY else -leaves
            if net == 0 or (net > 0) == (signed > 0) or abs(signed) > abs(net):
                return (
                    DenyReason.REDUCING_ONLY,
                    "trading is REDUCING: only orders that reduce the position",
                )
        limits = self._limits[order.instrument_id]
        if limits.max_qty_raw is not None and quantity > limits.max_qty_raw:
            return DenyReason.MAX_ORDER_QUANTITY, (
                f"quantity {instrument.size(quantity)} exceeds max_order_quantity "
                f"{limits.config.max_order_quantity}"
            )
        if limits.max_notional_raw is not None:
            reference = price
            if reference is None:
                quote = self._last_quotes.get(order.instrument_id)
                if quote is None:
                    return DenyReason.NO_REFERENCE_PRICE, "no quote to value a market order"
                reference = quote.ask if side is _BUY else quote.bid
            if quantity * reference > limits.max_notional_raw:
                return DenyReason.MAX_ORDER_NOTIONAL, (
                    f"notional {instrument.notional(quantity, reference)} exceeds "
                    f"max_order_notional {limits.config.max_order_notional}"
                )
        if self._checks is not None:
            return self._checks.check(
                order,
                instrument,
                limits,
                side,
                quantity,
                price,
                is_increase=is_increase,
                is_new=is_new,
            )
        return None

    def _deny_command(self, order: Order, reason: DenyReason, message: str) -> None:
        self.denials[reason.value] = self.denials.get(reason.value, 0) + 1
        self._bus.publish(
            CommandDenied(
                ts_ns=self._clock.timestamp_ns(),
                client_order_id=order.client_order_id,
                strategy_id=order.strategy_id,
                reason=reason.value,
                message=message,
            )
        )
