"""Replaying Parquet files: column types, row numbers and record-batch boundaries."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bastion.data import _parquet, open_replay
from bastion.errors import DataError
from bastion.model.data import QuoteTick
from bastion.model.instruments import Instrument

XYZ = Instrument(
    id="XYZ.SIM",
    venue="SIM",
    tick_size=Decimal("0.01"),
    lot_size=Decimal("1"),
    quote_currency="USD",
)


def write(path: Path, **columns: pa.Array | list[object]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def test_when_prices_are_doubles_then_they_convert_exactly(tmp_path: Path) -> None:
    """Doubles nearest to 2-decimal prices become exact raw integers."""
    path = write(
        tmp_path / "q.parquet",
        ts_ns=[1, 2],
        bid=[100.01, 0.1 + 0.2],
        ask=[100.02, 0.31],
        bid_size=[5, 0],
        ask_size=[7.0, 1.0],
    )

    rows = list(open_replay(path, XYZ))

    assert rows == [
        QuoteTick("XYZ.SIM", 1, 10001, 10002, 5, 7),
        QuoteTick("XYZ.SIM", 2, 30, 31, 0, 1),
    ]


def test_when_columns_have_other_numeric_types_then_they_convert(tmp_path: Path) -> None:
    """Timestamps, decimals, float32, uint and text columns are all accepted."""
    path = write(
        tmp_path / "q.pq",
        ts_ns=pa.array([1_000, 2_000], pa.timestamp("us")),
        bid=pa.array([Decimal("100.01"), Decimal("100.02")], pa.decimal128(10, 2)),
        ask=pa.array(["100.02", " 100.03"], pa.string()),
        bid_size=pa.array([5, 6], pa.uint64()),
        ask_size=pa.array([7, 8], pa.float32()),
    )

    rows = list(open_replay(path, XYZ))

    assert rows == [
        QuoteTick("XYZ.SIM", 1_000_000, 10001, 10002, 5, 7),
        QuoteTick("XYZ.SIM", 2_000_000, 10002, 10003, 6, 8),
    ]


def test_when_a_column_holds_no_numbers_then_opening_fails(tmp_path: Path) -> None:
    """A boolean price column is rejected up front, naming the column."""
    path = write(
        tmp_path / "q.parquet", ts_ns=[1], bid=[True], ask=[1.0], bid_size=[1], ask_size=[1]
    )

    with pytest.raises(DataError, match=r"q\.parquet: column 'bid' has type bool"):
        open_replay(path, XYZ)


def test_when_a_value_is_null_then_the_error_names_the_row(tmp_path: Path) -> None:
    """Parquet rows are numbered from 1."""
    path = write(
        tmp_path / "q.parquet",
        ts_ns=[1, 2, 3],
        bid=[1.0, 1.0, None],
        ask=[2.0, 2.0, 2.0],
        bid_size=[1, 1, 1],
        ask_size=[1, 1, 1],
    )

    with pytest.raises(DataError) as caught:
        list(open_replay(path, XYZ))

    assert str(caught.value) == "q.parquet:row 3: column 'bid': missing value (missing_value)"


def test_when_an_integer_size_overflows_when_scaled_then_it_is_out_of_range(
    tmp_path: Path,
) -> None:
    """Integer columns are scaled with an overflow check, not silently wrapped."""
    lots = Instrument(
        id="XYZ.SIM",
        venue="SIM",
        tick_size=Decimal("0.01"),
        lot_size=Decimal("0.001"),
        quote_currency="USD",
    )
    path = write(
        tmp_path / "q.parquet",
        ts_ns=[1],
        bid=[1.0],
        ask=[2.0],
        bid_size=[2**62],
        ask_size=[1],
    )
    source = open_replay(path, lots, on_bad_row="skip")

    assert list(source) == []
    assert source.stats.skipped_by_reason == {"out_of_range": 1}


def test_when_the_file_spans_many_batches_then_rows_and_row_numbers_are_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad row in a later batch is numbered from the start of the file."""
    monkeypatch.setattr(_parquet, "BATCH_ROWS", 7)
    n = 50
    bids = [100.0 + i / 100 for i in range(n)]
    bids[44] = float("nan")
    path = write(
        tmp_path / "q.parquet",
        ts_ns=list(range(n)),
        bid=bids,
        ask=[101.0] * n,
        bid_size=[1] * n,
        ask_size=[1] * n,
    )
    source = open_replay(path, XYZ, on_bad_row="skip")

    rows = list(source)

    assert [q.ts_ns for q in rows] == [i for i in range(n) if i != 44]
    assert rows[43].bid == 10043
    assert source.n_rows == n
    with pytest.raises(DataError, match=r"q\.parquet:row 45: column 'bid': 'nan'"):
        list(open_replay(path, XYZ))


def test_when_the_file_is_not_parquet_then_opening_fails(tmp_path: Path) -> None:
    """Garbage with a .parquet suffix is a DataError naming the file."""
    path = tmp_path / "junk.parquet"
    path.write_bytes(b"not parquet at all")

    with pytest.raises(DataError, match=r"junk\.parquet: not a readable Parquet file"):
        open_replay(path, XYZ)
