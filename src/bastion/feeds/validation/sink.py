"""Between a feed and the node: every quote and trade the feed delivers is validated
(``rules``) before the kernel, and so the risk gate and the strategies, sees it.

``ValidatedFeed`` is the ``FeedSink`` a feed is given instead of the kernel. A quote
that passes goes on to ``Kernel.on_quote`` unchanged; one that a validator drops goes
no further, and a ``pause`` action also pauses new orders on its instrument through
the risk gate (``RiskGate.pause_for_data``, for ``validation.pause_ms``; renewed once
half of it has run while bad data keeps coming). Every hit is counted by instrument and
reason (``counts``, read by the monitor as ``bastion_feed_rejected_total`` and
``bastion_feed_flagged_total``); the first hit of each reason per instrument per
``log_interval_ms`` is logged (``feed_data_rejected`` / ``feed_data_flagged``), and
every hit is told to ``on_verdict`` when given (the market data recorder's verdicts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

import structlog

from bastion.clock import Clock
from bastion.feeds.base import FeedSink
from bastion.feeds.validation.config import ValidationConfig
from bastion.feeds.validation.rules import (
    ACTIONS,
    FLAG,
    PAUSE,
    REASONS,
    InstrumentRules,
    Verdict,
)
from bastion.model.data import Bar, QuoteTick, TradeTick
from bastion.model.instruments import Instrument

log = structlog.get_logger("bastion.feeds")

Pauser = Callable[[str, int, str, str], bool]
"""``RiskGate.pause_for_data``: (instrument, pause_ms, reason, key) -> paused."""


class Hits(NamedTuple):
    """Data a validator hit, counted since the node started."""

    instrument_id: str
    reason: str
    action: str
    hits: int


class ValidatedFeed:
    """The sink of feed ``feed``: validates, then delivers to ``sink`` (the kernel)."""

    __slots__ = (
        "_deliver",
        "_now",
        "_on_reject",
        "_pause",
        "_pause_state",
        "_rules",
        "_sink",
        "_trade_sink",
        "feed",
    )

    def __init__(
        self,
        *,
        feed: str,
        instruments: Iterable[Instrument],
        config: ValidationConfig,
        sink: FeedSink,
        clock: Clock,
        pause: Pauser | None = None,
        trade_sink: Callable[[TradeTick], None] | None = None,
        on_reject: Callable[[str], None] | None = None,
        on_verdict: Verdict | None = None,
    ) -> None:
        self.feed = feed
        self._on_reject = on_reject
        """Told the instrument of each quote stopped (the feed arbiter's ``rejected``)."""
        self._sink = sink
        # bound once: the per-quote path makes two calls and no lookups
        self._deliver = sink.on_quote
        self._now = clock.timestamp_ns
        self._trade_sink = trade_sink
        self._pause = pause
        self._pause_state: dict[str, int] = {}  # instrument -> until_ns of our last pause
        self._rules = {
            i.id: InstrumentRules(
                i,
                config.for_instrument(i.id),
                log_interval_ms=config.log_interval_ms,
                report=self._report,
                verdict=on_verdict,
            )
            for i in instruments
        }

    def rules(self, instrument_id: str) -> InstrumentRules:
        return self._rules[instrument_id]

    # -- delivery (the hot path) ----------------------------------------------------------
    def on_quote(self, quote: QuoteTick) -> None:
        rules = self._rules.get(quote.instrument_id)
        if rules is None:  # not this feed's instrument: the kernel knows nothing of it
            return
        reason = rules.check(quote, self._now())
        if not reason:
            self._deliver(quote)
            return
        if self._on_reject is not None:
            self._on_reject(quote.instrument_id)
        if rules.actions[reason] == PAUSE:
            self._paused(rules, reason)

    def on_trade(self, trade: TradeTick) -> None:
        rules = self._rules.get(trade.instrument_id)
        if rules is None or self._trade_sink is None:
            return
        reason = rules.check_trade(trade, self._now())
        if not reason:
            self._trade_sink(trade)
        elif rules.actions[reason] == PAUSE:
            self._paused(rules, reason)

    def on_bar(self, bar: Bar) -> None:
        """Bars go on as they are (a replayed file's rows were checked as it was read)."""
        self._sink.on_bar(bar)

    # -- hits -----------------------------------------------------------------------------
    def _paused(self, rules: InstrumentRules, reason: int) -> None:
        if self._pause is None:
            return
        iid = rules.instrument_id
        now = self._now()
        pause_ms = rules.settings.pause_ms
        until = self._pause_state.get(iid, 0)
        if now < until - pause_ms * 500_000:  # more than half of our pause still to run
            return
        why = f"feed {self.feed}: {REASONS[reason]} data on {iid}"
        if self._pause(iid, pause_ms, why, f"validation pause_ms {pause_ms}"):
            self._pause_state[iid] = now + pause_ms * 1_000_000

    def _report(self, rules: InstrumentRules, reason: int, action: int, data: object) -> None:
        log.warning(
            "feed_data_flagged" if action == FLAG else "feed_data_rejected",
            feed=self.feed,
            instrument_id=rules.instrument_id,
            reason=REASONS[reason],
            action=ACTIONS[action],
            data=repr(data),
            last_accepted=repr(rules.last),
            unlogged_since_last=rules.suppressed[reason],
            count=rules.counts[reason],
        )

    def counts(self) -> list[Hits]:
        """Every reason hit so far, per instrument (read on the node's loop)."""
        return [
            Hits(iid, REASONS[reason], ACTIONS[rules.actions[reason]], n)
            for iid, rules in sorted(self._rules.items())
            for reason, n in enumerate(rules.counts)
            if n
        ]
