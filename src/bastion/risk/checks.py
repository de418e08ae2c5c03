"""The pre-trade checks beyond order size: instrument pause and stale data
(``risk.market``), permissions, price collar (``risk.collar``), duplicate orders and
message throttle (``risk.throttle``), position limits (``risk.positions``), credit
(``risk.credit``) and self-trade prevention (``risk.self_trade``).

Each control's rule is written once, in the module named: a check that returns None or
a ``Denial`` keeping the figures it compared, and beside it the ``Denial`` subclass
that turns them into the message when the denial is published. ``check`` below calls
them in order; the lanes (``_Lane``) look up once what each needs.

``RiskGate`` builds a ``PreTradeChecks`` only when at least one of these is
configured, and each part is skipped when its own limits are absent, so a node
without them pays nothing. Working orders count from the moment they are sent,
acknowledged or not: ``risk.book`` keeps their running sums.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import final

from bastion.bus import MessageBus
from bastion.clock import Clock
from bastion.model.data import QuoteTick, TradeTick
from bastion.model.enums import OrderSide
from bastion.model.events import OrderFilled
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.portfolio.portfolio import Portfolio
from bastion.risk.book import RestingPrices, Sides, WorkingBook
from bastion.risk.collar import check_collar
from bastion.risk.config import RiskConfig
from bastion.risk.credit import AccountCredit, CreditLimits
from bastion.risk.limits import InstrumentLimits, StrategyRules, Throttle
from bastion.risk.market import MarketGuard
from bastion.risk.positions import PositionLimits
from bastion.risk.reasons import Denial, DenyReason
from bastion.risk.self_trade import SelfTradeDenied, crosses, crossing_orders
from bastion.risk.throttle import DuplicateFilter, SlidingWindow, check_windows
from bastion.risk.usage import LimitUse

# Enum member lookups cost ~250 ns on CPython 3.11; hot paths use these aliases.
_BUY = OrderSide.BUY

_NO_ORDERS: tuple[Order, ...] = ()
_STRATEGY_PRE_TRADE_KEYS = (
    "max_long_quantity",
    "max_short_quantity",
    "max_gross_notional",
    "max_new_orders_per_s",
    "max_amends_per_s",
    "max_messages_per_s",
    "instruments",
    "venues",
)


class _Lane:
    """What the checks need for one (strategy, instrument), looked up once and kept:
    the strategy's rules, its position limits there, the message windows that can
    deny a new order or an amend, and its credit check (the node's, or its account's)."""

    __slots__ = (
        "account",
        "amend_windows",
        "credit",
        "instrument_sides",
        "new_windows",
        "permitted",
        "positions",
        "resting_buys",
        "resting_sells",
        "rules",
        "sides",
        "sized",
        "uses_book",
        "venue",
        "venue_permitted",
        "weight",
    )

    def __init__(
        self,
        rules: StrategyRules,
        iid: str,
        weight: int,
        venue: str,
        venue_windows: tuple[tuple[SlidingWindow, ...], tuple[SlidingWindow, ...]] | None,
    ) -> None:
        self.rules = rules
        self.permitted = rules.permits(iid)
        self.positions: PositionLimits | None = (
            None if rules.positions is None or rules.config is None else rules.positions[iid]
        )
        # the strategy's windows with those of the instrument's venue session (the gate
        # denies an order for any other venue, WRONG_VENUE, before these checks)
        self.venue = venue
        self.venue_permitted = rules.permits_venue(venue)
        self.new_windows = _windows(rules.throttle, is_new=True)
        self.amend_windows = _windows(rules.throttle, is_new=False)
        if venue_windows is not None:
            self.new_windows += venue_windows[0]
            self.amend_windows += venue_windows[1]
        self.weight = weight
        # set by ``PreTradeChecks._lane``
        # the strategy's risk account (whose check runs the node's too), else the node's
        # limits when it has one; called as native methods, not through a callable
        self.account: AccountCredit | None = None
        self.credit: CreditLimits | None = None
        self.uses_book = False
        self.sized = False  # a position or credit limit counts the order's size
        self.sides: Sides | None = None  # the strategy's working quantity here
        self.instrument_sides: Sides | None = None  # the instrument's
        self.resting_buys: RestingPrices | None = None
        self.resting_sells: RestingPrices | None = None


def _windows(throttle: Throttle, *, is_new: bool) -> tuple[SlidingWindow, ...]:
    """The windows that deny a new order (or an amend) when full."""
    first = throttle.new_orders if is_new else throttle.amends
    return tuple(w for w in (first, throttle.messages) if w is not None)


@final
class PreTradeChecks:
    """State and logic of the configurable pre-trade controls."""

    def __init__(
        self,
        *,
        config: RiskConfig,
        bus: MessageBus,
        clock: Clock,
        portfolio: Portfolio,
        instruments: dict[str, Instrument],
        last_quotes: dict[str, QuoteTick],
        limits: dict[str, InstrumentLimits],
        venues: set[str],
        market: MarketGuard | None = None,
        last_trades: dict[str, TradeTick] | None = None,
    ) -> None:
        self._config = config
        self._market = market
        self._clock = clock
        self._portfolio = portfolio
        self._instruments = instruments
        self._last_quotes = last_quotes
        self._last_trades: dict[str, TradeTick] = {} if last_trades is None else last_trades
        self._limits = limits
        self._strategies: dict[str, StrategyRules] = {}
        self._lanes: dict[str, dict[str, _Lane]] = {}  # strategy -> instrument -> lane
        self._venue_throttles = {
            venue: Throttle(config.venues[venue], f"venue {venue}")
            for venue in venues
            if venue in config.venues
        }
        self._venue_windows = {
            venue: (_windows(throttle, is_new=True), _windows(throttle, is_new=False))
            for venue, throttle in self._venue_throttles.items()
        }
        self._duplicates = (
            None
            if config.duplicate_window_ms is None
            else DuplicateFilter(config.duplicate_window_ms * 1_000_000)
        )
        self._self_trade = config.self_trade
        self._self_trade_on = config.self_trade != "off"
        self._credit: CreditLimits | None = None
        if (
            config.max_total_exposure is not None
            or config.max_cash_usage is not None
            or config.accounts
        ):
            self._credit = CreditLimits(
                config=config,
                instruments=instruments,
                portfolio=portfolio,
                last_quotes=last_quotes,
            )
        self._book: WorkingBook | None = None
        if PreTradeChecks.book_needed(config, limits):
            self._book = WorkingBook(
                bus=bus,
                weights=None if self._credit is None else self._credit.weights,
                resting=self._self_trade_on,
                accounts=None if self._credit is None else self._credit.account_sums,
            )
        # resting orders that a passing order asks to cancel first (self_trade = cancel_resting)
        self.to_cancel: Sequence[Order] = _NO_ORDERS
        # the positions in the book's ``Sides``, at the portfolio's fill count
        # ``_position_fills`` (moved by each fill; out of step, a check copies them again)
        self._position_fills = -1

    @property
    def quote_hook(self) -> Callable[[QuoteTick], None] | None:
        """What must see every quote: the credit limits, when they value positions."""
        credit = self._credit
        return credit.on_quote if credit is not None and credit.values_positions else None

    @staticmethod
    def needed(config: RiskConfig, limits: dict[str, InstrumentLimits]) -> bool:
        """Whether any control of this module is configured."""
        throttle_default = Throttle(config.throttle_for_strategy(""))
        return (
            any(lim.is_extended for lim in limits.values())
            or any(
                getattr(s, key) is not None
                for s in config.strategies.values()
                for key in _STRATEGY_PRE_TRADE_KEYS
            )
            or bool(config.venues)
            or throttle_default.is_set
            or config.duplicate_window_ms is not None
            or config.self_trade != "off"
            or config.max_total_exposure is not None
            or config.max_cash_usage is not None
            or bool(config.accounts)
        )

    @staticmethod
    def book_needed(config: RiskConfig, limits: dict[str, InstrumentLimits]) -> bool:
        """Whether a control reads the working-order sums."""
        return (
            any(lim.has_position for lim in limits.values())
            or any(
                s.max_long_quantity is not None
                or s.max_short_quantity is not None
                or s.max_gross_notional is not None
                for s in config.strategies.values()
            )
            or config.self_trade != "off"
            or config.max_total_exposure is not None
            or config.max_cash_usage is not None
            or bool(config.accounts)
        )

    def rules(self, strategy_id: str) -> StrategyRules:
        rules = self._strategies.get(strategy_id)
        if rules is None:
            config = self._config
            rules = self._strategies[strategy_id] = StrategyRules(
                config.strategies.get(strategy_id),
                config.throttle_for_strategy(strategy_id),
                self._instruments,
                strategy_id,
            )
        return rules

    def _lane(self, sid: str, iid: str) -> _Lane:
        venue = self._instruments[iid].venue
        lane = _Lane(
            self.rules(sid),
            iid,
            0 if self._credit is None else self._credit.weights[iid],
            venue,
            self._venue_windows.get(venue),
        )
        limits = self._limits[iid]
        credit = self._credit
        if credit is not None:
            # a strategy in a risk account checks the node's limits and its account's; one
            # outside any account only the node's (nothing when the node has none)
            account = credit.account_of.get(sid)
            if account is not None:
                lane.account = account
                lane.credit = credit
            elif credit.node_limited:
                lane.credit = credit
        lane.uses_book = self._book is not None and (
            limits.has_position
            or lane.positions is not None
            or self._self_trade_on
            or lane.credit is not None
        )
        lane.sized = limits.has_position or lane.positions is not None or lane.credit is not None
        book = self._book
        if book is not None:
            lane.sides = book.lane_sides(sid, iid)
            lane.instrument_sides = book.sides(iid)
            if self._self_trade_on:
                lane.resting_buys = book.resting(iid, buys=True)
                lane.resting_sells = book.resting(iid, buys=False)
        self._lanes.setdefault(sid, {})[iid] = lane
        return lane

    # -- the check ----------------------------------------------------------------------
    # One flat function calling each control's rule in turn (``risk.market``,
    # ``risk.collar``, ``risk.throttle``, ``risk.positions``, ``risk.credit``, self-trade
    # below); the pass path builds nothing, a denial keeps its figures for its message.
    def check(
        self,
        order: Order,
        iid: str,
        limits: InstrumentLimits,
        side: OrderSide,
        quantity: int,
        price: int | None,
        now: int,
        *,
        is_increase: bool,
        is_new: bool,
        operator: bool = False,
    ) -> Denial | None:
        """The first failed control, or None (then ``to_cancel`` lists resting orders to
        cancel before sending). ``operator``: the kill switch's flatten orders, which the
        duplicate filter does not hold back (a position larger than
        ``max_order_quantity`` is closed in equal slices)."""
        self.to_cancel = _NO_ORDERS
        sid = order.strategy_id
        lanes = self._lanes.get(sid)
        lane = None if lanes is None else lanes.get(iid)
        if lane is None:
            lane = self._lane(sid, iid)
        # the quote's fields, read once (each is an attribute lookup on a Python object)
        quote = self._last_quotes.get(iid)
        has_quote = quote is not None
        quote_ts = bid = ask = 0
        if quote is not None:
            quote_ts = quote.ts_ns
            bid = quote.bid
            ask = quote.ask
        reprices = is_new or price != order.price
        denial: Denial | None = None
        # an amend that only shrinks the order (same price) lowers risk: it passes
        if limits.paused_or_stale and (is_increase or reprices):
            market = self._market
            assert market is not None
            denial = market.check(limits, has_quote, quote_ts, now)
            if denial is not None:
                return denial
        if not lane.permitted:
            return NotPermitted(sid, iid, None)
        if not lane.venue_permitted:
            return NotPermitted(sid, iid, lane.venue)
        # an amend that keeps the price is not collared: shrinking an order that the
        # market has left behind must stay possible
        if limits.needs_reference and reprices and (price is None or limits.has_collar):
            denial = check_collar(
                limits, side, price, now, has_quote, quote_ts, bid, ask, self._last_trades
            )
            if denial is not None:
                return denial
        duplicates = self._duplicates
        if is_new and duplicates is not None and not operator:
            # the price tells the order type too: a market order has none
            denial = duplicates.check((sid, iid, side, quantity, price), now)
            if denial is not None:
                return denial
        # the lane lists the strategy's windows and its instrument's venue's together
        windows = lane.new_windows if is_new else lane.amend_windows
        if windows:
            denial = check_windows(windows, now)
            if denial is not None:
                return denial
        if not lane.uses_book:
            return None
        is_buy = side is _BUY
        if is_increase and lane.sized:
            # twice the price that values a position: the mid, else the order's price
            mid2 = 0
            if has_quote:
                mid2 = bid + ask
            elif price is not None:
                mid2 = 2 * price
            # a modified order replaces its own contribution
            book = self._book
            assert book is not None
            own = None if is_new else book.by_id.get(order.client_order_id)
            new = quantity if is_new else quantity - order.filled_qty
            own_leaves = 0 if own is None else own.leaves
            fills = self._portfolio.n_fills
            if fills != self._position_fills:
                self._copy_positions(fills)
            change = new - own_leaves
            positions = limits.positions
            if positions is not None:
                sides = lane.instrument_sides
                assert sides is not None
                denial = positions.check(sides, is_buy, change, mid2)
                if denial is not None:
                    return denial
            positions = lane.positions
            if positions is not None:
                sides = lane.sides
                assert sides is not None
                denial = positions.check(sides, is_buy, change, mid2)
                if denial is not None:
                    return denial
            credit_check = lane.credit
            if credit_check is not None:
                px2 = 2 * price if price is not None else mid2
                if px2 == 0:
                    return Denial(
                        DenyReason.NO_REFERENCE_PRICE,
                        f"no quote to value {iid} for the credit limits",
                    )
                change = new * px2 * lane.weight
                if own is not None:
                    change -= own.notional
                exposure = book.exposure + change
                buys = book.buy_notional
                if is_buy:
                    buys += change
                account = lane.account
                if account is not None:
                    denial = account.check(is_buy, exposure, buys, change, fills)
                else:
                    denial = credit_check.check(is_buy, exposure, buys, change, fills)
                if denial is not None:
                    return denial
        if self._self_trade_on:
            # only when the best resting price on the other side is crossed are the
            # crossed orders looked for
            resting = lane.resting_sells if is_buy else lane.resting_buys
            assert resting is not None
            best = resting.best
            if best is not None and crosses(is_buy, price, best):
                book = self._book
                assert book is not None
                if self._self_trade == "deny":
                    return SelfTradeDenied(book, order, limits.instrument, is_buy, price)
                crossing = crossing_orders(book, order, is_buy, price)
                if crossing:
                    self.to_cancel = [working.order for working in crossing]
        return None

    # -- positions ----------------------------------------------------------------------
    def on_fill(self, fill: OrderFilled) -> None:
        """A fill the portfolio has applied (``risk.fills``): what is left of the order
        in the working book, then the positions of the fill's instrument and strategy,
        then the credit limits'."""
        book = self._book
        if book is not None:
            book.on_event(fill)
            fills = self._portfolio.n_fills
            if self._position_fills == fills - 1:
                self._position_fills = fills
                iid = fill.instrument_id
                signed = fill.last_qty if fill.side is _BUY else -fill.last_qty
                book.sides(iid).position += signed
                book.lane_sides(fill.strategy_id, iid).position += signed
            else:  # not copied yet, or the portfolio moved without a fill: the next check copies
                self._position_fills = -1
        credit = self._credit
        if credit is not None:
            credit.on_fill(fill)

    def _copy_positions(self, fills: int) -> None:
        """Every position from the portfolio (after a restore, or a fill not seen)."""
        book = self._book
        assert book is not None
        for sides in book.instruments.values():
            sides.position = 0
        for sides in book.lanes.values():
            sides.position = 0
        portfolio = self._portfolio
        for position in portfolio.positions():
            book.lane_sides(
                position.strategy_id, position.instrument_id
            ).position = position.quantity
        for iid, net in portfolio.net.items():
            book.sides(iid).position = net
        self._position_fills = fills

    # -- monitoring -----------------------------------------------------------------------
    def usage(self, now_ns: int, strategies: Iterable[str]) -> list[LimitUse]:
        """Each configured position, credit and throttle limit with what counts against it
        now (``risk.usage``). A strategy's position limits report the instrument where
        it is closest to them."""
        out: list[LimitUse] = []
        book = self._book
        if book is not None:
            fills = self._portfolio.n_fills
            if fills != self._position_fills:
                self._copy_positions(fills)
            for iid, limits in self._limits.items():
                positions = limits.positions
                if positions is not None:
                    out += positions.usage(book.sides(iid), self._mid2(iid), iid)
        names = set(strategies) | set(self._config.strategies) | set(self._strategies)
        for sid in sorted(names):
            rules = self.rules(sid)
            lanes = rules.positions
            if book is not None and lanes is not None:
                closest: dict[str, LimitUse] = {}
                for iid, positions in lanes.items():
                    for use in positions.usage(book.lane_sides(sid, iid), self._mid2(iid), sid):
                        held = closest.get(use.limit)
                        if held is None or use.ratio > held.ratio:
                            closest[use.limit] = use
                out += closest.values()
            out += rules.throttle.usage(now_ns, sid)
        for venue in sorted(self._venue_throttles):
            out += self._venue_throttles[venue].usage(now_ns, venue)
        if self._credit is not None:
            out += self._credit.usage(book)
        return out

    def _mid2(self, iid: str) -> int:
        quote = self._last_quotes.get(iid)
        return 0 if quote is None else quote.bid + quote.ask

    # -- after sending ------------------------------------------------------------------
    def detach(self) -> None:
        """Stop following order events (new checks, from a new config, replace these)."""
        if self._book is not None:
            self._book.detach()

    def track(self, order: Order) -> None:
        """Count an order that is already working (recovered after a restart, or taken
        over by a new config) without touching the throttles or the duplicate filter."""
        if self._book is None or not order.is_open:
            return
        market_px2 = None
        if order.price is None:
            market_px2 = self._valuation2(order.instrument_id, None)
        self._book.add(order, market_px2)

    def sent(self, order: Order, quantity: int, price: int | None, *, is_new: bool) -> None:
        """Record a new order or an amend that went to the venue."""
        now = self._clock.timestamp_ns()
        if is_new and self._book is not None:
            market_px2 = None
            if order.price is None:
                market_px2 = self._valuation2(order.instrument_id, None)
            self._book.add(order, market_px2)
        elif self._book is not None:
            self._book.amend(order, quantity, price)
        if is_new and self._duplicates is not None:
            key = (order.strategy_id, order.instrument_id, order.side, quantity, price)
            self._duplicates.add(key, now)
        self._count(self.rules(order.strategy_id).throttle, is_new, now)
        venue_throttle = self._venue_throttles.get(order.venue)
        if venue_throttle is not None:
            self._count(venue_throttle, is_new, now)

    def canceled(self, order: Order) -> None:
        """A cancel counts toward the message rate; it is never denied for it."""
        now = self._clock.timestamp_ns()
        window = self.rules(order.strategy_id).throttle.messages
        if window is not None:
            window.add(now)
        venue_throttle = self._venue_throttles.get(order.venue)
        if venue_throttle is not None and venue_throttle.messages is not None:
            venue_throttle.messages.add(now)

    @staticmethod
    def _count(throttle: Throttle, is_new: bool, now: int) -> None:
        window = throttle.new_orders if is_new else throttle.amends
        if window is not None:
            window.add(now)
        if throttle.messages is not None:
            throttle.messages.add(now)

    def _valuation2(self, iid: str, price: int | None) -> int | None:
        """Twice the price that values a position: the last mid, else the order's price."""
        quote = self._last_quotes.get(iid)
        if quote is not None:
            return quote.bid + quote.ask
        return None if price is None else 2 * price


@final
class NotPermitted(Denial):
    """``NOT_PERMITTED``: the strategy may not trade the instrument (``venue`` None), or
    on ``venue``."""

    def __init__(self, sid: str, iid: str, venue: str | None) -> None:
        super().__init__(DenyReason.NOT_PERMITTED)
        self.sid = sid
        self.iid = iid
        self.venue = venue

    def message(self) -> str:
        sid = self.sid
        if self.venue is None:
            return f"strategy {sid} may not trade {self.iid} (risk.strategies.{sid}.instruments)"
        return f"strategy {sid} may not trade on venue {self.venue} (risk.strategies.{sid}.venues)"
