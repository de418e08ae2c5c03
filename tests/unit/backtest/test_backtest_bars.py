"""Backtests over bars: resting limits fill when the range trades through, the close marks."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from bastion.backtest.engine import run_backtest
from bastion.config import BacktestConfig, InstrumentConfig
from bastion.data.config import ReplaySourceConfig
from bastion.errors import ConfigError
from bastion.journal import verify_journal
from bastion.journal.config import JournalConfig
from bastion.strategy.config import StrategyConfig

BARS = """\
ts_ns,open,high,low,close,volume
1704205860000000000,100.00,100.50,99.50,100.20,1000
1704205920000000000,100.20,100.80,100.10,100.70,1000
1704205980000000000,100.70,100.90,99.90,100.00,1000
1704206040000000000,100.00,100.30,99.00,99.20,1000
"""

STRATEGY = """\
from bastion.strategy import Bar, Strategy


class BarTrader(Strategy):
    def on_start(self):
        self.subscribe_bars("XYZ.SIM")
        self.n = 0

    def on_bar(self, bar: Bar):
        self.n += 1
        if self.n == 1:
            self.buy("XYZ.SIM", 2)                    # market: fills at this close
            self.sell("XYZ.SIM", 1, price="100.75")   # rests; bar 2's high reaches it
        if self.n == 3:
            self.buy("XYZ.SIM", 1, price="99.50")     # rests; bar 4's low reaches it
"""


def _config(tmp_path: Path, journal: JournalConfig | None = None) -> BacktestConfig:
    (tmp_path / "bars.csv").write_text(BARS)
    (tmp_path / "bar_trader.py").write_text(textwrap.dedent(STRATEGY))
    return BacktestConfig(
        instruments=[InstrumentConfig(id="XYZ.SIM", tick_size=Decimal("0.01"))],
        strategies=[StrategyConfig(name="b", path="bar_trader.py", class_name="BarTrader")],
        data=[ReplaySourceConfig(path="bars.csv", instrument="XYZ.SIM", kind="bars")],
        journal=journal,
        progress=False,
    )


def test_when_bars_replayed_then_limits_fill_in_range_and_close_marks_the_position(
    tmp_path: Path,
) -> None:
    """Market at the close, limits as maker at their price, unrealized PnL at the last close."""
    config = _config(tmp_path)
    result = run_backtest(config, base_dir=tmp_path, progress=False)
    assert [(f.side, f.quantity, f.price, f.liquidity) for f in result.fills] == [
        ("BUY", Decimal(2), Decimal("100.20"), "TAKER"),
        ("SELL", Decimal(1), Decimal("100.75"), "MAKER"),
        ("BUY", Decimal(1), Decimal("99.50"), "MAKER"),
    ]
    (position,) = result.positions
    assert position.quantity == 2
    assert position.avg_px == Decimal("99.85")
    assert result.realized_pnl == Decimal("0.55")
    assert result.unrealized_pnl == Decimal("-1.30")  # 2 x (99.20 - 99.85)
    assert result.final_equity == Decimal("999999.25")
    assert result.max_drawdown == Decimal("1.80")


def test_when_backtest_has_a_journal_then_every_order_event_is_chained_in_it(
    tmp_path: Path,
) -> None:
    """A configured journal (fsync per event here) records the run and verifies intact."""
    journal = JournalConfig(path="bt.sqlite", durability="fsync_each")
    run_backtest(_config(tmp_path, journal), base_dir=tmp_path, progress=False)
    result = verify_journal(tmp_path / "bt.sqlite")
    assert result.ok
    # 3 orders: initialized, submitted, accepted, filled each
    assert result.events == 12


def test_when_backtest_journal_refers_to_vault_keys_then_refused_not_plaintext(
    tmp_path: Path,
) -> None:
    """A backtest opens no vault: a journal that should be encrypted is refused, never
    written plaintext."""
    journal = JournalConfig(path="bt.sqlite", encryption_key="secret:journal/encryption")
    with pytest.raises(ConfigError, match=r"journal\.encryption_key"):
        run_backtest(_config(tmp_path, journal), base_dir=tmp_path, progress=False)
    assert not (tmp_path / "bt.sqlite").exists()


def test_when_backtest_journal_is_postgres_then_refused_not_a_file_instead(
    tmp_path: Path,
) -> None:
    """A backtest journals to a SQLite file only: a PostgreSQL journal table is refused
    by name, and no file is written in its place."""
    journal = JournalConfig(
        path="bt.sqlite", backend="postgres", url="postgresql://bastion@db.invalid/desk"
    )
    with pytest.raises(ConfigError, match=r"journal\.backend': a backtest journals to a SQLite"):
        run_backtest(_config(tmp_path, journal), base_dir=tmp_path, progress=False)
    assert not (tmp_path / "bt.sqlite").exists()
