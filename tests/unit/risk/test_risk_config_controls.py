"""The [risk] keys of the time-window collar, stale data, repeated executions and the
post-trade limits: they load from TOML, inherit, and refuse incomplete or bad values."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.risk.config import InstrumentRiskConfig, RiskConfig, StrategyRiskConfig
from kit.risk_config import load


def test_when_every_new_key_in_toml_then_it_loads(tmp_path: Path) -> None:
    """Every key of the new controls, at [risk] and in the override tables."""
    config = load(
        tmp_path,
        """
        [risk]
        collar_window_pct = "5"
        collar_window_ms = 1000
        collar_window_pause_ms = 30000
        stale_data_ms = 2000
        max_fills = 50
        fills_window_ms = 1000
        max_daily_loss = "2500"
        max_drawdown = "4000"
        max_daily_loss_node = "10000"
        max_drawdown_node = "15000"
        trading_day_start = "21:00"
        post_trade_action = "REDUCING"
        [risk.instruments."XYZ.SIM"]
        collar_window_pct = "2.5"
        stale_data_ms = 500
        [risk.strategies.s1]
        max_fills = 10
        max_daily_loss = "500"
        """,
    )
    risk = config.risk
    xyz = risk.for_instrument("XYZ.SIM")
    assert (xyz.collar_window_pct, xyz.collar_window_ms, xyz.stale_data_ms) == (
        Decimal("2.5"),
        1000,
        500,
    )
    s1 = risk.for_strategy("s1")
    assert (s1.max_fills, s1.fills_window_ms, s1.max_daily_loss, s1.max_drawdown) == (
        10,
        1000,
        Decimal(500),
        Decimal(4000),
    )
    assert risk.trading_day_start_ns == 21 * 3_600 * 1_000_000_000
    assert risk.post_trade_action == "REDUCING"


@pytest.mark.parametrize(
    ("risk", "match"),
    [
        ('collar_window_pct = "5"\ncollar_window_ms = 100', "collar_window_pause_ms"),
        ("max_fills = 5", "needs fills_window_ms"),
        ('collar_window_pct = "0"', r"risk\.collar_window_pct': must be > 0"),
        ("fills_window_ms = 0", r"risk\.fills_window_ms"),
        ("stale_data_ms = -1", r"risk\.stale_data_ms"),
        ('max_daily_loss = "-1"', r"risk\.max_daily_loss"),
        ('max_drawdown_node = "NaN"', r"risk\.max_drawdown_node"),
        ('trading_day_start = "24:00"', r"risk\.trading_day_start"),
        ('trading_day_start = "9:30"', r"HH:MM"),
        ('post_trade_action = "ACTIVE"', "HALTED"),
    ],
)
def test_when_new_key_invalid_then_config_error_names_it(
    tmp_path: Path, risk: str, match: str
) -> None:
    """Bad or incomplete values are refused, naming the key."""
    with pytest.raises(ConfigError, match=match):
        load(tmp_path, "[risk]\n" + risk + "\n")


def test_when_override_completes_from_risk_then_it_is_accepted() -> None:
    """A key's window may come from [risk]; missing everywhere it is an error naming the
    override table."""
    RiskConfig(
        fills_window_ms=1_000,
        strategies={"s1": StrategyRiskConfig(max_fills=3)},
    )
    with pytest.raises(ConfigError, match=r'risk\.strategies\."s1"\.max_fills'):
        RiskConfig(strategies={"s1": StrategyRiskConfig(max_fills=3)})
    with pytest.raises(ConfigError, match=r'risk\.instruments\."XYZ\.SIM"\.collar_window_pct'):
        RiskConfig(
            collar_window_ms=100,
            instruments={"XYZ.SIM": InstrumentRiskConfig(collar_window_pct=Decimal(1))},
        )


def test_when_strategy_omits_post_trade_keys_then_it_inherits_the_risk_defaults() -> None:
    """for_strategy: the strategy's own values over [risk]'s, for every strategy name."""
    config = RiskConfig(
        max_daily_loss=Decimal(100),
        max_drawdown=Decimal(50),
        strategies={"s1": StrategyRiskConfig(max_drawdown=Decimal(10))},
    )
    s1 = config.for_strategy("s1")
    assert (s1.max_daily_loss, s1.max_drawdown) == (Decimal(100), Decimal(10))
    other = config.for_strategy("other")
    assert (other.max_daily_loss, other.max_drawdown) == (Decimal(100), Decimal(50))
