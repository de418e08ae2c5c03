"""The pre-trade checks beyond order size: instrument pause and stale data (asked of
``risk.market``), permissions, price collar, duplicate orders, message throttle,
position limits, credit and self-trade prevention.

``RiskGate`` builds a ``PreTradeChecks`` only when at least one of these is
configured, and each part is skipped when its own limits are absent, so a node
without them pays nothing. Working orders count from the moment they are sent,
acknowledged or not: ``risk.book`` keeps their running sums.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from bastion.bus import MessageBus
from bastion.clock import Clock
from bastion.model.data import QuoteTick, TradeTick
from bastion.model.enums import OrderSide
from bastion.model.events import OrderFilled
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.portfolio.portfolio import Portfolio
from bastion.risk.book import RestingPrices, Sides, Working, WorkingBook
from bastion.risk.collar import check_reference
from bastion.risk.config import InstrumentRiskConfig, RiskConfig, StrategyRiskConfig
from bastion.risk.credit import AccountCredit, CreditLimits
from bastion.risk.limits import InstrumentLimits, PositionLimits, StrategyRules, Throttle
from bastion.risk.market import MarketGuard
from bastion.risk.reasons import (
    BRIEF_DUPLICATE_ORDER,
    BRIEF_NO_REFERENCE_PRICE,
    BRIEF_NOT_PERMITTED,
    BRIEF_POSITION_LIMIT,
    BRIEF_PRICE_COLLAR,
    BRIEF_SELF_TRADE,
    BRIEF_THROTTLE,
    Denial,
    DenyReason,
)
from bastion.risk.throttle import DuplicateFilter, SlidingWindow

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
_NO_WORKING: dict[str, Working] = {}
_NO_WINDOWS: tuple[SlidingWindow, ...] = ()


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
        "strategy_amend",
        "strategy_new",
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
        self.permitted = rules.instruments is None or iid in rules.instruments
        self.positions: PositionLimits | None = (
            None if rules.positions is None or rules.config is None else rules.positions[iid]
        )
        self.strategy_new = _windows(rules.throttle, is_new=True)
        self.strategy_amend = _windows(rules.throttle, is_new=False)
        # with those of the instrument's venue session (an order sent elsewhere looks its
        # venue's windows up)
        self.venue = venue
        self.venue_permitted = rules.venues is None or venue in rules.venues
        self.new_windows = self.strategy_new
        self.amend_windows = self.strategy_amend
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
            venue: Throttle(config.venues[venue]) for venue in venues if venue in config.venues
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
    # One flat function: on this path a call costs more than most checks, so the pass
    # path inlines them and builds nothing; each denial is re-derived (with its message)
    # by the helper that owns it.
    def check(
        self,
        order: Order,
        iid: str,
        venue: str,
        limits: InstrumentLimits,
        side: OrderSide,
        quantity: int,
        price: int | None,
        now: int,
        *,
        is_increase: bool,
        is_new: bool,
        operator: bool = False,
        explain: bool = True,
    ) -> Denial | None:
        """The first failed control as ``(reason, message)``, or None (then
        ``to_cancel`` lists resting orders to cancel before sending). ``operator``: the
        kill switch's flatten orders, which the duplicate filter does not hold back (a
        position larger than ``max_order_quantity`` is closed in equal slices).
        ``explain`` False: most denials come without their message (``reasons.Denial``)."""
        self.to_cancel = _NO_ORDERS
        sid = order.strategy_id
        lanes = self._lanes.get(sid)
        lane = None if lanes is None else lanes.get(iid)
        if lane is None:
            lane = self._lane(sid, iid)
        quote = self._last_quotes.get(iid)
        # the quote's fields, read once (each is an attribute lookup); mid2 is twice the
        # price that values a position: the mid, else the order's price (0: none)
        quote_ts = bid = ask = mid2 = 0
        if quote is not None:
            quote_ts = quote.ts_ns
            bid = quote.bid
            ask = quote.ask
            mid2 = bid + ask
        elif price is not None:
            mid2 = 2 * price
        reprices = is_new or price != order.price
        # an amend that only shrinks the order (same price) lowers risk: it passes
        if limits.paused_or_stale and (is_increase or reprices):
            market = self._market
            assert market is not None
            stale_ns = limits.stale_ns
            if market.paused or (
                stale_ns is not None and (quote is None or now - quote_ts > stale_ns)
            ):
                denial = market.check(self._instruments[iid], limits, now)
                if denial is not None:
                    return denial
        rules = lane.rules
        if not lane.permitted:
            if not explain:
                return BRIEF_NOT_PERMITTED
            return DenyReason.NOT_PERMITTED, (
                f"strategy {sid} may not trade {iid} (risk.strategies.{sid}.instruments)"
            )
        if not (
            lane.venue_permitted
            if venue == lane.venue
            else rules.venues is None or venue in rules.venues
        ):
            if not explain:
                return BRIEF_NOT_PERMITTED
            return DenyReason.NOT_PERMITTED, (
                f"strategy {sid} may not trade on venue {venue} (risk.strategies.{sid}.venues)"
            )
        # an amend that keeps the price is not collared: shrinking an order that the
        # market has left behind must stay possible
        if limits.needs_reference and reprices and (price is None or limits.has_collar):
            max_age = limits.max_age_ns
            if limits.collar_other:  # the last trade or a fixed band: ``risk.collar``
                denial = check_reference(
                    self._instruments[iid],
                    limits,
                    side,
                    price,
                    now,
                    quote,
                    self._last_trades.get(iid),
                    explain,
                )
                if denial is not None:
                    return denial
            elif quote is None or (max_age is not None and now - quote_ts > max_age):
                return self._check_collar(self._instruments[iid], limits, side, price, now, explain)
            elif price is not None:
                ref2 = 2 * (ask if side is _BUY else bid) if limits.collar_touch else mid2
                dev2 = 2 * price - ref2
                if dev2 < 0:
                    dev2 = -dev2
                ticks2 = limits.collar_ticks2
                pct_num = limits.collar_pct_num
                if (ticks2 is not None and dev2 > ticks2) or (
                    pct_num is not None and dev2 * limits.collar_pct_den100 > pct_num * ref2
                ):
                    return self._check_collar(
                        self._instruments[iid], limits, side, price, now, explain
                    )
        duplicates = self._duplicates
        if is_new and duplicates is not None and not operator:
            # the price tells the order type too: a market order has none
            seen = duplicates.last.get((sid, iid, side, quantity, price))
            if seen is not None and seen > now - duplicates.window_ns:
                if not explain:
                    return BRIEF_DUPLICATE_ORDER
                return DenyReason.DUPLICATE_ORDER, (
                    f"identical order sent {(now - seen) / 1e6:g} ms ago, within "
                    f"duplicate_window_ms {self._config.duplicate_window_ms}"
                )
        # a window can be full only when it holds its limit, expired entries included; the
        # lane lists the strategy's windows and its instrument's venue's together
        if venue == lane.venue:
            windows = lane.new_windows if is_new else lane.amend_windows
        else:
            windows = _NO_WINDOWS
            venue_windows = self._venue_windows.get(venue)
            if venue_windows is not None:
                windows = venue_windows[0 if is_new else 1]
            windows = (lane.strategy_new if is_new else lane.strategy_amend) + windows
        for window in windows:
            if len(window.times) >= window.limit:
                denial = self._check_throttles(rules.throttle, sid, venue, is_new, now, explain)
                if denial is not None:
                    return denial
                break
        if not lane.uses_book:
            return None
        is_buy = side is _BUY
        if is_increase and lane.sized:
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
            if limits.has_position:
                sides = lane.instrument_sides
                assert sides is not None
                denial = self._check_position(
                    sides,
                    limits.max_long_raw,
                    limits.max_short_raw,
                    limits.max_gross2_raw,
                    is_buy,
                    change,
                    mid2,
                    iid,
                    None,
                    limits.config,
                    explain,
                )
                if denial is not None:
                    return denial
            plimits = lane.positions
            if plimits is not None:
                sides = lane.sides
                assert sides is not None and rules.config is not None
                denial = self._check_position(
                    sides,
                    plimits.max_long_raw,
                    plimits.max_short_raw,
                    plimits.max_gross2_raw,
                    is_buy,
                    change,
                    mid2,
                    iid,
                    sid,
                    rules.config,
                    explain,
                )
                if denial is not None:
                    return denial
            credit_check = lane.credit
            if credit_check is not None:
                px2 = 2 * price if price is not None else mid2
                if px2 == 0:
                    return _no_value(iid)
                change = new * px2 * lane.weight
                if own is not None:
                    change -= own.notional
                exposure = book.exposure + change
                buys = book.buy_notional
                if is_buy:
                    buys += change
                account = lane.account
                if account is not None:
                    denial = account.check(is_buy, exposure, buys, change, fills, explain)
                else:
                    denial = credit_check.check(is_buy, exposure, buys, change, fills, explain)
                if denial is not None:
                    return denial
        if self._self_trade_on:
            # only when the best resting price on the other side is crossed are the
            # crossed orders looked for
            if is_buy:
                assert lane.resting_sells is not None
                best = lane.resting_sells.best
                crosses = best is not None and (price is None or price >= best)
            else:
                assert lane.resting_buys is not None
                best = lane.resting_buys.best
                crosses = best is not None and (price is None or price <= best)
            if crosses:
                if not explain and self._self_trade == "deny":
                    # some order of the node rests at or beyond the best price, on the other
                    # side (the order itself is on its own side): naming it can wait
                    return BRIEF_SELF_TRADE
                book = self._book
                assert book is not None
                return self._check_self_trade(book, order, self._instruments[iid], is_buy, price)
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

    # -- parts --------------------------------------------------------------------------
    def _check_collar(
        self,
        instrument: Instrument,
        limits: InstrumentLimits,
        side: OrderSide,
        price: int | None,
        now: int,
        explain: bool = True,
    ) -> Denial | None:
        if price is not None and not limits.has_collar:
            return None  # a limit order needs a reference only to be collared
        quote = self._last_quotes.get(instrument.id)
        ref2: int | None = None
        if quote is not None and (
            limits.max_age_ns is None or now - quote.ts_ns <= limits.max_age_ns
        ):
            if limits.collar_touch:
                ref2 = 2 * (quote.ask if side is _BUY else quote.bid)
            else:
                ref2 = quote.bid + quote.ask
        if ref2 is None:
            if not explain:
                return BRIEF_NO_REFERENCE_PRICE
            config = limits.config
            age = (
                ""
                if config.reference_max_age_ms is None
                else f" (reference_max_age_ms {config.reference_max_age_ms})"
            )
            what = "market order" if price is None else "limit price"
            return DenyReason.NO_REFERENCE_PRICE, (
                f"no fresh quote for {instrument.id}{age} to check the {what} against"
            )
        if price is None:
            return None
        dev2 = abs(2 * price - ref2)
        if limits.collar_ticks2 is not None and dev2 > limits.collar_ticks2:
            if not explain:
                return BRIEF_PRICE_COLLAR
            return DenyReason.PRICE_COLLAR, self._collar_message(
                instrument, limits, price, ref2, f"collar_ticks {limits.config.collar_ticks}"
            )
        pct_num = limits.collar_pct_num
        if pct_num is not None and dev2 * limits.collar_pct_den100 > pct_num * ref2:
            if not explain:
                return BRIEF_PRICE_COLLAR
            return DenyReason.PRICE_COLLAR, self._collar_message(
                instrument, limits, price, ref2, f"collar_pct {limits.config.collar_pct}"
            )
        return None

    @staticmethod
    def _collar_message(
        instrument: Instrument, limits: InstrumentLimits, price: int, ref2: int, limit: str
    ) -> str:
        reference = instrument.price(ref2) / 2
        distance = abs(instrument.price(price) - reference)
        pct = (distance * 100 / reference).quantize(Decimal("0.001")) if reference else "inf"
        return (
            f"limit price {instrument.price(price)} is {distance} ({pct}%) from the "
            f"{limits.config.collar_reference} reference {reference}: beyond {limit}"
        )

    def _check_throttles(
        self, throttle: Throttle, sid: str, venue: str, is_new: bool, now: int, explain: bool
    ) -> Denial | None:
        """The strategy's throttle, then its venue session's."""
        denial = self._check_throttle(throttle, "strategy", sid, is_new, now, explain)
        if denial is None:
            venue_throttle = self._venue_throttles.get(venue)
            if venue_throttle is not None:
                denial = self._check_throttle(venue_throttle, "venue", venue, is_new, now, explain)
        return denial

    @staticmethod
    def _check_throttle(
        throttle: Throttle, kind: str, name: str, is_new: bool, now: int, explain: bool
    ) -> Denial | None:
        window = throttle.new_orders if is_new else throttle.amends
        if window is not None and window.is_full(now):
            if not explain:
                return BRIEF_THROTTLE
            key = "max_new_orders_per_s" if is_new else "max_amends_per_s"
            return DenyReason.THROTTLE, f"{kind} {name}: {key} {window.limit} reached"
        messages = throttle.messages
        if messages is not None and messages.is_full(now):
            if not explain:
                return BRIEF_THROTTLE
            return DenyReason.THROTTLE, (
                f"{kind} {name}: max_messages_per_s {messages.limit} reached"
            )
        return None

    def _check_self_trade(
        self,
        book: WorkingBook,
        order: Order,
        instrument: Instrument,
        is_buy: bool,
        price: int | None,
    ) -> Denial | None:
        """The node's resting orders that ``order`` would cross: denied, or listed in
        ``to_cancel`` (``self_trade = "cancel_resting"``)."""
        deny = self._self_trade == "deny"
        crossing: list[Order] | None = None
        # the book's own copies of side and resting price: the scan reads no order but the
        # crossed ones (each object it touches can be a cache miss on the order path)
        for working in book.by_instrument.get(order.instrument_id, _NO_WORKING).values():
            rest = working.rest_px
            if rest is None or working.is_buy is is_buy:
                continue
            if price is None or (price >= rest if is_buy else price <= rest):
                resting = working.order
                if resting is order:
                    continue
                if deny:  # the first one crossed (in sending order) is named
                    side = "SELL" if is_buy else "BUY"
                    return DenyReason.SELF_TRADE, (
                        f"would cross the node's own resting {side} order "
                        f"{resting.client_order_id} at {instrument.price(rest)} "
                        f"(self_trade = deny)"
                    )
                if crossing is None:
                    crossing = []
                crossing.append(resting)
        if crossing is not None:
            self.to_cancel = crossing
        return None

    def _check_position(
        self,
        sides: Sides,
        max_long_raw: int | None,
        max_short_raw: int | None,
        max_gross2_raw: int | None,
        is_buy: bool,
        change: int,
        mid2: int,
        iid: str,
        strategy: str | None,
        config: InstrumentRiskConfig | StrategyRiskConfig,
        explain: bool,
    ) -> Denial | None:
        """The worst case on the order's side (the position, the side's working orders
        and ``change``, what the order adds) against one set of position limits (the
        instrument's, or ``strategy``'s in it). ``mid2``: twice the valuing price, 0 if
        there is none."""
        if is_buy:
            worst = sides.buys + change + sides.position
            max_side_raw = max_long_raw
        else:
            worst = sides.sells + change - sides.position
            max_side_raw = max_short_raw
        if max_side_raw is not None and worst > max_side_raw:
            if not explain:
                return BRIEF_POSITION_LIMIT
            instrument = self._instruments[iid]
            max_side = config.max_long_quantity if is_buy else config.max_short_quantity
            key = "max_long_quantity" if is_buy else "max_short_quantity"
            side = "long" if is_buy else "short"
            return DenyReason.POSITION_LIMIT, (
                f"worst-case {side} {instrument.size(worst)} (position + working orders) "
                f"exceeds {key} {max_side} for {_scope(iid, strategy)}"
            )
        if max_gross2_raw is not None:
            if mid2 == 0:
                return DenyReason.NO_REFERENCE_PRICE, (
                    f"no quote to value the position in {iid} for max_gross_notional"
                )
            if worst * mid2 > max_gross2_raw:
                if not explain:
                    return BRIEF_POSITION_LIMIT
                gross = self._instruments[iid].money(worst * mid2) / 2
                return DenyReason.POSITION_LIMIT, (
                    f"worst-case gross notional {gross} exceeds max_gross_notional "
                    f"{config.max_gross_notional} for {_scope(iid, strategy)}"
                )
        return None

    def _valuation2(self, iid: str, price: int | None) -> int | None:
        """Twice the price that values a position: the last mid, else the order's price."""
        quote = self._last_quotes.get(iid)
        if quote is not None:
            return quote.bid + quote.ask
        return None if price is None else 2 * price


def _scope(iid: str, strategy: str | None) -> str:
    if strategy is None:
        return f'instrument {iid} (risk.instruments."{iid}" or [risk])'
    return f"strategy {strategy} in {iid} (risk.strategies.{strategy})"


def _no_value(iid: str) -> Denial:
    return DenyReason.NO_REFERENCE_PRICE, f"no quote to value {iid} for the credit limits"
