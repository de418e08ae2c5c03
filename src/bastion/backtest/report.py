"""The human-facing output of a backtest: a plain-text report and the files it leaves.

Owns the presentation of a :class:`BacktestResult`:

- :func:`format_report` renders an aligned plain-text summary. Figures are printed
  from the exact Decimals; money is rounded half-even to the currency's minor unit
  for display only, never through a binary float.
- :func:`write_outputs` writes ``fills.csv``, ``equity.png`` and ``report.txt``.
  All three are byte-identical from run to run and process to process (the report
  file leaves out wall time and throughput, the PNG carries no software or date
  stamp), so two backtests of the same inputs can be compared with ``cmp``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from pathlib import Path
from typing import Final

from bastion.backtest.result import BacktestResult, FillRecord

__all__ = [
    "FILLS_CSV_HEADER",
    "format_report",
    "format_utc_ns",
    "net_pnl",
    "write_fills_csv",
    "write_outputs",
]

FILLS_CSV_HEADER: Final = (
    "ts_ns",
    "time_utc",
    "client_order_id",
    "exec_id",
    "strategy_id",
    "instrument_id",
    "side",
    "quantity",
    "price",
    "fee",
    "liquidity",
)

FILLS_CSV_NAME: Final = "fills.csv"
EQUITY_PNG_NAME: Final = "equity.png"
REPORT_TXT_NAME: Final = "report.txt"

# Minor units for display; anything not listed shows two decimals.
_CURRENCY_DECIMALS: Final[dict[str, int]] = {
    "JPY": 0,
    "KRW": 0,
    "BTC": 8,
    "ETH": 8,
}
# Wide enough that quantizing any realistic amount never raises InvalidOperation,
# and independent of whatever the caller did to the thread's decimal context.
_DECIMAL_CTX: Final = Context(prec=80, rounding=ROUND_HALF_EVEN)
_NS_PER_S: Final = 1_000_000_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_ERRORS_SHOWN: Final = 20
_LABEL_WIDTH: Final = 18
_INDENT: Final = "  "


# -- time -------------------------------------------------------------------
def format_utc_ns(ts_ns: int, *, trim: bool = False) -> str:
    """ISO 8601 UTC time of a nanosecond epoch timestamp, derived with integer math.

    Full form is ``2024-01-02T14:30:00.123456789Z``; with ``trim`` the fraction is
    shortened to milli/micro/nanoseconds as needed and dropped when zero.
    """
    seconds, nanos = divmod(ts_ns, _NS_PER_S)
    stamp = f"{_EPOCH + timedelta(seconds=seconds):%Y-%m-%dT%H:%M:%S}"
    return f"{stamp}{_fraction(nanos, trim)}Z"


def _fraction(nanos: int, trim: bool) -> str:
    if not trim:
        return f".{nanos:09d}"
    if nanos == 0:
        return ""
    if nanos % 1_000_000 == 0:
        return f".{nanos // 1_000_000:03d}"
    if nanos % 1_000 == 0:
        return f".{nanos // 1_000:06d}"
    return f".{nanos:09d}"


def _format_duration_ns(span_ns: int) -> str:
    sign = "-" if span_ns < 0 else ""
    seconds, nanos = divmod(abs(span_ns), _NS_PER_S)
    days, seconds = divmod(seconds, 86_400)
    hours, seconds = divmod(seconds, 3_600)
    minutes, seconds = divmod(seconds, 60)
    day_part = f"{days}d " if days else ""
    return f"{sign}{day_part}{hours:02d}:{minutes:02d}:{seconds:02d}{_fraction(nanos, True)}"


# -- numbers ----------------------------------------------------------------
def _exact(value: Decimal) -> str:
    """Exact, never in scientific notation (``1E+2`` prints as ``100``)."""
    return f"{value:f}"


def _money(value: Decimal, currency: str) -> str:
    """Half-even rounding to the currency's minor unit; keeps the sign of tiny losses."""
    if not value.is_finite():
        return str(value)
    places = _CURRENCY_DECIMALS.get(currency.upper(), 2)
    rounded = value.quantize(Decimal(1).scaleb(-places), context=_DECIMAL_CTX)
    if value.is_zero():
        rounded = rounded.copy_abs()  # Decimal("-0") is no loss
    return f"{rounded:f}"


def _count(value: int) -> str:
    return f"{value:,}"


def net_pnl(result: BacktestResult) -> Decimal:
    """Realized (gross of fees) + unrealized - fees, exact."""
    return _DECIMAL_CTX.subtract(
        _DECIMAL_CTX.add(result.realized_pnl, result.unrealized_pnl), result.fees
    )


def _drawdown_peak(curve: Sequence[tuple[int, Decimal]]) -> Decimal | None:
    """Running peak equity at the deepest point of the curve, or None if it is empty."""
    if not curve:
        return None
    peak = curve[0][1]
    worst = Decimal(0)
    peak_at_worst = peak
    for _, equity in curve:
        if equity > peak:
            peak = equity
        fall = peak - equity
        if fall > worst:
            worst = fall
            peak_at_worst = peak
    return peak_at_worst


def _drawdown_text(result: BacktestResult) -> tuple[str, str]:
    amount = _money(result.max_drawdown, result.currency)
    peak = _drawdown_peak(result.equity_curve)
    if peak is None or not peak.is_finite() or peak <= 0:
        return amount, "(% of peak equity: n/a)"
    pct = _DECIMAL_CTX.divide(result.max_drawdown * 100, peak).quantize(
        Decimal("0.01"), context=_DECIMAL_CTX
    )
    return amount, f"({pct:f}% of peak equity {_money(peak, result.currency)})"


# -- layout -----------------------------------------------------------------
def _section(title: str) -> list[str]:
    return ["", title, "-" * len(title)]


def _kv_block(
    rows: Sequence[tuple[str, str, str]], *, numeric: bool = True, width: int = 0
) -> list[str]:
    """``label  value  note`` rows; numeric values are right-aligned on a common edge."""
    width = max(width, *(len(value) for _, value, _ in rows))
    align = ">" if numeric else "<"
    lines = []
    for label, value, note in rows:
        line = f"{_INDENT}{label:<{_LABEL_WIDTH}}{value:{align}{width}}".rstrip()
        lines.append(f"{line}  {note}" if note else line)
    return lines


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            f"{cell:>{widths[i]}}" if i in right else f"{cell:<{widths[i]}}"
            for i, cell in enumerate(cells)
        ]
        return (_INDENT + "  ".join(parts)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)]


def _instruments(result: BacktestResult) -> list[str]:
    ids = {p.instrument_id for p in result.positions} | {f.instrument_id for f in result.fills}
    return sorted(ids)


# -- the text report ----------------------------------------------------------
def format_report(result: BacktestResult, *, include_timing: bool = True) -> str:
    """Aligned plain-text summary of a backtest, ending in a newline.

    ``include_timing=False`` leaves out wall time and throughput, the only figures
    that differ between two runs of the same backtest.
    """
    ccy = result.currency
    instruments = _instruments(result)
    title = "bastion backtest report"
    lines = [title, "=" * len(title)]
    if instruments:
        lines.append(f"instruments: {', '.join(instruments)}")

    lines += _section("Period")
    lines += _kv_block(
        [
            ("start", format_utc_ns(result.start_ns, trim=True), ""),
            ("end", format_utc_ns(result.end_ns, trim=True), ""),
            ("duration", _format_duration_ns(result.end_ns - result.start_ns), ""),
        ],
        numeric=False,
    )

    lines += _section("Activity")
    activity = [("ticks processed", _count(result.n_ticks), "")]
    if include_timing:
        activity.append(("wall time", f"{result.wall_s:.3f}", "s"))
        rate = f"{result.n_ticks / result.wall_s:,.0f}" if result.wall_s > 0 else "n/a"
        activity.append(("throughput", rate, "ticks/s"))
    activity += [
        ("orders", _count(result.n_orders), ""),
        ("fills", _count(result.n_fills), ""),
        ("denied", _count(result.n_denied), ""),
        ("rejected", _count(result.n_rejected), ""),
        ("canceled", _count(result.n_canceled), ""),
    ]
    lines += _kv_block(activity)

    lines += _section("Final positions")
    if result.positions:
        rows = [
            [
                p.instrument_id,
                _exact(p.quantity),
                "-" if p.avg_px is None else _exact(p.avg_px),
                _money(p.realized_pnl, p.currency),
                _money(p.unrealized_pnl, p.currency),
                p.currency,
            ]
            for p in result.positions
        ]
        header = ["instrument", "quantity", "avg price", "realized", "unrealized", "currency"]
        lines += _table(header, rows, right={1, 2, 3, 4})
    else:
        lines.append(f"{_INDENT}(none)")

    dd_amount, dd_note = _drawdown_text(result)
    pnl_rows = [
        ("realized PnL", _money(result.realized_pnl, ccy), "gross of fees"),
        ("unrealized PnL", _money(result.unrealized_pnl, ccy), ""),
        ("fees", _money(result.fees, ccy), ""),
        ("net PnL", _money(net_pnl(result), ccy), "= realized + unrealized - fees"),
    ]
    account_rows = [
        ("starting cash", _money(result.starting_cash, ccy), ""),
        ("final cash", _money(result.final_cash, ccy), ""),
        ("final equity", _money(result.final_equity, ccy), ""),
        ("max drawdown", dd_amount, dd_note),
    ]
    # One money column across both sections, so amounts line up for the eye.
    money_width = max(len(value) for _, value, _ in (*pnl_rows, *account_rows))
    lines += _section(f"PnL ({ccy})")
    lines += _kv_block(pnl_rows, width=money_width)
    lines += _section(f"Account ({ccy})")
    lines += _kv_block(account_rows, width=money_width)

    if result.skipped_rows:
        total = sum(result.skipped_rows.values())
        lines += _section(f"Skipped data rows ({_count(total)})")
        lines += _kv_block(
            [(reason, _count(n), "") for reason, n in sorted(result.skipped_rows.items())]
        )

    if result.strategy_errors:
        lines += _section(f"Strategy errors ({_count(len(result.strategy_errors))})")
        lines += _error_lines(result.strategy_errors)

    return "\n".join(lines) + "\n"


def _error_lines(errors: Sequence[str]) -> list[str]:
    lines = []
    for n, error in enumerate(errors[:_MAX_ERRORS_SHOWN], start=1):
        first, *rest = error.splitlines() or [""]
        lines.append(f"{_INDENT}{n}. {first}")
        lines += [f"{_INDENT}   {more}" for more in rest]
    if len(errors) > _MAX_ERRORS_SHOWN:
        lines.append(f"{_INDENT}... and {_count(len(errors) - _MAX_ERRORS_SHOWN)} more")
    return lines


# -- files --------------------------------------------------------------------
def _fill_row(fill: FillRecord) -> tuple[str | int, ...]:
    return (
        fill.ts_ns,
        format_utc_ns(fill.ts_ns),
        fill.client_order_id,
        fill.exec_id,
        fill.strategy_id,
        fill.instrument_id,
        fill.side,
        str(fill.quantity),
        str(fill.price),
        str(fill.fee),
        fill.liquidity,
    )


def write_fills_csv(fills: Iterable[FillRecord], path: Path) -> Path:
    """One row per fill; Decimals as ``str()`` so ``Decimal(cell)`` gives them back exactly."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(FILLS_CSV_HEADER)
        writer.writerows(_fill_row(fill) for fill in fills)
    return path


def _plot_title(result: BacktestResult) -> str:
    instruments = _instruments(result)
    if len(instruments) > 3:
        instruments = [*instruments[:3], f"+{len(instruments) - 3} more"]
    what = ", ".join(instruments) if instruments else "backtest"
    ccy = result.currency
    return (
        f"{what}  |  net PnL {_money(net_pnl(result), ccy)} {ccy}"
        f"  |  max drawdown {_money(result.max_drawdown, ccy)} {ccy}"
    )


def write_outputs(result: BacktestResult, out_dir: Path) -> list[Path]:
    """Write ``fills.csv``, ``equity.png`` and ``report.txt`` into ``out_dir``.

    Creates ``out_dir`` (and parents) if needed and returns the paths written, in
    that order. The files depend only on ``result`` minus its wall time.
    """
    # matplotlib takes a noticeable time to import; only pay for it when plotting.
    from bastion.backtest._report_plot import write_equity_png

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fills_path = write_fills_csv(result.fills, out_dir / FILLS_CSV_NAME)
    png_path = write_equity_png(
        result.equity_curve,
        out_dir / EQUITY_PNG_NAME,
        title=_plot_title(result),
        currency=result.currency,
    )
    report_path = out_dir / REPORT_TXT_NAME
    report_path.write_text(
        format_report(result, include_timing=False), encoding="utf-8", newline="\n"
    )
    return [fills_path, png_path, report_path]
