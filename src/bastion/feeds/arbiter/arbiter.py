"""The feed arbiter: one clean quote stream per instrument from several feeds.

An instrument that two or more ``[[feeds]]`` supply has a *lane* per feed, ranked by the
feeds' ``priority`` (lower first). The arbiter follows one lane (the *active* one) and
delivers only its quotes to the node (``Kernel.on_quote``); the other lanes' quotes
keep their health and mids up to date and are dropped. It leaves the active lane:

- ``stale``: the active lane had no quote for ``stale_ms`` while another lane ticks
  (seen on that lane's quote, or by ``poll``);
- ``gap``: the validators flagged a sequence gap on it (``seq_gap``);
- ``rejects``: the validators stopped ``reject_limit`` of its quotes within
  ``reject_window_ms``;
- ``diverged``: a lane's mid stayed more than ``diverge_ticks`` from the active one's
  for ``diverge_ms``; the fresh lanes then vote: a lane within ``diverge_ticks`` of more
  than half of them (itself included) is in the majority, the others are outvoted until
  they agree again. Without a majority (two lanes apart) nothing changes.

It goes to the best fresh lane that is not outvoted (by priority). It returns to a
lane preferred to the active one once that lane has been healthy (ticking, not
outvoted, no gap or reject burst) for ``hold_ms``: the hysteresis that keeps it from
flapping. When no lane ticked for ``stale_ms`` the instrument has no healthy feed: a
``FeedStatus`` (healthy false) is published, and the first lane to tick again is
followed at once (``FeedStatus`` healthy true, and ``FeedSwitched`` if it is another).

Every switch is a ``FeedSwitched`` on the bus (journaled; the strategies hear
``FeedStatus``). What the node sees stays clean: a quote whose timestamp is not after
the last one delivered for its instrument is dropped (``dropped_old``), so time never
goes backwards and no quote (known by its timestamp) is delivered twice, also across
a switch to a feed that lags. Bars go on from the active lane only; a gap in them is
marked and filled from the other lanes' recent bars (``bars.BarLine``).

Instruments with a single feed never reach the arbiter: their feed delivers to the
kernel as before.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple

import structlog

from bastion.clock import Clock
from bastion.feeds.arbiter.bars import BarLine
from bastion.feeds.arbiter.config import ArbitrationConfig
from bastion.feeds.base import FeedSink
from bastion.model.data import Bar, QuoteTick
from bastion.model.events import Event, FeedStatus, FeedSwitched
from bastion.model.instruments import Instrument

log = structlog.get_logger("bastion.feeds.arbiter")

_NEVER = 2**62
_MS = 1_000_000


class Lane:
    """One feed of one instrument, as the arbiter sees it."""

    __slots__ = (
        "apart_since",
        "feed",
        "gap_counts",
        "gap_index",
        "gaps_seen",
        "last_ns",
        "line",
        "mid2",
        "outvoted",
        "rank",
        "rejects",
        "since",
    )

    def __init__(self, feed: str, rank: int, line: InstrumentLine) -> None:
        self.feed = feed
        self.rank = rank
        """0 for the instrument's preferred feed, then 1, 2, ... by priority."""
        self.line = line
        self.last_ns = -_NEVER
        """Node time of this lane's last quote."""
        self.since = -_NEVER
        """Start of its current healthy run (reset by silence, a fault, being outvoted)."""
        self.mid2 = 0  # bid + ask of its last quote
        self.apart_since: int | None = None
        """When its mid went more than ``diverge_ticks`` from the active lane's."""
        self.outvoted = False
        self.rejects: deque[int] = deque()
        self.gap_counts: Sequence[int] | None = None
        self.gap_index = 0
        self.gaps_seen = 0


class InstrumentLine:
    """One instrument's lanes and the stream delivered from them."""

    __slots__ = (
        "active",
        "bars",
        "dropped_old",
        "held",
        "instrument_id",
        "lanes",
        "last_ts",
        "limit2",
        "switches",
    )

    def __init__(self, instrument: Instrument, feeds: Sequence[str], diverge_ticks: int) -> None:
        self.instrument_id = instrument.id
        self.lanes = [Lane(feed, rank, self) for rank, feed in enumerate(feeds)]
        self.active: Lane | None = self.lanes[0]
        """The lane delivered; None while the instrument has no healthy feed."""
        self.held: Lane = self.lanes[0]
        """The last lane followed (the active one, or the one before none was healthy)."""
        self.last_ts = -_NEVER
        self.limit2 = 2 * diverge_ticks * instrument.tick_raw  # on doubled mids
        self.switches = 0
        self.dropped_old = 0
        self.bars = BarLine(instrument.id, len(feeds))


class LineState(NamedTuple):
    """An instrument's arbitration, for monitoring (``Arbiter.states``)."""

    instrument_id: str
    feeds: tuple[str, ...]
    """Its feeds, by priority."""
    active: str
    """The feed followed ("" while none is healthy)."""
    healthy: tuple[bool, ...]
    """Per feed (in ``feeds`` order): ticking within ``stale_ms`` and not outvoted."""
    switches: int
    dropped_old: int
    """Quotes of the followed feed not stamped after the last one delivered."""
    bar_gaps: int = 0
    """Gaps in the followed feed's bars."""
    bars_backfilled: int = 0
    """Bars delivered from another feed into such a gap."""
    bars_missing: int = 0
    """Bars no feed had (the sum of the delivered bars' ``gap_before``)."""


class Arbiter:
    """Chooses, per instrument of ``lanes``, the feed whose quotes reach ``sink``.

    Events published: ``FeedSwitched`` (each switch and each return), ``FeedStatus``
    (an instrument left with no healthy feed, and when it has one again).
    """

    def __init__(
        self,
        *,
        instruments: Iterable[Instrument],
        lanes: Mapping[str, Sequence[str]],
        config: ArbitrationConfig,
        sink: FeedSink,
        clock: Clock,
        publish: Callable[[Event], None],
    ) -> None:
        known = {i.id: i for i in instruments}
        self.config = config
        self._sink = sink
        self._clock = clock
        self._publish = publish
        self._stale_ns = config.stale_ms * _MS
        self._hold_ns = config.hold_ms * _MS
        self._window_ns = config.reject_window_ms * _MS
        self._diverge_ns = config.diverge_ms * _MS
        self.lines = {
            iid: InstrumentLine(known[iid], feeds, config.diverge_ticks)
            for iid, feeds in sorted(lanes.items())
        }
        self._lanes: dict[tuple[str, str], Lane] = {
            (lane.feed, iid): lane for iid, line in self.lines.items() for lane in line.lanes
        }

    def preferred_feeds(self) -> dict[str, str]:
        """Each instrument's preferred feed: the one it starts on, taken as healthy."""
        return {iid: line.lanes[0].feed for iid, line in self.lines.items()}

    def lane(self, feed: str, instrument_id: str) -> Lane:
        return self._lanes[feed, instrument_id]

    def port(self, feed: str, fallback: FeedSink) -> FeedPort:
        """The sink feed ``feed`` delivers to: its arbitrated instruments' quotes go to
        their lanes, the others straight to ``fallback`` (the kernel)."""
        mine = {iid: lane for (f, iid), lane in self._lanes.items() if f == feed}
        return FeedPort(self, mine, fallback)

    def watch_gaps(self, feed: str, instrument_id: str, counts: Sequence[int], index: int) -> None:
        """Read ``counts[index]`` (the validators' ``seq_gap`` count of this feed and
        instrument) on each of the lane's quotes: a rise is a gap."""
        lane = self._lanes[feed, instrument_id]
        lane.gap_counts = counts
        lane.gap_index = index
        lane.gaps_seen = counts[index]

    # -- delivery (the hot path) ----------------------------------------------------------
    def on_quote(self, lane: Lane, quote: QuoteTick) -> None:
        now = self._clock.timestamp_ns()
        line = lane.line
        if now - lane.last_ns > self._stale_ns:  # it was silent: its healthy run restarts
            lane.since = now
        lane.last_ns = now
        lane.mid2 = quote.bid + quote.ask
        counts = lane.gap_counts
        if counts is not None and counts[lane.gap_index] != lane.gaps_seen:
            lane.gaps_seen = counts[lane.gap_index]
            self._fault(lane, "gap", now)
        active = line.active
        if lane is not active:
            self._other(lane, active, now)
            if lane is not line.active:
                return
        if quote.ts_ns <= line.last_ts:
            line.dropped_old += 1
            return
        line.last_ts = quote.ts_ns
        self._sink.on_quote(quote)

    def on_bar(self, lane: Lane, bar: Bar) -> None:
        line = lane.line
        line.bars.on_bar(lane.rank, bar, lane is line.active, self._sink.on_bar)

    def rejected(self, lane: Lane) -> None:
        """The validators stopped one of the lane's quotes."""
        now = self._clock.timestamp_ns()
        times = lane.rejects
        times.append(now)
        while times[0] <= now - self._window_ns:
            times.popleft()
        if len(times) >= self.config.reject_limit:
            times.clear()
            self._fault(lane, "rejects", now)

    # -- decisions ------------------------------------------------------------------------
    def _other(self, lane: Lane, active: Lane | None, now: int) -> None:
        """A quote on a lane not followed: maybe leave the active lane, or return."""
        line = lane.line
        if active is None:  # no healthy feed until now: the first lane to tick is taken
            self._switch(line, lane, "stale", now)
            self._status(line, True, f"feed {lane.feed} ticks again", now)
            return
        if active.last_ns == -_NEVER:  # the first quote of any lane starts the clock
            active.last_ns = now
        if now - active.last_ns > self._stale_ns:
            self._switch(line, self._best(line, now, but=active) or lane, "stale", now)
            return
        apart = lane.mid2 - active.mid2
        if apart > line.limit2 or -apart > line.limit2:
            if lane.apart_since is None:
                lane.apart_since = now
            elif now - lane.apart_since >= self._diverge_ns:
                self._vote(line, now)
            return
        if lane.apart_since is not None:
            lane.apart_since = None
            if lane.outvoted:
                lane.outvoted = False
                lane.since = now
        if lane.rank < active.rank and not lane.outvoted and now - lane.since >= self._hold_ns:
            self._switch(line, lane, "return", now)

    def _fault(self, lane: Lane, reason: str, now: int) -> None:
        """A gap or a burst of rejections on ``lane``: its healthy run restarts, and if it
        is followed, the arbiter moves to the best other fresh lane (if there is one)."""
        lane.since = now
        line = lane.line
        log.warning("feed_fault", feed=lane.feed, instrument_id=line.instrument_id, reason=reason)
        if lane is line.active:
            best = self._best(line, now, but=lane)
            if best is not None:
                self._switch(line, best, reason, now)

    def _vote(self, line: InstrumentLine, now: int) -> None:
        """The fresh lanes' mids decide: those within ``diverge_ticks`` of more than half
        of them are right; the others are outvoted (and the active one, if outvoted, left)."""
        fresh = [lane for lane in line.lanes if now - lane.last_ns <= self._stale_ns]
        limit = line.limit2
        majority = [
            lane
            for lane in fresh
            if 2 * sum(abs(lane.mid2 - other.mid2) <= limit for other in fresh) > len(fresh)
        ]
        if not majority:
            for lane in fresh:
                lane.apart_since = now  # no majority: look again after diverge_ms
            log.warning(
                "feeds_diverged_no_majority",
                instrument_id=line.instrument_id,
                mids2={lane.feed: lane.mid2 for lane in fresh},
            )
            return
        for lane in fresh:
            right = lane in majority
            if lane.outvoted == right:
                lane.outvoted = not right
                lane.since = now
            lane.apart_since = None
        active = line.active
        if active is not None and active.outvoted:
            self._switch(line, min(majority, key=_rank), "diverged", now)

    def _best(self, line: InstrumentLine, now: int, *, but: Lane) -> Lane | None:
        """The preferred fresh lane other than ``but`` that is not outvoted."""
        for lane in line.lanes:
            if lane is not but and not lane.outvoted and now - lane.last_ns <= self._stale_ns:
                return lane
        return None

    def _switch(self, line: InstrumentLine, to: Lane, reason: str, now: int) -> None:
        before = line.held
        line.active = line.held = to
        if to is before:
            return
        line.switches += 1
        log.warning(
            "feed_switched",
            instrument_id=line.instrument_id,
            from_feed=before.feed,
            to_feed=to.feed,
            reason=reason,
        )
        self._publish(
            FeedSwitched(
                ts_ns=now,
                instrument_id=line.instrument_id,
                from_feed=before.feed,
                to_feed=to.feed,
                reason=reason,
                preferred=to.rank == 0,
            )
        )

    def _status(self, line: InstrumentLine, healthy: bool, reason: str, now: int) -> None:
        feed = line.active.feed if line.active is not None else ""
        log.warning("feed_status", instrument_id=line.instrument_id, healthy=healthy, reason=reason)
        self._publish(
            FeedStatus(
                ts_ns=now,
                instrument_id=line.instrument_id,
                healthy=healthy,
                feed=feed,
                reason=reason,
            )
        )

    # -- timer ----------------------------------------------------------------------------
    def poll(self) -> None:
        """Every ``poll_ms``: leave an active lane gone silent for a fresh one, or, when
        none ticked for ``stale_ms``, tell the node the instrument has no healthy feed."""
        now = self._clock.timestamp_ns()
        stale = self._stale_ns
        for line in self.lines.values():
            active = line.active
            # (a line none of whose lanes ticked yet has not started)
            if active is None or active.last_ns == -_NEVER or now - active.last_ns <= stale:
                continue
            best = self._best(line, now, but=active)
            if best is not None:
                self._switch(line, best, "stale", now)
            else:
                line.active = None
                self._status(line, False, f"no feed ticked for {self.config.stale_ms} ms", now)

    # -- monitoring -----------------------------------------------------------------------
    def states(self) -> list[LineState]:
        now = self._clock.timestamp_ns()
        return [
            LineState(
                iid,
                tuple(lane.feed for lane in line.lanes),
                line.active.feed if line.active is not None else "",
                tuple(
                    not lane.outvoted and now - lane.last_ns <= self._stale_ns
                    for lane in line.lanes
                ),
                line.switches,
                line.dropped_old,
                line.bars.gaps,
                line.bars.backfilled,
                line.bars.missing,
            )
            for iid, line in self.lines.items()
        ]


class FeedPort:
    """The ``FeedSink`` of one feed with arbitrated instruments."""

    __slots__ = ("_arbiter", "_fallback", "_lanes", "_on_quote")

    def __init__(self, arbiter: Arbiter, lanes: dict[str, Lane], fallback: FeedSink) -> None:
        self._arbiter = arbiter
        self._lanes = lanes
        self._fallback = fallback
        self._on_quote = arbiter.on_quote

    def on_quote(self, quote: QuoteTick) -> None:
        lane = self._lanes.get(quote.instrument_id)
        if lane is None:
            self._fallback.on_quote(quote)
        else:
            self._on_quote(lane, quote)

    def on_bar(self, bar: Bar) -> None:
        lane = self._lanes.get(bar.instrument_id)
        if lane is None:
            self._fallback.on_bar(bar)
        else:
            self._arbiter.on_bar(lane, bar)

    def rejected(self, instrument_id: str) -> None:
        """The validators stopped a quote of ``instrument_id`` from this feed."""
        lane = self._lanes.get(instrument_id)
        if lane is not None:
            self._arbiter.rejected(lane)


def _rank(lane: Lane) -> int:
    return lane.rank
