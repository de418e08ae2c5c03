"""Property tests: valid quotes round-trip exactly; no input makes the reader crash."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from unittest import mock

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.data import _csvfile, open_replay
from bastion.errors import DataError
from bastion.model.data import QuoteTick
from bastion.model.instruments import Instrument

PROPERTY_SETTINGS = settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
INSTRUMENTS = [
    Instrument(
        id="XYZ.SIM",
        venue="SIM",
        tick_size=Decimal(tick),
        lot_size=Decimal(lot),
        quote_currency="USD",
    )
    for tick, lot in [("0.01", "1"), ("0.25", "10"), ("0.0001", "0.001"), ("1", "0.5")]
]
HEADER = "ts_ns,bid,ask,bid_size,ask_size"


@st.composite
def valid_quotes(draw: st.DrawFn) -> tuple[Instrument, list[QuoteTick]]:
    inst = draw(st.sampled_from(INSTRUMENTS))
    n = draw(st.integers(0, 30))
    ts = draw(st.integers(-(2**62), 2**62))
    quotes = []
    for _ in range(n):
        ts += draw(st.integers(0, 10**12))
        bid = draw(st.integers(1, 10**8)) * inst.tick_raw
        ask = bid + draw(st.integers(0, 100)) * inst.tick_raw
        sizes = [draw(st.integers(0, 10**6)) * inst.lot_raw for _ in range(2)]
        quotes.append(QuoteTick(inst.id, ts, bid, ask, *sizes))
    return inst, quotes


def write_csv(path: Path, inst: Instrument, quotes: list[QuoteTick]) -> None:
    lines = [HEADER]
    for q in quotes:
        cells = [inst.price(q.bid), inst.price(q.ask), inst.size(q.bid_size), inst.size(q.ask_size)]
        lines.append(",".join([str(q.ts_ns), *(str(c) for c in cells)]))
    path.write_text("\n".join(lines) + "\n")


def write_parquet(path: Path, inst: Instrument, quotes: list[QuoteTick]) -> None:
    """Prices and sizes as doubles: the nearest float to each decimal value."""
    table = pa.table(
        {
            "ts_ns": pa.array([q.ts_ns for q in quotes], pa.int64()),
            "bid": pa.array([float(inst.price(q.bid)) for q in quotes], pa.float64()),
            "ask": pa.array([float(inst.price(q.ask)) for q in quotes], pa.float64()),
            "bid_size": pa.array([float(inst.size(q.bid_size)) for q in quotes], pa.float64()),
            "ask_size": pa.array([float(inst.size(q.ask_size)) for q in quotes], pa.float64()),
        }
    )
    pq.write_table(table, path)


@contextmanager
def csv_blocks_of(size: int) -> Iterator[None]:
    with mock.patch.object(_csvfile, "BLOCK_BYTES", size):
        yield


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@PROPERTY_SETTINGS
@given(case=valid_quotes(), block_bytes=st.sampled_from([16, 100, 1 << 21]))
def test_when_quotes_are_valid_then_they_read_back_identical(
    tmp_path_factory: pytest.TempPathFactory,
    suffix: str,
    case: tuple[Instrument, list[QuoteTick]],
    block_bytes: int,
) -> None:
    """Any valid quote series written to CSV or Parquet reads back exactly."""
    inst, quotes = case
    path = tmp_path_factory.mktemp("roundtrip") / f"quotes{suffix}"
    (write_csv if suffix == ".csv" else write_parquet)(path, inst, quotes)

    with csv_blocks_of(block_bytes):
        source = open_replay(path, inst)
        rows = list(source)

    assert rows == quotes
    assert source.stats.rows_read == len(quotes)


_CSV_ALPHABET = '0123456789,.,,\n\n\r-+eE naifNA"\t x\x00é'
_CELL = st.one_of(
    st.integers(-5, 10**6).map(str),
    st.decimals(-1000, 1000, places=3, allow_nan=False).map(str),
    st.sampled_from(["", "nan", "inf", "-inf", "1e400", "0.1", "abc", '"1"', " 7 ", "0x10"]),
    st.text(_CSV_ALPHABET, max_size=6),
)
_LINE = st.one_of(
    st.lists(_CELL, min_size=5, max_size=5).map(",".join),
    st.lists(_CELL, min_size=0, max_size=7).map(",".join),
    st.text(_CSV_ALPHABET, max_size=30),
)
_LINE_END = st.sampled_from(["\n", "\r\n", "\r"])
_CSV_BODY = st.lists(st.tuples(_LINE, _LINE_END).map("".join), max_size=25).map("".join)
_FUZZ_FILES = st.one_of(
    st.binary(max_size=200),
    st.text(_CSV_ALPHABET, max_size=200).map(str.encode),
    _CSV_BODY.map(lambda body: (HEADER + "\n" + body).encode("utf-8")),
    st.tuples(_CSV_BODY, st.binary(max_size=20)).map(
        lambda parts: (HEADER + "\n" + parts[0]).encode("utf-8") + parts[1]
    ),
)


@PROPERTY_SETTINGS
@given(data=_FUZZ_FILES, block_bytes=st.sampled_from([8, 64, 1 << 21]))
def test_when_a_csv_file_is_arbitrary_then_fail_mode_raises_only_data_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, block_bytes: int
) -> None:
    """Whatever the bytes, the reader either delivers quotes or raises DataError."""
    path = tmp_path_factory.mktemp("fuzz") / "quotes.csv"
    path.write_bytes(data)

    with csv_blocks_of(block_bytes):
        try:
            for q in open_replay(path, INSTRUMENTS[0]):
                assert isinstance(q, QuoteTick)
        except DataError:
            pass


@PROPERTY_SETTINGS
@given(data=_FUZZ_FILES, block_bytes=st.sampled_from([8, 64, 1 << 21]))
def test_when_a_csv_file_is_arbitrary_then_skip_mode_accounts_for_every_row(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, block_bytes: int
) -> None:
    """Skip mode only fails on a bad header; rows read = rows delivered + rows skipped."""
    inst = INSTRUMENTS[0]
    path = tmp_path_factory.mktemp("fuzz") / "quotes.csv"
    path.write_bytes(data)

    with csv_blocks_of(block_bytes):
        try:
            source = open_replay(path, inst, on_bad_row="skip")
        except DataError as e:
            assert ":1: " in str(e)  # only the header may be refused
            return
        rows = list(source)

    stats = source.stats
    assert stats.rows_read == len(rows) + stats.rows_skipped
    assert stats.rows_skipped == sum(stats.skipped_by_reason.values())
    for previous, q in pairwise(rows):
        assert previous.ts_ns <= q.ts_ns
    for q in rows:
        assert 0 < q.bid <= q.ask
        assert q.bid_size >= 0
        assert q.ask_size >= 0
