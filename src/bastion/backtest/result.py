"""What a backtest produces: the figures the report prints and the files it writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class FillRecord:
    """One execution, in human units."""

    ts_ns: int
    client_order_id: str
    exec_id: str
    strategy_id: str
    instrument_id: str
    side: str  # "BUY" | "SELL"
    quantity: Decimal
    price: Decimal
    fee: Decimal
    liquidity: str  # "MAKER" | "TAKER"


@dataclass(frozen=True, slots=True)
class PositionSummary:
    """Final netting position of one instrument."""

    instrument_id: str
    quantity: Decimal  # signed: long > 0, short < 0
    avg_px: Decimal | None
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """Everything a finished backtest knows. All money is exact Decimal."""

    n_ticks: int
    n_orders: int
    n_fills: int
    n_denied: int
    n_rejected: int
    n_canceled: int
    fills: list[FillRecord]
    positions: list[PositionSummary]
    currency: str
    starting_cash: Decimal
    final_cash: Decimal
    final_equity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
    max_drawdown: Decimal  # largest peak-to-trough fall of equity, >= 0
    equity_curve: list[tuple[int, Decimal]]  # (ts_ns, equity), time-ordered
    start_ns: int
    end_ns: int
    wall_s: float
    skipped_rows: dict[str, int] = field(default_factory=dict)  # reason -> count
    strategy_errors: list[str] = field(default_factory=list)
