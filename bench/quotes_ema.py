#!/usr/bin/env python3
"""The shared quotes-ema workload through bastion's full engine, in backtest mode.

strategy (the bundled EMA cross) -> risk gate -> OMS -> simulated venue -> portfolio,
reading the recorded quotes from Parquet or CSV. Prints one JSON line.

    python bench/quotes_ema.py --data quotes_1000000.parquet

``wall_s`` covers the whole backtest: reading and validating the file, the run, and
building the result; ``ticks_per_s`` is ``n_ticks / wall_s``. ``matches_expected`` is
checked against the workload's published figures when the tick count is 100k or 1M.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from decimal import Decimal
from importlib import resources
from pathlib import Path

from bastion.backtest.engine import run_backtest
from bastion.config import BacktestConfig, InstrumentConfig
from bastion.data.config import ReplaySourceConfig
from bastion.logs import configure_logging
from bastion.risk.config import RiskConfig
from bastion.strategy.config import StrategyConfig

EXPECTED = {
    100_000: (2_898, 2_898, Decimal(1), Decimal("-28.26")),
    1_000_000: (28_730, 28_730, Decimal(1), Decimal("-336.23")),
}


def workload_config(data: Path) -> BacktestConfig:
    strategy_file = resources.files("bastion") / "scaffold" / "strategies" / "ema_cross.py"
    return BacktestConfig(
        instruments=[InstrumentConfig(id="XYZ.SIM", tick_size=Decimal("0.01"))],
        strategies=[
            StrategyConfig(
                name="ema_cross",
                path=str(strategy_file),
                class_name="EmaCross",
                params={"instrument": "XYZ.SIM", "fast": 10, "slow": 50, "trade_size": "1"},
            )
        ],
        risk=RiskConfig(max_order_quantity=Decimal(100), max_order_notional=Decimal(1_000_000)),
        data=[ReplaySourceConfig(path=str(data.resolve()), instrument="XYZ.SIM")],
        progress=False,
    )


def _rate(marks: list[tuple[float, int]], start: float, end: float) -> int | None:
    """Ticks per second between the progress marks nearest to two fractions of the run."""
    total = marks[-1][1]
    if len(marks) < 3 or total == 0:
        return None
    lo = min(marks, key=lambda m: abs(m[1] - start * total))
    hi = min(marks, key=lambda m: abs(m[1] - end * total))
    if hi[1] <= lo[1] or hi[0] <= lo[0]:
        return None
    return round((hi[1] - lo[1]) / (hi[0] - lo[0]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="quotes_N.parquet or .csv")
    args = parser.parse_args()
    configure_logging("warning", "console")
    config = workload_config(args.data)
    marks: list[tuple[float, int]] = [(time.perf_counter(), 0)]

    def on_progress(n: int) -> None:
        marks.append((time.perf_counter(), marks[-1][1] + n))

    result = run_backtest(config, base_dir=Path.cwd(), progress=False, on_progress=on_progress)
    position = sum((p.quantity for p in result.positions), Decimal(0))
    expected = EXPECTED.get(result.n_ticks)
    got = (result.n_orders, result.n_fills, position, result.realized_pnl)
    line = {
        "engine": "bastion",
        "data": args.data.name,
        "n_ticks": result.n_ticks,
        "wall_s": round(result.wall_s, 3),
        "ticks_per_s": round(result.n_ticks / result.wall_s),
        "n_orders": result.n_orders,
        "n_fills": result.n_fills,
        "final_position": str(position),
        "realized_pnl": str(result.realized_pnl),
        # per-tick cost must not grow as orders accumulate: compare the run's two ends
        "first_fifth_ticks_per_s": _rate(marks, 0.0, 0.2),
        "last_fifth_ticks_per_s": _rate(marks, 0.8, 1.0),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "matches_expected": None if expected is None else got == expected,
    }
    print(json.dumps(line))
    return 0 if line["matches_expected"] is not False else 1


if __name__ == "__main__":
    sys.exit(main())
