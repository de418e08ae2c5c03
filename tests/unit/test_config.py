"""Loading the node configs from TOML: valid files load, every mistake names file and key."""

from __future__ import annotations

import shutil
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from bastion.config import (
    BacktestConfig,
    InstrumentConfig,
    PaperConfig,
    default_paper_config,
    load_config,
    resolve_path,
    scaffold_dir,
)
from bastion.errors import ConfigError
from bastion.model.enums import TradingState

INSTRUMENT = """
[[instruments]]
id = "XYZ.SIM"
tick_size = "0.01"
"""

STRATEGY = """
[[strategies]]
name = "s1"
path = "strategies/s.py"
class = "S"
[strategies.params]
fast = 10
"""

FEED = """
[feed]
instrument = "XYZ.SIM"
"""

DATA = """
[[data]]
path = "data/quotes.csv"
instrument = "XYZ.SIM"
"""


@pytest.fixture
def desk(tmp_path: Path) -> Path:
    """A directory with the files that configs refer to (a strategy and a data file)."""
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "s.py").write_text("# placeholder strategy\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "quotes.csv").write_text("ts_ns,bid,ask,bid_size,ask_size\n")
    return tmp_path


def write(directory: Path, text: str, name: str = "paper.toml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def paper(desk: Path, *extra: str, head: str = "") -> Path:
    return write(desk, head + INSTRUMENT + STRATEGY + FEED + "".join(extra))


def load_error(path: Path, schema: type[PaperConfig] | type[BacktestConfig]) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, schema)
    return str(info.value)


# -- valid configs -------------------------------------------------------------------


def test_when_minimal_paper_config_then_defaults_fill_the_rest(desk: Path) -> None:
    """Only instruments, strategies and a feed are required; other sections default."""
    config = load_config(paper(desk), PaperConfig)
    assert config.node.id == "node-1"
    assert config.instruments[0].tick_size == Decimal("0.01")
    assert config.instruments[0].lot_size == Decimal(1)
    assert config.strategies[0].class_name == "S"
    assert config.strategies[0].params == {"fast": 10}
    assert config.feed is not None and config.feed.instrument == "XYZ.SIM"
    assert config.replay == []
    assert config.risk.trading_state is TradingState.ACTIVE
    assert config.journal.path == "journal.sqlite"
    assert config.run_for_s is None


def test_when_minimal_backtest_config_then_it_loads(desk: Path) -> None:
    """A backtest needs instruments, strategies and data; output_dir defaults."""
    path = write(desk, INSTRUMENT + STRATEGY + DATA, "backtest.toml")
    config = load_config(path, BacktestConfig)
    assert config.data[0].path == "data/quotes.csv"
    assert config.output_dir == "backtest-out"
    assert config.journal is None
    assert config.progress is True


def test_when_scaffold_templates_loaded_then_both_are_valid(tmp_path: Path) -> None:
    """The packaged paper.toml and backtest.toml load with the documented values."""
    for name in ("paper.toml", "backtest.toml"):
        shutil.copy(scaffold_dir() / name, tmp_path / name)
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "ema_cross.py").write_text("# placeholder\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "quotes.csv").write_text("ts_ns,bid,ask,bid_size,ask_size\n")

    live = load_config(tmp_path / "paper.toml", PaperConfig)
    assert live.instruments[0].to_instrument().tick_size == Decimal("0.01")
    assert live.strategies[0].params == {
        "instrument": "XYZ.SIM",
        "fast": 10,
        "slow": 50,
        "trade_size": "1",
    }
    assert live.risk.max_order_quantity == Decimal(100)
    assert live.risk.max_order_notional == Decimal(100_000)
    assert live.venue.latency_ms == 5
    assert live.feed is not None and live.feed.seed == 42 and live.feed.interval_ms == 100
    assert live.account.starting_cash == Decimal(1_000_000)

    bt = load_config(tmp_path / "backtest.toml", BacktestConfig)
    assert bt.venue.latency_ms == 0
    assert bt.data[0].on_bad_row == "fail"
    assert bt.output_dir == "backtest-out"


def test_when_default_paper_config_then_packaged_strategy_and_journal_in_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bastion run` without a file uses the packaged example and ./bastion-journal.sqlite."""
    monkeypatch.chdir(tmp_path)
    config, base_dir = default_paper_config()
    assert base_dir == scaffold_dir()
    assert resolve_path(base_dir, config.strategies[0].path).is_file()
    assert resolve_path(base_dir, config.journal.path) == tmp_path / "bastion-journal.sqlite"


def test_when_paths_are_relative_then_resolved_against_config_dir(tmp_path: Path) -> None:
    """Relative config paths join the config's directory; absolute ones stay as they are."""
    assert resolve_path(tmp_path, "data/q.csv") == tmp_path / "data" / "q.csv"
    assert resolve_path(tmp_path, "/abs/q.csv") == Path("/abs/q.csv")


# -- decimals ------------------------------------------------------------------------


def test_when_decimal_given_as_float_then_value_is_exact(desk: Path) -> None:
    """A TOML float like 0.01 becomes exactly Decimal('0.01'), not the binary float."""
    path = write(
        desk,
        INSTRUMENT.replace('"0.01"', "0.01")
        + STRATEGY
        + FEED
        + "[account]\nstarting_cash = 0.1\n[risk]\nmax_order_notional = 1e5\n",
    )
    config = load_config(path, PaperConfig)
    assert config.instruments[0].tick_size == Decimal("0.01")
    assert config.account.starting_cash == Decimal("0.1")
    assert config.risk.max_order_notional == Decimal(100_000)


def test_when_decimal_given_as_int_or_string_then_accepted(desk: Path) -> None:
    """Decimal fields take TOML integers and strings."""
    path = paper(desk, "[account]\nstarting_cash = 5000\n[risk]\nmax_order_quantity = '2.5'\n")
    config = load_config(path, PaperConfig)
    assert config.account.starting_cash == Decimal(5000)
    assert config.risk.max_order_quantity == Decimal("2.5")


def test_when_decimal_given_as_bool_then_config_error(desk: Path) -> None:
    """A boolean is not a number, even though Python thinks True == 1."""
    message = load_error(paper(desk, "[account]\nstarting_cash = true\n"), PaperConfig)
    assert message.startswith(f"{desk / 'paper.toml'}: key 'account.starting_cash': expected ")
    assert "got bool" in message


def test_when_decimal_is_nan_then_config_error(desk: Path) -> None:
    """NaN and infinity are refused wherever a Decimal is expected."""
    message = load_error(paper(desk, "[account]\nstarting_cash = 'NaN'\n"), PaperConfig)
    assert "key 'account.starting_cash'" in message
    assert "finite" in message


# -- unknown, mistyped and missing keys ------------------------------------------------


def test_when_unknown_key_then_error_names_file_and_dotted_key(desk: Path) -> None:
    """A misspelled key is refused with its full dotted path, never ignored."""
    message = load_error(paper(desk, "[risk]\nmax_qty = 1\n"), PaperConfig)
    assert message.startswith(f"{desk / 'paper.toml'}: unknown key 'risk.max_qty'")
    assert "max_order_quantity" in message


def test_when_unknown_key_in_array_table_then_error_has_index(desk: Path) -> None:
    """Keys inside [[strategies]] are reported with the table's index."""
    path = write(desk, INSTRUMENT + STRATEGY.replace("class =", "klass =") + FEED)
    message = load_error(path, PaperConfig)
    assert "unknown key 'strategies[0].klass'" in message
    assert "did you mean 'class'" in message


def test_when_unknown_top_level_key_then_config_error(desk: Path) -> None:
    """A top-level key that no schema knows is refused."""
    message = load_error(paper(desk, head="colour = 1\n"), PaperConfig)
    assert message.startswith(f"{desk / 'paper.toml'}: unknown key 'colour'")


def test_when_wrong_type_then_error_names_key_and_types(desk: Path) -> None:
    """A string where an integer belongs names the key, what was expected and what came."""
    message = load_error(paper(desk, "[venue]\nlatency_ms = '5'\n"), PaperConfig)
    assert message == f"{desk / 'paper.toml'}: key 'venue.latency_ms': expected int, got str"


def test_when_invalid_choice_then_error_lists_options(desk: Path) -> None:
    """An enum or literal value outside its set lists the accepted values."""
    message = load_error(paper(desk, "[risk]\ntrading_state = 'PAUSED'\n"), PaperConfig)
    assert "key 'risk.trading_state': invalid value 'PAUSED'" in message
    assert "ACTIVE" in message and "HALTED" in message


def test_when_required_key_missing_then_error_names_it(desk: Path) -> None:
    """A missing required key inside a table is named with its dotted path."""
    path = write(desk, INSTRUMENT.replace('tick_size = "0.01"', "") + STRATEGY + FEED)
    message = load_error(path, PaperConfig)
    assert message == f"{desk / 'paper.toml'}: missing required key 'instruments[0].tick_size'"


def test_when_required_section_missing_then_error_names_it(desk: Path) -> None:
    """A config without [[strategies]] says so."""
    message = load_error(write(desk, INSTRUMENT + FEED), PaperConfig)
    assert message == f"{desk / 'paper.toml'}: missing required key 'strategies'"


# -- file and syntax problems --------------------------------------------------------------


def test_when_file_missing_then_config_error_names_file(tmp_path: Path) -> None:
    """A config path that does not exist is a ConfigError, not FileNotFoundError."""
    path = tmp_path / "nope.toml"
    message = load_error(path, PaperConfig)
    assert message == f"{path}: config file not found"


def test_when_path_is_directory_then_config_error(tmp_path: Path) -> None:
    """A directory given as config file is reported as such."""
    message = load_error(tmp_path, PaperConfig)
    assert message.startswith(f"{tmp_path}: is a directory")


def test_when_toml_is_invalid_then_error_has_line_and_column(desk: Path) -> None:
    """A TOML syntax error gives the file, the line and the column."""
    path = write(desk, INSTRUMENT + "\nseed = 4 2\n")
    message = load_error(path, PaperConfig)
    assert message.startswith(f"{path}: invalid TOML: ")
    assert "line 6" in message and "column" in message


def test_when_file_is_not_utf8_then_config_error(tmp_path: Path) -> None:
    """Binary garbage is a ConfigError naming the file."""
    path = tmp_path / "paper.toml"
    path.write_bytes(b"id = '\xff\xfe'\n")
    assert load_error(path, PaperConfig).startswith(f"{path}: not UTF-8")


# -- cross-section checks ------------------------------------------------------------------


def test_when_feed_names_unknown_instrument_then_config_error(desk: Path) -> None:
    """Every instrument a data source names must be defined in [[instruments]]."""
    path = write(desk, INSTRUMENT + STRATEGY + FEED.replace("XYZ.SIM", "ABC.SIM"))
    message = load_error(path, PaperConfig)
    assert message.startswith(f"{path}: key 'feed.instrument': unknown instrument 'ABC.SIM'")
    assert "XYZ.SIM" in message


def test_when_backtest_data_names_unknown_instrument_then_config_error(desk: Path) -> None:
    """[[data]] tables are checked against [[instruments]] too."""
    path = write(desk, INSTRUMENT + STRATEGY + DATA.replace("XYZ.SIM", "ABC.SIM"), "bt.toml")
    assert "key 'data[0].instrument': unknown instrument 'ABC.SIM'" in load_error(
        path, BacktestConfig
    )


def test_when_strategy_names_repeat_then_config_error(desk: Path) -> None:
    """Strategy names identify orders, so two strategies cannot share one."""
    path = write(desk, INSTRUMENT + STRATEGY + STRATEGY + FEED)
    message = load_error(path, PaperConfig)
    assert message == f"{path}: key 'strategies[1].name': duplicate strategy name 's1'"


def test_when_instrument_ids_repeat_then_config_error(desk: Path) -> None:
    """Instrument ids are unique."""
    path = write(desk, INSTRUMENT + INSTRUMENT + STRATEGY + FEED)
    assert "key 'instruments[1].id': duplicate instrument id 'XYZ.SIM'" in load_error(
        path, PaperConfig
    )


def test_when_no_instruments_then_config_error(desk: Path) -> None:
    """An empty instrument list is refused."""
    path = write(desk, "instruments = []\n" + STRATEGY + FEED)
    assert "key 'instruments': at least one" in load_error(path, PaperConfig)


def test_when_tick_size_not_positive_then_config_error(desk: Path) -> None:
    """Instrument increments must be positive."""
    path = write(desk, INSTRUMENT.replace('"0.01"', '"0"') + STRATEGY + FEED)
    assert "key 'instruments[0].tick_size': must be a positive number" in load_error(
        path, PaperConfig
    )


def test_when_both_feed_and_replay_then_config_error(desk: Path) -> None:
    """A paper node takes exactly one market data source."""
    replay = '[[replay]]\npath = "data/quotes.csv"\ninstrument = "XYZ.SIM"\n'
    message = load_error(paper(desk, replay), PaperConfig)
    assert "'feed' and 'replay'" in message


def test_when_neither_feed_nor_replay_then_config_error(desk: Path) -> None:
    """A paper node without any market data source is refused."""
    message = load_error(write(desk, INSTRUMENT + STRATEGY), PaperConfig)
    assert "key 'feed': no market data source" in message


def test_when_replay_only_then_config_loads(desk: Path) -> None:
    """Recorded files may replace the synthetic feed."""
    replay = '[[replay]]\npath = "data/quotes.csv"\ninstrument = "XYZ.SIM"\n'
    config = load_config(write(desk, INSTRUMENT + STRATEGY + replay), PaperConfig)
    assert config.feed is None and config.replay[0].instrument == "XYZ.SIM"


def test_when_strategy_file_missing_then_error_names_key_and_path(desk: Path) -> None:
    """The strategy path is resolved next to the config file and must exist."""
    path = write(desk, INSTRUMENT + STRATEGY.replace("strategies/s.py", "nope.py") + FEED)
    message = load_error(path, PaperConfig)
    assert message == f"{path}: key 'strategies[0].path': file not found: {desk / 'nope.py'}"


def test_when_data_file_missing_then_config_error(desk: Path) -> None:
    """A backtest data file that does not exist is a config error, not a crash later."""
    path = write(desk, INSTRUMENT + STRATEGY + DATA.replace("quotes.csv", "x.csv"), "bt.toml")
    assert "key 'data[0].path': file not found" in load_error(path, BacktestConfig)


def test_when_run_for_s_not_positive_then_config_error(desk: Path) -> None:
    """run_for_s must be a positive number of seconds."""
    message = load_error(paper(desk, head="run_for_s = 0\n"), PaperConfig)
    assert "key 'run_for_s': must be a positive number" in message


def test_when_instrument_venue_not_configured_then_config_error(desk: Path) -> None:
    """An instrument listed on a venue the node does not run cannot be traded."""
    path = write(desk, INSTRUMENT + 'venue = "NYSE"\n' + STRATEGY + FEED)
    assert "key 'instruments[0].venue': venue 'NYSE' is not configured" in load_error(
        path, PaperConfig
    )


def test_when_to_instrument_on_bad_values_then_config_error_names_key() -> None:
    """InstrumentConfig.to_instrument reports the offending key, not a bare ValueError."""
    bad = InstrumentConfig(id="X", tick_size=Decimal("-0.01"))
    with pytest.raises(ConfigError, match="instrument 'X': key 'tick_size'"):
        bad.to_instrument()
