"""Where strategies run, and the limits of their processes, as config."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.config import BacktestConfig, PaperConfig, load_config
from bastion.errors import ConfigError
from bastion.strategy.config import ProcessLimits, StrategyConfig

INSTRUMENT = '[[instruments]]\nid = "XYZ.SIM"\ntick_size = "0.01"\n'
STRATEGY = (
    '[[strategies]]\nname = "s1"\npath = "strategies/s.py"\nclass = "S"\n'
    "[strategies.params]\nfast = 10\n"
)
FEED = '[feed]\ninstrument = "XYZ.SIM"\n'
DATA = '[[data]]\npath = "data/quotes.csv"\ninstrument = "XYZ.SIM"\n'


def write(directory: Path, text: str, name: str = "paper.toml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def load_error(path: Path, schema: type[PaperConfig] | type[BacktestConfig]) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, schema)
    return str(info.value)


@pytest.fixture
def desk(tmp_path: Path) -> Path:
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "s.py").write_text("# placeholder strategy\n")
    return tmp_path


def test_when_a_paper_node_names_no_isolation_then_strategies_run_in_processes(desk: Path) -> None:
    config = load_config(write(desk, INSTRUMENT + STRATEGY + FEED), PaperConfig)
    assert config.node.isolation is None and config.isolation == "process"
    strategy = config.strategies[0]
    assert strategy.process_group == "s1" and strategy.restart == "never"
    assert strategy.limits == ProcessLimits()


def test_when_a_paper_node_asks_for_inline_then_it_gets_it(desk: Path) -> None:
    path = write(desk, '[node]\nisolation = "inline"\n' + INSTRUMENT + STRATEGY + FEED)
    assert load_config(path, PaperConfig).isolation == "inline"


def test_when_a_backtest_asks_for_process_isolation_then_config_error(desk: Path) -> None:
    path = write(desk, '[node]\nisolation = "process"\n' + INSTRUMENT + STRATEGY + DATA, "bt.toml")
    assert "key 'node.isolation': a backtest runs its strategies inline" in load_error(
        path, BacktestConfig
    )


def test_when_isolation_is_misspelled_then_the_choices_are_named(desk: Path) -> None:
    path = write(desk, '[node]\nisolation = "thread"\n' + INSTRUMENT + STRATEGY + FEED)
    message = load_error(path, PaperConfig)
    assert message.endswith(
        "key 'node.isolation': invalid value 'thread' (expected one of: inline, process)"
    )


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("[strategies.limits]\nmemory_mb = 8\n", "limits.memory_mb"),
        ("[strategies.limits]\ncpu_s = 0\n", "limits.cpu_s"),
        ("[strategies.limits]\nopen_files = 3\n", "limits.open_files"),
        ("[strategies.limits]\nmax_handler_ms = 1\n", "limits.max_handler_ms"),
        ("[strategies.limits]\nmax_backlog = 0\n", "limits.max_backlog"),
        ("restart_backoff_s = 0\n", "restart_backoff_s"),
        ("max_restarts = -1\n", "max_restarts"),
        ('env = ["A=B"]\n', "env"),
    ],
)
def test_when_a_process_setting_is_out_of_range_then_config_error_names_it(
    desk: Path, extra: str, key: str
) -> None:
    strategy = STRATEGY.replace("[strategies.params]\nfast = 10\n", extra)
    path = write(desk, INSTRUMENT + strategy + FEED)
    assert f"key 'strategies[0].{key}'" in load_error(path, PaperConfig)


def test_when_strategies_share_a_group_then_they_share_a_process_name() -> None:
    a = StrategyConfig(name="a", path="a.py", class_name="A", group="makers")
    b = StrategyConfig(name="b", path="b.py", class_name="B")
    assert (a.process_group, b.process_group) == ("makers", "b")
