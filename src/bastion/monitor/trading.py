"""A trading node's state read into a sample: venues, orders, risk, portfolio, market
data and the journal. Each reader is a sampler source (``fn(builder)``), run on the
trading loop between events; each reads what the components already keep (and their
``stats`` methods), nothing is counted per quote here.

Money and positions are exact ``Decimal`` s in the node; they become floats here, as
they enter the sample.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING

from bastion.model.enums import TradingState
from bastion.monitor.orders import OrderStats, Pair
from bastion.monitor.sample import SampleBuilder
from bastion.portfolio.portfolio import to_decimal

if TYPE_CHECKING:
    from bastion.journal.base import Journal
    from bastion.node.kernel import Kernel

_NS = 1e9


class _Rate:
    """Per second, of a growing total, over the last ``window_s`` (at least one sample
    interval): smoother than between two samples, still quick to follow a change."""

    def __init__(self, window_s: float = 1.0) -> None:
        self._window_s = window_s
        self._seen: dict[str, deque[tuple[float, float]]] = {}

    def __call__(self, key: str, total: float, now_s: float) -> float:
        seen = self._seen.setdefault(key, deque())
        seen.append((now_s, total))
        while len(seen) > 2 and now_s - seen[1][0] >= self._window_s:
            seen.popleft()
        first_s, first_total = seen[0]
        if now_s <= first_s:
            return 0.0
        return max(0.0, (total - first_total) / (now_s - first_s))


class TradingReadings:
    """The sources that read a kernel (and its journal) into samples."""

    def __init__(self, *, kernel: Kernel, journal: Journal | None, orders: OrderStats) -> None:
        self.kernel = kernel
        self.journal = journal
        self.orders = orders
        self._rate = _Rate()

    def all(self, builder: SampleBuilder) -> None:
        self.venues(builder)
        self.order_counts(builder)
        self.risk(builder)
        self.portfolio(builder)
        self.market_data(builder)
        if self.journal is not None:
            self.journal_stats(builder, self.journal)

    def venues(self, b: SampleBuilder) -> None:
        now_s = self.kernel.clock.monotonic_s()
        for name, venue in self.kernel.venues.items():
            stats = venue.stats()
            b.set("bastion_venue_connected", venue.connected, venue=name)
            b.set("bastion_venue_reconciled", venue.reconciled, venue=name)
            b.set("bastion_venue_halted", venue.halted is not None, venue=name)
            b.set("bastion_venue_logons_total", stats.logons, venue=name)
            b.set("bastion_venue_disconnects_total", stats.disconnects, venue=name)
            b.set("bastion_venue_slow_consumer_drops_total", stats.slow_consumer_drops, venue=name)
            b.set("bastion_venue_resend_requests_total", stats.resend_requests, venue=name)
            b.set("bastion_venue_gap_fills_total", stats.gap_fills, venue=name)
            if stats.heartbeat_rtt_s is not None:
                b.set("bastion_venue_heartbeat_rtt_seconds", stats.heartbeat_rtt_s, venue=name)
            if stats.last_received_s is not None:
                age = max(0.0, now_s - stats.last_received_s)
                b.set("bastion_venue_last_message_age_seconds", age, venue=name)

    def order_counts(self, b: SampleBuilder) -> None:
        orders = self.orders
        orders.settle()
        for metric, counts in (
            ("bastion_orders_submitted_total", orders.submitted),
            ("bastion_orders_accepted_total", orders.accepted),
            ("bastion_orders_rejected_total", orders.rejected),
            ("bastion_orders_canceled_total", orders.canceled),
            ("bastion_orders_filled_total", orders.filled),
            ("bastion_fills_total", orders.fills),
        ):
            for (strategy, venue), n in counts.items():
                b.set(metric, n, strategy=strategy, venue=venue)
        for (strategy, reason), n in orders.denied.items():
            b.set("bastion_orders_denied_total", n, strategy=strategy, reason=reason)
        submitted = _by_strategy(orders.submitted)
        filled = _by_strategy(orders.filled)
        for strategy, n in submitted.items():
            b.set("bastion_orders_fill_ratio", filled.get(strategy, 0) / n, strategy=strategy)
        open_at = dict.fromkeys(self.kernel.venues, 0)
        for order in self.kernel.execution.open_orders():
            open_at[order.venue] = open_at.get(order.venue, 0) + 1
        for venue, n in open_at.items():
            b.set("bastion_orders_open", n, venue=venue)

    def risk(self, b: SampleBuilder) -> None:
        kernel = self.kernel
        risk = kernel.risk
        for state in TradingState:
            b.set("bastion_trading_state", risk.state is state, state=state.value)
        for use in risk.limit_usage():
            b.set("bastion_risk_limit_utilisation", use.ratio, limit=use.limit, scope=use.scope)
        b.set("bastion_kill_switch_activations_total", self.orders.kill_activations)
        disabled = risk.disabled
        for strategy in sorted(set(kernel.strategies.strategies) | set(disabled)):
            b.set("bastion_strategy_disabled", strategy in disabled, strategy=strategy)
        b.set("bastion_strategies_disabled", len(disabled))
        paused = risk.paused_instruments
        for iid in kernel.instruments:
            b.set("bastion_instrument_paused", iid in paused, instrument=iid)
        b.set("bastion_instruments_paused", len(paused))

    def portfolio(self, b: SampleBuilder) -> None:
        kernel = self.kernel
        portfolio = kernel.portfolio
        instruments = kernel.instruments
        realized = unrealized = fees = to_decimal(0)
        for position in portfolio.positions():
            sid, iid = position.strategy_id, position.instrument_id
            instrument = instruments.get(iid)
            if instrument is None:  # a position in an instrument no longer configured
                continue
            pnl = instrument.money(to_decimal(position.realized))
            open_pnl = to_decimal(0)
            if position.quantity:
                mark = portfolio.mark_px(iid, position.quantity)
                if mark is not None:
                    open_pnl = instrument.money(to_decimal(position.unrealized(mark)))
            b.set(
                "bastion_position", instrument.size(position.quantity), strategy=sid, instrument=iid
            )
            b.set("bastion_realized_pnl", pnl, strategy=sid, instrument=iid)
            b.set("bastion_unrealized_pnl", open_pnl, strategy=sid, instrument=iid)
            b.set("bastion_fees", position.fees, strategy=sid, instrument=iid)
            realized += pnl
            unrealized += open_pnl
            fees += position.fees
        gross = net = to_decimal(0)
        for iid, quantity in portfolio.net.items():
            instrument = instruments.get(iid)
            mark = portfolio.mark_px(iid, quantity) if quantity else None
            if instrument is None or mark is None:
                continue
            value = instrument.money(quantity * mark)
            gross += abs(value)
            net += value
        b.set("bastion_cash", portfolio.cash())
        b.set("bastion_equity", portfolio.equity())
        b.set("bastion_pnl", realized + unrealized - portfolio.fees)
        b.set("bastion_exposure_gross", gross)
        b.set("bastion_exposure_net", net)

    def market_data(self, b: SampleBuilder) -> None:
        kernel = self.kernel
        now_ns = kernel.clock.timestamp_ns()
        now_s = kernel.clock.monotonic_s()
        totals: dict[str, int] = {}
        for feed in kernel.feeds:
            stats = feed.stats()
            for iid, n in stats.quotes.items():
                totals[iid] = totals.get(iid, 0) + n
            for reason, n in stats.rejects.items():
                b.set("bastion_md_rejects_total", n, feed=feed.name, reason=reason)
        for validated in kernel.validated_feeds:
            for hits in validated.counts():
                name = (
                    "bastion_feed_flagged_total"
                    if hits.action == "flag"
                    else ("bastion_feed_rejected_total")
                )
                b.set(
                    name,
                    hits.hits,
                    feed=validated.feed,
                    instrument=hits.instrument_id,
                    reason=hits.reason,
                )
        if kernel.arbiter is not None:
            for line in kernel.arbiter.states():
                iid = line.instrument_id
                for name, healthy in zip(line.feeds, line.healthy, strict=True):
                    b.set(
                        "bastion_feed_active", int(name == line.active), instrument=iid, feed=name
                    )
                    b.set("bastion_feed_healthy", int(healthy), instrument=iid, feed=name)
                b.set("bastion_feed_failed_over", int(line.active != line.feeds[0]), instrument=iid)
                b.set("bastion_feed_switches_total", line.switches, instrument=iid)
        for iid, n in totals.items():
            b.set("bastion_quotes_total", n, instrument=iid)
            b.set("bastion_quotes_per_second", self._rate(f"q:{iid}", n, now_s), instrument=iid)
        for iid, quote in kernel.last_quotes.items():
            b.set(
                "bastion_quote_age_seconds", max(0.0, (now_ns - quote.ts_ns) / _NS), instrument=iid
            )

    def journal_stats(self, b: SampleBuilder, journal: Journal) -> None:
        clock = self.kernel.clock
        stats = journal.stats()
        b.set("bastion_journal_events_total", stats.last_seq)
        rate = self._rate("journal", stats.last_seq, clock.monotonic_s())
        b.set("bastion_journal_events_per_second", rate)
        b.set("bastion_journal_commit_lag_events", stats.commit_lag_events)
        b.set("bastion_journal_commit_lag_seconds", stats.commit_lag_s)
        b.set("bastion_journal_queue_depth", stats.queue_depth)
        b.set("bastion_journal_bytes", stats.bytes)
        b.set("bastion_journal_writable", stats.writable)
        if stats.snapshot_ts_ns is not None:
            age = max(0.0, (clock.timestamp_ns() - stats.snapshot_ts_ns) / _NS)
            b.set("bastion_journal_snapshot_age_seconds", age)


def _by_strategy(counts: Mapping[Pair, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for (strategy, _), n in counts.items():
        out[strategy] = out.get(strategy, 0) + n
    return out
