"""Post-trade controls: repeated executions, daily loss and drawdown.

Evaluated on every fill (``RiskGate.fill_post_trade``, after the portfolio and
the pre-trade state have applied it: ``risk.fills``) and whenever the node calls
``RiskGate.check_post_trade``:

- repeated executions: a strategy with more than ``max_fills`` fills within
  ``fills_window_ms`` (a fill at ``t`` counts while ``now - t < fills_window_ms``);
- daily loss: PnL at the start of the trading day minus PnL now, for each strategy
  (``max_daily_loss``) and for the node (``max_daily_loss_node``);
- drawdown: the day's highest PnL minus PnL now (``max_drawdown``,
  ``max_drawdown_node``).

PnL is realized + unrealized (positions marked at the last quote: a long at the bid,
a short at the ask, as ``Portfolio.unrealized_pnl``) minus fees, in the account
currency, exact (integers, then ``Decimal``). A trading day starts at
``trading_day_start`` (UTC); its starting PnL and peak are the PnL at its first
evaluation (0 for a strategy that held nothing then). While a position has no quote
to mark it, the PnL of its strategy (and the node's) is unknown and that scope is
not evaluated. A limit acts when it is crossed: again only after its PnL came back
within the limit, not on every evaluation, so an operator's resume or enable holds.

A strategy beyond a limit is disabled (``on_strategy_breach``); the node beyond one
goes to ``post_trade_action`` (``on_node_breach``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from decimal import Decimal
from typing import Any

import structlog

from bastion.clock import Clock
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide
from bastion.model.events import OrderFilled
from bastion.model.instruments import Instrument
from bastion.portfolio.portfolio import Portfolio
from bastion.portfolio.position import Exact
from bastion.risk.config import RiskConfig, StrategyRiskConfig
from bastion.risk.throttle import SlidingWindow
from bastion.risk.usage import LimitUse

log = structlog.get_logger("bastion.risk")

DAY_NS = 86_400 * 1_000_000_000
_BUY = OrderSide.BUY
_ZERO = Decimal(0)


class DayTrack:
    """One scope's (the node's or a strategy's) trading day: its PnL at the start, its
    peak, and the limits it is beyond now."""

    __slots__ = ("beyond", "day", "peak", "start")

    def __init__(self) -> None:
        self.day: int | None = None
        self.start = _ZERO
        self.peak = _ZERO
        self.beyond: set[str] = set()

    def update(
        self,
        day: int,
        pnl: Decimal,
        max_loss: Decimal | None,
        max_drawdown: Decimal | None,
        start: Decimal | None = None,
    ) -> list[tuple[str, Decimal, Decimal]]:
        """Take ``pnl`` into the day (``start``: the day's starting PnL when known to
        differ from ``pnl``); return the limits just crossed as ``(kind, value, limit)``
        with kind ``"loss"`` or ``"drawdown"``."""
        if day != self.day:
            self.day = day
            self.start = self.peak = pnl if start is None else start
            self.beyond.clear()
        if pnl > self.peak:
            self.peak = pnl
        crossed = []
        for kind, value, limit in (
            ("loss", self.start - pnl, max_loss),
            ("drawdown", self.peak - pnl, max_drawdown),
        ):
            if limit is None:
                continue
            if value > limit:
                if kind not in self.beyond:
                    self.beyond.add(kind)
                    crossed.append((kind, value, limit))
            else:
                self.beyond.discard(kind)
        return crossed


class StrategyTrack:
    """A strategy's effective limits, fills window and trading day."""

    __slots__ = ("config", "day", "fills")

    def __init__(self, config: StrategyRiskConfig) -> None:
        self.config = config
        self.fills: SlidingWindow | None = None
        if config.max_fills is not None and config.fills_window_ms is not None:
            self.fills = SlidingWindow(config.max_fills, config.fills_window_ms * 1_000_000)
        self.day = DayTrack()

    @property
    def has_pnl_limit(self) -> bool:
        return self.config.max_daily_loss is not None or self.config.max_drawdown is not None


class PostTradeMonitor:
    """The post-trade limits of the node and its strategies."""

    def __init__(
        self,
        *,
        config: RiskConfig,
        clock: Clock,
        portfolio: Portfolio,
        instruments: dict[str, Instrument],
        last_quotes: dict[str, QuoteTick],
        strategies: Collection[str] | None,
        on_strategy_breach: Callable[[str, str], object],
        on_node_breach: Callable[[str], None],
    ) -> None:
        """``strategies``: the node's strategies, the only ones limited (None: every
        strategy that trades, e.g. in tests)."""
        self._config = config
        self._clock = clock
        self._portfolio = portfolio
        self._instruments = instruments
        self._strategies = None if strategies is None else frozenset(strategies)
        self._on_strategy_breach = on_strategy_breach
        self._on_node_breach = on_node_breach
        self._day_offset_ns = config.trading_day_start_ns
        self._node = DayTrack()
        self._day: int | None = None
        self._present: set[str] = set()  # strategies with a position at the day's start
        self._node_limited = (
            config.max_daily_loss_node is not None or config.max_drawdown_node is not None
        )
        self._tracks: dict[str, StrategyTrack | None] = {}
        self._fees: dict[str, Decimal] = {}  # per strategy, since the node started
        # raw cash flow (-sum of side * qty * px) per (strategy, instrument), with the
        # Position it belongs to: with the marked position it is the PnL before fees,
        # in ints (Position's exact realized and cost may be slow Fractions)
        self._flows: dict[tuple[str, str], list[Any]] = {}
        self._last_quotes = last_quotes
        # money = raw * weight / 10**money_exp, exactly, for every instrument: PnL sums
        # stay integers until one Decimal per strategy
        self._money_exp, self._weights = _money_scale(instruments)
        self._pnl_limited = (
            self._node_limited
            or config.max_daily_loss is not None
            or config.max_drawdown is not None
            or any(
                s.max_daily_loss is not None or s.max_drawdown is not None
                for s in config.strategies.values()
            )
        )

    def reconfigure(self, config: RiskConfig) -> None:
        """Take new limits (an operator override) keeping the day's PnL, its peak and the
        fills in each window: a changed limit applies to what already happened today."""
        self._config = config
        self._day_offset_ns = config.trading_day_start_ns
        self._node_limited = (
            config.max_daily_loss_node is not None or config.max_drawdown_node is not None
        )
        self._pnl_limited = (
            self._node_limited
            or config.max_daily_loss is not None
            or config.max_drawdown is not None
            or any(
                s.max_daily_loss is not None or s.max_drawdown is not None
                for s in config.strategies.values()
            )
        )
        old_tracks, self._tracks = self._tracks, {}
        for sid, old in old_tracks.items():
            track = self._track(sid)
            if track is None or old is None:
                continue
            track.day = old.day
            if track.fills is not None and old.fills is not None:
                track.fills.times = old.fills.times

    def export_state(self) -> dict[str, Any]:
        """The trading day so far (starting PnL, peak, limits crossed, fees per strategy),
        for a snapshot: a restart mid-day keeps the day's baseline instead of taking a
        new one (which would let a node lose its daily limit again after a crash)."""
        tracks = {sid: _day_state(t.day) for sid, t in self._tracks.items() if t is not None}
        return {
            "day": self._day,
            "present": sorted(self._present),
            "node": _day_state(self._node),
            "strategies": tracks,
            "fees": {sid: str(fee) for sid, fee in self._fees.items()},
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        """Take over ``export_state``'s output (from the last snapshot)."""
        if not state:
            return
        self._day = state.get("day")
        self._present = set(state.get("present", ()))
        _set_day(self._node, state.get("node") or {})
        for sid, day_state in (state.get("strategies") or {}).items():
            track = self._track(sid)
            if track is not None:
                _set_day(track.day, day_state)
        self._fees = {sid: Decimal(fee) for sid, fee in (state.get("fees") or {}).items()}

    @staticmethod
    def needed(config: RiskConfig) -> bool:
        keys = ("max_fills", "max_daily_loss", "max_drawdown")
        return (
            config.max_daily_loss_node is not None
            or config.max_drawdown_node is not None
            or any(getattr(config, k) is not None for k in keys)
            or any(getattr(s, k) is not None for s in config.strategies.values() for k in keys)
        )

    def _track(self, strategy_id: str) -> StrategyTrack | None:
        """The strategy's track, None when no limit of this module applies to it."""
        try:
            return self._tracks[strategy_id]
        except KeyError:
            pass
        track: StrategyTrack | None = None
        if self._strategies is None or strategy_id in self._strategies:
            track = StrategyTrack(self._config.for_strategy(strategy_id))
            if track.fills is None and not track.has_pnl_limit:
                track = None
        self._tracks[strategy_id] = track
        return track

    def _candidates(self, seen: Iterable[str]) -> set[str]:
        """The strategies to evaluate: the node's, and any other that traded."""
        names = set(seen)
        names |= self._config.strategies.keys() if self._strategies is None else self._strategies
        return names

    # -- fills --------------------------------------------------------------------------
    def on_fill(self, fill: OrderFilled) -> None:
        """A fill the portfolio has applied already."""
        sid = fill.strategy_id
        if fill.fee:
            self._fees[sid] = self._fees.get(sid, _ZERO) + fill.fee
        entry = self._flows.get((sid, fill.instrument_id))
        if entry is not None:  # else _pnl takes it from the position, this fill included
            signed = fill.last_qty * fill.last_px
            entry[1] += -signed if fill.side is _BUY else signed
        now = self._clock.timestamp_ns()
        track = self._track(sid)
        if track is not None and track.fills is not None:
            fills = track.fills
            fills.add(now)
            # acts when the count first passes the limit, not on every later fill
            if len(fills.times) == fills.limit + 1:
                self._strategy_breach(
                    sid,
                    f"strategy {sid}: {len(fills.times)} fills within fills_window_ms "
                    f"{track.config.fills_window_ms}: beyond max_fills {fills.limit} "
                    f"(risk.strategies.{sid} or [risk])",
                )
        if self._pnl_limited:
            self.evaluate(now, only=sid)

    def strategy_enabled(self, strategy_id: str) -> None:
        """An operator enabled the strategy: its fills count afresh."""
        track = self._tracks.get(strategy_id)
        if track is not None and track.fills is not None:
            track.fills.times.clear()

    # -- PnL limits ---------------------------------------------------------------------
    def evaluate(self, now_ns: int, *, only: str | None = None) -> None:
        """Check the node's limits and every strategy's (or only ``only``'s)."""
        if not self._pnl_limited:
            return
        day = (now_ns - self._day_offset_ns) // DAY_NS
        by_strategy, unmarked = self._pnl()
        if day != self._day:
            # who held anything at the day's first evaluation: a strategy that did not
            # starts the day at PnL 0, whenever it is first evaluated
            self._day = day
            self._present = by_strategy.keys() | unmarked | self._fees.keys()
        currency = self._portfolio.currency
        if self._node_limited and not unmarked:
            pnl = sum(by_strategy.values(), _ZERO) - self._portfolio.fees
            config = self._config
            track = self._node
            for kind, value, limit in track.update(
                day, pnl, config.max_daily_loss_node, config.max_drawdown_node
            ):
                self._node_breach(
                    f"node {_what(kind, value, currency, track)}: beyond {_KEYS[kind]}_node {limit}"
                )
        names = (only,) if only is not None else self._candidates(by_strategy.keys() | self._fees)
        for sid in names:
            strategy = self._track(sid)
            if strategy is None or not strategy.has_pnl_limit or sid in unmarked:
                continue
            pnl = by_strategy.get(sid, _ZERO) - self._fees.get(sid, _ZERO)
            limits = strategy.config
            start = None if sid in self._present else _ZERO
            for kind, value, limit in strategy.day.update(
                day, pnl, limits.max_daily_loss, limits.max_drawdown, start
            ):
                self._strategy_breach(
                    sid,
                    f"strategy {sid} {_what(kind, value, currency, strategy.day)}: beyond "
                    f"{_KEYS[kind]} {limit} (risk.strategies.{sid} or [risk])",
                )

    def usage(self, now_ns: int) -> list[LimitUse]:
        """The day's loss and drawdown against their limits, of the node (scope ``node``:
        ``max_daily_loss_node``, ``max_drawdown_node``) and each limited strategy, as the
        last evaluation's day has them (a scope not evaluated today, or whose position
        has no quote to mark it, is not reported)."""
        if not self._pnl_limited:
            return []
        day = (now_ns - self._day_offset_ns) // DAY_NS
        by_strategy, unmarked = self._pnl()
        config = self._config
        out: list[LimitUse] = []
        node = self._node
        if self._node_limited and not unmarked and node.day == day:
            pnl = sum(by_strategy.values(), _ZERO) - self._portfolio.fees
            out += _day_usage(
                node, pnl, config.max_daily_loss_node, config.max_drawdown_node, "node"
            )
        for sid in sorted(self._candidates(by_strategy.keys() | self._fees.keys())):
            track = self._track(sid)
            if track is None or not track.has_pnl_limit or sid in unmarked:
                continue
            if track.day.day != day:
                continue
            pnl = by_strategy.get(sid, _ZERO) - self._fees.get(sid, _ZERO)
            limits = track.config
            out += _day_usage(track.day, pnl, limits.max_daily_loss, limits.max_drawdown, sid)
        return out

    def _pnl(self) -> tuple[dict[str, Decimal], set[str]]:
        """Realized + unrealized PnL per strategy (before fees), and the strategies
        with a position that has no quote to mark it."""
        scaled: dict[str, int] = {}  # PnL in units of 10**-money_exp of the currency
        unmarked: set[str] = set()
        portfolio = self._portfolio
        last_quotes = self._last_quotes
        weights = self._weights
        flows = self._flows
        for position in portfolio.positions():
            sid = position.strategy_id
            iid = position.instrument_id
            entry = flows.get((sid, iid))
            if entry is None or entry[0] is not position:  # new, or restored since
                # realized + unrealized = cash flow + quantity * mark, so the flow is
                # realized - cost: an integer, whatever Fractions the average took
                entry = flows[(sid, iid)] = [
                    position,
                    _integral(position.realized - position.cost),
                ]
            raw: int = entry[1]
            quantity = position.quantity
            if quantity:
                quote = last_quotes.get(iid)  # marks as Portfolio.mark_px
                if quote is None:
                    unmarked.add(sid)
                    continue
                raw += quantity * (quote.bid if quantity > 0 else quote.ask)
            scaled[sid] = scaled.get(sid, 0) + raw * weights[iid]
        exp = -self._money_exp
        by_strategy = {sid: Decimal(value).scaleb(exp) for sid, value in scaled.items()}
        return by_strategy, unmarked

    def _strategy_breach(self, strategy_id: str, reason: str) -> None:
        log.warning("post_trade_limit_breached", strategy_id=strategy_id, reason=reason)
        self._on_strategy_breach(strategy_id, reason)

    def _node_breach(self, reason: str) -> None:
        log.warning("post_trade_limit_breached", reason=reason)
        self._on_node_breach(reason)


_KEYS = {"loss": "max_daily_loss", "drawdown": "max_drawdown"}


def _day_usage(
    track: DayTrack,
    pnl: Decimal,
    max_loss: Decimal | None,
    max_drawdown: Decimal | None,
    scope: str,
) -> list[LimitUse]:
    out: list[LimitUse] = []
    if max_loss is not None:
        out.append(LimitUse("max_daily_loss", scope, max(_ZERO, track.start - pnl), max_loss))
    if max_drawdown is not None:
        drop = max(_ZERO, max(track.peak, pnl) - pnl)
        out.append(LimitUse("max_drawdown", scope, drop, max_drawdown))
    return out


def _day_state(track: DayTrack) -> dict[str, Any]:
    return {
        "day": track.day,
        "start": str(track.start),
        "peak": str(track.peak),
        "beyond": sorted(track.beyond),
    }


def _set_day(track: DayTrack, state: dict[str, Any]) -> None:
    if state.get("day") is None:
        return
    track.day = int(state["day"])
    track.start = Decimal(state["start"])
    track.peak = Decimal(state["peak"])
    track.beyond = set(state.get("beyond", ()))


def _money_scale(instruments: dict[str, Instrument]) -> tuple[int, dict[str, int]]:
    """``(exp, weights)`` with ``Instrument.money(raw) == raw * weights[id] / 10**exp``."""
    parts: dict[str, tuple[int, int]] = {}
    for iid, inst in instruments.items():
        exponent = inst.multiplier.as_tuple().exponent
        assert isinstance(exponent, int)  # multipliers are finite
        shift = max(0, -exponent)
        parts[iid] = (
            int(inst.multiplier.scaleb(shift)),
            shift + inst.price_precision + inst.size_precision,
        )
    exp = max((e for _, e in parts.values()), default=0)
    return exp, {iid: factor * 10 ** (exp - e) for iid, (factor, e) in parts.items()}


def _integral(value: Exact) -> int:
    if isinstance(value, int):
        return value
    assert value.denominator == 1, value  # a sum of integer cash flows
    return value.numerator


def _what(kind: str, value: Decimal, currency: str, track: DayTrack) -> str:
    if kind == "loss":
        return f"daily loss {value} {currency} (PnL net of fees {track.start} at day start)"
    return f"drawdown {value} {currency} (from the day's peak PnL {track.peak})"
