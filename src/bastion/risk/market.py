"""Market-data controls: the time-window price collar and stale market data.

- Time-window collar (``collar_window_pct`` within ``collar_window_ms``): every
  quote's mid enters a per-instrument sliding window; a mid more than the percentage
  away from the highest or lowest mid that prevailed in the window pauses the
  instrument for ``collar_window_pause_ms``. While paused, new orders (and amends
  that reprice or grow an order) on it are denied ``INSTRUMENT_PAUSED``; the pause and
  its end are ``InstrumentPaused`` / ``InstrumentResumed`` events. A pause starts a
  new window (its trigger quote is the new reference), so a further move of the
  percentage extends it.
- Feed pauses: a market data validator with the ``pause`` action
  (``bastion.feeds.validation``) pauses an instrument the same way
  (``RiskGate.pause_for_data``), for ``validation.pause_ms``.
- Stale data (``stale_data_ms``): the same orders on an instrument whose last quote is
  older than that (or that has no quote yet) are denied ``STALE_MARKET_DATA``.

``Kernel.on_quote`` calls ``MarketGuard.on_quote`` only when some instrument has a
collar window, and the order path asks ``check`` only for instruments with one of
these keys, so neither costs anything unconfigured.
"""

from __future__ import annotations

import functools
from collections import deque
from decimal import Decimal
from typing import final

import structlog

from bastion.bus import MessageBus
from bastion.clock import Cancelable, Clock
from bastion.model.data import QuoteTick
from bastion.model.events import InstrumentPaused, InstrumentResumed
from bastion.model.instruments import Instrument
from bastion.risk.limits import InstrumentLimits
from bastion.risk.reasons import Denial, DenyReason

log = structlog.get_logger("bastion.risk")


class MoveWindow:
    """The highest and lowest mid that prevailed at some time in the last ``window_ns``.

    A mid prevails from its quote until a quote with another mid: after a quiet spell,
    the old mid still counts, so a jump is caught however long the market was still.
    Kept as two monotonic deques of ``(end_ns, doubled mid)``, ``end_ns`` being when
    the mid was superseded (``_CURRENT`` for the latest): a mid counts while
    ``now - end_ns < window_ns``. O(1) amortized per quote, and nothing at all for a
    quote that leaves the mid unchanged."""

    __slots__ = ("highs", "last_mid2", "lows", "pct_den100", "pct_num", "window_ns")

    def __init__(self, pct: Decimal, window_ns: int) -> None:
        num, den = pct.as_integer_ratio()
        self.pct_num = num
        self.pct_den100 = den * 100
        self.window_ns = window_ns
        self.highs: deque[tuple[int, int]] = deque()  # mids decreasing from the left
        self.lows: deque[tuple[int, int]] = deque()  # mids increasing from the left
        self.last_mid2 = -1

    def add(self, ts_ns: int, mid2: int) -> int | None:
        """Add a doubled mid; return the window's doubled mid it moved more than the
        percentage away from (the lowest for a rise, the highest for a fall), or None."""
        last = self.last_mid2
        if mid2 == last:
            return None  # the usual quote: sizes changed, not the mid
        self.last_mid2 = mid2
        highs = self.highs
        lows = self.lows
        if highs:  # the latest mid, last in both deques, ends now
            superseded = (ts_ns, last)
            highs[-1] = superseded
            lows[-1] = superseded
        edge = ts_ns - self.window_ns
        while highs and highs[0][0] <= edge:
            highs.popleft()
        while lows and lows[0][0] <= edge:
            lows.popleft()
        moved: int | None = None
        if highs:
            # |mid - ref| / ref > pct / 100, in integers: dev * den * 100 > num * ref
            high = highs[0][1]
            low = lows[0][1]
            if (high - mid2) * self.pct_den100 > self.pct_num * high:
                moved = high
            elif (mid2 - low) * self.pct_den100 > self.pct_num * low:
                moved = low
            if moved is not None:
                highs.clear()
                lows.clear()
        current = (_CURRENT, mid2)
        while highs and highs[-1][1] <= mid2:
            highs.pop()
        highs.append(current)
        while lows and lows[-1][1] >= mid2:
            lows.pop()
        lows.append(current)
        return moved


_CURRENT = 2**63 - 1  # the end of the mid that still prevails


def _ratio100(pct: Decimal) -> tuple[int, int]:
    num, den = pct.as_integer_ratio()
    return num, den * 100


@final
class MarketGuard:
    """Instrument pauses (time-window collar) and stale-data checks.

    Publishes ``InstrumentPaused`` when a pause starts or is extended and
    ``InstrumentResumed`` when it ends (a clock timer at ``until_ns``).
    """

    def __init__(
        self,
        *,
        bus: MessageBus,
        clock: Clock,
        instruments: dict[str, Instrument],
        limits: dict[str, InstrumentLimits],
        last_quotes: dict[str, QuoteTick],
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._instruments = instruments
        self._limits = limits
        self._last_quotes = last_quotes
        self._windows: dict[str, MoveWindow] = {}
        self.paused: dict[str, tuple[int, str]] = {}  # instrument -> (until_ns, reason)
        self._pause_keys: dict[str, str] = {}  # instrument -> the setting its pause lasts
        self._timers: dict[str, Cancelable] = {}
        self.reconfigure(limits)

    def reconfigure(self, limits: dict[str, InstrumentLimits]) -> None:
        """Take new limits (an operator override): pauses running now run their course;
        a window whose settings did not change keeps the quotes it holds."""
        self._limits = limits
        windows: dict[str, MoveWindow] = {}
        for iid, lim in limits.items():
            config = lim.config
            if config.collar_window_pct is None:
                continue
            assert config.collar_window_ms is not None  # RiskConfig checks the pair
            window_ns = config.collar_window_ms * 1_000_000
            old = self._windows.get(iid)
            unchanged = (
                old is not None
                and old.window_ns == window_ns
                and (old.pct_num, old.pct_den100) == _ratio100(config.collar_window_pct)
            )
            if old is not None and unchanged:
                windows[iid] = old
            else:
                windows[iid] = MoveWindow(config.collar_window_pct, window_ns)
        self._windows = windows

    @staticmethod
    def needed(limits: dict[str, InstrumentLimits]) -> bool:
        return any(lim.paused_or_stale for lim in limits.values())

    @property
    def watches_quotes(self) -> bool:
        """Whether some instrument has a collar window (then every quote comes here)."""
        return bool(self._windows)

    # -- quotes -------------------------------------------------------------------------
    def on_quote(self, quote: QuoteTick) -> None:
        window = self._windows.get(quote.instrument_id)
        if window is None:
            return
        bid = quote.bid
        ask = quote.ask
        if bid <= 0 or ask <= 0:
            return  # a one-sided quote has no mid
        mid2 = bid + ask
        reference2 = window.add(quote.ts_ns, mid2)
        if reference2 is not None:
            self._pause(quote.instrument_id, reference2, mid2)

    def _pause(self, iid: str, reference2: int, mid2: int) -> None:
        instrument = self._instruments[iid]
        config = self._limits[iid].config
        assert config.collar_window_pause_ms is not None
        before = instrument.price(reference2) / 2
        after = instrument.price(mid2) / 2
        pct = (abs(after - before) * 100 / before).quantize(Decimal("0.001"))
        reason = (
            f"mid of {iid} moved {pct}% ({before} to {after}) within collar_window_ms "
            f"{config.collar_window_ms}: beyond collar_window_pct {config.collar_window_pct}"
        )
        self.pause(
            iid,
            config.collar_window_pause_ms,
            reason,
            f"collar_window_pause_ms {config.collar_window_pause_ms}",
        )

    def pause(self, iid: str, pause_ms: int, reason: str, key: str) -> None:
        """Pause new orders on ``iid`` for ``pause_ms`` from now (a running pause is
        extended); ``key`` names the setting the pause lasts (for the denial)."""
        now = self._clock.timestamp_ns()
        until = now + pause_ms * 1_000_000
        previous = self._timers.pop(iid, None)
        if previous is not None:
            previous.cancel()
        self.paused[iid] = (until, reason)
        self._pause_keys[iid] = key
        log.warning("instrument_paused", instrument_id=iid, reason=reason, until_ns=until)
        self._bus.publish(
            InstrumentPaused(ts_ns=now, instrument_id=iid, reason=reason, until_ns=until)
        )
        self._timers[iid] = self._clock.call_at(until, functools.partial(self._resume, iid))

    def _resume(self, iid: str, due_ns: int) -> None:
        pause = self.paused.get(iid)
        if pause is None or pause[0] != due_ns:
            return  # extended since: a later timer ends it
        del self.paused[iid]
        self._timers.pop(iid, None)
        log.warning("instrument_resumed", instrument_id=iid)
        self._bus.publish(InstrumentResumed(ts_ns=self._clock.timestamp_ns(), instrument_id=iid))

    def resume_now(self, iid: str, who: str, why: str) -> bool:
        """An operator ends a pause early (journaled with who and why); False if the
        instrument is not paused."""
        if self.paused.pop(iid, None) is None:
            return False
        timer = self._timers.pop(iid, None)
        if timer is not None:
            timer.cancel()
        log.warning("instrument_resumed", instrument_id=iid, who=who, why=why)
        self._bus.publish(
            InstrumentResumed(ts_ns=self._clock.timestamp_ns(), instrument_id=iid, who=who, why=why)
        )
        return True

    # -- orders -------------------------------------------------------------------------
    def check(
        self, limits: InstrumentLimits, has_quote: bool, quote_ts: int, now: int
    ) -> Denial | None:
        """``INSTRUMENT_PAUSED`` during a pause, else ``STALE_MARKET_DATA`` when the last
        quote (at ``quote_ts``, if ``has_quote``) is older than ``stale_data_ms`` (or there
        is none); else None."""
        paused = self.paused
        if paused:
            pause = paused.get(limits.instrument.id)
            if pause is not None and now < pause[0]:
                key = self._pause_keys.get(limits.instrument.id, "")
                return PausedDenied(limits, pause[0] - now, pause[1], key)
        stale_ns = limits.stale_ns
        if stale_ns is not None and (not has_quote or now - quote_ts > stale_ns):
            return StaleDenied(limits, now - quote_ts if has_quote else -1)
        return None


@final
class PausedDenied(Denial):
    def __init__(self, limits: InstrumentLimits, left_ns: int, why: str, key: str) -> None:
        super().__init__(DenyReason.INSTRUMENT_PAUSED)
        self.limits = limits
        self.left_ns = left_ns
        self.why = why
        self.key = key

    def message(self) -> str:
        return (
            f"{self.limits.instrument.id} is paused for another {self.left_ns / 1e6:g} ms: "
            f"{self.why} ({self.key})"
        )


@final
class StaleDenied(Denial):
    """The last quote ``age_ns`` old (-1: none yet)."""

    def __init__(self, limits: InstrumentLimits, age_ns: int) -> None:
        super().__init__(DenyReason.STALE_MARKET_DATA)
        self.limits = limits
        self.age_ns = age_ns

    def message(self) -> str:
        limits = self.limits
        iid = limits.instrument.id
        stale_ms = limits.config.stale_data_ms
        if self.age_ns < 0:
            return f"no quote for {iid} yet (stale_data_ms {stale_ms})"
        return (
            f"last quote for {iid} is {self.age_ns / 1e6:g} ms old: beyond stale_data_ms {stale_ms}"
        )
