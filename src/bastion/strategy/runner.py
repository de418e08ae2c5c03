"""Hosting strategies: loading them from user files, dispatching data and order
events to them, and isolating their failures.

A strategy that raises is stopped and reported by name (a ``StrategyFailed``
event and an error log); the node keeps running, or halts trading if the
strategy's ``on_error`` is ``halt``.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import structlog

from bastion.bus import MessageBus
from bastion.clock import Clock
from bastion.errors import ConfigError, StrategyError
from bastion.execution.engine import ExecutionEngine
from bastion.model.data import Bar, QuoteTick
from bastion.model.enums import TradingState
from bastion.model.events import (
    ORDER_EVENT_TYPES,
    FeedStatus,
    OrderEvent,
    OrderFilled,
    StrategyFailed,
)
from bastion.model.instruments import Instrument
from bastion.portfolio.portfolio import Portfolio
from bastion.risk.gate import RiskGate
from bastion.strategy.base import Strategy
from bastion.strategy.config import StrategyConfig

log = structlog.get_logger("bastion.strategy")
_Hook = Callable[[Any], None]


class OrdersView:
    """The execution engine as a strategy sees it: it may create and read orders,
    but sending, canceling and modifying them goes through ``GateView``."""

    __slots__ = ("create_order", "open_orders", "open_quantity", "order")

    def __init__(self, execution: ExecutionEngine) -> None:
        self.create_order = execution.create_order
        self.open_orders = execution.open_orders
        self.open_quantity = execution.open_quantity
        self.order = execution.order


class GateView:
    """The risk gate as a strategy sees it: order commands only. A strategy cannot
    change the trading state or the limits."""

    __slots__ = ("cancel_order", "modify_order", "submit_order")

    def __init__(self, risk: RiskGate) -> None:
        self.submit_order = risk.submit_order
        self.cancel_order = risk.cancel_order
        self.modify_order = risk.modify_order


class RunnerContext:
    """What a running strategy may use (``strategy.context.StrategyContext``): read-only
    views plus the risk gate's commands.

    Nothing here reaches a venue except through the gate (``risk``).
    """

    def __init__(
        self,
        *,
        strategy: Strategy,
        strategy_id: str,
        clock: Clock,
        portfolio: Portfolio,
        execution: ExecutionEngine,
        risk: RiskGate,
        instruments: dict[str, Instrument],
        last_quotes: dict[str, QuoteTick],
        runner: StrategyRunner,
    ) -> None:
        self.clock = clock
        self.portfolio = portfolio
        self.execution = OrdersView(execution)
        self.risk = GateView(risk)
        self.instruments = instruments
        self.last_quotes = last_quotes
        self.log = log.bind(strategy=strategy_id)
        self._strategy = strategy
        self._runner = runner

    def instrument(self, instrument_id: str) -> Instrument:
        try:
            return self.instruments[instrument_id]
        except KeyError:
            raise StrategyError(f"unknown instrument {instrument_id!r}") from None

    def venue_of(self, instrument_id: str) -> str:
        instrument = self.instruments.get(instrument_id)
        if instrument is None:
            raise StrategyError(f"unknown instrument {instrument_id!r}")
        return instrument.venue

    def subscribe_quotes(self, instrument_id: str) -> None:
        self.instrument(instrument_id)
        self._runner.subscribe(self._runner.quote_subscribers, self._strategy, instrument_id)

    def subscribe_bars(self, instrument_id: str) -> None:
        self.instrument(instrument_id)
        self._runner.subscribe(self._runner.bar_subscribers, self._strategy, instrument_id)


class StrategyRunner:
    """Starts, feeds and stops the node's strategies."""

    def __init__(
        self,
        *,
        bus: MessageBus,
        clock: Clock,
        portfolio: Portfolio,
        execution: ExecutionEngine,
        risk: RiskGate,
        instruments: dict[str, Instrument],
        last_quotes: dict[str, QuoteTick],
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._deps: dict[str, Any] = {
            "clock": clock,
            "portfolio": portfolio,
            "execution": execution,
            "risk": risk,
            "instruments": instruments,
            "last_quotes": last_quotes,
        }
        self._risk = risk
        self.strategies: dict[str, Strategy] = {}
        self._on_error: dict[str, str] = {}
        self.running: set[str] = set()
        # strategy id -> its overridden order hooks (running strategies only)
        self._event_hooks: dict[
            str, tuple[Callable[[Any], None] | None, Callable[[Any], None] | None]
        ] = {}
        self.failures: list[str] = []
        # strategy id -> state saved at the last snapshot, handed to on_load at start
        self.restored_states: dict[str, bytes] = {}
        # instrument id -> bound handlers of running strategies, as tuples for the hot path
        self.quote_subscribers: dict[str, tuple[Callable[[Any], None], ...]] = {}
        self.bar_subscribers: dict[str, tuple[Callable[[Any], None], ...]] = {}
        self._order_events_subscribed = False
        self._feed_status_subscribed = False

    def add(
        self, strategy: Strategy, strategy_id: str, params: dict[str, Any], on_error: str = "stop"
    ) -> None:
        if strategy_id in self.strategies:
            raise ConfigError(f"duplicate strategy name {strategy_id!r}")
        strategy.id = strategy_id
        strategy.params = dict(params)
        strategy._ctx = RunnerContext(
            strategy=strategy, strategy_id=strategy_id, runner=self, **self._deps
        )
        self.strategies[strategy_id] = strategy
        self._on_error[strategy_id] = on_error

    @property
    def hears_order_events(self) -> bool:
        """Whether a running strategy overrides ``on_order_event`` or ``on_fill`` (else
        ``on_order_event`` does nothing): known once ``start_all`` has run."""
        return bool(self._event_hooks)

    def _subscribe_order_events(self) -> None:
        """Listen to order events only if some strategy has a hook for them: with none,
        an order event costs the bus one dict lookup. Fills come from the kernel's fill
        pipeline (``risk.fills``), after the portfolio and the risk gate have them."""
        if self._order_events_subscribed:
            return
        if any(on_event is not None for on_event, _ in self._event_hooks.values()):
            self._order_events_subscribed = True
            for event_type in ORDER_EVENT_TYPES:
                if event_type is not OrderFilled:
                    self._bus.subscribe(event_type, self.on_order_event)

    # -- lifecycle ----------------------------------------------------------------------
    def start_all(self) -> None:
        if not self._feed_status_subscribed:
            self._feed_status_subscribed = True
            self._bus.subscribe(FeedStatus, self.on_feed_status)
        for sid, strategy in self.strategies.items():
            self._attach(sid, strategy)
        if self._event_hooks:
            self._subscribe_order_events()
        for sid, strategy in self.strategies.items():
            saved = self.restored_states.get(sid)
            if saved is not None:
                self._call(strategy, functools.partial(load_state, strategy, saved))
                if sid in self.running:
                    log.info("strategy_state_restored", strategy=sid, bytes=len(saved))
            if sid in self.running:
                self._call(strategy, strategy.on_start)
            if sid in self.running:
                log.info("strategy_started", strategy=sid)

    def _attach(self, sid: str, strategy: Strategy) -> None:
        self.running.add(sid)
        cls = type(strategy)
        overrides = cls.on_order_event is not Strategy.on_order_event
        on_event = strategy.on_order_event if overrides else None
        on_fill = strategy.on_fill if cls.on_fill is not Strategy.on_fill else None
        if on_event is not None or on_fill is not None:
            self._event_hooks[sid] = (on_event, on_fill)

    def stop_strategy(self, strategy_id: str) -> str | None:
        """Stop one running strategy: detached from its quotes, bars and order events,
        then ``on_stop``. None when done, else why not."""
        strategy = self.strategies.get(strategy_id)
        if strategy is None:
            return f"no strategy {strategy_id!r}"
        if strategy_id not in self.running:
            return f"strategy {strategy_id} is not running"
        self._detach(strategy)
        try:
            strategy.on_stop()
        except Exception as error:
            detail = "".join(traceback.format_exception_only(type(error), error)).strip()
            log.error("strategy_on_stop_failed", strategy=strategy_id, error=detail)
        log.info("strategy_stopped", strategy=strategy_id)
        return None

    def start_strategy(self, strategy_id: str) -> str | None:
        """Run a stopped (or failed) strategy again: its hooks attached, ``on_start``
        (which subscribes it to its data again). None when done, else why not."""
        strategy = self.strategies.get(strategy_id)
        if strategy is None:
            return f"no strategy {strategy_id!r}"
        if strategy_id in self.running:
            return f"strategy {strategy_id} is running already"
        self._attach(strategy_id, strategy)
        self._subscribe_order_events()
        self._call(strategy, strategy.on_start)
        if strategy_id not in self.running:
            return f"strategy {strategy_id} failed as it started (on_start)"
        log.info("strategy_started", strategy=strategy_id)
        return None

    def save_states(self) -> dict[str, bytes]:
        """Each strategy's ``on_save`` state, encoded (msgpack), for a snapshot.

        A strategy whose ``on_save`` fails or returns something that cannot be encoded
        keeps the state it had at the previous snapshot (logged, not fatal). A strategy
        that is not running keeps its last saved state.
        """
        states = dict(self.restored_states)
        for sid, strategy in self.strategies.items():
            if sid not in self.running:
                continue
            try:
                state = strategy.on_save()
                if not isinstance(state, dict):
                    raise TypeError(f"on_save returned {type(state).__name__}, not a dict")
                states[sid] = encode_state(state)
            except Exception as error:
                detail = "".join(traceback.format_exception_only(type(error), error)).strip()
                log.error("strategy_on_save_failed", strategy=sid, error=detail)
        self.restored_states = states
        return states

    async def refresh_states(self, timeout_s: float) -> None:
        """Nothing to wait for: ``save_states`` calls the strategies directly."""

    def stop_all(self) -> None:
        for sid, strategy in self.strategies.items():
            if sid not in self.running:
                continue
            self._detach(strategy)
            try:
                strategy.on_stop()
            except Exception as error:
                detail = "".join(traceback.format_exception_only(type(error), error)).strip()
                log.error("strategy_on_stop_failed", strategy=sid, error=detail)
                self.failures.append(f"{sid}: on_stop: {detail}")
            log.info("strategy_stopped", strategy=sid)

    # -- dispatch -----------------------------------------------------------------------
    def subscribe(
        self,
        table: dict[str, tuple[Callable[[Any], None], ...]],
        strategy: Strategy,
        instrument_id: str,
    ) -> None:
        handler = strategy.on_quote if table is self.quote_subscribers else strategy.on_bar
        handlers = table.get(instrument_id, ())
        if handler not in handlers:
            table[instrument_id] = (*handlers, handler)

    def on_quote(self, quote: QuoteTick) -> None:
        for handler in self.quote_subscribers.get(quote.instrument_id, ()):
            try:
                handler(quote)
            except Exception as error:
                self.fail(handler.__self__, error)  # type: ignore[attr-defined]

    def on_bar(self, bar: Bar) -> None:
        for handler in self.bar_subscribers.get(bar.instrument_id, ()):
            try:
                handler(bar)
            except Exception as error:
                self.fail(handler.__self__, error)  # type: ignore[attr-defined]

    def on_feed_status(self, status: FeedStatus) -> None:
        """To the running strategies subscribed to the instrument's quotes."""
        for handler in self.quote_subscribers.get(status.instrument_id, ()):
            strategy: Strategy = handler.__self__  # type: ignore[attr-defined]
            try:
                strategy.on_feed_status(status)
            except Exception as error:
                self.fail(strategy, error)

    def on_order_event(self, event: OrderEvent) -> None:
        hooks = self._event_hooks.get(event.strategy_id)
        if hooks is None:  # not running, or overrides neither hook
            return
        on_event, on_fill = hooks
        try:
            if on_event is not None:
                on_event(event)
            if on_fill is not None and type(event) is OrderFilled:
                on_fill(event)
        except Exception as error:
            self.fail(self.strategies[event.strategy_id], error)

    # -- failure ------------------------------------------------------------------------
    def fail(self, strategy: Strategy, error: BaseException) -> None:
        sid = strategy.id
        if sid not in self.running:
            return
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        log.error("strategy_failed", strategy=sid, error=detail)
        self.failures.append(f"{sid}: {detail}")
        self._detach(strategy)
        self._bus.publish(
            StrategyFailed(ts_ns=self._clock.timestamp_ns(), strategy_id=sid, error=detail)
        )
        try:
            strategy.on_stop()
        except Exception as stop_error:  # a failing strategy may fail again while stopping
            log.error("strategy_on_stop_failed", strategy=sid, error=repr(stop_error))
        if self._on_error.get(sid) == "halt":
            self._risk.set_trading_state(TradingState.HALTED, f"strategy {sid} failed")

    def _call(self, strategy: Strategy, hook: Callable[[], None]) -> None:
        try:
            hook()
        except Exception as error:
            self.fail(strategy, error)

    def _detach(self, strategy: Strategy) -> None:
        self.running.discard(strategy.id)
        self._event_hooks.pop(strategy.id, None)
        for table in (self.quote_subscribers, self.bar_subscribers):
            for instrument_id, handlers in list(table.items()):
                table[instrument_id] = tuple(h for h in handlers if h.__self__ is not strategy)  # type: ignore[attr-defined]


encode_state = msgspec.msgpack.Encoder().encode
_state_decoder = msgspec.msgpack.Decoder(dict[str, Any])


def load_state(strategy: Strategy, payload: bytes) -> None:
    strategy.on_load(_state_decoder.decode(payload))


def load_strategy(config: StrategyConfig, base_dir: Path) -> Strategy:
    """Import the user's file and instantiate the configured Strategy subclass."""
    path = (base_dir / config.path).resolve()
    if not path.is_file():
        raise ConfigError(f"strategy {config.name!r}: file not found: {path}")
    module_name = f"bastion_user_strategy_{config.name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"strategy {config.name!r}: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise StrategyError(
            f"strategy {config.name!r}: importing {path} failed: {error!r}"
        ) from error
    cls = getattr(module, config.class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ConfigError(
            f"strategy {config.name!r}: {path} defines no Strategy subclass {config.class_name!r}"
        )
    try:
        return cls()
    except Exception as error:
        raise StrategyError(
            f"strategy {config.name!r}: constructing {cls.__name__} failed: {error!r}"
        ) from error
