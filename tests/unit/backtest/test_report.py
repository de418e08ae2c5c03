"""Backtest report: exact figures in the text, exact CSV, byte-identical files."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from bastion.backtest._report_plot import MAX_PLOT_POINTS, minmax_downsample, write_equity_png
from bastion.backtest.report import (
    FILLS_CSV_HEADER,
    format_report,
    format_utc_ns,
    net_pnl,
    write_fills_csv,
    write_outputs,
)
from bastion.backtest.result import BacktestResult, FillRecord, PositionSummary

D = Decimal
T0 = 1_704_205_800_000_000_000  # 2024-01-02T14:30:00Z
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _fill(i: int, **changes: object) -> FillRecord:
    fill = FillRecord(
        ts_ns=T0 + i * 100_000_000 + 123_456_789,
        client_order_id=f"O-{i}",
        exec_id=f"E-{i}",
        strategy_id="ema-cross",
        instrument_id="SPY.SIM",
        side="BUY" if i % 2 == 0 else "SELL",
        quantity=D("2") if i else D("1"),
        price=D("100.01") + D(i) / 100,
        fee=D("0"),
        liquidity="TAKER",
    )
    return dataclasses.replace(fill, **changes)  # type: ignore[arg-type]


def _curve(n: int, seed: int = 7) -> list[tuple[int, Decimal]]:
    steps = np.random.default_rng(seed).integers(-100, 101, size=n)
    equity = D("100000.00")
    points = []
    for i, step in enumerate(steps.tolist()):
        equity += D(step).scaleb(-2)
        points.append((T0 + i * 100_000_000, equity))
    return points


def _result(**changes: object) -> BacktestResult:
    result = BacktestResult(
        n_ticks=100_000,
        n_orders=2_898,
        n_fills=2_898,
        n_denied=3,
        n_rejected=2,
        n_canceled=1,
        fills=[_fill(i) for i in range(4)],
        positions=[
            PositionSummary(
                instrument_id="SPY.SIM",
                quantity=D("1"),
                avg_px=D("100.0123456789"),
                realized_pnl=D("-28.26"),
                unrealized_pnl=D("1.5"),
                currency="USD",
            )
        ],
        currency="USD",
        starting_cash=D("100000"),
        final_cash=D("99871.73"),
        final_equity=D("99973.24"),
        realized_pnl=D("-28.26"),
        unrealized_pnl=D("1.50"),
        fees=D("0.75"),
        max_drawdown=D("11"),
        equity_curve=[
            (T0, D("100")),
            (T0 + 1_000, D("110")),
            (T0 + 2_000, D("99")),
            (T0 + 3_000, D("105")),
        ],
        start_ns=T0,
        end_ns=T0 + 9_999_900_000_000,
        wall_s=0.5,
    )
    return dataclasses.replace(result, **changes)  # type: ignore[arg-type]


def _empty_result() -> BacktestResult:
    zero = D("0")
    return BacktestResult(
        n_ticks=0,
        n_orders=0,
        n_fills=0,
        n_denied=0,
        n_rejected=0,
        n_canceled=0,
        fills=[],
        positions=[],
        currency="USD",
        starting_cash=zero,
        final_cash=zero,
        final_equity=zero,
        realized_pnl=zero,
        unrealized_pnl=zero,
        fees=zero,
        max_drawdown=zero,
        equity_curve=[],
        start_ns=0,
        end_ns=0,
        wall_s=0.0,
    )


def _line(report: str, label: str) -> str:
    matches = [line for line in report.splitlines() if line.strip().startswith(label + " ")]
    assert len(matches) == 1, (label, matches)
    return matches[0]


def _digests(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


# -- text report --------------------------------------------------------------
def test_when_report_formatted_then_totals_are_exact_figures() -> None:
    """The PnL and account lines carry the result's figures, rounded half-even to cents."""
    report = format_report(_result())

    assert _line(report, "realized PnL").split()[2] == "-28.26"
    assert _line(report, "unrealized PnL").split()[2] == "1.50"
    assert _line(report, "fees").split()[1] == "0.75"
    assert _line(report, "net PnL").split()[2] == "-27.51"  # -28.26 + 1.50 - 0.75
    assert _line(report, "starting cash").split()[2] == "100000.00"
    assert _line(report, "final cash").split()[2] == "99871.73"
    assert _line(report, "final equity").split()[2] == "99973.24"


def test_when_net_pnl_computed_then_it_is_realized_plus_unrealized_minus_fees() -> None:
    """net_pnl is exact Decimal arithmetic with fees subtracted once."""
    result = _result(realized_pnl=D("-28.261"), unrealized_pnl=D("0.0005"), fees=D("0.1234"))

    assert net_pnl(result) == D("-28.3839")


def test_when_report_formatted_then_counts_and_period_are_shown() -> None:
    """Counts use thousands separators and the period is UTC ISO 8601 from ns."""
    report = format_report(_result())

    assert _line(report, "ticks processed").split()[2] == "100,000"
    assert _line(report, "orders").split()[1] == "2,898"
    assert _line(report, "denied").split()[1] == "3"
    assert _line(report, "rejected").split()[1] == "2"
    assert _line(report, "canceled").split()[1] == "1"
    assert _line(report, "start").split()[1] == "2024-01-02T14:30:00Z"
    assert _line(report, "end").split()[1] == "2024-01-02T17:16:39.900Z"
    assert _line(report, "duration").split()[1] == "02:46:39.900"


def test_when_values_are_negative_then_the_sign_is_kept() -> None:
    """Losses, short positions and losses smaller than a cent keep their minus sign."""
    position = PositionSummary("SPY.SIM", D("-3"), D("99.5"), D("-0.004"), D("-12.345"), "USD")
    result = _result(
        positions=[position],
        realized_pnl=D("-0.004"),
        unrealized_pnl=D("-12.345"),
        fees=D("0"),
        final_cash=D("-250.5"),
    )
    report = format_report(result)

    assert _line(report, "realized PnL").split()[2] == "-0.00"
    assert _line(report, "unrealized PnL").split()[2] == "-12.34"  # half-even
    assert _line(report, "net PnL").split()[2] == "-12.35"  # -12.349 rounds away from .34
    assert _line(report, "final cash").split()[2] == "-250.50"
    assert _line(report, "SPY.SIM").split()[1:6] == ["-3", "99.5", "-0.00", "-12.34", "USD"]


def test_when_value_is_negative_zero_then_it_prints_as_plain_zero() -> None:
    """Decimal('-0') is no loss, so it prints without a sign."""
    report = format_report(_result(fees=D("-0"), unrealized_pnl=D("-0.000")))

    assert _line(report, "fees").split()[1] == "0.00"
    assert _line(report, "unrealized PnL").split()[2] == "0.00"


def test_when_money_is_a_half_cent_then_it_rounds_half_even() -> None:
    """Display rounding is ROUND_HALF_EVEN, not half-up."""
    assert _line(format_report(_result(fees=D("0.125"))), "fees").split()[1] == "0.12"
    assert _line(format_report(_result(fees=D("0.135"))), "fees").split()[1] == "0.14"


def test_when_currency_has_no_minor_unit_then_money_shows_no_decimals() -> None:
    """JPY amounts are shown in whole yen."""
    report = format_report(_result(currency="JPY", final_cash=D("1234567.5")))

    assert _line(report, "final cash").split()[2] == "1234568"


def test_when_positions_listed_then_quantity_and_avg_price_are_exact() -> None:
    """Position quantity and average price print every digit, never in exponent form."""
    position = PositionSummary("SPY.SIM", D("1E+2"), D("100.0123456789"), D("0"), D("0"), "USD")
    row = _line(format_report(_result(positions=[position])), "SPY.SIM").split()

    assert row[1:3] == ["100", "100.0123456789"]


def test_when_position_is_flat_then_avg_price_shows_a_dash() -> None:
    """A flat position has no average price."""
    position = PositionSummary("SPY.SIM", D("0"), None, D("5"), D("0"), "USD")

    assert _line(format_report(_result(positions=[position])), "SPY.SIM").split()[2] == "-"


def test_when_positions_table_rendered_then_columns_are_aligned() -> None:
    """Numeric columns end on the same character in every row of the table."""
    positions = [
        PositionSummary("A.SIM", D("1"), D("1.5"), D("-1234.5"), D("0"), "USD"),
        PositionSummary("LONGER.SIM", D("-250"), D("99.125"), D("2"), D("-0.5"), "USD"),
    ]
    lines = format_report(_result(positions=positions)).splitlines()
    start = lines.index("Final positions")
    table = lines[start + 2 : start + 6]

    header, rule, *rows = table
    expected = ["instrument", "quantity", "avg", "price", "realized", "unrealized", "currency"]
    assert header.split() == expected
    assert set(rule.replace(" ", "")) == {"-"}
    for name in ("quantity", "avg price", "realized", "unrealized"):
        end = header.index(name) + len(name)
        for row in rows:
            assert row[end - 1] != " " and row[end] == " ", (name, row)


def test_when_drawdown_reported_then_percent_of_peak_is_shown() -> None:
    """Max drawdown 11 from a 110 peak is reported as 10.00% of peak equity."""
    line = _line(format_report(_result()), "max drawdown")

    assert line.split()[2:] == ["11.00", "(10.00%", "of", "peak", "equity", "110.00)"]


def test_when_curve_is_empty_then_drawdown_percent_is_na() -> None:
    """Without an equity curve there is no peak to divide by."""
    line = _line(format_report(_result(equity_curve=[])), "max drawdown")

    assert "n/a" in line


def test_when_timing_excluded_then_wall_time_and_throughput_are_absent() -> None:
    """include_timing=False drops the only figures that change between runs."""
    with_timing = format_report(_result(wall_s=0.5))
    without = format_report(_result(wall_s=0.5), include_timing=False)

    assert _line(with_timing, "wall time").split()[2] == "0.500"
    assert _line(with_timing, "throughput").split()[1] == "200,000"
    assert "wall time" not in without
    assert "ticks/s" not in without
    assert without == format_report(_result(wall_s=123.0), include_timing=False)


def test_when_rows_skipped_and_strategy_failed_then_both_are_listed() -> None:
    """Skipped rows appear per reason, sorted, with a total; errors keep their lines."""
    result = _result(
        skipped_rows={"nan_price": 2, "crossed_book": 5},
        strategy_errors=["ZeroDivisionError: boom\n  at on_quote", "KeyError: 'x'"],
    )
    lines = format_report(result).splitlines()

    assert "Skipped data rows (7)" in lines
    assert [line.split() for line in lines if "crossed_book" in line or "nan_price" in line] == [
        ["crossed_book", "5"],
        ["nan_price", "2"],
    ]
    assert "Strategy errors (2)" in lines
    assert "  1. ZeroDivisionError: boom" in lines
    assert "       at on_quote" in lines
    assert "  2. KeyError: 'x'" in lines


def test_when_nothing_skipped_and_no_errors_then_sections_are_absent() -> None:
    """Empty optional sections are left out rather than printed empty."""
    report = format_report(_result())

    assert "Skipped data rows" not in report
    assert "Strategy errors" not in report


def test_when_many_strategy_errors_then_the_list_is_capped() -> None:
    """Only the first 20 errors are printed, followed by a count of the rest."""
    report = format_report(_result(strategy_errors=[f"err {i}" for i in range(25)]))

    assert "Strategy errors (25)" in report
    assert "  20. err 19" in report
    assert "err 20" not in report
    assert "... and 5 more" in report


def test_when_result_is_empty_then_report_still_renders() -> None:
    """A backtest that saw nothing still yields a complete report."""
    report = format_report(_empty_result())

    assert "(none)" in report
    assert _line(report, "throughput").split()[1] == "n/a"
    assert report.endswith("\n")


# -- time -------------------------------------------------------------------
def test_when_timestamp_formatted_then_nanoseconds_are_exact() -> None:
    """Every nanosecond digit survives, including for times before the epoch."""
    assert format_utc_ns(T0 + 123_456_789) == "2024-01-02T14:30:00.123456789Z"
    assert format_utc_ns(-1) == "1969-12-31T23:59:59.999999999Z"
    assert format_utc_ns(T0 + 1_000, trim=True) == "2024-01-02T14:30:00.000001Z"


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_when_any_int64_timestamp_formatted_then_it_parses_back_exactly(ts_ns: int) -> None:
    """The ISO text of any int64 nanosecond timestamp converts back to the same integer."""
    text = format_utc_ns(ts_ns)
    whole = datetime.fromisoformat(text[:19]).replace(tzinfo=UTC)
    seconds = (whole - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1)

    assert text.endswith("Z")
    assert seconds * 1_000_000_000 + int(text[20:29]) == ts_ns


# -- fills.csv ----------------------------------------------------------------
def test_when_fills_written_then_csv_round_trips_decimals_exactly(tmp_path: Path) -> None:
    """Reading fills.csv back yields the same Decimals, digit for digit."""
    fills = [
        _fill(0, quantity=D("0.00000001"), price=D("123456789.123456789"), fee=D("-0.0001")),
        _fill(1, quantity=D("1.10"), price=D("1E+2"), fee=D("1E-9")),
        _fill(2, side="SELL", liquidity="MAKER"),
    ]
    path = write_fills_csv(fills, tmp_path / "fills.csv")

    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == FILLS_CSV_HEADER
    assert len(rows) == len(fills)
    for row, fill in zip(rows, fills, strict=True):
        for name in ("quantity", "price", "fee"):
            assert Decimal(row[name]) == getattr(fill, name)
            assert str(Decimal(row[name])) == str(getattr(fill, name))
        assert int(row["ts_ns"]) == fill.ts_ns
        assert row["side"] == fill.side
        assert row["liquidity"] == fill.liquidity


def test_when_fills_written_then_header_and_time_are_as_specified(tmp_path: Path) -> None:
    """The header is fixed, lines end in LF and time_utc is the exact UTC time of ts_ns."""
    data = write_fills_csv([_fill(0)], tmp_path / "fills.csv").read_bytes()

    assert data == (
        b"ts_ns,time_utc,client_order_id,exec_id,strategy_id,instrument_id,"
        b"side,quantity,price,fee,liquidity\n"
        b"1704205800123456789,2024-01-02T14:30:00.123456789Z,O-0,E-0,ema-cross,"
        b"SPY.SIM,BUY,1,100.01,0,TAKER\n"
    )


def test_when_ids_contain_csv_syntax_then_they_are_quoted_and_round_trip(tmp_path: Path) -> None:
    """Commas, quotes and newlines in ids are escaped, not allowed to break the row."""
    tricky = _fill(0, client_order_id='a,b"c', exec_id="line1\nline2", strategy_id=" sp ")
    path = write_fills_csv([tricky], tmp_path / "fills.csv")

    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    assert rows[1][2:5] == ['a,b"c', "line1\nline2", " sp "]
    assert b"\r" not in path.read_bytes()


# -- write_outputs ------------------------------------------------------------
def test_when_outputs_written_then_three_files_are_returned(tmp_path: Path) -> None:
    """write_outputs creates nested directories and returns the CSV, PNG and text paths."""
    out = tmp_path / "runs" / "a"
    result = _result()
    paths = write_outputs(result, out)

    assert [p.name for p in paths] == ["fills.csv", "equity.png", "report.txt"]
    assert all(p.parent == out and p.is_file() for p in paths)
    assert paths[2].read_text(encoding="utf-8") == format_report(result, include_timing=False)
    assert len(paths[0].read_text(encoding="utf-8").splitlines()) == 1 + len(result.fills)


def test_when_written_twice_then_all_files_are_byte_identical(tmp_path: Path) -> None:
    """Two writes of results differing only in wall time give identical bytes."""
    first = write_outputs(_result(wall_s=0.5, equity_curve=_curve(2_000)), tmp_path / "a")
    second = write_outputs(_result(wall_s=9.9, equity_curve=_curve(2_000)), tmp_path / "b")

    assert _digests(first) == _digests(second)


def test_when_written_in_another_process_then_files_are_byte_identical(tmp_path: Path) -> None:
    """A fresh interpreter (new hash seed, cold font cache) writes the same bytes."""
    script = (
        "import sys; from pathlib import Path\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import test_report as t\n"
        "from bastion.backtest.report import write_outputs\n"
        "write_outputs(t._result(equity_curve=t._curve(2_000)), Path(sys.argv[1]))\n"
    )
    here = write_outputs(_result(equity_curve=_curve(2_000)), tmp_path / "here")
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "there")],
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    there = [tmp_path / "there" / p.name for p in here]

    assert _digests(here) == _digests(there)


def test_when_png_written_then_it_is_a_real_nontrivial_image(tmp_path: Path) -> None:
    """equity.png has the PNG signature, decodes, has a fixed size and no software stamp."""
    png = write_outputs(_result(equity_curve=_curve(5_000)), tmp_path)[1]
    data = png.read_bytes()

    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 20_000
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert image.size == (1100, 650)
        assert "Software" not in image.info
    assert b"tIME" not in data
    assert b"matplotlib" not in data.lower()


def test_when_caller_changed_rcparams_then_png_is_unchanged(tmp_path: Path) -> None:
    """Global matplotlib settings made by the caller do not leak into the PNG."""
    curve = _curve(1_000)
    clean = write_equity_png(curve, tmp_path / "clean.png", title="t", currency="USD")
    with matplotlib.rc_context({"lines.linewidth": 5.0, "font.size": 20.0, "axes.grid": False}):
        dirty = write_equity_png(curve, tmp_path / "dirty.png", title="t", currency="USD")

    assert clean.read_bytes() == dirty.read_bytes()
    assert matplotlib.rcParams["lines.linewidth"] != 5.0


def test_when_result_is_empty_then_outputs_are_still_valid(tmp_path: Path) -> None:
    """No fills and no equity points: header-only CSV, a 'no data' PNG, a full report."""
    fills, png, report = write_outputs(_empty_result(), tmp_path)

    assert fills.read_bytes() == (",".join(FILLS_CSV_HEADER) + "\n").encode()
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    with Image.open(png) as image:
        image.verify()
    assert "(none)" in report.read_text(encoding="utf-8")


def test_when_curve_has_one_point_then_png_is_written(tmp_path: Path) -> None:
    """A single equity sample is drawn as a point without warnings."""
    png = write_equity_png([(T0, D("100"))], tmp_path / "one.png", title="t", currency="USD")

    assert png.read_bytes().startswith(PNG_SIGNATURE)


# -- downsampling ---------------------------------------------------------------
def test_when_series_is_small_then_downsampling_keeps_every_point() -> None:
    """Series at or below the limit are drawn as they are."""
    x = np.arange(100, dtype=np.int64)
    y = np.linspace(0.0, 1.0, 100)

    out_x, out_y = minmax_downsample(x, y, max_points=100)
    assert out_x is x and out_y is y


def test_when_series_is_large_then_downsampling_keeps_extremes_in_order() -> None:
    """50k points shrink under the limit, keep first, last, min and max, stay time-ordered."""
    rng = np.random.default_rng(3)
    y = np.cumsum(rng.normal(size=50_000))
    x = np.arange(50_000, dtype=np.int64) * 100

    out_x, out_y = minmax_downsample(x, y)

    assert out_y.size <= MAX_PLOT_POINTS
    assert out_y.size > MAX_PLOT_POINTS // 2
    assert np.all(np.diff(out_x) > 0)
    assert out_x[0] == x[0] and out_x[-1] == x[-1]
    assert out_y.min() == y.min() and out_y.max() == y.max()
    again_x, again_y = minmax_downsample(x, y)
    assert np.array_equal(out_x, again_x) and np.array_equal(out_y, again_y)


@given(
    st.lists(st.floats(-1e9, 1e9), min_size=1, max_size=400),
    st.integers(min_value=4, max_value=50),
)
def test_when_any_series_downsampled_then_limit_and_extremes_hold(
    values: list[float], max_points: int
) -> None:
    """For any series the output fits the limit and keeps the endpoints and extremes."""
    y = np.array(values, dtype=np.float64)
    x = np.arange(y.size, dtype=np.int64)

    out_x, out_y = minmax_downsample(x, y, max_points=max_points)

    assert out_y.size <= max(max_points, 2)
    assert out_x[0] == 0 and out_x[-1] == y.size - 1
    assert out_y.min() == y.min() and out_y.max() == y.max()
    assert np.array_equal(out_y, y[out_x])


def test_when_curve_has_50k_points_then_png_is_deterministic_and_fast(tmp_path: Path) -> None:
    """A 50k-point curve renders identically twice, each well under the time budget."""
    curve = _curve(50_000)
    write_equity_png(curve[:10], tmp_path / "warm.png", title="t", currency="USD")
    timings = []
    paths = []
    for name in ("a.png", "b.png"):
        started = time.perf_counter()
        paths.append(write_equity_png(curve, tmp_path / name, title="t", currency="USD"))
        timings.append(time.perf_counter() - started)

    assert paths[0].read_bytes() == paths[1].read_bytes()
    # The budget is 1 s; the bound here is loose so a busy CI machine does not flake.
    assert max(timings) < 5.0, timings


@pytest.mark.parametrize("n", [20_001, 50_000])
def test_when_curve_exceeds_the_limit_then_report_outputs_stay_identical(
    tmp_path: Path, n: int
) -> None:
    """Downsampled plots are as reproducible as small ones."""
    result = _result(equity_curve=_curve(n))

    first = write_outputs(result, tmp_path / "a")
    second = write_outputs(result, tmp_path / "b")
    assert _digests(first) == _digests(second)
