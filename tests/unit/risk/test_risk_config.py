"""The [risk] section: override tables, strict keys, and names that must be defined."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from bastion.config import PaperConfig, load_config
from bastion.errors import ConfigError
from bastion.risk.config import InstrumentRiskConfig, RiskConfig, StrategyRiskConfig, ThrottleConfig
from kit.risk_config import load
from kit.risk_node import STOCK, Node


def test_when_every_control_in_toml_then_it_loads(tmp_path: Path) -> None:
    """A [risk] section using every key and table loads into typed structs."""
    config = load(
        tmp_path,
        """
        [risk]
        max_order_quantity = "100"
        collar_pct = "2.5"
        collar_ticks = 20
        collar_reference = "touch"
        reference_max_age_ms = 2000
        max_long_quantity = "500"
        max_total_exposure = "250000"
        max_cash_usage = "100000"
        duplicate_window_ms = 50
        self_trade = "cancel_resting"
        max_new_orders_per_s = 20
        [risk.instruments."XYZ.SIM"]
        max_long_quantity = "300"
        [risk.strategies.s1]
        max_short_quantity = "50"
        instruments = ["XYZ.SIM"]
        venues = ["SIM"]
        [risk.venues.SIM]
        max_messages_per_s = 50
        """,
    )
    risk = config.risk
    assert risk.for_instrument("XYZ.SIM").max_long_quantity == Decimal(300)
    assert risk.for_instrument("XYZ.SIM").collar_pct == Decimal("2.5")
    assert risk.strategies["s1"].instruments == ["XYZ.SIM"]
    assert risk.venues["SIM"].max_messages_per_s == 50
    assert risk.throttle_for_strategy("s1").max_new_orders_per_s == 20


def test_when_unknown_key_in_instrument_override_then_config_error_names_it(
    tmp_path: Path,
) -> None:
    """A typo under [risk.instruments."XYZ.SIM"] is refused, naming the key."""
    with pytest.raises(ConfigError, match="max_long_quantty"):
        load(tmp_path, '[risk.instruments."XYZ.SIM"]\nmax_long_quantty = "5"\n')


def test_when_unknown_key_in_strategy_override_then_config_error_names_it(
    tmp_path: Path,
) -> None:
    """A typo under [risk.strategies.s1] is refused, naming the key."""
    with pytest.raises(ConfigError, match="instrument_list"):
        load(tmp_path, '[risk.strategies.s1]\ninstrument_list = ["XYZ.SIM"]\n')


def test_when_override_for_undefined_instrument_then_config_error() -> None:
    """An override for an instrument the node does not define is an error naming it."""
    config = RiskConfig(instruments={"NOPE.SIM": InstrumentRiskConfig(collar_ticks=1)})
    with pytest.raises(ConfigError, match=r"NOPE\.SIM"):
        Node(config)


def test_when_override_for_undefined_venue_then_config_error() -> None:
    """A throttle for a venue the node does not have is an error naming it."""
    config = RiskConfig(venues={"NOWHERE": ThrottleConfig(max_new_orders_per_s=1)})
    with pytest.raises(ConfigError, match="NOWHERE"):
        Node(config)


def test_when_allow_list_names_undefined_instrument_then_config_error() -> None:
    """A strategy's instruments allow-list may only name defined instruments."""
    config = RiskConfig(strategies={"s1": StrategyRiskConfig(instruments=["NOPE.SIM"])})
    with pytest.raises(ConfigError, match=r"instruments\[0\].*NOPE.SIM"):
        Node(config)


def test_when_override_for_undefined_strategy_in_kernel_then_config_error(
    tmp_path: Path,
) -> None:
    """The kernel passes its strategy names: an override for another name is an error."""
    from bastion.clock import SimClock
    from bastion.node.kernel import Kernel

    config = load(tmp_path, '[risk.strategies.ghost]\nmax_long_quantity = "1"\n')
    with pytest.raises(ConfigError, match="ghost"):
        Kernel(config=config, base_dir=tmp_path, clock=SimClock(0), epoch=1)


@pytest.mark.parametrize(
    ("risk", "key"),
    [
        ('collar_pct = "NaN"', "risk.collar_pct"),
        ("collar_ticks = 0", "risk.collar_ticks"),
        ('max_long_quantity = "-1"', "risk.max_long_quantity"),
        ("duplicate_window_ms = 0", "risk.duplicate_window_ms"),
        ("max_new_orders_per_s = -3", "risk.max_new_orders_per_s"),
    ],
)
def test_when_limit_value_invalid_then_config_error_names_key(
    tmp_path: Path, risk: str, key: str
) -> None:
    """Non-finite, zero or negative limits are refused with the dotted key."""
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load(tmp_path, "[risk]\n" + risk + "\n")


def test_when_invalid_value_in_override_then_error_names_the_table(tmp_path: Path) -> None:
    """A bad value inside an override table names the table and the key."""
    with pytest.raises(ConfigError, match=r'risk\.instruments\."XYZ\.SIM"\.collar_ticks'):
        load(tmp_path, '[risk.instruments."XYZ.SIM"]\ncollar_ticks = -1\n')


def test_when_self_trade_mode_unknown_then_config_error_lists_options(tmp_path: Path) -> None:
    """self_trade accepts off, deny or cancel_resting only."""
    with pytest.raises(ConfigError, match="cancel_resting"):
        load(tmp_path, '[risk]\nself_trade = "warn"\n')


def test_when_override_omits_a_key_then_it_inherits_the_risk_value() -> None:
    """Keys absent from an instrument override take the [risk] value."""
    config = RiskConfig(
        max_order_quantity=Decimal(100),
        collar_ticks=5,
        instruments={STOCK.id: InstrumentRiskConfig(collar_ticks=1)},
    )
    effective = config.for_instrument(STOCK.id)
    assert (effective.max_order_quantity, effective.collar_ticks) == (Decimal(100), 1)
    assert config.for_instrument("ABC.SIM").collar_ticks == 5


def test_when_no_control_configured_then_gate_builds_no_extra_checks() -> None:
    """The default config costs nothing beyond the order-size checks."""
    assert Node().gate._checks is None
    assert Node(max_order_quantity=Decimal(5)).gate._checks is None
    assert Node(collar_ticks=5).gate._checks is not None


def test_when_scaffold_risk_examples_uncommented_then_they_load(tmp_path: Path) -> None:
    """Every commented example in the scaffold's [risk] section is a valid setting."""
    from bastion.clock import SimClock
    from bastion.config import BacktestConfig, scaffold_dir
    from bastion.node.kernel import Kernel

    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "ema_cross.py").write_text(
        (scaffold_dir() / "strategies" / "ema_cross.py").read_text()
    )
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "quotes.csv").write_text("ts_ns,bid,ask,bid_size,ask_size\n")
    for name, schema in (("paper.toml", PaperConfig), ("backtest.toml", BacktestConfig)):
        lines, in_risk = [], False
        for line in (scaffold_dir() / name).read_text().splitlines():
            if line.startswith("["):
                in_risk = line.startswith("[risk")
            elif line.startswith("# [risk"):
                in_risk = True
            if in_risk and re.match(r"^# (\[risk|[a-z_]+ = )", line):
                line = line[2:]
            lines.append(line)
        (tmp_path / name).write_text("\n".join(lines) + "\n")
        config = load_config(tmp_path / name, schema)
        assert config.risk.collar_pct == Decimal(5)
        assert set(config.risk.strategies) == {"ema_cross"}
        assert config.risk.accounts["desk"].strategies == ["ema_cross"]
        kernel = Kernel(config=config, base_dir=tmp_path, clock=SimClock(0), epoch=1)
        assert kernel.risk._checks is not None
