"""Operator overrides of risk limits: key paths, exact conversion and validation as in
TOML, expiry order, and the audit diff between two configs."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.errors import ConfigError
from bastion.risk.config import RiskConfig, StrategyRiskConfig
from bastion.risk.overrides import (
    Override,
    apply_override,
    apply_overrides,
    config_changes,
    decode_config,
    encode_config,
    value_at,
)

BASE = RiskConfig(
    max_order_quantity=Decimal(10),
    strategies={"ema": StrategyRiskConfig(max_fills=5, fills_window_ms=1000)},
)


@pytest.mark.parametrize(
    ("path", "value", "shown"),
    [
        ("max_order_quantity", "12.5", "12.5"),
        ("self_trade", "deny", "deny"),
        ("instruments.XYZ.SIM.collar_pct", "2", "2"),
        ("strategies.ema.max_fills", "9", "9"),
        ("strategies.ema.instruments", '["XYZ.SIM"]', "[XYZ.SIM]"),
        ("venues.SIM.max_messages_per_s", "300", "300"),
    ],
)
def test_when_a_key_is_overridden_then_only_that_value_changes(
    path: str, value: str, shown: str
) -> None:
    changed = apply_override(BASE, path, value)
    assert value_at(changed, path) == shown
    (line,) = config_changes(BASE, changed)
    assert line.startswith(f"{path}: ") and line.endswith(f"-> {shown}")


def test_when_value_is_exact_decimal_then_no_float_rounding() -> None:
    changed = apply_override(BASE, "max_order_notional", "0.1000000000000000055511")
    assert changed.max_order_notional == Decimal("0.1000000000000000055511")


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("max_order_quantity", "-1", "must be > 0"),
        ("max_order_quantity", "lots", "max_order_quantity"),
        ("collar_ticks", "1.5", "collar_ticks"),
        ("trading_state", "ACTIVE", "not a limit that can be set"),
        ("no_such_key", "1", "not a limit that can be set"),
        ("instruments.XYZ.SIM.max_fills", "1", "not a limit of [risk.instruments]"),
        ("strategies.max_fills", "1", "expected strategies.NAME.KEY"),
        ("collar_window_pct", "1", "needs collar_window_ms"),
    ],
)
def test_when_override_is_invalid_then_config_error_names_it(
    path: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        apply_override(BASE, path, value)


def test_when_overrides_stack_then_the_newest_wins_and_removing_one_restores_the_file() -> None:
    first = Override(
        id="1", path="max_order_quantity", value="20", who="a", why="", set_ns=1, expires_ns=9
    )
    second = Override(
        id="2", path="max_order_quantity", value="30", who="b", why="", set_ns=2, expires_ns=9
    )
    assert apply_overrides(BASE, [second, first]).max_order_quantity == Decimal(30)
    assert apply_overrides(BASE, [first]).max_order_quantity == Decimal(20)
    assert apply_overrides(BASE, []) == BASE


@given(st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(10**9), places=4))
def test_when_config_is_encoded_then_it_decodes_equal(value: Decimal) -> None:
    config = apply_override(BASE, "max_gross_notional", str(value))
    assert decode_config(encode_config(config)) == config
    assert config_changes(config, decode_config(encode_config(config))) == []
