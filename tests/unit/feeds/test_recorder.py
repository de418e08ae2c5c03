"""The market data recorder: taps keep what passes, the writer partitions by date and
instrument, rotates at ``max_rows_per_file``, stamps the schema, drops (and counts) past
``max_buffered_rows`` without ever blocking, and writes everything on stop; a recording
reads back exactly, and refuses a precision or schema it was not written with."""

from __future__ import annotations

import asyncio
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from bastion.clock import SimClock
from bastion.config import InstrumentConfig
from bastion.errors import DataError
from bastion.feeds.recorder import (
    SCHEMA_VERSION,
    SCHEMAS,
    Recorder,
    RecordingConfig,
    read_quotes,
)
from bastion.model.data import Bar, QuoteTick
from bastion.model.instruments import Instrument

DAY_NS = 86_400_000_000_000
T0 = 1_796_601_600_000_000_000  # 2026-12-07T00:00:00Z
X, Y = "XYZ.SIM", "A/B.SIM"  # Y needs its partition directory encoded


def instrument(iid: str, tick: str = "0.01", lot: str = "1") -> Instrument:
    return InstrumentConfig(id=iid, tick_size=Decimal(tick), lot_size=Decimal(lot)).to_instrument()


INSTRUMENTS = {X: instrument(X), Y: instrument(Y, "0.0001", "0.001")}


class Collect:
    """The sink behind a tap: what reached it."""

    def __init__(self) -> None:
        self.quotes: list[QuoteTick] = []
        self.bars: list[Bar] = []

    def on_quote(self, quote: QuoteTick) -> None:
        self.quotes.append(quote)

    def on_bar(self, bar: Bar) -> None:
        self.bars.append(bar)


def recorder(root: Path, **settings_: object) -> Recorder:
    config = RecordingConfig(path=str(root), **settings_)  # type: ignore[arg-type]
    return Recorder(config, root=root, instruments=INSTRUMENTS, clock=SimClock(T0))


def quote(iid: str, ts: int, n: int = 0) -> QuoteTick:
    return QuoteTick(iid, ts, 10_000 + n, 10_002 + n, 5 + n, 7, n)


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# -- taps and partitions -------------------------------------------------------------------


def test_when_quotes_pass_a_tap_then_they_reach_the_sink_unchanged(tmp_path: Path) -> None:
    """A tap is transparent: every quote and bar goes on, in order, the same object."""
    rec = recorder(tmp_path)
    sink = Collect()
    tap = rec.raw("a", sink)
    sent = [quote(X, T0 + i, i) for i in range(3)]
    bar = Bar(X, T0, 1, 2, 1, 2, 10, 60)
    for q in sent:
        tap.on_quote(q)
    tap.on_bar(bar)
    assert sink.quotes == sent and all(a is b for a, b in zip(sink.quotes, sent, strict=True))
    assert sink.bars == [bar]


def test_when_a_stream_is_not_recorded_then_its_tap_is_the_sink_itself(tmp_path: Path) -> None:
    """Streams left out add nothing to the path."""
    rec = recorder(tmp_path, streams=["delivered"])
    sink = Collect()
    assert rec.raw("a", sink) is sink
    assert rec.verdicts("a") is None
    assert rec.delivered(sink) is not sink


def test_when_data_spans_dates_and_instruments_then_each_has_its_hive_partition(
    tmp_path: Path,
) -> None:
    """stream/date=YYYY-MM-DD/instrument=ID/part-*.parquet, the id percent-encoded; pyarrow's
    Hive partitioning reads the keys back."""
    rec = recorder(tmp_path)
    rec.start()
    tap = rec.delivered(Collect())
    for q in [quote(X, T0 + 1), quote(Y, T0 + 2), quote(X, T0 + DAY_NS + 3), quote(Y, T0 + 4)]:
        tap.on_quote(q)
    rec.close()
    dirs = sorted({str(Path(f).parent) for f in files(tmp_path)})
    assert dirs == [
        "delivered/date=2026-12-07/instrument=A%2FB.SIM",
        "delivered/date=2026-12-07/instrument=XYZ.SIM",
        "delivered/date=2026-12-08/instrument=XYZ.SIM",
    ]
    table = ds.dataset(tmp_path / "delivered", format="parquet", partitioning="hive").to_table()
    keys = sorted(zip(table["date"].to_pylist(), table["instrument"].to_pylist(), strict=True))
    assert keys == [
        ("2026-12-07", Y),
        ("2026-12-07", Y),
        ("2026-12-07", X),
        ("2026-12-08", X),
    ]


def test_when_a_file_would_pass_max_rows_then_the_partition_is_rotated(tmp_path: Path) -> None:
    """250 rows at 100 per file: three files of 100, 100 and 50 rows, in order."""
    rec = recorder(tmp_path, max_rows_per_file=100, streams=["delivered"])
    rec.start()
    tap = rec.delivered(Collect())
    sent = [quote(X, T0 + i, i) for i in range(250)]
    for q in sent:
        tap.on_quote(q)
    rec.close()
    parts = sorted((tmp_path / "delivered").rglob("part-*.parquet"))
    assert [pq.ParquetFile(p).metadata.num_rows for p in parts] == [100, 100, 50]
    assert list(read_quotes(tmp_path, INSTRUMENTS)) == sent


def test_when_written_then_files_carry_exact_integers_schema_version_and_precision(
    tmp_path: Path,
) -> None:
    """int64 prices and sizes (no floats), the stream's columns, and the metadata a reader
    needs: schema version, stream, instrument, precisions, session."""
    rec = recorder(tmp_path)
    rec.start()
    rec.raw("feed-a", rec.delivered(Collect())).on_quote(quote(Y, T0 + 5, 1))
    rec.close()
    for stream in ("raw", "delivered"):
        (path,) = (tmp_path / stream).rglob("part-*.parquet")
        schema = pq.read_schema(path)
        assert schema.remove_metadata() == SCHEMAS[stream]
        assert all(
            not pa.types.is_floating(f.type) for f in schema if f.name not in ("feed", "kind")
        )
        meta = {k.decode(): v.decode() for k, v in schema.metadata.items()}
        assert meta == {
            "bastion.schema_version": SCHEMA_VERSION,
            "bastion.stream": stream,
            "bastion.instrument": Y,
            "bastion.session_ns": str(T0),
            "bastion.price_precision": "4",
            "bastion.size_precision": "3",
        }
    row = pq.read_table(next((tmp_path / "raw").rglob("part-*.parquet"))).to_pylist()
    assert row == [
        {
            "rec": 0,
            "feed": "feed-a",
            "ts_ns": T0 + 5,
            "seq": 1,
            "bid": 10_001,
            "ask": 10_003,
            "bid_size": 6,
            "ask_size": 7,
        }
    ]


# -- bounded buffer, flushes, stop ---------------------------------------------------------


def test_when_the_buffer_is_full_then_batches_are_dropped_counted_and_logged(
    tmp_path: Path,
) -> None:
    """With the writer stalled (not started), handing over never blocks: past
    max_buffered_rows whole batches are dropped, counted exactly and logged once per
    interval; what was kept is written once the writer runs."""
    rec = recorder(tmp_path, max_buffered_rows=2_500, streams=["delivered"])
    tap = rec.delivered(Collect())
    with capture_logs() as logs:
        for i in range(5_000):  # batches of 1024: two fit, the third would pass 2,500
            tap.on_quote(quote(X, T0 + i))
        rec.flush()
    stats = rec.stats()
    assert stats.received == 5_000
    assert stats.buffered == 2_048 and stats.dropped == 5_000 - 2_048
    dropped_logs = [e for e in logs if e["event"] == "recording_dropped"]
    assert len(dropped_logs) == 1 and dropped_logs[0]["rows"] == 1_024
    rec.start()
    rec.close()
    stats = rec.stats()
    assert (stats.written, stats.dropped, stats.buffered) == (2_048, 5_000 - 2_048, 0)
    assert len(read_quotes(tmp_path, INSTRUMENTS)) == 2_048


def test_when_stopped_then_records_below_a_batch_are_written(tmp_path: Path) -> None:
    """Stop writes what the taps still hold: nothing received is left behind."""
    rec = recorder(tmp_path, streams=["delivered"], flush_interval_ms=3_600_000)
    rec.start()
    tap = rec.delivered(Collect())
    sent = [quote(X, T0 + i, i) for i in range(10)]
    for q in sent:
        tap.on_quote(q)
    assert files(tmp_path) == []
    rec.close()
    assert list(read_quotes(tmp_path, INSTRUMENTS)) == sent
    assert rec.stats().written == 10


def test_when_the_flush_interval_passes_then_closed_files_are_on_disk_before_stop(
    tmp_path: Path,
) -> None:
    """``run`` flushes on its interval: the files are complete Parquet (a crash now loses
    nothing written), and no temporary file is left."""
    rec = recorder(tmp_path, streams=["delivered"], flush_interval_ms=10)
    rec.start()
    tap = rec.delivered(Collect())
    sent = [quote(X, T0 + i, i) for i in range(5)]

    async def session() -> None:
        flusher = asyncio.get_running_loop().create_task(rec.run())
        for q in sent:
            tap.on_quote(q)
        deadline = time.monotonic() + 5.0  # the interval's flush, polled, not slept on
        while not [f for f in files(tmp_path) if f.endswith(".parquet")]:
            assert time.monotonic() < deadline, "no flush within 5 s"
            await asyncio.sleep(0.005)
        flusher.cancel()

    asyncio.run(session())
    assert rec.writer.wait_flushed(5.0)
    assert not [f for f in files(tmp_path) if Path(f).name.startswith(".")]
    assert list(read_quotes(tmp_path, INSTRUMENTS)) == sent  # before close
    rec.close()


# -- reading back --------------------------------------------------------------------------


def test_when_the_precision_changed_then_reading_is_refused(tmp_path: Path) -> None:
    """A price recorded at 2 decimals read at 3 would be off by ten: a DataError names it."""
    rec = recorder(tmp_path, streams=["delivered"])
    rec.start()
    rec.delivered(Collect()).on_quote(quote(X, T0))
    rec.close()
    finer = {X: instrument(X, "0.001")}
    with pytest.raises(DataError, match=r"price_precision '2', but XYZ\.SIM's is '3'"):
        read_quotes(tmp_path, finer)


def test_when_the_schema_version_is_unknown_then_reading_is_refused(tmp_path: Path) -> None:
    """A file of another schema version is not guessed at."""
    directory = tmp_path / "delivered" / "date=2026-12-07" / "instrument=XYZ.SIM"
    directory.mkdir(parents=True)
    table = pa.table({n: pa.array([1], pa.int64()) for n in SCHEMAS["delivered"].names})
    pq.write_table(
        table.replace_schema_metadata({b"bastion.schema_version": b"99"}),
        directory / "part-1.parquet",
    )
    with pytest.raises(DataError, match="schema version '99'"):
        read_quotes(tmp_path, INSTRUMENTS)


def test_when_raw_is_read_for_one_feed_then_only_its_quotes_come_back(tmp_path: Path) -> None:
    """The raw stream keeps each feed's quotes apart (column ``feed``)."""
    rec = recorder(tmp_path, streams=["raw"])
    rec.start()
    a, b = rec.raw("a", Collect()), rec.raw("b", Collect())
    a.on_quote(quote(X, T0 + 1, 1))
    b.on_quote(quote(X, T0 + 2, 2))
    a.on_quote(quote(X, T0 + 3, 3))
    rec.close()
    got = read_quotes(tmp_path, INSTRUMENTS, stream="raw", feed="a")
    assert [q.seq for q in got] == [1, 3]
    assert len(read_quotes(tmp_path, INSTRUMENTS, stream="raw")) == 3


_prices = st.integers(min_value=1, max_value=2**62)
_sizes = st.integers(min_value=1, max_value=2**63 - 1)


@st.composite
def valid_quote(draw: st.DrawFn) -> QuoteTick:
    bid = draw(_prices)
    ask = bid + draw(st.integers(min_value=1, max_value=2**62))
    return QuoteTick(
        draw(st.sampled_from([X, Y])),
        draw(st.integers(min_value=1, max_value=T0 + 5 * DAY_NS)),
        bid,
        ask,
        draw(_sizes),
        draw(_sizes),
        draw(st.integers(min_value=0, max_value=2**63 - 1)),
    )


@settings(max_examples=40, deadline=None)
@given(
    quotes=st.lists(valid_quote(), max_size=60),
    max_rows=st.integers(min_value=1, max_value=50),
)
def test_when_any_valid_quotes_are_recorded_then_they_read_back_exactly(
    quotes: list[QuoteTick], max_rows: int
) -> None:
    """Any sequence of valid quotes, across instruments, dates and file rotations, comes
    back field for field, in the order received (then by time, stably)."""
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        rec = recorder(root, max_rows_per_file=max_rows)
        rec.start()
        tap = rec.raw("a", rec.delivered(Collect()))
        for q in quotes:
            tap.on_quote(q)
        rec.close()
        expected = sorted(quotes, key=lambda q: q.ts_ns)
        for stream in ("raw", "delivered"):
            got = list(read_quotes(root, INSTRUMENTS, stream=stream)) if quotes else []
            assert [msgspec.structs.astuple(q) for q in got] == [
                msgspec.structs.astuple(q) for q in expected
            ]


def test_when_a_write_fails_then_its_rows_are_counted_and_recording_goes_on(
    tmp_path: Path,
) -> None:
    """A partition that cannot be written (here: the recording's path is a file) is
    logged and counted as failed; the buffer is freed, the node never sees an error."""
    blocked = tmp_path / "blocked"
    blocked.write_text("not a directory")
    rec = recorder(blocked, streams=["delivered"])
    rec.start()
    tap = rec.delivered(Collect())
    with capture_logs() as logs:
        for i in range(3):
            tap.on_quote(quote(X, T0 + i))
        rec.close()
    stats = rec.stats()
    assert (stats.failed, stats.written, stats.buffered) == (3, 0, 0)
    assert [e["rows"] for e in logs if e["event"] == "recording_write_failed"] == [3]
