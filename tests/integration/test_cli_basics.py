"""The ``bastion`` command as a user runs it: help, version, init and config errors."""

from __future__ import annotations

import csv
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from bastion import __version__
from bastion.config import BacktestConfig, PaperConfig, load_config
from kit.node_process import RunBastion

SUBCOMMANDS = ("init", "backtest", "run")

GOOD_BACKTEST = """
[[instruments]]
id = "XYZ.SIM"
tick_size = "0.01"

[[strategies]]
name = "s1"
path = "s.py"
class = "S"

[[data]]
path = "quotes.csv"
instrument = "XYZ.SIM"
"""


@pytest.fixture
def desk(tmp_path: Path) -> Path:
    """A directory with a placeholder strategy and data file for hand-written configs."""
    (tmp_path / "s.py").write_text("# placeholder strategy\n")
    (tmp_path / "quotes.csv").write_text("ts_ns,bid,ask,bid_size,ask_size\n")
    return tmp_path


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], stderr


def test_when_help_then_exit_0_and_all_subcommands_listed(run_bastion: RunBastion) -> None:
    """`bastion --help` describes the tool and lists every subcommand with examples."""
    proc = run_bastion("--help")
    assert proc.returncode == 0, proc.stderr
    for name in SUBCOMMANDS:
        assert name in proc.stdout
    assert "examples:" in proc.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_when_subcommand_help_then_exit_0_and_it_is_described(
    run_bastion: RunBastion, name: str
) -> None:
    """`bastion CMD --help` works for every subcommand and shows examples."""
    proc = run_bastion(name, "--help")
    assert proc.returncode == 0, proc.stderr
    assert f"bastion {name}" in proc.stdout
    assert "examples:" in proc.stdout


def test_when_version_then_prints_package_version(run_bastion: RunBastion) -> None:
    """`bastion --version` prints the installed version."""
    proc = run_bastion("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"bastion {__version__}"


def test_when_no_subcommand_then_usage_exit_2(run_bastion: RunBastion) -> None:
    """Plain `bastion` shows usage on stderr and exits 2."""
    proc = run_bastion()
    assert proc.returncode == 2
    assert "usage: bastion" in proc.stderr


def test_when_invalid_argument_then_argparse_exit_2(run_bastion: RunBastion) -> None:
    """A malformed option value is a usage error with argparse's message."""
    proc = run_bastion("run", "--duration-s", "soon")
    assert proc.returncode == 2
    assert "--duration-s" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_when_init_then_configs_strategy_and_sample_data_created(
    run_bastion: RunBastion, tmp_path: Path
) -> None:
    """`bastion init DIR` writes both configs, the example strategy and 20,000 quotes."""
    proc = run_bastion("init", "--no-vault", "mydesk")
    assert proc.returncode == 0, proc.stderr
    desk = tmp_path / "mydesk"
    for rel in ("paper.toml", "backtest.toml", "strategies/ema_cross.py", "data/quotes.csv"):
        assert (desk / rel).is_file(), rel
        assert rel in proc.stdout
    assert "bastion backtest mydesk/backtest.toml" in proc.stdout
    assert "bastion run mydesk/paper.toml" in proc.stdout

    with (desk / "data" / "quotes.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["ts_ns", "bid", "ask", "bid_size", "ask_size"]
    assert len(rows) == 20_000
    assert int(rows[0]["ts_ns"]) == 1_704_205_800_000_000_000
    assert int(rows[1]["ts_ns"]) - int(rows[0]["ts_ns"]) == 100_000_000
    for row in rows[:100]:
        bid, ask = Decimal(row["bid"]), Decimal(row["ask"])
        assert bid < ask
        assert bid == bid.quantize(Decimal("0.01"))

    assert load_config(desk / "paper.toml", PaperConfig).strategies[0].name == "ema_cross"
    assert load_config(desk / "backtest.toml", BacktestConfig).data[0].instrument == "XYZ.SIM"


def test_when_init_into_non_empty_dir_then_exit_2_unless_forced(
    run_bastion: RunBastion, tmp_path: Path
) -> None:
    """init refuses to scribble over an existing non-empty directory."""
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine\n")
    proc = run_bastion("init", "--no-vault", "busy")
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "busy", "not empty", "--force")
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]


def test_when_config_has_unknown_key_then_exit_2_naming_file_and_key(
    run_bastion: RunBastion, desk: Path
) -> None:
    """An unknown key stops the command before anything runs, with a one-line message."""
    (desk / "bt.toml").write_text(textwrap.dedent(GOOD_BACKTEST) + "[risk]\nmax_qty = 5\n")
    proc = run_bastion("backtest", "bt.toml", cwd=desk)
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "bt.toml", "unknown key 'risk.max_qty'")


def test_when_config_has_wrong_type_then_exit_2_naming_file_and_key(
    run_bastion: RunBastion, desk: Path
) -> None:
    """A value of the wrong type names the key and both types."""
    (desk / "paper.toml").write_text(
        textwrap.dedent(GOOD_BACKTEST).split("[[data]]")[0]
        + '[feed]\ninstrument = "XYZ.SIM"\n[venue]\nlatency_ms = "fast"\n'
    )
    proc = run_bastion("run", "paper.toml", cwd=desk)
    assert proc.returncode == 2
    assert_one_line_error(
        proc.stderr, "paper.toml", "key 'venue.latency_ms'", "expected int, got str"
    )


def test_when_config_file_missing_then_exit_2_naming_file(
    run_bastion: RunBastion, tmp_path: Path
) -> None:
    """A config path that does not exist gives exit 2 and names the path."""
    for command in ("backtest", "run"):
        proc = run_bastion(command, "missing.toml")
        assert proc.returncode == 2
        assert_one_line_error(proc.stderr, "missing.toml", "not found")
