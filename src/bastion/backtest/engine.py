"""The backtest engine: replays recorded data through the same kernel a live node runs.

Time is a ``SimClock`` set from each event's timestamp; timers (venue latency,
strategy timers) fire in order before the event that passes their due time.
Equity is sampled every ``EQUITY_SAMPLE_NS`` of simulated time (and at the end)
for the equity curve and max drawdown.
"""

from __future__ import annotations

import gc
import heapq
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from operator import attrgetter
from pathlib import Path
from typing import Any

from bastion.backtest.result import BacktestResult, FillRecord, PositionSummary
from bastion.clock import SimClock
from bastion.config import BacktestConfig, resolve_path
from bastion.data import ReplaySource
from bastion.errors import ConfigError
from bastion.journal.keys import require_keys
from bastion.journal.sqlite import SqliteJournal
from bastion.live.separation import check_backtest_journal
from bastion.model.data import Bar, QuoteTick
from bastion.model.enums import OrderStatus
from bastion.model.events import OrderFilled
from bastion.model.instruments import Instrument
from bastion.node.kernel import Kernel
from bastion.portfolio.portfolio import to_decimal

EQUITY_SAMPLE_NS = 1_000_000_000
_NONE: tuple[()] = ()
_PROGRESS_EVERY = 1 << 16


def run_backtest(
    config: BacktestConfig,
    *,
    base_dir: Path,
    progress: bool = True,
    on_progress: Callable[[int], None] | None = None,
) -> BacktestResult:
    """Run ``config`` to the end of its data and return the result.

    ``progress`` shows a progress bar on a terminal; ``on_progress(n)`` is told every
    few tens of thousands of events how many more were processed.
    """
    started = time.perf_counter()
    clock = SimClock()
    journal = None
    if config.journal is not None:
        if config.journal.backend != "sqlite":
            # written to a file of its own, never into a desk's shared database
            raise ConfigError(
                "key 'journal.backend': a backtest journals to a SQLite file only; remove "
                "backend (and url, password, name), or the [journal] section"
            )
        journal_path = resolve_path(base_dir, config.journal.path)
        check_backtest_journal(journal_path)
        # a backtest opens no vault: a journal config that refers to keys is refused
        # rather than written plaintext
        keys = require_keys(config.journal, None)
        journal = SqliteJournal.from_config(journal_path, config.journal, keys=keys)
    kernel = Kernel(config=config, base_dir=base_dir, clock=clock, epoch=1, journal=journal)
    fills: list[OrderFilled] = []
    kernel.bus.subscribe(OrderFilled, fills.append)
    sources = _recorded(kernel)
    loop = _Loop(kernel, clock)
    # Everything built so far lives for the whole run: keep it out of the cyclic
    # collector's full passes, which would otherwise rescan it again and again.
    gc.collect()
    gc.freeze()
    collecting = gc.isenabled()
    bar = _progress_bar(sources, progress and config.progress)
    update = _combine(bar.update if bar is not None else None, on_progress)
    try:
        events = _merged(sources)
        first = next(events, None)
        if first is not None:
            clock.set_time(first.ts_ns)
            loop.start_ns = first.ts_ns
            kernel.start()
            loop.run(first, events, update)
        kernel.stop_strategies()
        kernel.cancel_all_orders()
        # with venue latency the cancels are still in flight: let them arrive
        clock.advance_to(clock.timestamp_ns() + config.venue.latency_ms * 1_000_000)
        kernel.flush()
        loop.sample(clock.timestamp_ns())
        # the result's tens of thousands of records all live: a collection while they
        # are built finds nothing and may rescan the whole heap
        gc.disable()
        return _result(
            kernel, loop.n_events, loop.start_ns, loop.equity_curve(), sources, fills, started
        )
    finally:
        if collecting:
            gc.enable()
        gc.unfreeze()
        if bar is not None:
            bar.close()
        if journal is not None:
            journal.close()


def _recorded(kernel: Kernel) -> list[ReplaySource[Any]]:
    """The recorded events of each of the backtest's feeds (the same seam a live node's
    feeds go through)."""
    sources = []
    for feed in kernel.feeds:
        recorded = feed.recorded()
        if recorded is None:
            raise ConfigError(f"feed '{feed.name}' has no recorded data to backtest")
        sources.append(recorded)
    return sources


def _merged(sources: list[ReplaySource[Any]]) -> Iterator[QuoteTick | Bar]:
    if len(sources) == 1:
        return iter(sources[0])
    return heapq.merge(*sources, key=attrgetter("ts_ns"))


class _Loop:
    """The hot loop and the equity sampler."""

    def __init__(self, kernel: Kernel, clock: SimClock) -> None:
        self.kernel = kernel
        self.clock = clock
        self.n_events = 0
        self.start_ns = 0
        self._samples: list[tuple[int, Decimal | int, Decimal | None]] = []
        self._fast_equity = _common_scale(kernel)

    def run(
        self,
        first: QuoteTick | Bar,
        events: Iterator[QuoteTick | Bar],
        update: Callable[[int], None] | None,
    ) -> None:
        kernel = self.kernel
        clock = self.clock
        on_quote = kernel.on_quote
        on_bar = kernel.on_bar
        sample = self.sample
        on_quote(first) if type(first) is QuoteTick else on_bar(first)  # type: ignore[arg-type]
        sample(first.ts_ns)
        next_sample = first.ts_ns + EQUITY_SAMPLE_NS
        n = 1
        # Kernel.on_quote (one venue), inlined: this loop body runs once per tick, and a Python call
        # is a noticeable share of it. Keep the two in step.
        last_quotes = kernel.last_quotes
        guard = kernel.risk.quote_hook  # the risk gate's, when a limit watches quotes
        venue = kernel.venue  # a backtest has the one in-process venue
        venue_on_quote = venue.on_quote
        venue_inbox = venue.inbox
        venue_flush = venue.flush
        quote_handlers = kernel.strategies.quote_subscribers
        fail = kernel.strategies.fail
        for event in events:
            ts = event.ts_ns
            if ts >= clock.next_due_ns:
                clock.advance_to(ts)
            else:
                clock.now_ns = ts
            if type(event) is QuoteTick:
                last_quotes[event.instrument_id] = event
                if guard is not None:
                    guard(event)
                venue_on_quote(event)
                for handler in quote_handlers.get(event.instrument_id, _NONE):
                    try:
                        handler(event)
                    except Exception as error:
                        fail(handler.__self__, error)  # type: ignore[attr-defined]
                if venue_inbox:
                    venue_flush()
            else:
                on_bar(event)  # type: ignore[arg-type]
            n += 1
            if ts >= next_sample:
                sample(ts)
                next_sample = ts + EQUITY_SAMPLE_NS
                if update is not None and n >= _PROGRESS_EVERY:
                    update(n)
                    self.n_events += n
                    n = 0
        self.n_events += n
        if update is not None:
            update(n)

    def sample(self, ts_ns: int) -> None:
        portfolio = self.kernel.portfolio
        if self._fast_equity is None:
            self._samples.append((ts_ns, portfolio.equity(), None))
            return
        raw = portfolio.equity_change_raw()
        if raw is not None:
            self._samples.append((ts_ns, raw, portfolio.fees))

    def equity_curve(self) -> list[tuple[int, Decimal]]:
        """The samples as money, one point per timestamp (the last one taken)."""
        scale = self._fast_equity
        start = self.kernel.portfolio.starting_cash
        curve: list[tuple[int, Decimal]] = []
        for ts_ns, value, fees in self._samples:
            if scale is not None and fees is not None:
                value = start + scale.money(value) - fees
            elif isinstance(value, int):
                value = Decimal(value)
            assert isinstance(value, Decimal)
            point = (ts_ns, value)
            if curve and curve[-1][0] == ts_ns:
                curve[-1] = point
            else:
                curve.append(point)
        return curve


def _common_scale(kernel: Kernel) -> Instrument | None:
    """The one instrument whose money scale all share, if they do (enables int equity)."""
    instruments = list(kernel.instruments.values())
    first = instruments[0]
    for other in instruments[1:]:
        if (other.price_precision, other.size_precision, other.multiplier) != (
            first.price_precision,
            first.size_precision,
            first.multiplier,
        ) or other.quote_currency != kernel.portfolio.currency:
            return None
    return first if first.quote_currency == kernel.portfolio.currency else None


def _combine(*callbacks: Callable[[int], None] | None) -> Callable[[int], None] | None:
    present = [c for c in callbacks if c is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]

    def both(n: int) -> None:
        for callback in present:
            callback(n)

    return both


def _progress_bar(sources: list[ReplaySource[Any]], enabled: bool) -> Any:
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    total = sum(s.n_rows or 0 for s in sources) or None
    return tqdm(total=total, unit="ev", unit_scale=True, desc="backtest", file=sys.stderr)


def _max_drawdown(curve: list[tuple[int, Decimal]]) -> Decimal:
    peak: Decimal | None = None
    worst = Decimal(0)
    for _, equity in curve:
        if peak is None or equity > peak:
            peak = equity
        elif peak - equity > worst:
            worst = peak - equity
    return worst


def _result(
    kernel: Kernel,
    n_events: int,
    start_ns: int,
    curve: list[tuple[int, Decimal]],
    sources: list[ReplaySource[Any]],
    fills: list[OrderFilled],
    started: float,
) -> BacktestResult:
    portfolio = kernel.portfolio
    instruments = kernel.instruments
    orders = list(kernel.execution.orders())
    positions = []
    for position in portfolio.positions():
        inst = instruments[position.instrument_id]
        avg = position.avg_px
        mark = portfolio.mark_px(position.instrument_id, position.quantity)
        unrealized = position.unrealized(mark) if mark is not None and position.quantity else 0
        positions.append(
            PositionSummary(
                instrument_id=position.instrument_id,
                quantity=inst.size(position.quantity),
                avg_px=None if avg is None else to_decimal(avg).scaleb(-inst.price_precision),
                realized_pnl=inst.money(to_decimal(position.realized)),
                unrealized_pnl=inst.money(to_decimal(unrealized)),
                currency=inst.quote_currency,
            )
        )
    skipped: dict[str, int] = {}
    for source in sources:
        for reason, count in source.stats.skipped_by_reason.items():
            skipped[reason] = skipped.get(reason, 0) + count
    return BacktestResult(
        n_ticks=n_events,
        n_orders=len(orders),
        n_fills=len(fills),
        n_denied=sum(o.status is OrderStatus.DENIED for o in orders),
        n_rejected=sum(o.status is OrderStatus.REJECTED for o in orders),
        n_canceled=sum(o.status is OrderStatus.CANCELED for o in orders),
        fills=[_fill_record(f, instruments[f.instrument_id]) for f in fills],
        positions=positions,
        currency=portfolio.currency,
        starting_cash=portfolio.starting_cash,
        final_cash=portfolio.cash(),
        final_equity=portfolio.equity(),
        realized_pnl=portfolio.realized_pnl(),
        unrealized_pnl=portfolio.unrealized_pnl(),
        fees=portfolio.fees,
        max_drawdown=_max_drawdown(curve),
        equity_curve=curve,
        start_ns=start_ns,
        end_ns=kernel.clock.timestamp_ns(),
        wall_s=time.perf_counter() - started,
        skipped_rows=skipped,
        strategy_errors=list(kernel.strategies.failures),
    )


def _fill_record(fill: OrderFilled, instrument: Instrument) -> FillRecord:
    return FillRecord(
        ts_ns=fill.ts_ns,
        client_order_id=fill.client_order_id,
        exec_id=fill.exec_id,
        strategy_id=fill.strategy_id,
        instrument_id=fill.instrument_id,
        side=fill.side.value,
        quantity=instrument.size(fill.last_qty),
        price=instrument.price(fill.last_px),
        fee=fill.fee,
        liquidity=fill.liquidity.value,
    )
