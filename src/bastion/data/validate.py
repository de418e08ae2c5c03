"""Checking chunks of replayed rows: exact conversion, per-row rules, and bad-row policy.

A ``ChunkChecker`` turns a ``RawChunk`` (Arrow columns straight from a file) into
raw integer columns of the good rows, vectorised with numpy. It remembers the
last good timestamp across chunks, so it checks one pass over one file.

Rules, each with the reason code reported for a bad row:

- a cell is empty (``missing_value``), not a number (``not_a_number``), NaN or
  infinite (``not_finite``), a fractional timestamp (``not_an_integer``) or too
  large for int64 once scaled (``out_of_range``);
- a price or size has more decimals than the instrument's precision
  (``price_off_scale`` / ``size_off_scale``), is not a multiple of the tick or
  lot (``price_off_tick`` / ``size_off_lot``), a price is <= 0
  (``non_positive_price``), a size is < 0 (``negative_size``);
- a quote has bid > ask (``crossed_quote``; a locked quote, bid == ask, is fine);
  a bar's high/low do not contain its open and close (``bad_ohlc``);
- a timestamp is earlier than the previous good row's (``time_went_backwards``);
- a CSV line has the wrong number of fields (``wrong_field_count``) or cannot be
  parsed at all (``unparseable_row``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np

from bastion.data._chunks import BrokenRow, RawChunk
from bastion.data._convert import (
    BoolArray,
    IntArray,
    ReasonArray,
    convert_scaled,
    convert_ts,
    first_bad,
    mark,
    overlay,
)
from bastion.data._reasons import N_REASONS, Reason
from bastion.model.instruments import Instrument

Kind = Literal["quotes", "bars"]
Role = Literal["ts", "price", "size"]

_INT64_MIN: Final = -(2**63)


@dataclass(frozen=True, slots=True)
class Field:
    """A required column and how its values are converted."""

    name: str
    role: Role


QUOTE_FIELDS: Final = (
    Field("ts_ns", "ts"),
    Field("bid", "price"),
    Field("ask", "price"),
    Field("bid_size", "size"),
    Field("ask_size", "size"),
)
BAR_FIELDS: Final = (
    Field("ts_ns", "ts"),
    Field("open", "price"),
    Field("high", "price"),
    Field("low", "price"),
    Field("close", "price"),
    Field("volume", "size"),
)


def fields_for(kind: Kind) -> tuple[Field, ...]:
    return QUOTE_FIELDS if kind == "quotes" else BAR_FIELDS


@dataclass(slots=True)
class CheckedChunk:
    """The good rows of a chunk as raw int64 columns (in ``fields_for`` order).

    ``error`` is set only when failing on bad rows: the message for the first bad
    row, which the caller raises after delivering ``values`` (the rows before it).
    """

    values: list[IntArray]
    n_read: int
    skipped: dict[str, int] = field(default_factory=dict)
    error: str | None = None


class ChunkChecker:
    """Converts and checks successive chunks of one file, in file order."""

    def __init__(
        self,
        kind: Kind,
        instrument: Instrument,
        *,
        fail: bool,
        where: Callable[[int], str],
    ) -> None:
        self._kind = kind
        self._fields = fields_for(kind)
        self._instrument = instrument
        self._fail = fail
        self._where = where
        self._last_ts = _INT64_MIN

    def check(self, chunk: RawChunk) -> CheckedChunk:
        n = chunk.n_rows
        raws: list[IntArray] = []
        column_reasons: list[ReasonArray | None] = []
        for f in self._fields:
            raw, reasons = self._convert(f, chunk)
            raws.append(raw)
            column_reasons.append(reasons)
        reasons = None
        for col in column_reasons:
            reasons = overlay(reasons, col)
        reasons = self._check_rows(raws, reasons, n)
        reasons, previous_ts = self._check_time(raws[0], reasons, n)
        if self._fail:
            return self._first_error(chunk, raws, reasons, column_reasons, previous_ts)
        return self._skip_bad(chunk, raws, reasons)

    # -- conversion and rules -------------------------------------------------

    def _convert(self, f: Field, chunk: RawChunk) -> tuple[IntArray, ReasonArray | None]:
        arr = chunk.columns[f.name]
        n = chunk.n_rows
        inst = self._instrument
        if f.role == "ts":
            return convert_ts(arr)
        if f.role == "price":
            raw, reasons = convert_scaled(
                arr, inst.price_precision, off_scale=Reason.PRICE_OFF_SCALE
            )
            reasons = _flag(reasons, n, raw <= 0, Reason.NON_POSITIVE_PRICE)
            if inst.tick_raw > 1:
                reasons = _flag(reasons, n, raw % inst.tick_raw != 0, Reason.PRICE_OFF_TICK)
            return raw, reasons
        raw, reasons = convert_scaled(arr, inst.size_precision, off_scale=Reason.SIZE_OFF_SCALE)
        reasons = _flag(reasons, n, raw < 0, Reason.NEGATIVE_SIZE)
        if inst.lot_raw > 1:
            reasons = _flag(reasons, n, raw % inst.lot_raw != 0, Reason.SIZE_OFF_LOT)
        return raw, reasons

    def _check_rows(
        self, raws: list[IntArray], reasons: ReasonArray | None, n: int
    ) -> ReasonArray | None:
        if self._kind == "quotes":
            return _flag(reasons, n, raws[1] > raws[2], Reason.CROSSED_QUOTE)
        open_, high, low, close = raws[1:5]
        bad = (high < np.maximum(open_, close)) | (low > np.minimum(open_, close)) | (low > high)
        return _flag(reasons, n, bad, Reason.BAD_OHLC)

    def _check_time(
        self, ts: IntArray, reasons: ReasonArray | None, n: int
    ) -> tuple[ReasonArray | None, IntArray | None]:
        """Flag rows earlier than the latest good row before them.

        Good rows never go back, so the latest good timestamp is the running
        maximum over good rows; rows that fail only this rule are below that
        maximum, so including them in it changes nothing. Returns the running
        maximum before each row (for messages), or None when time never went back.
        """
        if n == 0:
            return reasons, None
        last = self._last_ts
        if reasons is None and ts[0] >= last and bool(np.all(ts[1:] >= ts[:-1])):
            self._last_ts = int(ts[-1])
            return None, None
        good_ts = ts if reasons is None else np.where(reasons == 0, ts, _INT64_MIN)
        running = np.maximum.accumulate(good_ts)
        previous = np.empty(n, dtype=np.int64)
        previous[0] = last
        previous[1:] = np.maximum(running[:-1], last)
        self._last_ts = max(last, int(running[-1]))
        return _flag(reasons, n, ts < previous, Reason.TIME_WENT_BACKWARDS), previous

    # -- bad-row policy -------------------------------------------------------

    def _skip_bad(
        self, chunk: RawChunk, raws: list[IntArray], reasons: ReasonArray | None
    ) -> CheckedChunk:
        skipped: dict[str, int] = {}
        for broken in chunk.broken:
            skipped[broken.reason.code] = skipped.get(broken.reason.code, 0) + 1
        n_read = chunk.n_rows + len(chunk.broken)
        if reasons is None or not reasons.any():
            return CheckedChunk(raws, n_read, skipped)
        counts = np.bincount(reasons, minlength=N_REASONS)
        for code in np.flatnonzero(counts[1:]) + 1:
            name = Reason(int(code)).code
            skipped[name] = skipped.get(name, 0) + int(counts[code])
        good = reasons == 0
        return CheckedChunk([raw[good] for raw in raws], n_read, skipped)

    def _first_error(
        self,
        chunk: RawChunk,
        raws: list[IntArray],
        reasons: ReasonArray | None,
        column_reasons: list[ReasonArray | None],
        previous_ts: IntArray | None,
    ) -> CheckedChunk:
        bad_row = first_bad(reasons)
        broken = chunk.broken[0] if chunk.broken else None
        if broken is not None and (bad_row is None or broken.position < chunk.position(bad_row)):
            keep = chunk.rows_before(broken.position)
            message = self._broken_message(broken)
        elif bad_row is not None:
            assert reasons is not None
            keep = bad_row
            message = self._row_message(chunk, bad_row, reasons, column_reasons, previous_ts)
        else:
            return CheckedChunk(raws, chunk.n_rows)
        return CheckedChunk([raw[:keep] for raw in raws], keep + 1, error=message)

    def _broken_message(self, broken: BrokenRow) -> str:
        return f"{self._where(broken.position)}: {broken.detail} ({broken.reason.code})"

    def _row_message(
        self,
        chunk: RawChunk,
        i: int,
        reasons: ReasonArray,
        column_reasons: list[ReasonArray | None],
        previous_ts: IntArray | None,
    ) -> str:
        reason = Reason(int(reasons[i]))
        where = self._where(chunk.position(i))
        for f, col in zip(self._fields, column_reasons, strict=True):
            if col is not None and col[i] != 0:
                text = _cell(chunk, i, f.name)
                return f"{where}: column '{f.name}': {self._value_problem(reason, text)}"
        names = [f.name for f in self._fields]
        if reason is Reason.TIME_WENT_BACKWARDS:
            before = "?" if previous_ts is None else str(int(previous_ts[i]))
            ts_text = _cell(chunk, i, "ts_ns")
            detail = f"column 'ts_ns': {ts_text!r} is earlier than the previous row's {before}"
        elif reason is Reason.CROSSED_QUOTE:
            bid, ask = _cell(chunk, i, "bid"), _cell(chunk, i, "ask")
            detail = f"columns 'bid', 'ask': bid {bid!r} is above ask {ask!r}"
        else:
            o, h, lo, c = (_cell(chunk, i, name) for name in names[1:5])
            detail = (
                "columns 'open', 'high', 'low', 'close': "
                f"high {h!r} and low {lo!r} do not contain open {o!r} and close {c!r}"
            )
        return f"{where}: {detail} ({reason.code})"

    def _value_problem(self, reason: Reason, text: str) -> str:
        inst = self._instrument
        problems = {
            Reason.MISSING_VALUE: "missing value",
            Reason.NOT_A_NUMBER: f"{text!r} is not a number",
            Reason.NOT_FINITE: f"{text!r} is not a finite number",
            Reason.NOT_AN_INTEGER: f"{text!r} is not an integer",
            Reason.OUT_OF_RANGE: f"{text!r} is out of range",
            Reason.PRICE_OFF_SCALE: f"{text!r} has more than {inst.price_precision} decimals",
            Reason.SIZE_OFF_SCALE: f"{text!r} has more than {inst.size_precision} decimals",
            Reason.NON_POSITIVE_PRICE: f"price {text!r} is not positive",
            Reason.NEGATIVE_SIZE: f"size {text!r} is negative",
            Reason.PRICE_OFF_TICK: f"{text!r} is not a multiple of the tick size {inst.tick_size}",
            Reason.SIZE_OFF_LOT: f"{text!r} is not a multiple of the lot size {inst.lot_size}",
        }
        return f"{problems.get(reason, 'bad value ' + repr(text))} ({reason.code})"


def _flag(
    reasons: ReasonArray | None, n: int, where: BoolArray, reason: Reason
) -> ReasonArray | None:
    if not where.any():
        return reasons
    return mark(reasons, n, where, reason)


def _cell(chunk: RawChunk, i: int, name: str) -> str:
    if chunk.cell_text is not None:
        return chunk.cell_text(chunk.position(i), name)
    value = chunk.columns[name][i].as_py()
    return "" if value is None else str(value)
