"""Netting positions and the portfolio: exact realized/unrealized PnL, flips, money."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.model.data import QuoteTick
from bastion.model.enums import LiquiditySide, OrderSide
from bastion.model.events import OrderFilled
from bastion.model.instruments import Instrument
from bastion.portfolio.portfolio import Portfolio
from bastion.portfolio.position import Position

STOCK = Instrument(
    id="XYZ.SIM",
    venue="SIM",
    tick_size=Decimal("0.01"),
    lot_size=Decimal(1),
    quote_currency="USD",
)
FUTURE = Instrument(
    id="ES.SIM",
    venue="SIM",
    tick_size=Decimal("0.25"),
    lot_size=Decimal(1),
    quote_currency="USD",
    multiplier=Decimal(50),
)

FILLS = st.lists(
    st.tuples(
        st.sampled_from([1, -1]),
        st.integers(min_value=1, max_value=50),
        st.integers(min_value=1, max_value=100_000),
    ),
    min_size=1,
    max_size=20,
)
PROPERTY = settings(max_examples=200, derandomize=True, database=None, deadline=None)


def fill_event(
    side: OrderSide, qty: int, px: int, *, instrument_id: str, n: int, fee: Decimal = Decimal(0)
) -> OrderFilled:
    return OrderFilled(
        ts_ns=n,
        client_order_id=f"node-1-{n}",
        strategy_id="s1",
        instrument_id=instrument_id,
        venue_order_id=f"SIM-{n}",
        exec_id=f"SIM-E{n}",
        side=side,
        last_qty=qty,
        last_px=px,
        fee=fee,
        fee_currency="USD",
        liquidity=LiquiditySide.TAKER,
    )


def make_portfolio(*instruments: Instrument) -> tuple[Portfolio, dict[str, QuoteTick]]:
    quotes: dict[str, QuoteTick] = {}
    portfolio = Portfolio(
        instruments={i.id: i for i in instruments},
        last_quotes=quotes,
        currency="USD",
        starting_cash=Decimal(100_000),
    )
    return portfolio, quotes


@PROPERTY
@given(fills=FILLS, close_px=st.integers(min_value=1, max_value=100_000))
def test_when_fills_end_flat_then_realized_equals_cash_change_exactly(
    fills: list[tuple[int, int, int]], close_px: int
) -> None:
    """Fills closed out to flat: realized raw PnL, and its per-fill sum, equal the cash change."""
    position = Position("s1", "XYZ.SIM")
    cash = 0
    returned: int | Fraction = 0
    for sign, qty, px in fills:
        returned += position.apply_fill(sign, qty, px)
        cash -= sign * qty * px
    if position.quantity:
        closing_sign = -1 if position.quantity > 0 else 1
        qty = abs(position.quantity)
        returned += position.apply_fill(closing_sign, qty, close_px)
        cash -= closing_sign * qty * close_px
    assert position.quantity == 0
    assert returned == position.realized
    assert position.cost == 0
    assert position.realized == cash
    assert Fraction(position.realized).denominator == 1


@PROPERTY
@given(fills=FILLS, mark=st.integers(min_value=1, max_value=100_000))
def test_when_marked_at_any_point_then_realized_plus_unrealized_equals_cash_plus_value(
    fills: list[tuple[int, int, int]], mark: int
) -> None:
    """After every fill, realized + unrealized(mark) == cash change + quantity * mark."""
    position = Position("s1", "XYZ.SIM")
    cash = 0
    quantity = 0
    for sign, qty, px in fills:
        position.apply_fill(sign, qty, px)
        cash -= sign * qty * px
        quantity += sign * qty
        assert position.quantity == quantity
        assert position.realized + position.unrealized(mark) == cash + quantity * mark


@PROPERTY
@given(fills=FILLS, bid=st.integers(1, 100_000), spread=st.integers(0, 100))
def test_when_portfolio_fed_fills_then_equity_equals_starting_cash_plus_pnl(
    fills: list[tuple[int, int, int]], bid: int, spread: int
) -> None:
    """Portfolio equity == starting cash + realized + unrealized, in money, with a multiplier."""
    portfolio, quotes = make_portfolio(FUTURE)
    for n, (sign, qty, px) in enumerate(fills):
        side = OrderSide.BUY if sign > 0 else OrderSide.SELL
        portfolio.on_fill(fill_event(side, qty, px * 25, instrument_id=FUTURE.id, n=n))
    quotes[FUTURE.id] = QuoteTick(FUTURE.id, 0, bid * 25, (bid + spread) * 25, 1, 1)
    net = sum(sign * qty for sign, qty, _ in fills)
    raw_cash = -sum(sign * qty * px * 25 for sign, qty, px in fills)
    mark = bid * 25 if net > 0 else (bid + spread) * 25
    assert portfolio.net_quantity(FUTURE.id) == net
    assert portfolio.market_value() == FUTURE.money(net * mark)
    assert portfolio.cash() == Decimal(100_000) + FUTURE.money(raw_cash)
    pnl = portfolio.realized_pnl() + portfolio.unrealized_pnl()
    assert abs(portfolio.equity() - (Decimal(100_000) + pnl)) <= Decimal("1e-18")


def test_when_long_sold_past_flat_then_flip_splits_realized_and_new_short() -> None:
    """Long 10 @ 100.00, sell 15 @ 110.00: realize 10 * 10.00, then short 5 @ 110.00."""
    position = Position("s1", "XYZ.SIM")
    position.apply_fill(1, 10, 10_000)
    realized = position.apply_fill(-1, 15, 11_000)
    assert realized == 10 * 1_000
    assert position.realized == 10_000
    assert position.quantity == -5
    assert position.cost == -5 * 11_000
    assert position.avg_px == 11_000
    assert position.unrealized(10_900) == 5 * 100


def test_when_short_bought_past_flat_then_flip_splits_realized_and_new_long() -> None:
    """Short 4 @ 50.00, buy 6 @ 52.00: realize -4 * 2.00, then long 2 @ 52.00."""
    position = Position("s1", "XYZ.SIM")
    position.apply_fill(-1, 4, 5_000)
    realized = position.apply_fill(1, 6, 5_200)
    assert realized == -4 * 200
    assert position.quantity == 2
    assert position.avg_px == 5_200
    assert position.cost == 2 * 5_200


def test_when_average_does_not_divide_then_kept_as_exact_fraction() -> None:
    """Buy 1 @ 100 and 2 @ 101: the average is exactly 302/3 and partial closes stay exact."""
    position = Position("s1", "XYZ.SIM")
    position.apply_fill(1, 1, 100)
    position.apply_fill(1, 2, 101)
    assert position.avg_px == Fraction(302, 3)
    realized = position.apply_fill(-1, 1, 102)
    assert realized == Fraction(4, 3)
    assert position.avg_px == Fraction(302, 3)
    position.apply_fill(-1, 2, 99)
    assert position.quantity == 0
    assert position.realized == -2  # cash: -100 - 202 + 102 + 198
    assert Fraction(position.realized).denominator == 1


def test_when_flat_then_unrealized_zero_and_average_none() -> None:
    """A flat position has no unrealized PnL and no average price."""
    position = Position("s1", "XYZ.SIM")
    position.apply_fill(1, 3, 100)
    position.apply_fill(-1, 3, 90)
    assert position.unrealized(1_000) == 0
    assert position.avg_px is None
    assert position.realized == -30


def test_when_future_round_trip_then_money_uses_multiplier_and_precision() -> None:
    """2 ES bought at 4000.00 and sold at 4001.25 with multiplier 50 realize exactly 125.00."""
    portfolio, _ = make_portfolio(FUTURE)
    buy_px = FUTURE.price_raw("4000.00")
    sell_px = FUTURE.price_raw("4001.25")
    assert FUTURE.tick_raw == 25
    assert FUTURE.is_on_tick(sell_px)
    portfolio.on_fill(fill_event(OrderSide.BUY, 2, buy_px, instrument_id=FUTURE.id, n=1))
    portfolio.on_fill(
        fill_event(OrderSide.SELL, 2, sell_px, instrument_id=FUTURE.id, n=2, fee=Decimal("4.20"))
    )
    assert portfolio.realized_pnl() == Decimal("125.00")
    assert portfolio.fees == Decimal("4.20")
    assert portfolio.cash() == Decimal(100_000) + Decimal("125.00") - Decimal("4.20")
    assert portfolio.n_fills == 2
    assert portfolio.net_quantity(FUTURE.id) == 0


def test_when_open_long_marked_then_unrealized_uses_bid_and_short_uses_ask() -> None:
    """Longs are marked at the bid and shorts at the ask, converted with the multiplier."""
    portfolio, quotes = make_portfolio(FUTURE)
    portfolio.on_fill(fill_event(OrderSide.BUY, 3, 400_000, instrument_id=FUTURE.id, n=1))
    quotes[FUTURE.id] = QuoteTick(FUTURE.id, 0, 400_050, 400_075, 5, 5)
    assert portfolio.unrealized_pnl() == Decimal("75.00")  # 3 * 0.50 * 50
    portfolio.on_fill(fill_event(OrderSide.SELL, 5, 400_050, instrument_id=FUTURE.id, n=2))
    # now short 2 @ 4000.50, marked at the ask 4000.75
    assert portfolio.unrealized_pnl() == Decimal("-25.00")  # -2 * 0.25 * 50
    assert portfolio.realized_pnl() == Decimal("75.00")


def test_when_two_instruments_then_pnl_filtered_per_instrument() -> None:
    """realized_pnl(instrument) only counts that instrument; the total sums both."""
    portfolio, _ = make_portfolio(STOCK, FUTURE)
    portfolio.on_fill(fill_event(OrderSide.BUY, 10, 10_000, instrument_id=STOCK.id, n=1))
    portfolio.on_fill(fill_event(OrderSide.SELL, 10, 10_001, instrument_id=STOCK.id, n=2))
    portfolio.on_fill(fill_event(OrderSide.SELL, 1, 400_000, instrument_id=FUTURE.id, n=3))
    portfolio.on_fill(fill_event(OrderSide.BUY, 1, 399_975, instrument_id=FUTURE.id, n=4))
    assert portfolio.realized_pnl(STOCK.id) == Decimal("0.10")
    assert portfolio.realized_pnl(FUTURE.id) == Decimal("12.50")
    assert portfolio.realized_pnl() == Decimal("12.60")
    assert portfolio.instruments_traded() == [FUTURE.id, STOCK.id]


def test_when_no_quote_then_open_position_has_no_unrealized_or_market_value() -> None:
    """Without a quote an open position cannot be marked: no unrealized PnL, no value."""
    portfolio, _ = make_portfolio(STOCK)
    portfolio.on_fill(fill_event(OrderSide.BUY, 1, 10_000, instrument_id=STOCK.id, n=1))
    assert portfolio.unrealized_pnl() == 0
    assert portfolio.market_value() == 0
    assert portfolio.cash() == Decimal(100_000) - Decimal("100.00")
    assert portfolio.position("s1", STOCK.id).quantity == 1


def test_when_fills_pay_fees_then_each_position_keeps_its_own_and_they_sum_to_the_total() -> None:
    """Fees land on the position (strategy, instrument) that paid them; the portfolio's
    total and per-strategy fees are their sums; a snapshot keeps them."""
    import msgspec

    from bastion.recovery.state import PositionState, position_from_state, position_state

    portfolio, _ = make_portfolio(STOCK, FUTURE)
    portfolio.on_fill(
        fill_event(OrderSide.BUY, 2, 10_000, instrument_id=STOCK.id, n=1, fee=Decimal("0.5"))
    )
    portfolio.on_fill(
        fill_event(OrderSide.SELL, 1, 10_010, instrument_id=STOCK.id, n=2, fee=Decimal("0.25"))
    )
    portfolio.on_fill(
        fill_event(OrderSide.BUY, 1, 400, instrument_id=FUTURE.id, n=3, fee=Decimal(2))
    )
    stock = portfolio.position("s1", STOCK.id)
    future = portfolio.position("s1", FUTURE.id)
    assert stock is not None and future is not None
    assert (stock.fees, future.fees) == (Decimal("0.75"), Decimal(2))
    assert portfolio.fees == stock.fees + future.fees == portfolio.strategy_fees["s1"]
    assert position_from_state(position_state(stock)).fees == Decimal("0.75")
    # a snapshot from before fees were kept: five fields
    old = msgspec.msgpack.decode(
        msgspec.msgpack.encode(["s1", STOCK.id, 1, "10000", "10"]), type=PositionState
    )
    assert position_from_state(old).fees == 0
