"""Reading a recording back: the quotes of one stream as they were received.

``read_quotes`` gathers the files of ``raw`` or ``delivered`` for the instruments asked,
checks each file's schema version and that the instrument's precisions are the ones
configured now (a price recorded at 2 decimals read at 3 would be off by ten), and
returns the quotes in the order they were received: by session, then ``rec``; then
stably by timestamp (a no-op for ``delivered``, whose time never goes backwards; it puts
a raw stream's late quotes where a backtest's clock can take them).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bastion.errors import DataError
from bastion.feeds.recorder.config import Stream
from bastion.feeds.recorder.schema import SCHEMA_VERSION
from bastion.model.data import QuoteTick
from bastion.model.instruments import Instrument

_COLUMNS = ["rec", "ts_ns", "bid", "ask", "bid_size", "ask_size", "seq"]


@dataclass(slots=True)
class RecordingStats:
    """What a pass read (the backtest reports ``skipped_by_reason``: nothing is skipped)."""

    files: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)


class RecordedQuotes:
    """The quotes of one stream of a recording, in the order received; iterate to replay."""

    def __init__(self, quotes: list[QuoteTick], files: int) -> None:
        self._quotes = quotes
        self.n_rows: int | None = len(quotes)
        self.stats = RecordingStats(files=files)

    def __iter__(self) -> Iterator[QuoteTick]:
        return iter(self._quotes)

    def __len__(self) -> int:
        return len(self._quotes)


def partition_files(root: Path, stream: Stream, instrument_id: str) -> list[Path]:
    """The files of one instrument's partitions of ``stream``, by date then name."""
    found = []
    for directory in sorted((root / stream).glob("date=*/instrument=*")):
        if unquote(directory.name.partition("=")[2]) == instrument_id:
            found += sorted(directory.glob("part-*.parquet"))
    return found


def read_quotes(
    root: Path,
    instruments: Mapping[str, Instrument],
    *,
    stream: Stream = "delivered",
    feed: str = "",
) -> RecordedQuotes:
    """The quotes of ``instruments`` in ``stream`` under ``root`` (``raw``: of feed ``feed``
    only, when given). Raises ``DataError`` naming the file on a bad one."""
    if stream == "verdicts":
        raise ValueError("verdicts are not quotes: read them with pyarrow")
    if not (root / stream).is_dir():
        raise DataError(f"{root}: no '{stream}' stream recorded here")
    pieces: list[tuple[int, np.ndarray[Any, Any], list[QuoteTick]]] = []
    files = 0
    for iid, instrument in sorted(instruments.items()):
        for path in partition_files(root, stream, iid):
            files += 1
            session, table = _read(path, stream, instrument)
            if feed and stream == "raw":
                table = table.filter(pc.equal(table["feed"], feed))
            if table.num_rows:
                pieces.append((session, table["rec"].to_numpy(), _quotes(iid, table)))
    # received order: session, then rec (numbered per stream and session)
    quotes: list[QuoteTick] = []
    by_session: dict[int, list[tuple[np.ndarray[Any, Any], list[QuoteTick]]]] = {}
    for session, recs, items in pieces:
        by_session.setdefault(session, []).append((recs, items))
    for session in sorted(by_session):
        recs = np.concatenate([r for r, _ in by_session[session]])
        items = [q for _, chunk in by_session[session] for q in chunk]
        quotes += [items[i] for i in np.argsort(recs, kind="stable")]
    quotes.sort(key=_ts)  # stable: equal timestamps keep the received order
    return RecordedQuotes(quotes, files)


def _ts(quote: QuoteTick) -> int:
    return quote.ts_ns


def _read(path: Path, stream: Stream, instrument: Instrument) -> tuple[int, pa.Table]:
    try:
        file = pq.ParquetFile(path)
        meta = {k.decode(): v.decode() for k, v in (file.schema_arrow.metadata or {}).items()}
        columns = _COLUMNS + (["feed"] if stream == "raw" else [])
        table = file.read(columns=columns, use_threads=False)
    except (pa.ArrowException, OSError, KeyError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable recording file: {e}") from e
    version = meta.get("bastion.schema_version")
    if version != SCHEMA_VERSION:
        raise DataError(
            f"{path}: recording schema version {version!r}, this bastion reads {SCHEMA_VERSION!r}"
        )
    for key, want in (
        ("instrument", instrument.id),
        ("price_precision", str(instrument.price_precision)),
        ("size_precision", str(instrument.size_precision)),
    ):
        got = meta.get(f"bastion.{key}")
        if got != want:
            raise DataError(
                f"{path}: recorded {key} {got!r}, but {instrument.id}'s is {want!r} now "
                "(prices and sizes are stored as raw integers of the recorded precision)"
            )
    try:
        session = int(meta["bastion.session_ns"])
    except (KeyError, ValueError) as e:
        raise DataError(f"{path}: no session in the file's metadata") from e
    for name in _COLUMNS:
        if table[name].null_count:
            raise DataError(f"{path}: column '{name}' has empty cells")
    return session, table


def _quotes(instrument_id: str, table: pa.Table) -> list[QuoteTick]:
    def view(name: str) -> memoryview:
        return np.ascontiguousarray(table[name].to_numpy(), dtype=np.int64).data

    return list(
        map(
            QuoteTick,
            repeat(instrument_id),
            view("ts_ns"),
            view("bid"),
            view("ask"),
            view("bid_size"),
            view("ask_size"),
            view("seq"),
        )
    )
