"""Opening replay files: errors up front, source attributes, passes and the config helper."""

from __future__ import annotations

import threading
from decimal import Decimal
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bastion.data import ReplaySourceConfig, open_replay, replay_from_config
from bastion.errors import ConfigError, DataError
from bastion.model.data import Bar, QuoteTick
from bastion.model.instruments import Instrument

XYZ = Instrument(
    id="XYZ.SIM",
    venue="SIM",
    tick_size=Decimal("0.01"),
    lot_size=Decimal("1"),
    quote_currency="USD",
)
HEADER = "ts_ns,bid,ask,bid_size,ask_size\n"


def write_csv(path: Path, body: str) -> Path:
    path.write_text(HEADER + body)
    return path


def test_when_the_file_is_missing_then_opening_names_it(tmp_path: Path) -> None:
    """The error carries the full path that was asked for."""
    path = tmp_path / "nope.csv"

    with pytest.raises(DataError, match=r"nope\.csv: no such replay file"):
        open_replay(path, XYZ)


def test_when_the_path_is_a_directory_then_opening_fails(tmp_path: Path) -> None:
    """A directory is not a replay file, whatever its name."""
    (tmp_path / "dir.csv").mkdir()

    with pytest.raises(DataError, match=r"dir\.csv: not a file"):
        open_replay(tmp_path / "dir.csv", XYZ)


def test_when_the_suffix_is_unknown_then_opening_names_the_file(tmp_path: Path) -> None:
    """Only .csv, .parquet and .pq are replayable."""
    path = tmp_path / "quotes.json"
    path.write_text("{}")

    with pytest.raises(DataError, match=r"quotes\.json: unknown replay file type '\.json'"):
        open_replay(path, XYZ)


def test_when_a_csv_column_is_missing_then_opening_names_file_and_column(tmp_path: Path) -> None:
    """The header is checked before any row is read."""
    path = tmp_path / "q.csv"
    path.write_text("ts_ns,bid,ask,bid_size\n1,1,1,1\n")

    with pytest.raises(DataError, match=r"q\.csv:1: missing column 'ask_size'"):
        open_replay(path, XYZ)


def test_when_a_parquet_column_is_missing_then_opening_names_file_and_column(
    tmp_path: Path,
) -> None:
    """Bars need a volume column."""
    path = tmp_path / "b.parquet"
    pq.write_table(pa.table({c: [1] for c in ("ts_ns", "open", "high", "low", "close")}), path)

    with pytest.raises(DataError, match=r"b\.parquet: missing column 'volume'"):
        open_replay(path, XYZ, kind="bars")


def test_when_a_csv_column_appears_twice_then_opening_fails(tmp_path: Path) -> None:
    """Which of two 'bid' columns to use is ambiguous."""
    path = tmp_path / "q.csv"
    path.write_text("ts_ns,bid,ask,bid_size,ask_size,bid\n")

    with pytest.raises(DataError, match="column 'bid' appears 2 times"):
        open_replay(path, XYZ)


def test_when_arguments_are_invalid_then_open_replay_raises_value_error(tmp_path: Path) -> None:
    """Programming errors are not data errors."""
    path = write_csv(tmp_path / "q.csv", "")

    with pytest.raises(ValueError, match="on_bad_row"):
        open_replay(path, XYZ, on_bad_row="ignore")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="bar_interval_ns"):
        open_replay(path, XYZ, kind="bars", bar_interval_ns=0)


def test_when_iterated_twice_then_each_pass_starts_over_with_fresh_stats(tmp_path: Path) -> None:
    """Stats describe the latest pass only."""
    source = open_replay(
        write_csv(tmp_path / "q.csv", "1,1,2,1,1\n2,x,2,1,1\n3,1,2,1,1\n"), XYZ, on_bad_row="skip"
    )

    first = list(source)
    second = list(source)

    assert first == second
    assert len(first) == 2
    assert source.stats.rows_read == 3
    assert source.stats.rows_skipped == 1


def test_when_a_pass_is_abandoned_then_its_worker_thread_ends(tmp_path: Path) -> None:
    """Breaking out of a pass early leaves no prefetch thread behind."""
    body = "".join(f"{i},1,2,1,1\n" for i in range(200_000))
    source = open_replay(write_csv(tmp_path / "q.csv", body), XYZ)
    before = threading.active_count()

    rows = iter(source)
    taken = list(islice(rows, 5))
    del rows

    assert [q.ts_ns for q in taken] == [0, 1, 2, 3, 4]
    assert threading.active_count() == before


def test_when_asked_then_first_ts_and_row_count_are_cheap(tmp_path: Path) -> None:
    """first_ts_ns skips leading bad rows; Parquet knows its row count, CSV does not."""
    csv = open_replay(
        write_csv(tmp_path / "q.csv", "x,1,2,1,1\n7,1,2,1,1\n"), XYZ, on_bad_row="skip"
    )
    parquet_path = tmp_path / "q.parquet"
    pq.write_table(
        pa.table(
            {
                "ts_ns": [5, 6],
                "bid": [1.0, 1.0],
                "ask": [2.0, 2.0],
                "bid_size": [1, 1],
                "ask_size": [1, 1],
            }
        ),
        parquet_path,
    )
    parquet = open_replay(parquet_path, XYZ)

    assert csv.first_ts_ns == 7
    assert csv.n_rows is None
    assert csv.stats.rows_read == 0
    assert parquet.first_ts_ns == 5
    assert parquet.n_rows == 2
    assert parquet.path == parquet_path


def test_when_opened_from_config_then_kind_policy_and_interval_apply(tmp_path: Path) -> None:
    """A relative config path is resolved against base_dir; bar_interval_s becomes ns."""
    (tmp_path / "b.csv").write_text("ts_ns,open,high,low,close,volume\n60,1,2,1,2,3\n")
    config = ReplaySourceConfig(path="b.csv", instrument="XYZ.SIM", kind="bars", bar_interval_s=300)

    source = replay_from_config(config, XYZ, base_dir=tmp_path)

    assert list(source) == [Bar("XYZ.SIM", 60, 100, 200, 100, 200, 3, 300_000_000_000)]


def test_when_config_names_another_instrument_then_it_is_a_config_error(tmp_path: Path) -> None:
    """The instrument given must be the one the config names."""
    config = ReplaySourceConfig(path="b.csv", instrument="ABC.SIM")

    with pytest.raises(ConfigError, match=r"ABC\.SIM"):
        replay_from_config(config, XYZ, base_dir=tmp_path)


def test_when_reading_the_shared_benchmark_then_csv_and_parquet_agree(
    bench_quotes_100k: dict[str, Path],
) -> None:
    """The 100k benchmark files give the same quotes from either format."""
    from_parquet = open_replay(bench_quotes_100k["parquet"], XYZ)
    from_csv = open_replay(bench_quotes_100k["csv"], XYZ)

    pairs = zip(from_parquet, from_csv, strict=True)
    mismatches = sum(1 for a, b in pairs if a != b)

    assert mismatches == 0
    assert from_parquet.stats.rows_read == from_csv.stats.rows_read == 100_000
    assert from_parquet.first_ts_ns == 1_704_205_800_000_000_000
    first = next(iter(from_parquet))
    assert first == QuoteTick("XYZ.SIM", 1_704_205_800_000_000_000, 10000, 10001, 100, 100)
