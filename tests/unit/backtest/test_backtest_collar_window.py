"""A backtest applies the risk gate's time-window collar as a live node does: its loop
inlines ``Kernel.on_quote`` and must hand every quote to the gate's quote hook."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

from bastion.backtest.engine import run_backtest
from bastion.config import BacktestConfig, InstrumentConfig
from bastion.data.config import ReplaySourceConfig
from bastion.journal import SqliteJournal
from bastion.journal.config import JournalConfig
from bastion.model.events import InstrumentPaused, OrderDenied
from bastion.risk.config import RiskConfig
from bastion.strategy.config import StrategyConfig

T0 = 1_704_205_800_000_000_000
MS = 1_000_000
# the mid moves 100.00 -> 103.00 (3 %) within 200 ms, then stays
QUOTES = "ts_ns,bid,ask,bid_size,ask_size\n" + "".join(
    f"{T0 + i * 100 * MS},{bid},{ask},100,100\n"
    for i, (bid, ask) in enumerate(
        [("99.99", "100.01"), ("101.49", "101.51"), ("102.99", "103.01")]
        + [("102.99", "103.01")] * 5
    )
)
STRATEGY = """\
from bastion.strategy import Strategy


class EveryQuote(Strategy):
    def on_start(self):
        self.subscribe_quotes("XYZ.SIM")

    def on_quote(self, quote):
        self.buy("XYZ.SIM", 1)
"""


def test_when_backtest_prices_jump_past_the_collar_window_then_instrument_pauses(
    tmp_path: Path,
) -> None:
    """2 % within 1 s pauses the instrument for 5 s: the buys after the jump are denied
    INSTRUMENT_PAUSED, and the pause is journaled."""
    (tmp_path / "quotes.csv").write_text(QUOTES)
    (tmp_path / "every_quote.py").write_text(textwrap.dedent(STRATEGY))
    config = BacktestConfig(
        instruments=[InstrumentConfig(id="XYZ.SIM", tick_size=Decimal("0.01"))],
        strategies=[StrategyConfig(name="s", path="every_quote.py", class_name="EveryQuote")],
        data=[ReplaySourceConfig(path="quotes.csv", instrument="XYZ.SIM")],
        journal=JournalConfig(path="bt.sqlite"),
        risk=RiskConfig(
            collar_window_pct=Decimal(2), collar_window_ms=1_000, collar_window_pause_ms=5_000
        ),
        progress=False,
    )
    result = run_backtest(config, base_dir=tmp_path, progress=False)
    journal = SqliteJournal(tmp_path / "bt.sqlite")
    try:
        events = [event for _, event in journal.read()]
    finally:
        journal.close()
    paused = [e for e in events if isinstance(e, InstrumentPaused)]
    denied = [e for e in events if isinstance(e, OrderDenied)]
    assert len(paused) >= 1 and paused[0].instrument_id == "XYZ.SIM"
    assert {e.reason for e in denied} == {"INSTRUMENT_PAUSED"}
    # the first two quotes (before the move reached 2 %) traded; the rest were held back
    assert result.n_fills == 2
    assert result.n_denied == len(denied) == 6
