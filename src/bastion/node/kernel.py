"""The composition root: one place wires clock, bus, portfolio, venue, execution,
risk gate and strategies together, by keyword, from typed config.

A node has one or more venues (``venues``, built through ``bastion.venues.registry``
from the config; nothing here knows their kinds): each order goes to its instrument's
venue. Backtests and live nodes build the same kernel; they differ only in the clock,
the feed that calls ``on_quote``/``on_bar`` and what drives ``flush``. Trade prints
(``on_trade``) come from the venues: a FIX venue's market data, or the in-process
venue's own matches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import structlog

from bastion.bus import Handler, MessageBus
from bastion.clock import Clock
from bastion.config import BacktestConfig, PaperConfig, check_fix_stores, resolve_path
from bastion.execution.engine import ExecutionEngine
from bastion.execution.ids import ClientOrderIdGenerator
from bastion.feeds import Feed, FeedContext, FeedSink, build_feed
from bastion.feeds.arbiter import Arbiter
from bastion.feeds.validation import ValidatedFeed
from bastion.feeds.validation.rules import SEQ_GAP
from bastion.ha.fence import Fence
from bastion.isolation.host import ProcessStrategyHost
from bastion.journal.base import Journal
from bastion.model.data import Bar, QuoteTick, TradeTick
from bastion.model.enums import OrderSide, OrderStatus, OrderType, TradingState
from bastion.model.events import (
    BUS_JOURNALED_EVENT_TYPES,
    OrderModifyRejected,
    VenueHalted,
    VenueResumed,
)
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.monitor.alerts.book import AlertBook
from bastion.portfolio.portfolio import Portfolio
from bastion.risk.ceilings import Ceilings
from bastion.risk.config import RiskConfig
from bastion.risk.fills import FillPipeline
from bastion.risk.gate import RiskGate
from bastion.risk.overrides import RiskOverrides
from bastion.security.config import DEFAULT_OVERRIDE_FACTOR
from bastion.strategy.context import StrategyHost
from bastion.strategy.runner import StrategyRunner, load_strategy
from bastion.vault.refs import SecretSource
from bastion.venues.base import QuoteSink, SenderSeqs, VenueAdapter, VenueContext
from bastion.venues.registry import build_venue

if TYPE_CHECKING:
    from bastion.feeds.recorder.recorder import Recorder

_PENDING_CANCEL = OrderStatus.PENDING_CANCEL
_PENDING_REPLACE = OrderStatus.PENDING_REPLACE
log = structlog.get_logger("bastion.node.kernel")
_NONE: tuple[()] = ()

OPERATOR_STRATEGY_ID = "operator"
"""The strategy id of orders the operator sends (the kill switch's flatten orders)."""


class KillCancels(NamedTuple):
    """What a kill did with the open orders."""

    sent: int
    """Cancels handed to a connected venue."""
    pending_reconnect: int
    """Orders at a venue down now: nothing can reach it, so they are canceled once it is
    logged on and reconciled again (``Kernel.cancel_if_halted``)."""


class Kernel:
    """A trading node's components, wired."""

    def __init__(
        self,
        *,
        config: PaperConfig | BacktestConfig,
        base_dir: Path,
        clock: Clock,
        epoch: int,
        journal: Journal | None = None,
        request_flush: Callable[[], None] | None = None,
        secrets: SecretSource | None = None,
        fence: Fence | None = None,
        sender_seqs: Callable[[str], SenderSeqs] | None = None,
    ) -> None:
        """``fence``: an HA member's lease (``bastion.ha``): its epoch is ``epoch`` (the
        one in every client order id and in each FIX Logon), and once its deadline
        passes nothing more leaves for a venue, the journal takes nothing more, and
        trading halts (``lease_lost``). ``sender_seqs``: the group's reserved FIX
        sequence numbers (``bastion.ha.fix_seqs``)."""
        if fence is not None and fence.epoch != epoch:
            raise ValueError(f"the fence's epoch {fence.epoch} is not the node's {epoch}")
        if isinstance(config, PaperConfig):  # a config built in code skipped the file check
            check_fix_stores(config, base_dir)
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
        context = VenueContext(
            clock=clock,
            instruments=self.instruments,
            base_dir=base_dir,
            epoch=epoch,
            live=isinstance(config, PaperConfig),
            request_flush=request_flush,
            secrets=secrets,
            fencing_epoch=None if fence is None else fence.epoch,
            sender_seqs=sender_seqs,
        )
        self.fence = fence
        self.venues: dict[str, VenueAdapter] = {}
        for venue_config in config.venue_configs():
            venue = build_venue(venue_config, context)
            venue.on_trade_sink = self.on_trade  # a FIX venue's prints, a sim venue's matches
            self.venues[venue.name] = venue
        # quotes and bars go to the venue of their instrument if it matches on them
        self._venue_on_quote: dict[str, QuoteSink] = {}
        self._venue_on_bar: dict[str, VenueAdapter] = {}
        for iid, instrument in self.instruments.items():
            venue = self.venues[instrument.venue]
            if venue.matches_on_quotes:
                self._venue_on_quote[iid] = venue.on_quote
                self._venue_on_bar[iid] = venue
        self._pending = [(venue.inbox, venue.flush) for venue in self.venues.values()]
        self._sole_venue: VenueAdapter | None = None
        """The node's venue when it is the only one and matches on every quote (every
        backtest, most nodes): ``on_quote`` and ``flush`` take the shorter path."""
        if len(self.venues) == 1 and len(self._venue_on_quote) == len(self.instruments):
            (self._sole_venue,) = self.venues.values()
        validation = config.validation if isinstance(config, PaperConfig) else None
        if validation is not None and not validation.enabled:
            validation = None
        pausable = (
            []
            if validation is None
            else [
                iid
                for iid in self.instruments
                if "pause" in validation.for_instrument(iid).actions.values()
            ]
        )
        ids = ClientOrderIdGenerator(config.node.id, epoch)
        self.execution = ExecutionEngine(
            bus=self.bus,
            clock=clock,
            ids=ids,
            venues=self.venues,
            journal=journal.append if journal is not None else None,
            fence=fence,
            on_fenced=None if fence is None else self.lease_lost,
        )
        self.risk = RiskGate(
            config=config.risk,
            bus=self.bus,
            clock=clock,
            execution=self.execution,
            portfolio=self.portfolio,
            instruments=self.instruments,
            last_quotes=self.last_quotes,
            venues=set(self.venues),
            strategies=[s.name for s in config.strategies],
            last_trades=self.last_trades,
            pausable=pausable,
        )
        self.isolation = "inline"
        """Where the strategies run: ``inline`` (this process) or ``process``."""
        self.strategies: StrategyHost
        if isinstance(config, PaperConfig) and config.isolation == "process":
            self.isolation = "process"
            self.strategies = ProcessStrategyHost(
                configs=config.strategies,
                base_dir=base_dir,
                bus=self.bus,
                clock=clock,
                portfolio=self.portfolio,
                execution=self.execution,
                risk=self.risk,
                ids=ids,
                instruments=config.instruments,
                last_quotes=self.last_quotes,
                flush=self.flush,
                log_level=config.node.log_level,
                log_format=config.node.log_format,
            )
        else:
            self.strategies = StrategyRunner(
                bus=self.bus,
                clock=clock,
                portfolio=self.portfolio,
                execution=self.execution,
                risk=self.risk,
                instruments=self.instruments,
                last_quotes=self.last_quotes,
            )
        self._quote_subscribers = self.strategies.quote_subscribers
        self._quote_guard = self.risk.quote_hook  # None unless a risk limit watches quotes
        # the only fill subscriber of the node: ``risk.fills`` states who sees a fill when
        self.fills = FillPipeline(
            portfolio=self.portfolio, risk=self.risk, strategies=self.strategies.on_order_event
        )
        self.fills.attach(self.bus)
        self._refresh_fills()
        self.halt_cancels: Counter[str] = Counter()
        """Per venue: cancels sent after a reconciliation because the node or the venue
        was halted (``cancel_if_halted``)."""
        self.risk_overrides = RiskOverrides(
            base=config.risk,
            apply=self.apply_risk_config,
            bus=self.bus,
            clock=clock,
            id_prefix=f"{epoch}.",
            ceilings=Ceilings(
                config.access.max_override_factor
                if isinstance(config, PaperConfig) and config.access is not None
                else DEFAULT_OVERRIDE_FACTOR
            ),
        )
        if journal is not None:
            for event_type in BUS_JOURNALED_EVENT_TYPES:
                self.bus.subscribe(event_type, journal.append)
        self.alerts = AlertBook()
        """The alerts firing and the silences running, as journaled (recovered at start,
        then followed on the bus): the alert engine carries them over a restart."""
        self.alerts.attach(self.bus)
        feed_context = FeedContext(
            instruments=self.instruments, venues=self.venues, base_dir=base_dir, secrets=secrets
        )
        self.feeds: list[Feed] = [build_feed(f, feed_context) for f in config.feed_configs()]
        """The node's market data sources; one that pushes (a venue's) is wired now."""
        self.feed_sinks: dict[str, FeedSink] = {}
        """Where each feed delivers: its ``ValidatedFeed`` (``[validation]``), which hands
        the quotes that pass on; the kernel itself with validation off. On means
        ``on_quote``, or the arbiter for an instrument that several feeds supply."""
        self.validated_feeds: list[ValidatedFeed] = []
        self.recorder = _recorder(config, base_dir, self.instruments, clock)
        """Records the feeds (``[recording]``); None when nothing is recorded (nothing is
        added to the quote path then)."""
        recorder = self.recorder
        delivery: FeedSink = self if recorder is None else recorder.delivered(self)
        self.arbiter = _arbiter(config, self.feeds, self.instruments, delivery, self.bus, clock)
        """Chooses the feed of each instrument that several feeds supply; None when every
        instrument has one feed (nothing is added to the quote path then)."""
        arbiter = self.arbiter
        arbitrated = frozenset() if arbiter is None else frozenset(arbiter.lines)
        for feed in self.feeds:
            contested = sorted(feed.instruments & arbitrated)
            port: FeedSink = delivery
            on_reject = None
            if arbiter is not None and contested:
                feed_port = arbiter.port(feed.name, delivery)
                port, on_reject = feed_port, feed_port.rejected
            sink = port
            if validation is not None:
                validated = ValidatedFeed(
                    feed=feed.name,
                    instruments=[self.instruments[iid] for iid in sorted(feed.instruments)],
                    config=validation,
                    sink=port,
                    clock=clock,
                    pause=self.risk.pause_for_data,
                    trade_sink=self.on_trade,
                    on_reject=on_reject,
                    on_verdict=None if recorder is None else recorder.verdicts(feed.name),
                )
                self.validated_feeds.append(validated)
                feed.attach_trades(validated.on_trade)
                sink = validated
                if arbiter is not None:
                    for iid in contested:
                        arbiter.watch_gaps(feed.name, iid, validated.rules(iid).counts, SEQ_GAP)
            if recorder is not None:
                sink = recorder.raw(feed.name, sink)
            self.feed_sinks[feed.name] = sink
            feed.attach(sink)
        if isinstance(self.strategies, StrategyRunner):
            for strategy_config in config.strategies:
                strategy = load_strategy(strategy_config, base_dir)
                self.strategies.add(
                    strategy, strategy_config.name, strategy_config.params, strategy_config.on_error
                )

    @property
    def venue(self) -> VenueAdapter:
        """The node's venue, when it has exactly one (backtests, most tests and benches)."""
        if len(self.venues) != 1:
            raise ValueError(f"this node has {len(self.venues)} venues: use kernel.venues")
        return next(iter(self.venues.values()))

    def flush(self) -> None:
        """Every venue delivers the requests it has queued."""
        sole = self._sole_venue
        if sole is not None:
            if sole.inbox:
                sole.flush()
            return
        for inbox, flush in self._pending:
            if inbox:
                flush()

    # -- data path ------------------------------------------------------------------------
    # ``on_quote`` is a plain method and calls the sole venue through an attribute load:
    # CPython 3.11 specializes ``kernel.on_quote(q)`` and ``sole.on_quote(q)`` where they
    # are called, and not the call of a bound method stored on the instance. Its frame
    # keeps few locals (each costs its clearing, every quote): several venues go on in
    # ``_on_quote_venues``.
    def on_quote(self, quote: QuoteTick) -> None:
        """The per-quote hot path: venue first (so fills see this touch), then strategies."""
        sole = self._sole_venue
        if sole is None:
            self._on_quote_venues(quote)
            return
        self.last_quotes[quote.instrument_id] = quote
        guard = self._quote_guard
        if guard is not None:
            guard(quote)
        sole.on_quote(quote)
        for handler in self._quote_subscribers.get(quote.instrument_id, _NONE):
            try:
                handler(quote)
            except Exception as error:
                self.strategies.fail(handler.__self__, error)  # type: ignore[attr-defined]
        if sole.inbox:
            sole.flush()

    def _on_quote_venues(self, quote: QuoteTick) -> None:
        """``on_quote`` for a node with several venues, or one that does not match on
        quotes: the quote goes to its instrument's venue if that one matches on it."""
        iid = quote.instrument_id
        self.last_quotes[iid] = quote
        guard = self._quote_guard
        if guard is not None:
            guard(quote)
        venue_on_quote = self._venue_on_quote.get(iid)
        if venue_on_quote is not None:
            venue_on_quote(quote)
        for handler in self._quote_subscribers.get(iid, _NONE):
            try:
                handler(quote)
            except Exception as error:
                self.strategies.fail(handler.__self__, error)  # type: ignore[attr-defined]
        for inbox, flush in self._pending:
            if inbox:
                flush()

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
        venue = self._venue_on_bar.get(bar.instrument_id)
        if venue is not None:
            venue.on_bar(bar)
        self.strategies.on_bar(bar)
        self.flush()

    def apply_risk_config(self, config: RiskConfig) -> None:
        """New risk limits in force now (operator overrides: ``risk_overrides``)."""
        risk = self.risk
        risk.reconfigure(config)
        self._quote_guard = risk.quote_hook
        self._refresh_fills()

    def _refresh_fills(self) -> None:
        """The fill pipeline leaves out the stages with nothing to do now (``risk.fills``):
        after the risk limits or the strategies listening to fills changed."""
        self.fills.refresh(strategies_listen=self.strategies.hears_order_events)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self.risk.check_post_trade()  # the day's starting PnL, before any strategy trades
        self.strategies.start_all()
        self._refresh_fills()  # which strategies listen is known now
        self.flush()

    def stop_strategy(self, strategy_id: str) -> str | None:
        """An operator stops one strategy (``StrategyHost.stop_strategy``); None when
        done, else why not. Its open orders are the caller's to cancel."""
        refused = self.strategies.stop_strategy(strategy_id)
        if refused is None:
            self._refresh_fills()
        return refused

    def start_strategy(self, strategy_id: str) -> str | None:
        """An operator runs a stopped strategy again; None when done, else why not."""
        refused = self.strategies.start_strategy(strategy_id)
        if refused is None:
            self._refresh_fills()
            self.flush()  # what its on_start sent
        return refused

    def stop_strategies(self) -> None:
        self.strategies.stop_all()
        self.flush()

    def cancel_all_orders(self) -> int:
        """Ask the venue to cancel every open order; return how many were asked."""
        orders = self.execution.open_orders()
        self.risk.cancel_orders(orders)
        self.flush()
        return len(orders)

    def settle_after_restart(self, venues: Collection[str] | None = None) -> None:
        """At start, once recovered and reconciled, before the strategies start: what the
        stop left half done (an amend or a cancel the venue never got, a disabled
        strategy's orders still working). ``venues``: only the orders at these (the ones
        reconciled; a venue reached later is settled once it is reconciled)."""
        self.settle_pending_amends(venues)
        self.resend_pending_cancels(venues)
        self.cancel_disabled_orders(venues)

    def _open_at(self, venues: Collection[str] | None) -> list[Order]:
        orders = self.execution.open_orders()
        return orders if venues is None else [o for o in orders if o.venue in venues]

    def settle_pending_amends(self, venues: Collection[str] | None = None) -> int:
        """At start, after recovery and reconciliation: an amend still unanswered
        (``PENDING_REPLACE``) never reached the venue: a request stored before the restart
        is gap-filled, and the venue's answer, had it had one, came back during
        reconciliation. It is rejected: the order keeps the size and price the venue has,
        and its strategy may amend again. Returns how many."""
        orders = [o for o in self._open_at(venues) if o.status is _PENDING_REPLACE]
        if orders:
            log.warning(
                "pending_amends_rejected",
                client_order_ids=[o.client_order_id for o in orders],
            )
        self._reject_amends(orders, "the amend did not reach the venue before the node restarted")
        return len(orders)

    def reject_lost_amends(self, name: str) -> int:
        """After venue ``name`` is reconciled on a new logon: reject the amends sent on an
        earlier logon and still unanswered (``VenueAdapter.lost_amends``): the dropped
        connection lost them, they are never resent, and the venue's answer to one it had
        got came back before the reconciliation ended. Each order keeps the size and price
        the venue has, and its strategy may amend again. Returns how many."""
        orders = self.venues[name].lost_amends()
        if orders:
            log.warning(
                "lost_amends_rejected",
                venue=name,
                client_order_ids=[o.client_order_id for o in orders],
            )
        self._reject_amends(
            [o for o in orders if o.status is _PENDING_REPLACE],
            "the amend was lost with the venue's dropped connection (never resent)",
        )
        return len(orders)

    def _reject_amends(self, orders: Iterable[Order], reason: str) -> None:
        for order in orders:
            self.execution.resolve(
                order,
                OrderModifyRejected(
                    ts_ns=self.clock.timestamp_ns(),
                    client_order_id=order.client_order_id,
                    strategy_id=order.strategy_id,
                    instrument_id=order.instrument_id,
                    reason=reason,
                ),
            )

    def resend_pending_cancels(self, venues: Collection[str] | None = None) -> int:
        """At start, after recovery and reconciliation: send again the cancels of orders
        still ``PENDING_CANCEL`` (the node stopped between asking and the venue's answer;
        the venue still lists them open, so the first request may be lost). A venue that
        had it already answers with a reject or the cancel. Returns how many."""
        orders = [o for o in self._open_at(venues) if o.status is _PENDING_CANCEL]
        if orders:
            log.warning(
                "pending_cancels_resent",
                client_order_ids=[o.client_order_id for o in orders],
            )
            for order in orders:
                self.execution.resend_cancel(order)
            self.flush()
        return len(orders)

    def cancel_disabled_orders(self, venues: Collection[str] | None = None) -> int:
        """At start, after recovery and reconciliation: cancel the open orders of the
        strategies that were disabled before (``risk.cancel_on_disable``), e.g. when the
        node stopped between journaling ``StrategyDisabled`` and sending the cancels, or
        the key was off then. Returns how many were asked."""
        risk = self.risk
        if not risk.config.cancel_on_disable or not risk.disabled:
            return 0
        orders = [o for o in self._open_at(venues) if o.strategy_id in risk.disabled]
        if orders:
            log.warning(
                "disabled_strategies_orders_canceled",
                strategies=sorted({o.strategy_id for o in orders}),
                cancels_requested=len(orders),
            )
            risk.cancel_orders(orders)
            self.flush()
        return len(orders)

    # -- kill switch ----------------------------------------------------------------------
    def kill(self, reason: str) -> KillCancels:
        """HALT (journaled), then ask each connected venue to cancel every open order; the
        orders at a venue down now are canceled once it is reconciled again."""
        self.risk.set_trading_state(TradingState.HALTED, reason)
        return self._cancel_reachable(self.execution.open_orders())

    def kill_venue(self, name: str, reason: str, *, who: str, why: str) -> KillCancels:
        """Halt one venue (new orders for its instruments are rejected; journaled as
        ``VenueHalted``, so the halt outlives a restart) and ask it to cancel its open
        orders (once it is reconciled again, if it is down now); the other venues trade
        on."""
        self.halt_venue(name, reason, who=who, why=why)
        return self._cancel_reachable(o for o in self.execution.open_orders() if o.venue == name)

    def halt_venue(self, name: str, reason: str, *, who: str, why: str) -> None:
        """Journal ``VenueHalted`` and halt the venue: it refuses new orders until
        ``resume_venue``, across restarts too."""
        self.bus.publish(
            VenueHalted(
                ts_ns=self.clock.timestamp_ns(), venue=name, reason=reason, who=who, why=why
            )
        )
        self.venues[name].halt(reason)

    def _cancel_reachable(self, orders: Iterable[Order]) -> KillCancels:
        """Cancel each order whose venue is connected; leave the others (a cancel cannot
        reach a venue that is down: ``cancel_if_halted`` sends it after the next logon's
        reconciliation). An order at a venue the node lacks is neither."""
        venues = self.venues
        sent = later = 0
        for order in orders:
            venue = venues.get(order.venue)
            if venue is not None and not venue.connected:
                later += 1
            elif self.risk.cancel_order(order):
                sent += 1
        self.flush()
        return KillCancels(sent, later)

    def cancel_if_halted(self, name: str) -> int:
        """Once venue ``name`` is reconciled (at start, after every logon): if the node is
        HALTED or the venue halted, cancel every open order at it that no cancel is
        pending for (a kill while it was down could not reach it; nor could an order it
        held through a restart). Logged (``halted_orders_canceled``) and counted in
        ``halt_cancels``. Nothing if it dropped again meanwhile: its next reconciliation
        does it. Returns how many cancels were sent."""
        venue = self.venues[name]
        halted = self.risk.state is TradingState.HALTED or venue.halted is not None
        if not halted or not venue.connected:
            return 0
        orders = [
            o
            for o in self.execution.open_orders()
            if o.venue == name and o.status is not _PENDING_CANCEL
        ]
        if not orders:
            return 0
        sent = sum(1 for o in orders if self.risk.cancel_order(o))
        self.flush()
        self.halt_cancels[name] += sent
        log.warning(
            "halted_orders_canceled",
            venue=name,
            cancels_sent=sent,
            client_order_ids=[o.client_order_id for o in orders],
            halted=venue.halted or f"node {self.risk.state.value}: {self.risk.state_reason}",
        )
        return sent

    def resume_venue(self, name: str, *, who: str, why: str) -> bool:
        """Let a halted venue take orders again (journaled as ``VenueResumed``); False,
        and nothing journaled, if it was not halted."""
        venue = self.venues[name]
        if venue.halted is None:
            return False
        self.bus.publish(
            VenueResumed(ts_ns=self.clock.timestamp_ns(), venue=name, who=who, why=why)
        )
        return venue.resume()

    def unavailable_instruments(self) -> list[str]:
        """Instruments whose venue cannot take orders now (disconnected, not reconciled
        since its last logon, or halted)."""
        down = {
            n
            for n, v in self.venues.items()
            if not v.connected or not v.reconciled or v.halted is not None
        }
        return sorted(iid for iid, i in self.instruments.items() if i.venue in down)

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
        self.flush()
        return sent, denied

    def lease_lost(self, reason: str) -> None:
        """The HA lease is lost (its deadline passed, or another member leads): HALTED
        with reason ``lease lost: ...`` (the fence already keeps every order, cancel
        and amend from the venues; call on the trading loop)."""
        if self.fence is not None:
            self.fence.revoke(reason)
        if self.journal is not None:
            # the halt is this member's alone: journaled, a standby would take it over
            self.journal.refuse(f"lease lost: {reason}")
        if self.risk.state is not TradingState.HALTED:
            self.risk.set_trading_state(TradingState.HALTED, f"lease lost: {reason}")

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


def _recorder(
    config: PaperConfig | BacktestConfig,
    base_dir: Path,
    instruments: dict[str, Instrument],
    clock: Clock,
) -> Recorder | None:
    """The recorder of ``[recording]`` (a live node's), or None."""
    if not isinstance(config, PaperConfig) or config.recording is None:
        return None
    from bastion.feeds.recorder.recorder import Recorder  # pyarrow: only when recording

    root = resolve_path(base_dir, config.recording.path)
    return Recorder(config.recording, root=root, instruments=instruments, clock=clock)


def _arbiter(
    config: PaperConfig | BacktestConfig,
    feeds: list[Feed],
    instruments: dict[str, Instrument],
    sink: FeedSink,
    bus: MessageBus,
    clock: Clock,
) -> Arbiter | None:
    """The arbiter of the instruments that two or more feeds supply (by priority, then
    config order), or None when there are none (a backtest's data are not arbitrated)."""
    if not isinstance(config, PaperConfig):
        return None
    priority = {f.name: f.priority for f in config.feed_configs()}
    supplied: dict[str, list[str]] = {}
    for feed in sorted(feeds, key=lambda f: priority.get(f.name, 1)):
        for iid in feed.instruments:
            supplied.setdefault(iid, []).append(feed.name)
    lanes = {iid: names for iid, names in supplied.items() if len(names) > 1}
    if not lanes:
        return None
    return Arbiter(
        instruments=instruments.values(),
        lanes=lanes,
        config=config.arbitration,
        sink=sink,
        clock=clock,
        publish=bus.publish,
    )
