"""Every bad-row rule, in CSV and Parquet, failing (with a located message) and skipping."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bastion.data import open_replay
from bastion.errors import DataError
from bastion.model.data import Bar, QuoteTick
from bastion.model.instruments import Instrument

# tick 0.05 (raw 5 at precision 2), lot 10 (raw 10 at precision 0)
INSTRUMENT = Instrument(
    id="ABC.SIM",
    venue="SIM",
    tick_size=Decimal("0.05"),
    lot_size=Decimal("10"),
    quote_currency="USD",
)
QUOTE_HEADER = ["ts_ns", "bid", "ask", "bid_size", "ask_size"]
BAR_HEADER = ["ts_ns", "open", "high", "low", "close", "volume"]
GOOD_QUOTE = ["1000", "100.00", "100.05", "10", "20"]
LATER_QUOTE = ["3000", "100.10", "100.15", "30", "40"]


def write_rows(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """Write text cells as CSV, or as Parquet with each column typed int, float or string."""
    if path.suffix == ".csv":
        path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
        return path
    columns = {}
    for k, name in enumerate(header):
        cells = [r[k] for r in rows]
        columns[name] = _typed_column([c if c != "" else None for c in cells])
    pq.write_table(pa.table(columns), path)
    return path


def _typed_column(cells: list[str | None]) -> pa.Array:
    for convert, typ in ((int, pa.int64()), (float, pa.float64())):
        try:
            return pa.array([None if c is None else convert(c) for c in cells], typ)
        except ValueError:
            continue
    return pa.array(cells, pa.string())


def location(path: Path, row_index: int) -> str:
    """How errors name a data row: CSV line (header is line 1) or Parquet row (1-based)."""
    if path.suffix == ".csv":
        return f"{path.name}:{row_index + 2}:"
    return f"{path.name}:row {row_index + 1}:"


def consume(source: object) -> tuple[list[object], DataError | None]:
    """Rows delivered before the pass ended, and the DataError that ended it (if any)."""
    rows: list[object] = []
    try:
        for row in source:  # type: ignore[attr-defined]
            rows.append(row)
    except DataError as e:
        return rows, e
    return rows, None


# (id, bad quote row, reason, column named in the message, CSV text shown)
QUOTE_CASES = [
    ("text", ["2000", "abc", "100.05", "10", "10"], "not_a_number", "bid", "'abc'"),
    ("empty", ["2000", "", "100.05", "10", "10"], "missing_value", "bid", "missing value"),
    ("nan", ["2000", "nan", "100.05", "10", "10"], "not_finite", "bid", "'nan'"),
    ("inf", ["2000", "100.00", "inf", "10", "10"], "not_finite", "ask", "'inf'"),
    (
        "fractional ts",
        ["2000.5", "100.00", "100.05", "10", "10"],
        "not_an_integer",
        "ts_ns",
        "'2000.5'",
    ),
    ("text ts", ["soon", "100.00", "100.05", "10", "10"], "not_a_number", "ts_ns", "'soon'"),
    ("huge", ["2000", "1e300", "1e300", "10", "10"], "out_of_range", "bid", "'1e300'"),
    ("decimals", ["2000", "100.015", "100.05", "10", "10"], "price_off_scale", "bid", "'100.015'"),
    ("off tick", ["2000", "100.03", "100.05", "10", "10"], "price_off_tick", "bid", "'100.03'"),
    ("zero", ["2000", "0", "100.05", "10", "10"], "non_positive_price", "bid", "'0'"),
    (
        "negative",
        ["2000", "-100.00", "100.05", "10", "10"],
        "non_positive_price",
        "bid",
        "'-100.00'",
    ),
    (
        "negative size",
        ["2000", "100.00", "100.05", "-10", "10"],
        "negative_size",
        "bid_size",
        "'-10'",
    ),
    (
        "size decimals",
        ["2000", "100.00", "100.05", "10", "10.5"],
        "size_off_scale",
        "ask_size",
        "'10.5'",
    ),
    ("off lot", ["2000", "100.00", "100.05", "15", "10"], "size_off_lot", "bid_size", "'15'"),
    ("crossed", ["2000", "100.10", "100.05", "10", "10"], "crossed_quote", "bid", "'100.10'"),
    ("backwards", ["999", "100.00", "100.05", "10", "10"], "time_went_backwards", "ts_ns", "'999'"),
]
SUFFIXES = [".csv", ".parquet"]


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize(
    ("bad", "reason", "column", "shown"),
    [c[1:] for c in QUOTE_CASES],
    ids=[c[0] for c in QUOTE_CASES],
)
def test_when_a_quote_row_is_bad_and_policy_is_fail_then_error_locates_it(
    tmp_path: Path, suffix: str, bad: list[str], reason: str, column: str, shown: str
) -> None:
    """The DataError names file, line or row, column, value and reason; earlier rows arrive."""
    path = write_rows(tmp_path / f"quotes{suffix}", QUOTE_HEADER, [GOOD_QUOTE, bad, LATER_QUOTE])

    rows, error = consume(open_replay(path, INSTRUMENT, on_bad_row="fail"))

    assert error is not None
    message = str(error)
    assert message.startswith(location(path, 1))
    assert f"'{column}'" in message
    assert f"({reason})" in message
    if suffix == ".csv":
        assert shown in message
    assert rows == [QuoteTick("ABC.SIM", 1000, 10000, 10005, 10, 20)]


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize(
    ("bad", "reason"), [c[1:3] for c in QUOTE_CASES], ids=[c[0] for c in QUOTE_CASES]
)
def test_when_a_quote_row_is_bad_and_policy_is_skip_then_it_is_counted(
    tmp_path: Path, suffix: str, bad: list[str], reason: str
) -> None:
    """The bad row is dropped, counted under its reason, and the rows around it arrive."""
    path = write_rows(tmp_path / f"quotes{suffix}", QUOTE_HEADER, [GOOD_QUOTE, bad, LATER_QUOTE])
    source = open_replay(path, INSTRUMENT, on_bad_row="skip")

    rows = list(source)

    assert [q.ts_ns for q in rows] == [1000, 3000]
    assert source.stats.rows_read == 3
    assert source.stats.rows_skipped == 1
    assert source.stats.skipped_by_reason == {reason: 1}


BAR_GOOD = ["60", "100.00", "101.00", "99.00", "100.50", "100"]
BAR_CASES = [
    ("high below close", ["120", "100.00", "100.20", "99.00", "100.50", "10"]),
    ("high below open", ["120", "100.50", "100.20", "99.00", "100.00", "10"]),
    ("low above open", ["120", "100.00", "101.00", "100.20", "100.50", "10"]),
    ("low above high", ["120", "100.00", "99.00", "101.00", "100.00", "10"]),
]


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("bad", [c[1] for c in BAR_CASES], ids=[c[0] for c in BAR_CASES])
def test_when_a_bar_does_not_contain_open_and_close_then_it_is_bad_ohlc(
    tmp_path: Path, suffix: str, bad: list[str]
) -> None:
    """Fail mode locates the bar; skip mode counts it as bad_ohlc."""
    path = write_rows(tmp_path / f"bars{suffix}", BAR_HEADER, [BAR_GOOD, bad])

    rows, error = consume(open_replay(path, INSTRUMENT, kind="bars"))
    skipping = open_replay(path, INSTRUMENT, kind="bars", on_bad_row="skip")
    kept = list(skipping)

    assert error is not None
    assert str(error).startswith(location(path, 1))
    assert "(bad_ohlc)" in str(error)
    assert len(rows) == 1
    assert len(kept) == 1
    assert skipping.stats.skipped_by_reason == {"bad_ohlc": 1}


def test_when_bars_are_good_then_they_carry_the_interval(tmp_path: Path) -> None:
    """Bars convert exactly and get the bar interval given to open_replay."""
    path = write_rows(tmp_path / "bars.csv", BAR_HEADER, [BAR_GOOD])

    rows = list(open_replay(path, INSTRUMENT, kind="bars", bar_interval_ns=5_000))

    assert rows == [Bar("ABC.SIM", 60, 10000, 10100, 9900, 10050, 100, 5_000)]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_when_a_row_goes_back_in_time_then_later_rows_compare_with_the_last_good_one(
    tmp_path: Path, suffix: str
) -> None:
    """A skipped backwards row does not lower the bar for the rows after it."""
    rows = [
        ["1000", "100.00", "100.05", "10", "10"],
        ["5000", "100.00", "100.05", "10", "10"],
        ["2000", "100.00", "100.05", "10", "10"],
        ["4000", "100.00", "100.05", "10", "10"],
        ["5000", "abc", "100.05", "10", "10"],
        ["5000", "100.00", "100.05", "10", "10"],
    ]
    path = write_rows(tmp_path / f"quotes{suffix}", QUOTE_HEADER, rows)
    source = open_replay(path, INSTRUMENT, on_bad_row="skip")

    kept = [q.ts_ns for q in source]

    assert kept == [1000, 5000, 5000]
    assert source.stats.skipped_by_reason == {"time_went_backwards": 2, "not_a_number": 1}


def test_when_a_row_has_several_problems_then_the_first_column_is_reported(
    tmp_path: Path,
) -> None:
    """Columns are checked in file-format order, so the timestamp's problem wins."""
    path = write_rows(tmp_path / "quotes.csv", QUOTE_HEADER, [["x", "y", "100.05", "-1", "1"]])

    _, error = consume(open_replay(path, INSTRUMENT))

    assert error is not None
    assert str(error) == "quotes.csv:2: column 'ts_ns': 'x' is not a number (not_a_number)"
