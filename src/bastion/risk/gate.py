"""The risk gate: every order command passes through here, and only here.

Strategies hold a reference to the gate, never to the execution engine, so an
order cannot reach a venue without the checks below. A denial is an
``OrderDenied`` event with a machine-readable reason code (``DenyReason``) and a
message naming the limit and its value; modify requests that fail a check produce
a ``CommandDenied`` event. Cancels are always allowed, whatever the trading state
or message rate, because they only reduce risk.

Checks here: trading state (HALTED denies everything; REDUCING allows only orders
that shrink the node's net position without flipping it), disabled strategies,
instrument known, the order's venue known and its instrument's, quantity on lot and
price on tick, max order quantity and notional (per instrument: their rules in
``risk.size``). The configurable controls (instrument pause, stale data,
permissions, price collar, duplicates, throttle, position, credit, self-trade) are
called from ``risk.checks``, each rule in its own module (see there), the post-trade
limits (repeated executions, daily loss, drawdown) in ``risk.post_trade``; the gate
builds them only when one is configured, so an unconfigured node pays two attribute
tests per order.
A strategy the post-trade limits disable has its open orders canceled at once
(``cancel_on_disable``), through ``cancel_orders`` as the kill switch's.

An operator may pause an instrument for a while (``pause_instrument``): its new orders,
and amends that add or reprice, are denied (``INSTRUMENT_PAUSED``) until the pause ends
or ``resume_instrument``; cancels and the kill switch's flatten orders still go.

Events it publishes: ``TradingStateChanged``, ``StrategyDisabled``,
``StrategyEnabled``, ``CommandDenied``, ``InstrumentPaused`` / ``InstrumentResumed``
(an operator's pause, and through ``risk.market`` the collar's; ``OrderDenied`` through
the OMS).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable
from typing import Any

import structlog

from bastion.bus import MessageBus
from bastion.clock import Cancelable, Clock
from bastion.errors import ConfigError
from bastion.execution.engine import ExecutionEngine
from bastion.model.data import QuoteTick, TradeTick
from bastion.model.enums import OrderSide, TradingState
from bastion.model.events import (
    CommandDenied,
    InstrumentPaused,
    InstrumentResumed,
    OrderFilled,
    StrategyDisabled,
    StrategyEnabled,
    TradingStateChanged,
)
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.portfolio.portfolio import Portfolio
from bastion.risk.checks import PreTradeChecks
from bastion.risk.config import RiskConfig
from bastion.risk.limits import InstrumentLimits
from bastion.risk.market import MarketGuard
from bastion.risk.post_trade import PostTradeMonitor
from bastion.risk.reasons import Denial, DenyReason
from bastion.risk.size import InvalidPrice, InvalidQuantity, WrongVenue, check_size
from bastion.risk.usage import LimitUse

__all__ = ["DenyReason", "RiskGate"]

# Enum member lookups cost ~250 ns on CPython 3.11; hot paths use these aliases.
_BUY = OrderSide.BUY
_HALTED = TradingState.HALTED
_REDUCING = TradingState.REDUCING
_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}
_HALTED_DENIAL = Denial(DenyReason.TRADING_HALTED, "trading is halted")
_NOT_REDUCING_DENIAL = Denial(
    DenyReason.REDUCING_ONLY, "a flatten order must reduce the net position"
)
_REDUCING_DENIAL = Denial(
    DenyReason.REDUCING_ONLY, "trading is REDUCING: only orders that reduce the position"
)


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
        last_trades: dict[str, TradeTick] | None = None,
        pausable: Collection[str] = (),
    ) -> None:
        """``strategies``: the node's strategy names, to reject overrides for unknown ones
        (``ConfigError``); instrument and venue overrides are checked always.
        ``last_trades``: the last trade print per instrument (``Kernel.last_trades``), the
        collar's reference for ``collar_reference = "last"``. ``pausable``: instruments a
        market data validator may pause (``pause_for_data``)."""
        config.check_names(
            set(instruments), None if strategies is None else set(strategies), venues
        )
        config.check_bands(instruments)
        for instrument in instruments.values():  # the config's rule, relied on per order
            if instrument.venue not in venues:
                raise ConfigError(
                    f"instrument {instrument.id}: venue '{instrument.venue}' is not configured"
                )
        self._config = config
        self._bus = bus
        self._clock = clock
        self._execution = execution
        self._portfolio = portfolio
        self._instruments = instruments
        self._last_quotes = last_quotes
        self._last_trades: dict[str, TradeTick] = {} if last_trades is None else last_trades
        self._venues = venues
        self._strategy_names = None if strategies is None else set(strategies)
        self._pausable = frozenset(pausable)
        self._market: MarketGuard | None = None
        self._checks: PreTradeChecks | None = None
        self._post_trade: PostTradeMonitor | None = None
        self.quote_hook: Callable[[QuoteTick], None] | None = None
        """For ``Kernel.on_quote``: every quote, when a collar window is configured or an
        exposure limit values positions (``risk.credit``)."""
        self._quote_hooks: tuple[Callable[[QuoteTick], None], ...] = ()
        self._build(config)
        self.state = config.trading_state
        self.state_reason = CONFIGURED_STATE_REASON
        self.disabled: dict[str, str] = {}
        """Disabled strategies and why: their new orders and amends are denied."""
        self.denials: dict[str, int] = {}
        self.operator_pauses: dict[str, tuple[int, str]] = {}
        """Instruments an operator paused: ``(until_ns, reason)``."""
        self._pause_timers: dict[str, Cancelable] = {}

    def _build(self, config: RiskConfig, *, reconfiguring: bool = False) -> None:
        """Limits and the optional controls from ``config`` (keeping pauses and the
        post-trade day when they exist already)."""
        self._config = config
        self._limits = {
            iid: InstrumentLimits(config.for_instrument(iid), inst, pausable=iid in self._pausable)
            for iid, inst in self._instruments.items()
        }
        if not MarketGuard.needed(self._limits):
            self._market = None
        elif self._market is not None:
            self._market.reconfigure(self._limits)
        else:
            self._market = MarketGuard(
                bus=self._bus,
                clock=self._clock,
                instruments=self._instruments,
                limits=self._limits,
                last_quotes=self._last_quotes,
            )
        old_checks = self._checks
        self._checks = None
        if PreTradeChecks.needed(config, self._limits):
            self._checks = PreTradeChecks(
                config=config,
                bus=self._bus,
                clock=self._clock,
                portfolio=self._portfolio,
                instruments=self._instruments,
                last_quotes=self._last_quotes,
                limits=self._limits,
                venues=self._venues,
                market=self._market,
                last_trades=self._last_trades,
            )
        if old_checks is not None:
            old_checks.detach()
        market = self._market
        hooks = [
            hook
            for hook in (
                market.on_quote if market is not None and market.watches_quotes else None,
                None if self._checks is None else self._checks.quote_hook,
            )
            if hook is not None
        ]
        self._quote_hooks = tuple(hooks)
        self.quote_hook = (
            None if not hooks else hooks[0] if len(hooks) == 1 else self._on_quote_hooks
        )
        if reconfiguring:  # the new sums start from the orders working now
            self.track_open_orders(self._execution.open_orders())
        if not PostTradeMonitor.needed(config):
            self._post_trade = None
        elif self._post_trade is not None:
            self._post_trade.reconfigure(config)
        else:
            self._post_trade = PostTradeMonitor(
                config=config,
                clock=self._clock,
                portfolio=self._portfolio,
                instruments=self._instruments,
                last_quotes=self._last_quotes,
                strategies=self._strategy_names,
                on_strategy_breach=self.disable_strategy,
                on_node_breach=self._post_trade_breach,
            )

    def _on_quote_hooks(self, quote: QuoteTick) -> None:
        for hook in self._quote_hooks:
            hook(quote)

    @property
    def config(self) -> RiskConfig:
        """The limits in force (the config file's, or with operator overrides)."""
        return self._config

    def reconfigure(self, config: RiskConfig) -> None:
        """Apply new limits now (an operator override, or its end). Working orders keep
        counting; pauses, the post-trade day and repeated-fill windows carry over; the
        message throttles and the duplicate filter start afresh."""
        config.check_names(set(self._instruments), self._strategy_names, self._venues)
        config.check_bands(self._instruments)
        self._build(config, reconfiguring=True)
        log.warning("risk_limits_applied")

    @property
    def books_fills(self) -> bool:
        """Whether a pre-trade control keeps state from fills: the working book, positions,
        credit (else ``fill_pre_trade`` does nothing)."""
        return self._checks is not None

    @property
    def watches_fills(self) -> bool:
        """Whether a post-trade limit follows fills (else ``fill_post_trade`` does nothing)."""
        return self._post_trade is not None

    @property
    def paused_instruments(self) -> dict[str, tuple[int, str]]:
        """Instruments paused now, by the time-window collar or an operator (the later
        end when both): ``(until_ns, reason)``."""
        paused = {} if self._market is None else dict(self._market.paused)
        for iid, pause in self.operator_pauses.items():
            if iid not in paused or pause[0] > paused[iid][0]:
                paused[iid] = pause
        return paused

    def limit_usage(self) -> list[LimitUse]:
        """Each configured position, credit, throttle, daily loss and drawdown limit, with
        what counts against it now (``risk.usage``), for monitoring: read on the trading
        loop, never on the order path. Per-order limits (size, collar) are not in it."""
        now = self._clock.timestamp_ns()
        out: list[LimitUse] = []
        if self._checks is not None:
            out += self._checks.usage(now, self._strategy_names or ())
        if self._post_trade is not None:
            out += self._post_trade.usage(now)
        return out

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

    def _post_trade_breach(self, reason: str) -> None:
        """A node-wide post-trade limit: go to ``post_trade_action``, never to a milder
        state than the current one."""
        target = TradingState(self._config.post_trade_action)
        if _SEVERITY[target] > _SEVERITY[self.state]:
            self.set_trading_state(target, reason)

    def pause_instrument(self, instrument_id: str, for_ns: int, reason: str) -> int:
        """An operator pauses ``instrument_id`` for ``for_ns`` (journaled as
        ``InstrumentPaused`` with ``reason``); a pause running now is replaced. Returns
        when it ends (``until_ns``)."""
        if instrument_id not in self._instruments:
            raise ConfigError(f"no instrument {instrument_id!r} on this node")
        now = self._clock.timestamp_ns()
        until = now + for_ns
        timer = self._pause_timers.pop(instrument_id, None)
        if timer is not None:
            timer.cancel()
        self.operator_pauses[instrument_id] = (until, reason)
        log.warning("instrument_paused", instrument_id=instrument_id, reason=reason, until_ns=until)
        self._bus.publish(
            InstrumentPaused(ts_ns=now, instrument_id=instrument_id, reason=reason, until_ns=until)
        )
        self._pause_timers[instrument_id] = self._clock.call_at(
            until, functools.partial(self._operator_pause_over, instrument_id)
        )
        return until

    def _operator_pause_over(self, instrument_id: str, due_ns: int) -> None:
        pause = self.operator_pauses.get(instrument_id)
        if pause is None or pause[0] != due_ns:
            return  # replaced or ended since
        del self.operator_pauses[instrument_id]
        self._pause_timers.pop(instrument_id, None)
        log.warning("instrument_resumed", instrument_id=instrument_id)
        self._bus.publish(
            InstrumentResumed(ts_ns=self._clock.timestamp_ns(), instrument_id=instrument_id)
        )

    def resume_instrument(self, instrument_id: str, who: str, why: str) -> bool:
        """The operator ends an instrument's pause early (an operator's and the
        collar's); False if it is not paused."""
        held = self.operator_pauses.pop(instrument_id, None) is not None
        timer = self._pause_timers.pop(instrument_id, None)
        if timer is not None:
            timer.cancel()
        collar = self._market is not None and self._market.resume_now(instrument_id, who, why)
        if held and not collar:
            log.warning("instrument_resumed", instrument_id=instrument_id, who=who, why=why)
            self._bus.publish(
                InstrumentResumed(
                    ts_ns=self._clock.timestamp_ns(),
                    instrument_id=instrument_id,
                    who=who,
                    why=why,
                )
            )
        return held or collar

    def pause_for_data(self, instrument_id: str, pause_ms: int, reason: str, key: str) -> bool:
        """Pause new orders on a ``pausable`` instrument for ``pause_ms`` (a market data
        validator's ``pause`` action; ``key`` names the setting); False if it is not one."""
        market = self._market
        if market is None or instrument_id not in self._pausable:
            return False
        market.pause(instrument_id, pause_ms, reason, key)
        return True

    def max_order_quantity_raw(self, instrument_id: str) -> int | None:
        """The instrument's ``max_order_quantity`` in force, in raw units (None: no limit)."""
        return self._limits[instrument_id].max_qty_raw

    def track_open_orders(self, orders: Iterable[Order]) -> None:
        """Count orders that are working already (recovered on start) against every limit,
        as if the gate had just sent them. Call once, after recovery and reconciliation."""
        if self._checks is not None:
            for order in orders:
                self._checks.track(order)

    # -- strategies ---------------------------------------------------------------------
    def disable_strategy(self, strategy_id: str, reason: str) -> bool:
        """Deny the strategy's new orders and amends from now on (cancels still go) and,
        with ``cancel_on_disable``, ask the venues to cancel every open order of it (of
        no other strategy). Journaled as ``StrategyDisabled`` with the number of cancels,
        before them, as the kill switch journals HALTED before its cancels. False if it
        was disabled already."""
        if strategy_id in self.disabled:
            return False
        self.disabled[strategy_id] = reason
        orders: list[Order] = []
        if self._config.cancel_on_disable:
            orders = self._execution.open_orders(strategy_id=strategy_id)
        log.warning(
            "strategy_disabled",
            strategy_id=strategy_id,
            reason=reason,
            cancels_requested=len(orders),
        )
        self._bus.publish(
            StrategyDisabled(
                ts_ns=self._clock.timestamp_ns(),
                strategy_id=strategy_id,
                reason=reason,
                cancels_requested=len(orders),
            )
        )
        self.cancel_orders(orders)
        return True

    def enable_strategy(self, strategy_id: str, who: str, why: str) -> bool:
        """The operator's command: let a disabled strategy trade again (journaled as
        ``StrategyEnabled`` with who and why); its fills count afresh. False if it was
        not disabled."""
        if self.disabled.pop(strategy_id, None) is None:
            return False
        if self._post_trade is not None:
            self._post_trade.strategy_enabled(strategy_id)
        log.warning("strategy_enabled", strategy_id=strategy_id, who=who, why=why)
        self._bus.publish(
            StrategyEnabled(
                ts_ns=self._clock.timestamp_ns(), strategy_id=strategy_id, who=who, why=why
            )
        )
        return True

    def restore_disabled(self, disabled: dict[str, str]) -> None:
        """Recovery: take over the disabled strategies the journal recorded (no event)."""
        self.disabled = dict(disabled)
        for strategy_id, reason in self.disabled.items():
            log.warning("strategy_disabled_restored", strategy_id=strategy_id, reason=reason)

    # -- fills (``risk.fills`` states the order) -----------------------------------------
    def fill_pre_trade(self, fill: OrderFilled) -> None:
        """A fill the portfolio has applied: the pre-trade checks' working book,
        positions and credit (nothing when no control reads them)."""
        if self._checks is not None:
            self._checks.on_fill(fill)

    # -- post-trade ---------------------------------------------------------------------
    def fill_post_trade(self, fill: OrderFilled) -> None:
        """A fill the portfolio and the pre-trade state have applied, before any strategy
        hears of it: repeated executions, then the PnL limits (nothing when none is
        configured)."""
        if self._post_trade is not None:
            self._post_trade.on_fill(fill)

    def post_trade_state(self) -> dict[str, Any]:
        """The post-trade limits' trading day so far, for a snapshot ({} when none)."""
        return {} if self._post_trade is None else self._post_trade.export_state()

    def restore_post_trade(self, state: dict[str, Any]) -> None:
        """Recovery: the trading day as the last snapshot had it."""
        if self._post_trade is not None:
            self._post_trade.restore_state(state)

    def check_post_trade(self) -> None:
        """Evaluate the daily loss and drawdown limits of the node and every strategy
        now. For the node's periodic timer; a no-op when none is configured."""
        if self._post_trade is not None:
            self._post_trade.evaluate(self._clock.timestamp_ns())

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
        if not _reduces(net, signed):
            denial = _NOT_REDUCING_DENIAL
        else:
            denial = self._check_order(
                order,
                order.side,
                order.quantity,
                order.price,
                self._clock.timestamp_ns(),
                is_increase=False,
                is_new=True,
                reducing=False,
                operator=True,
            )
        if denial is not None:
            self._deny(order, denial, "flatten_order_denied", warn=True)
            return False
        self._send(order)
        return True

    def _deny(self, order: Order, denial: Denial, log_event: str, *, warn: bool = False) -> None:
        reason = denial.reason
        message = denial.message()
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

    def cancel_orders(self, orders: Iterable[Order]) -> None:
        """Cancel each of ``orders`` as ``cancel_order`` does (the kill switch's open
        orders, a disabled strategy's): through the execution engine, counted in the
        message rates. An in-process venue handles the requests at its next flush."""
        for order in orders:
            self.cancel_order(order)

    def modify_order(self, order: Order, quantity: int, price: int | None) -> bool:
        if not order.is_open:
            self._deny_command(order, DenyReason.ORDER_NOT_OPEN, "order is not open")
            return False
        denial = self._check(
            order, order.side, quantity, price, is_increase=quantity > order.quantity, is_new=False
        )
        if denial is not None:
            self._deny_command(order, denial.reason, denial.message())
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
        """Every check (``_decide``) at the clock's time (read only when a check needs it)."""
        now = 0 if self._checks is None else self._clock.timestamp_ns()
        return self._decide(order, side, quantity, price, now, is_increase, is_new)

    def _decide(
        self,
        order: Order,
        side: OrderSide,
        quantity: int,
        price: int | None,
        now: int,
        is_increase: bool,
        is_new: bool,
    ) -> Denial | None:
        """The first failed check, or None. A denial's message is built only when it is
        published (``Denial.message``)."""
        state = self.state
        if state is _HALTED:
            return _HALTED_DENIAL
        disabled = self.disabled
        if disabled and order.strategy_id in disabled:
            return Denial(
                DenyReason.STRATEGY_DISABLED,
                f"strategy {order.strategy_id} is disabled until an operator enables it: "
                f"{disabled[order.strategy_id]}",
            )
        held = self.operator_pauses
        if held and order.instrument_id in held and (is_increase or price != order.price):
            until, why = held[order.instrument_id]
            left_ns = until - self._clock.timestamp_ns()
            if left_ns > 0:
                return Denial(
                    DenyReason.INSTRUMENT_PAUSED,
                    f"{order.instrument_id} is paused for another {left_ns / 1e9:g} s: {why}",
                )
        return self._check_order(
            order,
            side,
            quantity,
            price,
            now,
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
        now: int,
        *,
        is_increase: bool,
        is_new: bool,
        reducing: bool,
        operator: bool = False,
    ) -> Denial | None:
        """Every check but HALTED (``_decide`` tests that first): the order's form
        (``risk.size``), the REDUCING state, its size, then the configurable controls
        (``risk.checks``)."""
        iid = order.instrument_id
        limits = self._limits.get(iid)
        if limits is None:
            return Denial(DenyReason.UNKNOWN_INSTRUMENT, f"unknown instrument {iid}")
        # the order's form, on every order (inline: a call would cost more than the rule)
        venue = order.venue
        if venue != limits.venue:  # the instrument's venue, a configured one (__init__)
            if venue not in self._venues:
                return Denial(DenyReason.UNKNOWN_VENUE, f"unknown venue {venue}")
            return WrongVenue(limits, venue)
        if quantity <= 0 or quantity % limits.lot_raw:
            return InvalidQuantity(limits, quantity)
        if price is not None and (price <= 0 or price % limits.tick_raw):
            return InvalidPrice(limits, price)
        if reducing and is_increase:
            net = self._portfolio.net_quantity(iid)
            signed = quantity if side is _BUY else -quantity
            # working orders on the same side would close part of the position first
            for working in self._execution.open_orders(instrument_id=iid):
                if working is not order and working.side is side:
                    leaves = working.quantity - working.filled_qty
                    signed += leaves if side is _BUY else -leaves
            if not _reduces(net, signed):
                return _REDUCING_DENIAL
        if limits.has_size:
            denial = check_size(limits, side, quantity, price, self._last_quotes)
            if denial is not None:
                return denial
        checks = self._checks
        if checks is not None:
            return checks.check(
                order,
                iid,
                limits,
                side,
                quantity,
                price,
                now,
                is_increase=is_increase,
                is_new=is_new,
                operator=operator,
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


def _reduces(net: int, signed: int) -> bool:
    """The REDUCING rule: whether a signed quantity closes part or all of the net
    position ``net`` without flipping it."""
    return net != 0 and (net > 0) != (signed > 0) and abs(signed) <= abs(net)
