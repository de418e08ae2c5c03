"""A live config: the mode key, the minimum set of limits, isolated strategies."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.config import BacktestConfig, PaperConfig, load_config
from bastion.errors import ConfigError

INSTRUMENTS = (
    '[[instruments]]\nid = "XYZ.SIM"\ntick_size = "0.01"\n'
    '[[instruments]]\nid = "ABC.SIM"\ntick_size = "0.01"\n'
)
STRATEGY = '[[strategies]]\nname = "s1"\npath = "strategies/s.py"\nclass = "S"\n'
FEED = '[feed]\ninstrument = "XYZ.SIM"\n'
DATA = '[[data]]\npath = "data/quotes.csv"\ninstrument = "XYZ.SIM"\n'
LIVE = '[node]\nmode = "live"\n'
ALL_LIMITS = {
    "max_order_quantity": '"100"',
    "max_order_notional": '"100000"',
    "max_long_quantity": '"500"',
    "max_short_quantity": '"500"',
    "stale_data_ms": "2000",
    "max_daily_loss_node": '"5000"',
    "max_messages_per_s": "50",
}


def risk(limits: dict[str, str]) -> str:
    return "[risk]\n" + "".join(f"{key} = {value}\n" for key, value in limits.items())


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "strategies").mkdir(exist_ok=True)
    (tmp_path / "strategies" / "s.py").write_text("# placeholder strategy\n")
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str) -> PaperConfig:
    return load_config(write(tmp_path, text), PaperConfig)


def error_of(
    tmp_path: Path, text: str, schema: type[PaperConfig] | type[BacktestConfig] = PaperConfig
) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), schema)
    return str(info.value)


def test_when_mode_is_not_given_then_the_node_is_paper(tmp_path: Path) -> None:
    """A config without a mode is a paper node, which needs no limits."""
    assert load(tmp_path, INSTRUMENTS + STRATEGY + FEED).node.mode == "paper"


def test_when_live_config_sets_every_required_limit_then_it_loads(tmp_path: Path) -> None:
    """Every required limit set in [risk]: a live config loads, isolated by default."""
    config = load(tmp_path, LIVE + INSTRUMENTS + STRATEGY + FEED + risk(ALL_LIMITS))
    assert config.node.mode == "live"
    assert config.isolation == "process"


def test_when_live_config_has_no_risk_section_then_every_required_limit_is_named(
    tmp_path: Path,
) -> None:
    """No [risk] at all: the error lists each missing limit by its key."""
    message = error_of(tmp_path, LIVE + INSTRUMENTS + STRATEGY + FEED)
    assert "key 'risk': a live node must set these limits" in message
    for key in ALL_LIMITS:
        if key != "max_daily_loss_node":
            assert f"risk.{key}" in message
    assert "risk.max_daily_loss_node or risk.max_daily_loss" in message


@pytest.mark.parametrize("missing", sorted(ALL_LIMITS))
def test_when_live_config_lacks_one_limit_then_refused_naming_it(
    tmp_path: Path, missing: str
) -> None:
    """Each required limit alone: leaving it out is refused, naming it."""
    limits = {k: v for k, v in ALL_LIMITS.items() if k != missing}
    message = error_of(tmp_path, LIVE + INSTRUMENTS + STRATEGY + FEED + risk(limits))
    assert f"risk.{missing}" in message
    others = [k for k in ALL_LIMITS if k not in (missing, "max_daily_loss_node")]
    assert not any(f"risk.{k}" in message for k in others)


def test_when_a_per_instrument_limit_covers_only_some_instruments_then_the_rest_are_named(
    tmp_path: Path,
) -> None:
    """A per-instrument limit set for one instrument of two names the other."""
    limits = {k: v for k, v in ALL_LIMITS.items() if k != "stale_data_ms"}
    text = risk(limits) + '[risk.instruments."XYZ.SIM"]\nstale_data_ms = 1000\n'
    message = error_of(tmp_path, LIVE + INSTRUMENTS + STRATEGY + FEED + text)
    assert "stale data (risk.stale_data_ms for ABC.SIM)" in message


def test_when_every_instrument_sets_its_own_limit_then_live_loads(tmp_path: Path) -> None:
    """Per-instrument tables for every instrument satisfy a per-instrument limit."""
    limits = {k: v for k, v in ALL_LIMITS.items() if k != "stale_data_ms"}
    text = risk(limits) + "".join(
        f'[risk.instruments."{i}"]\nstale_data_ms = 1000\n' for i in ("XYZ.SIM", "ABC.SIM")
    )
    assert load(tmp_path, LIVE + INSTRUMENTS + STRATEGY + FEED + text).node.mode == "live"


def test_when_live_config_asks_for_inline_strategies_then_refused(tmp_path: Path) -> None:
    """A live node never runs strategies in its own process."""
    text = '[node]\nmode = "live"\nisolation = "inline"\n'
    message = error_of(tmp_path, text + INSTRUMENTS + STRATEGY + FEED + risk(ALL_LIMITS))
    assert "key 'node.isolation': a live node runs its strategies isolated" in message


def test_when_a_node_config_says_backtest_then_refused(tmp_path: Path) -> None:
    """mode = 'backtest' belongs to `bastion backtest` configs."""
    message = error_of(tmp_path, '[node]\nmode = "backtest"\n' + INSTRUMENTS + STRATEGY + FEED)
    assert "key 'node.mode'" in message


def test_when_a_paper_config_sets_allow_dirty_then_refused(tmp_path: Path) -> None:
    """allow_dirty means something only to a live node: elsewhere it is a mistake."""
    message = error_of(tmp_path, "[node]\nallow_dirty = true\n" + INSTRUMENTS + STRATEGY + FEED)
    assert "key 'node.allow_dirty'" in message


def test_when_a_backtest_config_says_live_then_refused(tmp_path: Path) -> None:
    """A backtest never runs live."""
    message = error_of(tmp_path, LIVE + INSTRUMENTS + STRATEGY + DATA, BacktestConfig)
    assert "key 'node.mode': a backtest replays data; it never runs live" in message


def test_when_mode_is_unknown_then_refused_naming_the_key(tmp_path: Path) -> None:
    """An unknown mode is refused by the schema, naming node.mode."""
    message = error_of(tmp_path, '[node]\nmode = "real"\n' + INSTRUMENTS + STRATEGY + FEED)
    assert "node.mode" in message


def test_when_arm_valid_s_is_at_the_limit_then_loads_and_one_step_past_is_refused(
    tmp_path: Path,
) -> None:
    """An arming lasts at most a day: 86400 s loads, 86401 s and 0 s are refused."""
    body = INSTRUMENTS + STRATEGY + FEED + risk(ALL_LIMITS)
    day = '[node]\nmode = "live"\narm_valid_s = 86400\n'
    assert load(tmp_path, day + body).node.arm_valid_s == 86_400
    for bad in ("86401", "0"):
        text = f'[node]\nmode = "live"\narm_valid_s = {bad}\n' + body
        assert "key 'node.arm_valid_s'" in error_of(tmp_path, text)


def test_when_a_backtest_config_names_a_vault_then_refused(tmp_path: Path) -> None:
    """A backtest reads no secrets: a [vault] table in its config is an unknown key."""
    text = INSTRUMENTS + STRATEGY + DATA + '[vault]\npath = "live/vault.bastion"\n'
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "quotes.csv").write_text("ts,bid,ask\n")
    assert "unknown key 'vault'" in error_of(tmp_path, text, BacktestConfig)
