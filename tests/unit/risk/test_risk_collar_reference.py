"""Price collar references "last" (the last trade) and "band" (a configured band):
allowed at the limit, denied one tick beyond, market orders, config errors, and the
trades a Kernel keeps from the in-process venue's matches."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.clock import SimClock
from bastion.config import BacktestConfig, InstrumentConfig
from bastion.data.config import ReplaySourceConfig
from bastion.errors import ConfigError
from bastion.model.data import QuoteTick, TradeTick
from bastion.model.enums import OrderSide, OrderType
from bastion.node.kernel import Kernel
from bastion.risk.config import InstrumentRiskConfig, RiskConfig
from bastion.risk.overrides import apply_override
from bastion.strategy.config import StrategyConfig
from kit.risk_config import load
from kit.risk_node import BUY, COARSE, SELL, STOCK, T0, Node, assert_denied, assert_sent
from kit.strategies import IDLE_STRATEGY

MS = 1_000_000


def banded(low: str = "99.00", high: str = "101.00", **keys: object) -> RiskConfig:
    """XYZ.SIM collared by the band [low, high]."""
    return RiskConfig(
        instruments={
            STOCK.id: InstrumentRiskConfig(
                collar_reference="band",
                collar_band_low=Decimal(low),
                collar_band_high=Decimal(high),
                **keys,  # type: ignore[arg-type]
            )
        }
    )


# -- last trade -------------------------------------------------------------------------


def test_when_price_at_collar_ticks_from_last_trade_then_allowed_and_one_tick_beyond_denied() -> (
    None
):
    """Last trade 100.00, 5 ticks: 100.05 and 99.95 pass, 100.06 and 99.94 do not; the
    quote's mid (105.00) plays no part."""
    node = Node(collar_ticks=5, collar_reference="last")
    node.quote(10_499, 10_501)
    node.trade_print(10_000)
    assert_sent(node, node.submit(BUY, 1, 10_005))
    assert_sent(node, node.submit(SELL, 1, 9_995))
    assert_denied(node, node.submit(BUY, 1, 10_006), "PRICE_COLLAR")
    message = node.denied[-1].message
    assert "last trade 100.00" in message and "collar_ticks 5" in message
    assert "100.06" in message and STOCK.id in message
    assert_denied(node, node.submit(SELL, 1, 9_994), "PRICE_COLLAR")


def test_when_price_at_collar_pct_from_last_trade_then_allowed_and_one_tick_beyond_denied() -> None:
    """Last trade 100.00, collar_pct 1: 101.00 and 99.00 pass, 101.01 and 98.99 do not."""
    node = Node(collar_pct=Decimal(1), collar_reference="last")
    node.trade_print(10_000)
    assert_sent(node, node.submit(BUY, 1, 10_100))
    assert_sent(node, node.submit(SELL, 1, 9_900))
    assert_denied(node, node.submit(BUY, 1, 10_101), "PRICE_COLLAR")
    assert "collar_pct 1" in node.denied[-1].message
    assert_denied(node, node.submit(SELL, 1, 9_899), "PRICE_COLLAR")


def test_when_no_trade_yet_then_market_and_collared_limit_orders_have_no_reference() -> None:
    """A quote is no stand-in for the last trade: both orders are denied, naming it."""
    node = Node(collar_ticks=5, collar_reference="last")
    node.quote(10_000, 10_002)
    assert_denied(node, node.submit(BUY, 1, 10_001), "NO_REFERENCE_PRICE")
    assert_denied(node, node.submit(BUY, 1), "NO_REFERENCE_PRICE")
    message = node.denied[-1].message
    assert "last trade" in message and STOCK.id in message and "market order" in message


def test_when_last_trade_reaches_max_age_then_fresh_and_one_ns_older_is_stale() -> None:
    """reference_max_age_ms=500 on the trade's timestamp: a market order passes at exactly
    500 ms, not 1 ns later (a fresh quote does not help)."""
    node = Node(collar_ticks=5, collar_reference="last", reference_max_age_ms=500)
    node.trade_print(10_000, ts_ns=T0)
    node.clock.set_time(T0 + 500 * MS)
    node.quote(10_000, 10_002, ts_ns=T0 + 500 * MS)
    assert_sent(node, node.submit(BUY, 1))
    assert_sent(node, node.submit(BUY, 1, 10_005))
    node.clock.set_time(T0 + 500 * MS + 1)
    assert_denied(node, node.submit(BUY, 1), "NO_REFERENCE_PRICE")
    assert "reference_max_age_ms 500" in node.denied[-1].message
    assert_denied(node, node.submit(BUY, 1, 10_005), "NO_REFERENCE_PRICE")


def test_when_only_max_age_with_last_reference_then_market_orders_need_a_fresh_trade() -> None:
    """No collar, reference_max_age_ms and "last": a limit order goes unchecked, a market
    order needs a trade."""
    node = Node(collar_reference="last", reference_max_age_ms=500)
    assert_sent(node, node.submit(BUY, 1, 10_000))
    assert_denied(node, node.submit(BUY, 1), "NO_REFERENCE_PRICE")
    node.trade_print(10_000)
    assert_sent(node, node.submit(BUY, 1))


def test_when_amend_reprices_away_from_last_trade_then_command_denied() -> None:
    """A modify that moves the price beyond the collar around the last trade is refused."""
    node = Node(collar_ticks=2, collar_reference="last")
    node.trade_print(10_000)
    order = node.submit(BUY, 1, 10_000)
    assert node.gate.modify_order(order, 1, 10_003) is False
    assert node.command_denied[-1].reason == "PRICE_COLLAR"
    assert node.gate.modify_order(order, 1, 10_002) is True


def test_when_other_instrument_uses_last_then_mid_instrument_ignores_trades() -> None:
    """XYZ.SIM collars around the last trade, ABC.SIM keeps the mid."""
    node = Node(
        RiskConfig(
            collar_ticks=2,
            instruments={STOCK.id: InstrumentRiskConfig(collar_reference="last")},
        )
    )
    node.trade_print(10_000)
    node.trade_print(20_000, instrument=COARSE)
    node.quote(10_000, 10_000, instrument=COARSE)
    assert_sent(node, node.submit(BUY, 1, 10_002))
    assert_sent(node, node.submit(BUY, 10, 10_010, instrument=COARSE))
    assert_denied(node, node.submit(BUY, 10, 10_015, instrument=COARSE), "PRICE_COLLAR")
    assert "mid reference" in node.denied[-1].message


@given(last=st.integers(1, 20_000), offset=st.integers(-40, 40), ticks=st.integers(1, 20))
def test_when_price_is_within_ticks_of_last_trade_then_allowed_else_collared(
    last: int, offset: int, ticks: int
) -> None:
    """Any last trade and price: allowed exactly when |price - last| <= collar_ticks ticks."""
    node = Node(collar_ticks=ticks, collar_reference="last")
    node.trade_print(last)
    price = last + offset
    if price <= 0:
        return
    order = node.submit(BUY, 1, price)
    if abs(offset) <= ticks:
        assert_sent(node, order)
    else:
        assert_denied(node, order, "PRICE_COLLAR")


# -- fixed band -------------------------------------------------------------------------


def test_when_limit_price_at_band_edge_then_allowed_and_one_tick_beyond_denied() -> None:
    """Band [99.00, 101.00]: both edges pass on either side, 101.01 and 98.99 do not,
    with no market data at all."""
    node = Node(banded())
    assert_sent(node, node.submit(BUY, 1, 10_100))
    assert_sent(node, node.submit(SELL, 1, 9_900))
    assert_sent(node, node.submit(BUY, 1, 9_900))
    assert_denied(node, node.submit(BUY, 1, 10_101), "PRICE_COLLAR")
    message = node.denied[-1].message
    assert "101.01" in message and "[99.00, 101.00]" in message and STOCK.id in message
    assert_denied(node, node.submit(SELL, 1, 9_899), "PRICE_COLLAR")


def test_when_market_order_and_band_then_the_touch_it_would_take_must_be_inside() -> None:
    """A market buy is checked at the ask, a sell at the bid: inside passes, one tick
    outside is collared, naming the price and the band."""
    node = Node(banded())
    node.quote(9_900, 10_100)
    assert_sent(node, node.submit(BUY, 1))
    assert_sent(node, node.submit(SELL, 1))
    node.quote(9_899, 10_101)
    assert_denied(node, node.submit(BUY, 1), "PRICE_COLLAR")
    message = node.denied[-1].message
    assert "ask 101.01" in message and "[99.00, 101.00]" in message
    assert_denied(node, node.submit(SELL, 1), "PRICE_COLLAR")
    assert "bid 98.99" in node.denied[-1].message


def test_when_market_order_and_band_without_fresh_quote_then_no_reference() -> None:
    """No quote, or one older than reference_max_age_ms: a market order has no
    reference; a limit order inside the band still goes."""
    node = Node(banded(reference_max_age_ms=100))
    assert_denied(node, node.submit(BUY, 1), "NO_REFERENCE_PRICE")
    assert "no fresh quote for XYZ.SIM" in node.denied[-1].message
    node.quote(10_000, 10_002, ts_ns=T0)
    assert_sent(node, node.submit(BUY, 1))
    node.clock.set_time(T0 + 101 * MS)
    assert_denied(node, node.submit(BUY, 1), "NO_REFERENCE_PRICE")
    assert "reference_max_age_ms 100" in node.denied[-1].message
    assert_sent(node, node.submit(BUY, 1, 10_000))


def test_when_risk_has_collar_pct_then_a_band_instrument_ignores_it() -> None:
    """[risk] collar_pct for every instrument; the banded one uses its band alone."""
    config = RiskConfig(
        collar_pct=Decimal("0.1"),
        instruments=banded().instruments,
    )
    assert config.for_instrument(STOCK.id).collar_pct is None
    node = Node(config)
    assert_sent(node, node.submit(BUY, 1, 10_100))
    node.quote(10_000, 10_000, instrument=COARSE)
    assert_denied(node, node.submit(BUY, 10, 10_050, instrument=COARSE), "PRICE_COLLAR")


# -- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "match"),
    [
        (
            {"collar_reference": "band", "collar_band_high": Decimal(101)},
            r'risk\.instruments\."XYZ\.SIM"\.collar_band_low\': required',
        ),
        (
            {"collar_reference": "band", "collar_band_low": Decimal(99)},
            r'risk\.instruments\."XYZ\.SIM"\.collar_band_high\': required',
        ),
        (
            {
                "collar_reference": "band",
                "collar_band_low": Decimal(101),
                "collar_band_high": Decimal(101),
            },
            r"collar_band_low': must be below collar_band_high 101, got 101",
        ),
        (
            {"collar_band_low": Decimal(99), "collar_band_high": Decimal(101)},
            r"collar_band_low': only with collar_reference = \"band\"; collar_reference is 'mid'",
        ),
        (
            {
                "collar_reference": "band",
                "collar_band_low": Decimal(99),
                "collar_band_high": Decimal(101),
                "collar_ticks": 5,
            },
            r"collar_ticks': not with collar_reference = \"band\"",
        ),
        (
            {
                "collar_reference": "band",
                "collar_band_low": Decimal(-1),
                "collar_band_high": Decimal(101),
            },
            r"collar_band_low': must be > 0, got -1",
        ),
    ],
)
def test_when_band_keys_are_wrong_then_config_error_names_the_key(
    keys: dict[str, object], match: str
) -> None:
    """Missing edge, edges out of order, band keys without "band", an offset with a band,
    a negative edge: each refused naming the key."""
    with pytest.raises(ConfigError, match=match):
        RiskConfig(instruments={STOCK.id: InstrumentRiskConfig(**keys)})  # type: ignore[arg-type]


def test_when_band_edge_is_off_tick_then_config_error_names_key_and_value() -> None:
    """100.005 on a 0.01 tick is refused when the gate is built, naming key and value."""
    with pytest.raises(ConfigError, match=r'"XYZ\.SIM"\.collar_band_high\': 100\.005 is not a'):
        Node(banded(high="100.005"))


def test_when_risk_wide_band_reference_and_an_instrument_has_no_band_then_config_error() -> None:
    """collar_reference = "band" in [risk]: every instrument needs its own band."""
    config = RiskConfig(collar_reference="band", instruments=banded().instruments)
    with pytest.raises(ConfigError, match=r'risk\.instruments\."ABC\.SIM"\.collar_band_low'):
        Node(config)


def test_when_band_and_last_in_toml_then_they_load_exactly(tmp_path: Path) -> None:
    """The TOML keys load into exact Decimals; the band's instrument ignores [risk]'s pct."""
    config = load(
        tmp_path,
        """
        [risk]
        collar_pct = "5"
        collar_reference = "last"
        reference_max_age_ms = 2000
        [risk.instruments."XYZ.SIM"]
        collar_reference = "band"
        collar_band_low = "95.10"
        collar_band_high = "104.90"
        """,
    )
    limits = config.risk.for_instrument("XYZ.SIM")
    assert (limits.collar_band_low, limits.collar_band_high) == (
        Decimal("95.10"),
        Decimal("104.90"),
    )
    assert limits.collar_pct is None and config.risk.collar_reference == "last"


# -- operator overrides -----------------------------------------------------------------


def test_when_band_edge_is_overridden_then_it_applies_and_a_bad_one_is_refused() -> None:
    """Moving one edge works through an override; an edge past the other, off the tick,
    or a switch to "band" without its keys is refused naming the key, nothing changes."""
    node = Node(banded())
    wider = apply_override(node.gate.config, "instruments.XYZ.SIM.collar_band_high", "102.00")
    node.gate.reconfigure(wider)
    assert_sent(node, node.submit(BUY, 1, 10_200))
    with pytest.raises(ConfigError, match="collar_band_low': must be below collar_band_high"):
        apply_override(node.gate.config, "instruments.XYZ.SIM.collar_band_low", "103.00")
    off_tick = apply_override(node.gate.config, "instruments.XYZ.SIM.collar_band_low", "98.005")
    with pytest.raises(ConfigError, match=r"98\.005 is not a multiple"):
        node.gate.reconfigure(off_tick)
    assert node.gate.config is wider
    assert_sent(node, node.submit(SELL, 1, 9_900))
    with pytest.raises(ConfigError, match="collar_band_low': required"):
        apply_override(RiskConfig(), "instruments.ABC.SIM.collar_reference", "band")


def test_when_reference_is_overridden_to_last_then_trades_collar_orders() -> None:
    """collar_reference = "last" by override: the next order is checked on the trade."""
    node = Node(collar_ticks=2)
    node.quote(10_000, 10_000)
    node.trade_print(10_500)
    assert_sent(node, node.submit(BUY, 1, 10_002))
    node.gate.reconfigure(apply_override(node.gate.config, "collar_reference", "last"))
    assert_denied(node, node.submit(BUY, 1, 10_002), "PRICE_COLLAR")
    assert_sent(node, node.submit(BUY, 1, 10_502))


# -- trades in the kernel ---------------------------------------------------------------


def test_when_in_process_venue_matches_then_kernel_keeps_the_trade_and_collars_on_it(
    tmp_path: Path,
) -> None:
    """A market buy of 3 fills at the ask 100.02: the kernel's last trade is that match
    (price, size, aggressor), and the "last" collar is measured from it."""
    (tmp_path / "idle.py").write_text(IDLE_STRATEGY)
    config = BacktestConfig(
        instruments=[InstrumentConfig(id=STOCK.id, tick_size=Decimal("0.01"))],
        strategies=[StrategyConfig(name="a", path="idle.py", class_name="Idle")],
        data=[ReplaySourceConfig(path="unused.csv", instrument=STOCK.id)],
        risk=RiskConfig(collar_ticks=1, collar_reference="last"),
        progress=False,
    )
    kernel = Kernel(config=config, base_dir=tmp_path, clock=SimClock(T0), epoch=1)
    kernel.on_quote(QuoteTick(STOCK.id, T0, 10_000, 10_002, 50, 50))
    assert kernel.last_trades == {}

    def submit(price: int | None, qty: int = 3) -> bool:
        order = kernel.execution.create_order(
            strategy_id="a",
            instrument_id=STOCK.id,
            venue="SIM",
            side=OrderSide.BUY,
            order_type=OrderType.MARKET if price is None else OrderType.LIMIT,
            quantity=qty,
            price=price,
        )
        sent = kernel.risk.submit_order(order)
        kernel.venue.flush()
        return sent

    assert submit(None) is False  # no trade yet: no reference for a market order
    kernel.on_trade(TradeTick(STOCK.id, T0, 10_001, 1))  # a print from elsewhere
    assert submit(None) is True
    assert kernel.last_trades[STOCK.id] == TradeTick(STOCK.id, T0, 10_002, 3, True)
    assert submit(10_003, 1) is True  # one tick from the last trade
    assert submit(10_004, 1) is False
