"""A paper session recorded with ``[recording]`` and replayed with ``bastion backtest``
(``[[recordings]]``) makes the same decisions: the same orders (side, type, quantity,
price) in the same order, and the same fills. Both are real ``bastion`` processes; the
two journals are compared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bastion.config import PaperConfig, load_config
from bastion.feeds.recorder import read_quotes
from bastion.model import events as ev
from kit.journal_reading import read_journal
from kit.node_process import run_to_end

DECIDER = '''
"""Decides on quotes alone: every 3rd quote a limit order a few ticks off the touch
(sides alternating, sizes varying); every 10th a market order."""

from bastion.model.enums import OrderSide
from bastion.strategy import QuoteTick, Strategy

BUY, SELL = OrderSide.BUY, OrderSide.SELL


class Decider(Strategy):
    def on_start(self) -> None:
        self.iid = self.params["instrument"]
        self.inst = self.instrument(self.iid)
        self.n = 0
        self.subscribe_quotes(self.iid)

    def on_quote(self, quote: QuoteTick) -> None:
        self.n += 1
        n, tick, lot = self.n, self.inst.tick_raw, self.inst.lot_raw
        if n % 3 == 0:
            if (n // 3) % 2:
                self.submit(BUY, self.iid, lot * (1 + n % 4), quote.bid - (n % 7) * tick)
            else:
                self.submit(SELL, self.iid, lot * (1 + n % 4), quote.ask + (n % 5) * tick)
        if n % 10 == 0:
            self.submit(BUY if (n // 10) % 2 else SELL, self.iid, lot)
'''

COMMON = """
[node]
id = "{node}"
isolation = "inline"
log_format = "json"

[[instruments]]
id = "XYZ.SIM"
tick_size = "0.01"
lot_size = "1"

[[strategies]]
name = "decider"
path = "strategies/decider.py"
class = "Decider"
[strategies.params]
instrument = "XYZ.SIM"

[risk]
max_order_quantity = "100"
max_order_notional = "100000"

[venue]
latency_ms = 0

[journal]
path = "{journal}"
"""

PAPER = (
    "run_for_s = 2.5\n"
    + COMMON.format(node="paper-1", journal="paper.sqlite")
    + """
[[feeds]]
kind = "synthetic"
name = "syn"
instruments = ["XYZ.SIM"]
interval_ms = 10
volatility_bps = "5"

[recording]
path = "recording"
flush_interval_ms = 200
"""
)

BACKTEST = (
    'output_dir = "bt-out"\nprogress = false\n'
    + COMMON.format(node="bt-1", journal="backtest.sqlite")
    + """
[[recordings]]
path = "recording"
"""
)


def decisions(journal: Path) -> list[tuple[Any, ...]]:
    return [
        (e.side, e.order_type, e.quantity, e.price, e.strategy_id, e.instrument_id)
        for _, e in read_journal(journal)
        if isinstance(e, ev.OrderInitialized)
    ]


def fills(journal: Path) -> list[tuple[Any, ...]]:
    return [
        (e.side, e.last_qty, e.last_px)
        for _, e in read_journal(journal)
        if isinstance(e, ev.OrderFilled)
    ]


@pytest.mark.timeout(90)
def test_when_a_paper_session_is_recorded_then_its_backtest_makes_the_same_orders(
    tmp_path: Path,
) -> None:
    """Record 2.5 s of a paper node; backtest the recording's delivered stream: the same
    orders in the same order, the same fills, from the same quotes."""
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "decider.py").write_text(DECIDER)
    (tmp_path / "paper.toml").write_text(PAPER)
    (tmp_path / "backtest.toml").write_text(BACKTEST)

    paper = run_to_end("run", "paper.toml", cwd=tmp_path)
    assert paper.returncode == 0, paper.stderr[-3000:]
    assert '"recording_closed"' in paper.stderr
    backtest = run_to_end("backtest", "backtest.toml", "--no-progress", cwd=tmp_path)
    assert backtest.returncode == 0, backtest.stderr[-3000:]

    config = load_config(tmp_path / "paper.toml", PaperConfig)
    kernel_quotes = read_quotes(
        tmp_path / "recording", {i.id: i.to_instrument() for i in config.instruments}
    )
    assert len(kernel_quotes) > 50  # a real session, not an empty one
    live, replayed = decisions(tmp_path / "paper.sqlite"), decisions(tmp_path / "backtest.sqlite")
    assert len(live) >= 20
    assert replayed == live
    assert fills(tmp_path / "backtest.sqlite") == fills(tmp_path / "paper.sqlite")
