"""Replaying recorded quotes or bars from CSV or Parquet files.

``open_replay`` checks the file and its columns at once and returns a
``ReplaySource``; iterating the source streams ``QuoteTick`` or ``Bar`` objects
in file order. Files are read in chunks of tens of thousands of rows, converted
and checked with numpy on a worker thread, so memory stays bounded whatever the
file's size. What counts as a bad row is described in ``bastion.data.validate``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain, repeat
from pathlib import Path
from typing import Any, Final, Generic, Literal, Protocol, TypeVar, cast, overload

import numpy as np
import pyarrow as pa

from bastion.data._chunks import RawChunk
from bastion.data._csvfile import CsvChunks
from bastion.data._parquet import ParquetChunks
from bastion.data._prefetch import prefetched
from bastion.data.config import ReplaySourceConfig
from bastion.data.validate import CheckedChunk, ChunkChecker, Kind, fields_for
from bastion.errors import ConfigError, DataError
from bastion.model.data import Bar, QuoteTick
from bastion.model.instruments import Instrument

OnBadRow = Literal["fail", "skip"]
T = TypeVar("T", QuoteTick, Bar)

DEFAULT_BAR_INTERVAL_NS: Final = 60_000_000_000
_PARQUET_SUFFIXES: Final = (".parquet", ".pq")
_TYPED_CSV: Final = {"ts": pa.int64(), "price": pa.float64(), "size": pa.float64()}


@dataclass(slots=True)
class ReplayStats:
    """Counts for the latest pass over a replay file (reset when a pass starts).

    ``rows_read`` counts data rows taken from the file, a chunk at a time; when
    failing on a bad row it includes that row. In skip mode, after a full pass,
    ``rows_read - rows_skipped`` rows were delivered.
    """

    rows_read: int = 0
    rows_skipped: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)

    def _reset(self) -> None:
        self.rows_read = 0
        self.rows_skipped = 0
        self.skipped_by_reason.clear()

    def _add(self, chunk: CheckedChunk) -> None:
        self.rows_read += chunk.n_read
        for reason, count in chunk.skipped.items():
            self.rows_skipped += count
            self.skipped_by_reason[reason] = self.skipped_by_reason.get(reason, 0) + count


class _Chunks(Protocol):
    path: Path

    def where(self, position: int) -> str: ...

    def __iter__(self) -> Iterator[RawChunk]: ...


class ReplaySource(Generic[T]):
    """A recorded file of quotes or bars for one instrument; iterate it to replay.

    Each iteration is a fresh pass from the top of the file, and resets ``stats``;
    run one pass at a time. With ``on_bad_row="fail"`` a pass delivers the rows
    before the first bad one, then raises ``DataError`` naming the file, the line
    (CSV, header = line 1) or row (Parquet, first row = 1), the column, the value
    and the reason code. With ``"skip"`` bad rows are counted in ``stats``.
    """

    def __init__(
        self,
        chunks: _Chunks,
        instrument: Instrument,
        *,
        kind: Kind,
        on_bad_row: OnBadRow,
        bar_interval_ns: int,
        n_rows: int | None,
    ) -> None:
        self.path: Path = chunks.path
        self.instrument = instrument
        self.kind: Kind = kind
        self.on_bad_row: OnBadRow = on_bad_row
        self.bar_interval_ns = bar_interval_ns
        self.n_rows = n_rows
        """Data rows in the file if known without reading it (Parquet), else None."""
        self.stats = ReplayStats()
        self._chunks = chunks

    def __repr__(self) -> str:
        return f"ReplaySource({str(self.path)!r}, {self.instrument.id!r}, kind={self.kind!r})"

    def __iter__(self) -> Iterator[T]:
        self.stats._reset()
        # chain() pulls rows from each chunk's map() in C: no Python frame per row.
        return chain.from_iterable(self._batches(self.stats))

    @cached_property
    def first_ts_ns(self) -> int | None:
        """Timestamp of the first row a pass delivers (None for no rows).

        Reads only up to the first good row (usually one chunk). In fail mode a
        bad first row raises ``DataError`` here, as the pass itself would.
        """
        chunks = self._checked(prefetch=False)
        try:
            for chunk in chunks:
                if len(chunk.values[0]):
                    return int(chunk.values[0][0])
                if chunk.error is not None:
                    raise DataError(chunk.error)
            return None
        finally:
            chunks.close()

    def _checked(self, *, prefetch: bool) -> Generator[CheckedChunk, None, None]:
        checker = ChunkChecker(
            self.kind,
            self.instrument,
            fail=self.on_bad_row == "fail",
            where=self._chunks.where,
        )
        checked = (checker.check(chunk) for chunk in self._chunks)
        return prefetched(checked) if prefetch else checked

    def _batches(self, stats: ReplayStats) -> Generator[Iterator[T], None, None]:
        """One iterator of objects per chunk; raises after the good rows before an error."""
        build = self._builder()
        checked = self._checked(prefetch=True)
        try:
            for chunk in checked:
                stats._add(chunk)
                if len(chunk.values[0]):
                    yield build(chunk.values)
                if chunk.error is not None:
                    raise DataError(chunk.error)
        finally:
            checked.close()

    def _builder(self) -> Callable[[list[Any]], Iterator[T]]:
        """Turns raw int64 columns into objects; ``map`` over memoryviews is the fastest way."""
        instrument_id = self.instrument.id
        if self.kind == "quotes":

            def quotes(values: list[Any]) -> Iterator[T]:
                ts, bid, ask, bid_size, ask_size = (_view(v) for v in values)
                return cast(
                    Iterator[T],
                    map(QuoteTick, repeat(instrument_id), ts, bid, ask, bid_size, ask_size),
                )

            return quotes
        interval = self.bar_interval_ns

        def bars(values: list[Any]) -> Iterator[T]:
            ts, open_, high, low, close, volume = (_view(v) for v in values)
            return cast(
                Iterator[T],
                map(
                    Bar,
                    repeat(instrument_id),
                    ts,
                    open_,
                    high,
                    low,
                    close,
                    volume,
                    repeat(interval),
                ),
            )

        return bars


def _view(values: Any) -> memoryview:
    """A memoryview of int64s: iterating it makes Python ints faster than ``tolist``."""
    return np.ascontiguousarray(values, dtype=np.int64).data


@overload
def open_replay(
    path: Path | str,
    instrument: Instrument,
    *,
    kind: Literal["quotes"] = "quotes",
    on_bad_row: OnBadRow = "fail",
    bar_interval_ns: int = DEFAULT_BAR_INTERVAL_NS,
) -> ReplaySource[QuoteTick]: ...


@overload
def open_replay(
    path: Path | str,
    instrument: Instrument,
    *,
    kind: Literal["bars"],
    on_bad_row: OnBadRow = "fail",
    bar_interval_ns: int = DEFAULT_BAR_INTERVAL_NS,
) -> ReplaySource[Bar]: ...


@overload
def open_replay(
    path: Path | str,
    instrument: Instrument,
    *,
    kind: Kind,
    on_bad_row: OnBadRow = "fail",
    bar_interval_ns: int = DEFAULT_BAR_INTERVAL_NS,
) -> ReplaySource[QuoteTick] | ReplaySource[Bar]: ...


def open_replay(
    path: Path | str,
    instrument: Instrument,
    *,
    kind: Kind = "quotes",
    on_bad_row: OnBadRow = "fail",
    bar_interval_ns: int = DEFAULT_BAR_INTERVAL_NS,
) -> ReplaySource[QuoteTick] | ReplaySource[Bar]:
    """Open a recorded file of quotes or bars; its format is chosen by suffix.

    ``.csv`` or ``.parquet``/``.pq``. Quote columns: ``ts_ns,bid,ask,bid_size,ask_size``;
    bar columns: ``ts_ns,open,high,low,close,volume`` (``ts_ns`` is the bar's close).
    Other columns are ignored. Raises ``DataError`` at once if the file is missing,
    has an unknown suffix or lacks a required column.
    """
    if kind not in ("quotes", "bars"):
        raise ValueError(f"kind must be 'quotes' or 'bars', not {kind!r}")
    if on_bad_row not in ("fail", "skip"):
        raise ValueError(f"on_bad_row must be 'fail' or 'skip', not {on_bad_row!r}")
    if bar_interval_ns <= 0:
        raise ValueError(f"bar_interval_ns must be positive, not {bar_interval_ns}")
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such replay file")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    fields = fields_for(kind)
    suffix = path.suffix.lower()
    chunks: _Chunks
    n_rows: int | None = None
    if suffix == ".csv":
        chunks = CsvChunks(path, {f.name: _TYPED_CSV[f.role] for f in fields})
    elif suffix in _PARQUET_SUFFIXES:
        parquet = ParquetChunks(path, [f.name for f in fields])
        chunks, n_rows = parquet, parquet.n_rows
    else:
        raise DataError(
            f"{path}: unknown replay file type {path.suffix!r} (expected .csv, .parquet or .pq)"
        )
    if kind == "quotes":
        return ReplaySource[QuoteTick](
            chunks,
            instrument,
            kind=kind,
            on_bad_row=on_bad_row,
            bar_interval_ns=bar_interval_ns,
            n_rows=n_rows,
        )
    return ReplaySource[Bar](
        chunks,
        instrument,
        kind=kind,
        on_bad_row=on_bad_row,
        bar_interval_ns=bar_interval_ns,
        n_rows=n_rows,
    )


def replay_from_config(
    config: ReplaySourceConfig, instrument: Instrument, *, base_dir: Path | None = None
) -> ReplaySource[QuoteTick] | ReplaySource[Bar]:
    """Open the file a ``ReplaySourceConfig`` names (``~`` expanded; a relative path is
    taken from ``base_dir``, the config file's directory)."""
    if config.instrument != instrument.id:
        raise ConfigError(
            f"replay source {config.path}: instrument {config.instrument!r} "
            f"does not match {instrument.id!r}"
        )
    path = Path(config.path).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    if config.bar_interval_s <= 0:
        raise ConfigError(f"replay source {config.path}: bar_interval_s must be positive")
    return open_replay(
        path,
        instrument,
        kind=config.kind,
        on_bad_row=config.on_bad_row,
        bar_interval_ns=config.bar_interval_s * 1_000_000_000,
    )
