"""The composition root: one place wires clock, bus, portfolio, venue, execution,
risk gate and strategies together, by keyword, from typed config.

Backtests and live nodes build the same kernel; they differ only in the clock,
the feed that calls ``on_quote``/``on_bar`` and what drives ``flush``. Trade
prints (``on_trade``) come from the venue: the FIX venue's market data, or the
in-process venue's own matches.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import structlog

from bastion.bus import Handler, MessageBus
from bastion.clock import Clock
from bastion.config import BacktestConfig, PaperConfig, resolve_path
from bastion.execution.engine import ExecutionEngine
from bastion.execution.ids import ClientOrderIdGenerator
from bastion.journal.sqlite import SqliteJournal
from bastion.model.data import Bar, QuoteTick, TradeTick
from bastion.model.enums import OrderSide, OrderStatus, OrderType, TradingState
from bastion.model.events import (
    CommandDenied,
    InstrumentPaused,
    InstrumentResumed,
    OrderFilled,
    OrderModifyRejected,
    ReconciliationCompleted,
    ReconciliationMismatch,
    RiskLimitsChanged,
    RiskOverrideEnded,
    RiskOverrideSet,
    StrategyDisabled,
    StrategyEnabled,
    StrategyFailed,
    TradingStateChanged,
)
from bastion.model.instruments import Instrument
from bastion.portfolio.portfolio import Portfolio
from bastion.risk.config import RiskConfig
from bastion.risk.fills import FillPipeline
from bastion.risk.gate import RiskGate
from bastion.risk.overrides import RiskOverrides
from bastion.strategy.runner import StrategyRunner, load_strategy
from bastion.venues.fix.adapter import FixVenueAdapter
from bastion.venues.sim.venue import SimVenue

_PENDING_CANCEL = OrderStatus.PENDING_CANCEL
_PENDING_REPLACE = OrderStatus.PENDING_REPLACE
log = structlog.get_logger("bastion.node.kernel")
_NONE: tuple[()] = ()

OPERATOR_STRATEGY_ID = "operator"
"""The strategy id of orders the operator sends (the kill switch's flatten orders)."""


class Kernel:
    """A trading node's components, wired."""

    def __init__(
        self,
        *,
        config: PaperConfig | BacktestConfig,
        base_dir: Path,
        clock: Clock,
        epoch: int,
        journal: SqliteJournal | None = None,
        request_flush: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.journal = journal
        self.bus = MessageBus(on_handler_error=self._on_handler_error)
        self.handler_errors = 0
        self.instruments: dict[str, Instrument] = {
            i.id: i.to_instrument() for i in config.instruments
        }
        self.last_quotes: dict[str, QuoteTick] = {}
        self.last_trades: dict[str, TradeTick] = {}
        """The last trade print per instrument (``on_trade``): the price collar's
        reference under ``collar_reference = "last"``."""
        self.portfolio = Portfolio(
            instruments=self.instruments,
            last_quotes=self.last_quotes,
            currency=config.account.currency,
            starting_cash=config.account.starting_cash,
        )
        fix_config = config.fix_venue if isinstance(config, PaperConfig) else None
        self.venue: SimVenue | FixVenueAdapter
        if fix_config is not None:
            self.venue = FixVenueAdapter(
                name=fix_config.name,
                settings=fix_config.settings(),
                store_path=resolve_path(base_dir, fix_config.store_path),
                host=fix_config.host,
                port=fix_config.port,
                clock=clock,
                instruments=self.instruments,
                account=fix_config.account,
                backoff_initial_s=fix_config.reconnect_initial_ms / 1000,
                backoff_max_s=fix_config.reconnect_max_ms / 1000,
                subscribe_market_data=fix_config.market_data,
            )
            self.venue.on_quote_sink = self.on_quote
            self.venue.on_trade_sink = self.on_trade
        else:
            self.venue = SimVenue(
                config=config.venue,
                clock=clock,
                instruments=self.instruments,
                request_flush=request_flush,
                id_prefix=f"{epoch}-" if isinstance(config, PaperConfig) else "",
            )
            self.venue.on_trade_sink = self.on_trade  # its own matches are the trades
        self.execution = ExecutionEngine(
            bus=self.bus,
            clock=clock,
            ids=ClientOrderIdGenerator(config.node.id, epoch),
            venues={self.venue.name: self.venue},
            journal=journal.append if journal is not None else None,
        )
        self.risk = RiskGate(
            config=config.risk,
            bus=self.bus,
            clock=clock,
            execution=self.execution,
            portfolio=self.portfolio,
            instruments=self.instruments,
            last_quotes=self.last_quotes,
            venues={self.venue.name},
            strategies=[s.name for s in config.strategies],
            last_trades=self.last_trades,
        )
        self.strategies = StrategyRunner(
            bus=self.bus,
            clock=clock,
            portfolio=self.portfolio,
            execution=self.execution,
            risk=self.risk,
            instruments=self.instruments,
            last_quotes=self.last_quotes,
        )
        self._venue_on_quote = self.venue.on_quote
        self._venue_inbox = self.venue.inbox
        self._quote_subscribers = self.strategies.quote_subscribers
        self._quote_guard = self.risk.quote_hook  # None unless a risk limit watches quotes
        # the only fill subscriber of the node: ``risk.fills`` states who sees a fill when
        self.fills = FillPipeline(
            portfolio=self.portfolio, risk=self.risk, strategies=self.strategies.on_order_event
        )
        self.bus.subscribe(OrderFilled, self.fills.on_fill)
        self.risk_overrides = RiskOverrides(
            base=config.risk,
            apply=self.apply_risk_config,
            bus=self.bus,
            clock=clock,
            id_prefix=f"{epoch}.",
        )
        if journal is not None:
            for event_type in (
                TradingStateChanged,
                StrategyFailed,
                CommandDenied,
                ReconciliationCompleted,
                ReconciliationMismatch,
                InstrumentPaused,
                InstrumentResumed,
                StrategyDisabled,
                StrategyEnabled,
                RiskLimitsChanged,
                RiskOverrideSet,
                RiskOverrideEnded,
            ):
                self.bus.subscribe(event_type, journal.append)
        for strategy_config in config.strategies:
            strategy = load_strategy(strategy_config, base_dir)
            self.strategies.add(
                strategy, strategy_config.name, strategy_config.params, strategy_config.on_error
            )

    # -- data path ------------------------------------------------------------------------
    def on_quote(self, quote: QuoteTick) -> None:
        """The per-quote hot path: venue first (so fills see this touch), then strategies."""
        self.last_quotes[quote.instrument_id] = quote
        guard = self._quote_guard
        if guard is not None:
            guard(quote)
        self._venue_on_quote(quote)
        for handler in self._quote_subscribers.get(quote.instrument_id, _NONE):
            try:
                handler(quote)
            except Exception as error:
                self.strategies.fail(handler.__self__, error)  # type: ignore[attr-defined]
        if self._venue_inbox:
            self.venue.flush()

    def on_trade(self, trade: TradeTick) -> None:
        """A trade print at the venue: kept as the instrument's last trade."""
        self.last_trades[trade.instrument_id] = trade

    def on_bar(self, bar: Bar) -> None:
        # with bars only, the close is the node's latest price: it marks positions
        # and is the risk gate's reference price
        size = bar.volume if bar.volume > 0 else 1
        quote = QuoteTick(bar.instrument_id, bar.ts_ns, bar.close, bar.close, size, size)
        self.last_quotes[bar.instrument_id] = quote
        if self._quote_guard is not None:
            self._quote_guard(quote)
        self.venue.on_bar(bar)
        self.strategies.on_bar(bar)
        if self._venue_inbox:
            self.venue.flush()

    def apply_risk_config(self, config: RiskConfig) -> None:
        """New risk limits in force now (operator overrides: ``risk_overrides``)."""
        risk = self.risk
        risk.reconfigure(config)
        self._quote_guard = risk.quote_hook

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self.risk.check_post_trade()  # the day's starting PnL, before any strategy trades
        self.strategies.start_all()
        self.venue.flush()

    def stop_strategies(self) -> None:
        self.strategies.stop_all()
        self.venue.flush()

    def cancel_all_orders(self) -> int:
        """Ask the venue to cancel every open order; return how many were asked."""
        orders = self.execution.open_orders()
        self.risk.cancel_orders(orders)
        self.venue.flush()
        return len(orders)

    def settle_after_restart(self) -> None:
        """At start, once recovered and reconciled, before the strategies start: what the
        stop left half done (an amend or a cancel the venue never got, a disabled
        strategy's orders still working)."""
        self.settle_pending_amends()
        self.resend_pending_cancels()
        self.cancel_disabled_orders()

    def settle_pending_amends(self) -> int:
        """At start, after recovery and reconciliation: an amend still unanswered
        (``PENDING_REPLACE``) never reached the venue: a request stored before the restart
        is gap-filled, and the venue's answer, had it had one, came back during
        reconciliation. It is rejected: the order keeps the size and price the venue has,
        and its strategy may amend again. Returns how many."""
        orders = [o for o in self.execution.open_orders() if o.status is _PENDING_REPLACE]
        if orders:
            log.warning(
                "pending_amends_rejected",
                client_order_ids=[o.client_order_id for o in orders],
            )
        for order in orders:
            self.execution.resolve(
                order,
                OrderModifyRejected(
                    ts_ns=self.clock.timestamp_ns(),
                    client_order_id=order.client_order_id,
                    strategy_id=order.strategy_id,
                    instrument_id=order.instrument_id,
                    reason="the amend did not reach the venue before the node restarted",
                ),
            )
        return len(orders)

    def resend_pending_cancels(self) -> int:
        """At start, after recovery and reconciliation: send again the cancels of orders
        still ``PENDING_CANCEL`` (the node stopped between asking and the venue's answer;
        the venue still lists them open, so the first request may be lost). A venue that
        had it already answers with a reject or the cancel. Returns how many."""
        orders = [o for o in self.execution.open_orders() if o.status is _PENDING_CANCEL]
        if orders:
            log.warning(
                "pending_cancels_resent",
                client_order_ids=[o.client_order_id for o in orders],
            )
            for order in orders:
                self.execution.resend_cancel(order)
            self.venue.flush()
        return len(orders)

    def cancel_disabled_orders(self) -> int:
        """At start, after recovery and reconciliation: cancel the open orders of the
        strategies that were disabled before (``risk.cancel_on_disable``), e.g. when the
        node stopped between journaling ``StrategyDisabled`` and sending the cancels, or
        the key was off then. Returns how many were asked."""
        risk = self.risk
        if not risk.config.cancel_on_disable or not risk.disabled:
            return 0
        orders = [o for o in self.execution.open_orders() if o.strategy_id in risk.disabled]
        if orders:
            log.warning(
                "disabled_strategies_orders_canceled",
                strategies=sorted({o.strategy_id for o in orders}),
                cancels_requested=len(orders),
            )
            risk.cancel_orders(orders)
            self.venue.flush()
        return len(orders)

    # -- kill switch ----------------------------------------------------------------------
    def kill(self, reason: str) -> int:
        """HALT (journaled), then ask the venue to cancel every open order; return how many."""
        self.risk.set_trading_state(TradingState.HALTED, reason)
        return self.cancel_all_orders()

    def flatten(self) -> tuple[int, int]:
        """Market orders against each non-zero node-wide position, through the gate's
        flatten path (allowed while HALTED, still collared); a position larger than the
        instrument's ``max_order_quantity`` is closed in slices of at most that size.
        Returns (orders sent, orders denied); the first denied slice stops that
        instrument."""
        sent = denied = 0
        portfolio = self.portfolio
        for iid in portfolio.instruments_traded():
            net = portfolio.net_quantity(iid)
            if net == 0:
                continue
            instrument = self.instruments[iid]
            largest = self.risk.max_order_quantity_raw(iid)
            step = abs(net)
            if largest is not None:
                step = max(1, largest // instrument.lot_raw) * instrument.lot_raw
            left = abs(net)
            while left > 0:
                order = self.execution.create_order(
                    strategy_id=OPERATOR_STRATEGY_ID,
                    instrument_id=iid,
                    venue=instrument.venue,
                    side=OrderSide.SELL if net > 0 else OrderSide.BUY,
                    order_type=OrderType.MARKET,
                    quantity=min(step, left),
                )
                if not self.risk.submit_flatten(order):
                    denied += 1
                    break
                sent += 1
                left -= order.quantity
        self.venue.flush()
        return sent, denied

    def restore_trading_state(self, state: TradingState, reason: str) -> None:
        """Take over the state the journal last recorded (no new event: nothing changed)."""
        log.warning("trading_state_restored", state=state.value, reason=reason)
        self.risk.state = state
        self.risk.state_reason = reason

    def _on_handler_error(self, handler: Handler, message: object, error: BaseException) -> None:
        self.handler_errors += 1
        log.error(
            "event_handler_failed",
            handler=getattr(handler, "__qualname__", repr(handler)),
            event_type=type(message).__name__,
            error=repr(error),
        )
