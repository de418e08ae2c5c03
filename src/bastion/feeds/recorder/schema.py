"""What a recording's Parquet files hold: one schema per stream, the file metadata, and the
conversion of buffered records to Arrow columns (on the writer's thread).

Prices and sizes are the raw integers of the instrument's fixed-point scale (``int64``),
never floats; each file's metadata carries the instrument's ``price_precision`` and
``size_precision`` (so ``bid / 10**price_precision`` is the price), the stream and
``schema_version``. Partition keys are directories, Hive-style:
``STREAM/date=YYYY-MM-DD/instrument=ID/part-SESSION-N.parquet`` (the date of the data's
timestamp, UTC; the instrument id percent-encoded). ``rec`` numbers a stream's records
in the order they were received within one session (the ``session_ns`` of the file
name and metadata): with it a reader restores the exact order of delivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any, Final

import numpy as np
import pyarrow as pa

from bastion.feeds.recorder.config import Stream
from bastion.feeds.validation.rules import ACTIONS, REASONS
from bastion.model.data import QuoteTick, TradeTick
from bastion.model.instruments import Instrument

SCHEMA_VERSION: Final = "1"
NS_PER_DAY: Final = 86_400_000_000_000
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

# the partition keys travel with a batch until it is split into files
INSTRUMENT: Final = "instrument"
DAY: Final = "day"

_QUOTE = [
    ("ts_ns", pa.int64()),
    ("seq", pa.int64()),
    ("bid", pa.int64()),
    ("ask", pa.int64()),
    ("bid_size", pa.int64()),
    ("ask_size", pa.int64()),
]
_VERDICT_EXTRA = [
    ("recv_ns", pa.int64()),
    ("kind", pa.string()),
    ("reason", pa.string()),
    ("action", pa.string()),
    ("price", pa.int64()),
    ("size", pa.int64()),
]
SCHEMAS: Final[dict[Stream, pa.Schema]] = {
    "raw": pa.schema([("rec", pa.int64()), ("feed", pa.string()), *_QUOTE]),
    "delivered": pa.schema([("rec", pa.int64()), *_QUOTE]),
    "verdicts": pa.schema([("rec", pa.int64()), ("feed", pa.string()), *_QUOTE, *_VERDICT_EXTRA]),
}
"""The columns of each stream's files. In ``verdicts`` a quote fills ``bid`` to
``ask_size`` and a trade ``price`` and ``size`` (the others are null)."""

_QUOTE_FIELDS = attrgetter("instrument_id", "ts_ns", "seq", "bid", "ask", "bid_size", "ask_size")


def file_metadata(
    stream: Stream, instrument: Instrument | None, instrument_id: str, session_ns: int
) -> dict[bytes, bytes]:
    """The key/value metadata of one file (``bastion.`` keys, text values)."""
    meta = {
        "schema_version": SCHEMA_VERSION,
        "stream": stream,
        "instrument": instrument_id,
        "session_ns": str(session_ns),
    }
    if instrument is not None:
        meta["price_precision"] = str(instrument.price_precision)
        meta["size_precision"] = str(instrument.size_precision)
    return {f"bastion.{k}".encode(): v.encode() for k, v in meta.items()}


def quote_table(stream: Stream, feed: str, quotes: Sequence[QuoteTick], first_rec: int) -> pa.Table:
    """Buffered quotes as a table of ``stream``'s columns plus the partition keys."""
    iid, ts, seq, bid, ask, bid_size, ask_size = zip(*map(_QUOTE_FIELDS, quotes), strict=True)
    columns: dict[str, Any] = {"rec": _recs(first_rec, len(quotes))}
    if stream == "raw":
        columns["feed"] = pa.array([feed] * len(quotes), pa.string())
    ts_array = _int64(ts)
    columns.update(
        ts_ns=ts_array,
        seq=_int64(seq),
        bid=_int64(bid),
        ask=_int64(ask),
        bid_size=_int64(bid_size),
        ask_size=_int64(ask_size),
    )
    return _with_keys(columns, iid, ts_array)


def verdict_table(
    feed: str, verdicts: Sequence[tuple[str, int, int, int, object]], first_rec: int
) -> pa.Table:
    """Buffered verdicts ``(instrument_id, reason, action, now_ns, data)`` as a table."""
    n = len(verdicts)
    iid = [v[0] for v in verdicts]
    quotes = [v[4] if type(v[4]) is QuoteTick else None for v in verdicts]
    trades = [v[4] if type(v[4]) is TradeTick else None for v in verdicts]

    def of(items: list[Any], name: str) -> pa.Array:
        return _int64([None if x is None else getattr(x, name) for x in items])

    data = [v[4] for v in verdicts]
    ts_array = _int64([getattr(d, "ts_ns", None) for d in data])
    columns: dict[str, Any] = {
        "rec": _recs(first_rec, n),
        "feed": pa.array([feed] * n, pa.string()),
        "ts_ns": ts_array,
        "seq": _int64([getattr(d, "seq", None) for d in data]),
        "bid": of(quotes, "bid"),
        "ask": of(quotes, "ask"),
        "bid_size": of(quotes, "bid_size"),
        "ask_size": of(quotes, "ask_size"),
        "recv_ns": _int64([v[3] for v in verdicts]),
        "kind": pa.array(["quote" if q is not None else "trade" for q in quotes], pa.string()),
        "reason": pa.array([REASONS[v[1]] for v in verdicts], pa.string()),
        "action": pa.array([ACTIONS[v[2]] for v in verdicts], pa.string()),
        "price": of(trades, "price"),
        "size": of(trades, "size"),
    }
    return _with_keys(columns, iid, ts_array)


def _with_keys(columns: dict[str, Any], iid: Sequence[str], ts: pa.Array) -> pa.Table:
    # a timestamp that is missing (null) files under day 0 (1970-01-01)
    days = np.floor_divide(ts.fill_null(0).to_numpy(), NS_PER_DAY)
    columns[INSTRUMENT] = pa.array(iid, pa.string())
    columns[DAY] = pa.array(days, pa.int64())
    return pa.table(columns)


def _recs(first: int, n: int) -> pa.Array:
    return pa.array(np.arange(first, first + n, dtype=np.int64))


def _int64(values: Sequence[int | None]) -> pa.Array:
    """Exact ``int64`` column; a value out of range (bad data, recorded as received) is
    clamped to the nearest bound: it was garbage and stays visibly so."""
    try:
        return pa.array(values, pa.int64())
    except (OverflowError, pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([_clamp(v) for v in values], pa.int64())


def _clamp(value: int | None) -> int | None:
    if value is None or not isinstance(value, int):
        return None
    return min(max(value, INT64_MIN), INT64_MAX)


def date_of(day: int) -> str:
    """``YYYY-MM-DD`` of a day number (days since 1970-01-01, UTC)."""
    return str(np.datetime64(day, "D"))
