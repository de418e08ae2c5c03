"""The validators of one instrument's quotes and trades: the per-quote hot path.

``InstrumentRules.check`` runs every validator on a quote in this order, each counting
under its reason (``REASONS``):

- sequence numbers (when the source numbers its quotes, ``seq > 0``): the last one
  again is ``duplicate``, a lower one ``out_of_order``, a jump past the next one
  ``seq_gap`` (data was missed: flagged by default, the quote itself is good). They
  come first because a number is the transport's: a quote in sequence consumes it even
  when a later check drops the quote, so a dropped bad quote is no gap on the next one;
- ``non_positive_price``: bid or ask <= 0;
- ``bad_size``: bid or ask size <= 0;
- ``off_tick``: bid or ask not a multiple of the instrument's tick;
- ``crossed``: bid > ask; ``locked``: bid == ask;
- ``clock_ahead``: the timestamp more than ``max_ahead_ms`` ahead of the node's clock;
  ``stale``: more than ``max_age_ms`` behind it;
- timestamps: earlier than the last accepted quote's is ``out_of_order``; the same
  timestamp with the same prices and sizes is ``duplicate`` (under any sequence number:
  a resend);
- ``spike``: the mid more than ``spike_ticks`` ticks or ``spike_pct`` percent from the
  last accepted mid, or (``spike_z``) a mid change more than that many robust standard
  deviations (1.4826 x MAD, at least one tick) from the median of the last
  ``spike_window`` accepted changes. ``spike_confirm`` spikes in a row at one new level
  are a real move, and the last of them is accepted.

A hit's action decides: ``drop`` (the quote goes no further), ``pause`` (dropped, and
the sink pauses new orders on the instrument), ``flag`` (counted and logged, the quote
goes on through the next validators), ``off`` (not counted). The pass path costs a
few integer tests; everything else (counting, logging) runs only on a hit.
Prices stay integers; the z-score's statistics alone are floats.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from bastion.feeds.validation.config import EffectiveValidation
from bastion.model.data import QuoteTick, TradeTick
from bastion.model.instruments import Instrument

REASONS: Final = (
    "ok",
    "non_positive_price",
    "bad_size",
    "off_tick",
    "crossed",
    "locked",
    "clock_ahead",
    "stale",
    "duplicate",
    "out_of_order",
    "seq_gap",
    "spike",
)
"""The reason codes, by their number (0: none); ``ActionsConfig`` has a key for each."""

OK: Final = 0
NON_POSITIVE_PRICE: Final = 1
BAD_SIZE: Final = 2
OFF_TICK: Final = 3
CROSSED: Final = 4
LOCKED: Final = 5
CLOCK_AHEAD: Final = 6
STALE: Final = 7
DUPLICATE: Final = 8
OUT_OF_ORDER: Final = 9
SEQ_GAP: Final = 10
SPIKE: Final = 11

ACTIONS: Final = ("off", "flag", "drop", "pause")
OFF: Final = 0
FLAG: Final = 1
DROP: Final = 2
PAUSE: Final = 3

# a threshold that is not set: the largest int compiled code keeps unboxed (a larger one
# turns every comparison with it into a call)
_NEVER: Final = 2**62 - 1
_MAD_TO_SIGMA: Final = 1.4826  # MAD of a normal distribution, in standard deviations
_Z_REFRESH: Final = 16  # accepted quotes between two refreshes of median and MAD

Reporter = Callable[["InstrumentRules", int, int, object], None]
"""Called on the first hit of a reason per log interval: (rules, reason, action, data)."""
Verdict = Callable[[str, int, int, int, object], None]
"""Told every hit (a recorder's): (instrument_id, reason, action, now_ns, data)."""


class InstrumentRules:
    """The validators' settings and state for one instrument of one feed."""

    __slots__ = (
        "actions",
        "age_ns",
        "ahead_ns",
        "confirm",
        "counts",
        "instrument_id",
        "last",
        "last_seq",
        "last_trade",
        "last_trade_seq",
        "last_trade_ts",
        "last_ts",
        "limit2",
        "log_interval_ns",
        "logged_ns",
        "mid2",
        "pct_den100",
        "pct_num",
        "pending_mid2",
        "pending_n",
        "report",
        "settings",
        "suppressed",
        "tick_raw",
        "ticks_limit2",
        "verdict",
        "z",
        "z_center",
        "z_changes",
        "z_limit",
        "z_next",
        "z_window",
    )

    def __init__(
        self,
        instrument: Instrument,
        settings: EffectiveValidation,
        *,
        log_interval_ms: int,
        report: Reporter,
        verdict: Verdict | None = None,
    ) -> None:
        self.instrument_id = instrument.id
        self.settings = settings
        self.actions = [OFF] + [ACTIONS.index(settings.actions[r]) for r in REASONS[1:]]
        self.counts = [0] * len(REASONS)
        self.suppressed = [0] * len(REASONS)
        self.logged_ns = [-_NEVER] * len(REASONS)
        self.log_interval_ns = log_interval_ms * 1_000_000
        self.report = report
        self.verdict = verdict
        """Told every hit, not only the logged ones (the market data recorder)."""
        self.tick_raw = instrument.tick_raw
        ms = 1_000_000
        self.ahead_ns = _NEVER if settings.max_ahead_ms is None else settings.max_ahead_ms * ms
        self.age_ns = _NEVER if settings.max_age_ms is None else settings.max_age_ms * ms
        # spike thresholds on doubled mids (bid + ask): a half-tick mid stays an integer
        self.ticks_limit2 = (
            _NEVER if settings.spike_ticks is None else 2 * settings.spike_ticks * self.tick_raw
        )
        self.pct_num = 0
        self.pct_den100 = 0
        if settings.spike_pct is not None:
            num, den = settings.spike_pct.as_integer_ratio()
            self.pct_num, self.pct_den100 = num, den * 100
        self.confirm = settings.spike_confirm
        self.z = 0.0 if settings.spike_z is None else float(settings.spike_z)
        self.z_window = settings.spike_window
        self.z_changes: list[int] = []
        self.z_next = 0  # where the next change goes once the window is full
        self.z_center = 0.0
        self.z_limit = float(_NEVER)  # until the window is full
        self.mid2 = 0  # the last accepted doubled mid (0: none yet)
        self.limit2 = _NEVER  # the spike threshold around it
        self.pending_mid2 = 0  # a new level that spikes are confirming
        self.pending_n = 0
        self.last: QuoteTick | None = None
        self.last_ts = -_NEVER
        self.last_seq = 0
        self.last_trade: TradeTick | None = None
        self.last_trade_ts = -_NEVER
        self.last_trade_seq = 0

    # -- quotes ---------------------------------------------------------------------------
    def check(self, q: QuoteTick, now: int) -> int:
        """OK to deliver ``q`` (received at ``now``), else the reason that stops it."""
        # The sequence first: a quote in sequence consumes its number even when a later
        # check drops it, so dropping a bad quote never shows as a gap on the next one.
        seq = q.seq
        if seq:
            last_seq = self.last_seq
            if seq != last_seq + 1:  # the next one in order needs no more
                reason = self._sequence(seq, last_seq)
                if reason and self.hit(reason, now, q):
                    if seq > last_seq:  # a gap dropped (its action drop): numbers go on
                        self.last_seq = seq
                    return reason
            if seq > last_seq:
                self.last_seq = seq
        bid = q.bid
        ask = q.ask
        if (bid <= 0 or ask <= 0) and self.hit(NON_POSITIVE_PRICE, now, q):
            return NON_POSITIVE_PRICE
        if (q.bid_size <= 0 or q.ask_size <= 0) and self.hit(BAD_SIZE, now, q):
            return BAD_SIZE
        tick = self.tick_raw
        if (bid % tick or ask % tick) and self.hit(OFF_TICK, now, q):
            return OFF_TICK
        if bid >= ask:
            reason = CROSSED if bid > ask else LOCKED
            if self.hit(reason, now, q):
                return reason
        ts = q.ts_ns
        if ts - now > self.ahead_ns and self.hit(CLOCK_AHEAD, now, q):
            return CLOCK_AHEAD
        if now - ts > self.age_ns and self.hit(STALE, now, q):
            return STALE
        if ts <= self.last_ts:
            if ts < self.last_ts:
                reason = OUT_OF_ORDER
            else:  # the same book again, whatever its sequence number: a resend
                reason = DUPLICATE if _same_book(q, self.last) else OK
            if reason and self.hit(reason, now, q):
                return reason
        mid2 = bid + ask
        move = mid2 - self.mid2
        limit = self.limit2
        if (
            move > limit or -move > limit or (self.z and abs(move - self.z_center) > self.z_limit)
        ) and (not self._confirmed(mid2) and self.hit(SPIKE, now, q)):
            return SPIKE
        # accepted
        self.last = q
        self.last_ts = ts
        self.pending_n = 0
        if move:
            self._moved(mid2, move)
        return OK

    def _sequence(self, seq: int, last: int) -> int:
        if seq <= last:
            return DUPLICATE if seq == last else OUT_OF_ORDER
        return SEQ_GAP if last and seq != last + 1 else OK

    def _moved(self, mid2: int, move: int) -> None:
        """A new accepted mid: the spike threshold around it, the z-score's window."""
        first = self.mid2 == 0
        self.mid2 = mid2
        self.limit2 = self._limit_at(mid2)
        if self.z and not first:
            self._z_add(move)

    def _z_add(self, move: int) -> None:
        changes = self.z_changes
        if len(changes) < self.z_window:
            changes.append(move)
            if len(changes) == self.z_window:
                self._z_refresh()
            return
        changes[self.z_next] = move
        self.z_next = (self.z_next + 1) % self.z_window
        if self.z_next % _Z_REFRESH == 0:
            self._z_refresh()

    def _z_refresh(self) -> None:
        """Median and MAD of the window (a sort every ``_Z_REFRESH`` accepted moves)."""
        ordered = sorted(self.z_changes)
        center = _median(ordered)
        mad = _median(sorted([abs(c - center) for c in ordered]))
        floor = 2 * self.tick_raw  # one tick, doubled: a quiet market is not a hair trigger
        self.z_center = center
        self.z_limit = self.z * _MAD_TO_SIGMA * max(mad, floor)

    def _confirmed(self, mid2: int) -> bool:
        """Whether this spike is the ``spike_confirm``-th in a row at one new level."""
        pending = self.pending_mid2
        if self.pending_n and abs(mid2 - pending) <= self._limit_at(pending):
            self.pending_n += 1
        else:
            self.pending_mid2 = mid2
            self.pending_n = 1
        return self.pending_n >= self.confirm

    def _limit_at(self, mid2: int) -> int:
        """The spike threshold around the doubled mid ``mid2``."""
        limit = self.ticks_limit2
        if self.pct_den100:
            pct = mid2 * self.pct_num // self.pct_den100
            if pct < limit:
                limit = pct
        return limit

    # -- trades ---------------------------------------------------------------------------
    def check_trade(self, t: TradeTick, now: int) -> int:
        """OK to deliver the trade print ``t``, else the reason that stops it: price and
        size, clock, sequence and time order as for quotes; a spike is a price beyond the
        spike threshold from the last accepted quote's mid."""
        seq = t.seq
        if seq:  # first, as for quotes: a trade in sequence consumes its number
            last_seq = self.last_trade_seq
            if seq != last_seq + 1:
                reason = self._sequence(seq, last_seq)
                if reason and self.hit(reason, now, t):
                    if seq > last_seq:
                        self.last_trade_seq = seq
                    return reason
            if seq > last_seq:
                self.last_trade_seq = seq
        price = t.price
        if price <= 0 and self.hit(NON_POSITIVE_PRICE, now, t):
            return NON_POSITIVE_PRICE
        if t.size <= 0 and self.hit(BAD_SIZE, now, t):
            return BAD_SIZE
        if price % self.tick_raw and self.hit(OFF_TICK, now, t):
            return OFF_TICK
        ts = t.ts_ns
        if ts - now > self.ahead_ns and self.hit(CLOCK_AHEAD, now, t):
            return CLOCK_AHEAD
        if now - ts > self.age_ns and self.hit(STALE, now, t):
            return STALE
        if ts <= self.last_trade_ts:
            last = self.last_trade_ts
            reason = OUT_OF_ORDER if ts < last else DUPLICATE if t == self.last_trade else OK
            if reason and self.hit(reason, now, t):
                return reason
        if self.mid2 and abs(2 * price - self.mid2) > self.limit2 and self.hit(SPIKE, now, t):
            return SPIKE
        self.last_trade = t
        self.last_trade_ts = ts
        return OK

    # -- hits -----------------------------------------------------------------------------
    def hit(self, reason: int, now: int, data: object) -> bool:
        """Count a hit; True if its action stops the data (drop, pause). The first hit of
        a reason per log interval is reported, with how many went unreported before it."""
        action = self.actions[reason]
        if action == OFF:
            return False
        self.counts[reason] += 1
        if self.verdict is not None:
            self.verdict(self.instrument_id, reason, action, now, data)
        if now - self.logged_ns[reason] >= self.log_interval_ns:
            self.logged_ns[reason] = now
            self.report(self, reason, action, data)
            self.suppressed[reason] = 0
        else:
            self.suppressed[reason] += 1
        return action != FLAG


def _same_book(q: QuoteTick, last: QuoteTick | None) -> bool:
    return (
        last is not None
        and q.bid == last.bid
        and q.ask == last.ask
        and q.bid_size == last.bid_size
        and q.ask_size == last.ask_size
    )


def _median(ordered: list[int] | list[float]) -> float:
    n = len(ordered)
    half = n // 2
    return float(ordered[half]) if n % 2 else (ordered[half - 1] + ordered[half]) / 2
