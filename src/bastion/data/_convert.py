"""Vectorised conversion of one column of a chunk to raw fixed-point integers.

Every function returns the raw ``int64`` values and, when some cell is bad, a
``uint8`` array of ``Reason`` codes (``None`` means every cell converted). The
raw value of a bad cell is 0 and must not be used.

Text cells (CSV fallback, string columns in Parquet) are parsed with Arrow's own
casts, so a value is accepted or rejected the same way whether the chunk was
parsed typed by the CSV reader or as text after one bad cell spoiled the typed
read.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from bastion.data._reasons import Reason

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
ReasonArray = npt.NDArray[np.uint8]
BoolArray = npt.NDArray[np.bool_]

INT64_MAX: Final = 2**63 - 1
_FLOAT_INT64_LIMIT: Final = 2.0**63
REL_TOLERANCE: Final = 1e-9
"""A float is taken as the scaled integer it rounds to if it is this close, relatively."""

# Whitespace Arrow's CSV number parser skips around a value; trimmed before casting
# text so both paths accept the same cells.
_CSV_BLANKS: Final = " \t"
# Every text Arrow can cast to a number starts like this; other cells are rejected
# without bisecting for them.
_NUMBER_START: Final = r"^[+-]?(?:[0-9]|\.[0-9]|(?i:inf|nan))"


class UnsupportedColumn(TypeError):
    """A column has an Arrow type that cannot hold numbers (bool, list, ...)."""


def is_text(typ: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(typ)
        or pa.types.is_large_string(typ)
        or pa.types.is_binary(typ)
        or pa.types.is_large_binary(typ)
    )


def is_supported(typ: pa.DataType, *, timestamps: bool) -> bool:
    """Whether a column of this type can be converted (``timestamps``: for ``ts_ns``)."""
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    return bool(
        is_text(typ)
        or pa.types.is_null(typ)
        or pa.types.is_integer(typ)
        or pa.types.is_floating(typ)
        or pa.types.is_decimal(typ)
        or (timestamps and pa.types.is_timestamp(typ))
    )


def first_bad(reasons: ReasonArray | None) -> int | None:
    if reasons is None:
        return None
    hits = np.flatnonzero(reasons)
    return int(hits[0]) if len(hits) else None


def overlay(base: ReasonArray | None, extra: ReasonArray | None) -> ReasonArray | None:
    """Reasons of ``base`` where it has one, else those of ``extra``."""
    if extra is None or not extra.any():
        return base
    if base is None:
        return extra
    return np.where(base != 0, base, extra).astype(np.uint8)


def mark(reasons: ReasonArray | None, n: int, where: BoolArray, reason: Reason) -> ReasonArray:
    """Set ``reason`` on the rows ``where`` that have no reason yet."""
    out = np.zeros(n, dtype=np.uint8) if reasons is None else reasons
    out[where & (out == 0)] = reason
    return out


# -- timestamps ---------------------------------------------------------------


def convert_ts(arr: pa.Array) -> tuple[IntArray, ReasonArray | None]:
    """Integer nanoseconds from an integer, float, timestamp or text column."""
    arr = _plain(arr)
    typ = arr.type
    if is_text(typ):
        return _ts_from_text(arr)
    missing = _missing(arr)
    if pa.types.is_null(typ):
        return np.zeros(len(arr), dtype=np.int64), missing
    if pa.types.is_timestamp(typ):
        raw, reasons = _scale_int(_int64(arr.cast(pa.int64())), _NS_PER_UNIT[typ.unit])
        return raw, overlay(missing, reasons)
    if pa.types.is_integer(typ):
        raw, reasons = _int_values(arr)
        return raw, overlay(missing, reasons)
    if pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        raw, reasons = _ts_from_float(_float64(arr))
        return raw, overlay(missing, reasons)
    raise UnsupportedColumn(str(typ))


_NS_PER_UNIT: Final = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _ts_from_float(values: FloatArray) -> tuple[IntArray, ReasonArray | None]:
    with np.errstate(all="ignore"):
        finite = np.isfinite(values)
        in_range = np.abs(values) < _FLOAT_INT64_LIMIT
        integral = values == np.floor(values)
        ok = finite & in_range & integral
        raw = np.where(ok, values, 0.0).astype(np.int64)
    if ok.all():
        return raw, None
    n = len(values)
    reasons = mark(None, n, ~finite, Reason.NOT_FINITE)
    mark(reasons, n, ~in_range, Reason.OUT_OF_RANGE)
    mark(reasons, n, ~integral, Reason.NOT_AN_INTEGER)
    return raw, reasons


def _ts_from_text(arr: pa.Array) -> tuple[IntArray, ReasonArray | None]:
    text, reasons = _clean_text(arr)
    ints, bad = _cast_text(text, pa.int64())
    raw = _int64(ints)
    if bad.any():
        # A cell that is not an integer may still be a number ("1.5", "nan", "1e3"):
        # parse those as floats so the reason says what is wrong with them.
        rows = np.flatnonzero(bad)
        floats, not_number = _cast_text(text.take(pa.array(rows)), pa.float64())
        float_raw, float_reasons = _ts_from_float(_float64(floats))
        raw[rows] = float_raw
        sub = np.zeros(len(rows), dtype=np.uint8) if float_reasons is None else float_reasons
        sub[not_number] = Reason.NOT_A_NUMBER
        reasons = np.zeros(len(arr), dtype=np.uint8) if reasons is None else reasons
        reasons[rows] = np.where(reasons[rows] != 0, reasons[rows], sub)
    return raw, reasons


# -- prices and sizes ---------------------------------------------------------


def convert_scaled(
    arr: pa.Array, precision: int, *, off_scale: Reason
) -> tuple[IntArray, ReasonArray | None]:
    """Raw integers ``round(value * 10**precision)`` from a numeric or text column.

    A float more than ``REL_TOLERANCE`` away (relatively) from that integer has
    more decimals than the scale allows and gets ``off_scale``.
    """
    arr = _plain(arr)
    typ = arr.type
    scale = 10**precision
    if is_text(typ):
        text, missing = _clean_text(arr)
        floats, bad = _cast_text(text, pa.float64())
        raw, reasons = _scale_float(_float64(floats), scale, off_scale)
        if bad.any():
            missing = mark(missing, len(arr), bad, Reason.NOT_A_NUMBER)
        return raw, overlay(missing, reasons)
    missing = _missing(arr)
    if pa.types.is_null(typ):
        return np.zeros(len(arr), dtype=np.int64), missing
    if pa.types.is_integer(typ):
        values, reasons = _int_values(arr)
        raw, scale_reasons = _scale_int(values, scale)
        return raw, overlay(overlay(missing, reasons), scale_reasons)
    if pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        raw, reasons = _scale_float(_float64(arr), scale, off_scale)
        return raw, overlay(missing, reasons)
    raise UnsupportedColumn(str(typ))


def _scale_float(
    values: FloatArray, scale: int, off_scale: Reason
) -> tuple[IntArray, ReasonArray | None]:
    with np.errstate(all="ignore"):
        scaled = values * float(scale)
        nearest = np.rint(scaled)
        magnitude = np.abs(nearest)
        ok = np.abs(scaled - nearest) <= REL_TOLERANCE * np.maximum(magnitude, 1.0)
        ok &= magnitude < _FLOAT_INT64_LIMIT  # also False for NaN and inf
        raw = np.where(ok, nearest, 0.0).astype(np.int64)
    if ok.all():
        return raw, None
    n = len(values)
    finite = np.isfinite(values)
    reasons = mark(None, n, ~finite, Reason.NOT_FINITE)
    mark(reasons, n, magnitude >= _FLOAT_INT64_LIMIT, Reason.OUT_OF_RANGE)
    mark(reasons, n, ~ok, off_scale)
    return raw, reasons


def _scale_int(values: IntArray, scale: int) -> tuple[IntArray, ReasonArray | None]:
    if scale == 1:
        return values, None
    limit = INT64_MAX // scale
    ok = (values <= limit) & (values >= -limit)
    raw = np.where(ok, values, 0) * scale
    if ok.all():
        return raw, None
    return raw, mark(None, len(values), ~ok, Reason.OUT_OF_RANGE)


# -- arrow to numpy -----------------------------------------------------------


def _plain(arr: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(arr.type):
        return arr.dictionary_decode()
    return arr


def _missing(arr: pa.Array) -> ReasonArray | None:
    if arr.null_count == 0:
        return None
    nulls = arr.is_null().to_numpy(zero_copy_only=False)
    return np.where(nulls, np.uint8(Reason.MISSING_VALUE), np.uint8(0)).astype(np.uint8)


def _int64(arr: pa.Array) -> IntArray:
    """An int64 array's values with nulls as 0 (a writable copy when needed)."""
    if arr.null_count:
        arr = arr.fill_null(0)
    return np.array(arr.to_numpy(zero_copy_only=False), dtype=np.int64)


def _float64(arr: pa.Array) -> FloatArray:
    if arr.type != pa.float64():
        arr = pc.cast(arr, pa.float64())
    if arr.null_count:
        arr = arr.fill_null(0.0)
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)


def _int_values(arr: pa.Array) -> tuple[IntArray, ReasonArray | None]:
    if arr.type != pa.uint64():
        return _int64(arr.cast(pa.int64())), None
    values = np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.uint64)
    big = values > np.uint64(INT64_MAX)
    raw = np.where(big, np.uint64(0), values).astype(np.int64)
    return raw, (mark(None, len(values), big, Reason.OUT_OF_RANGE) if big.any() else None)


# -- text ---------------------------------------------------------------------


def _clean_text(arr: pa.Array) -> tuple[pa.Array, ReasonArray | None]:
    """Valid UTF-8 text with CSV blanks trimmed; null cells and undecodable cells flagged."""
    reasons = _missing(arr)
    try:
        text = pc.cast(arr, pa.string())
    except pa.ArrowInvalid:
        # Some cell is not UTF-8: find it in Python (rare, and only for this chunk).
        cells: list[str | None] = []
        undecodable = np.zeros(len(arr), dtype=np.bool_)
        for i, cell in enumerate(arr.to_pylist()):
            if cell is None:
                cells.append(None)
                continue
            try:
                cells.append(cell.decode("utf-8") if isinstance(cell, bytes) else str(cell))
            except UnicodeDecodeError:
                cells.append(None)
                undecodable[i] = True
        text = pa.array(cells, pa.string())
        reasons = mark(reasons, len(arr), undecodable, Reason.NOT_A_NUMBER)
    return pc.utf8_trim(text, characters=_CSV_BLANKS), reasons


def _cast_text(text: pa.Array, typ: pa.DataType) -> tuple[pa.Array, BoolArray]:
    """Cast text to ``typ``; cells Arrow cannot cast become null and are True in the mask."""
    bad = np.zeros(len(text), dtype=np.bool_)
    try:
        return pc.cast(text, typ), bad
    except pa.ArrowInvalid:
        pass
    plausible = pc.match_substring_regex(text, _NUMBER_START)
    implausible = np.asarray(
        pc.invert(plausible).fill_null(False).to_numpy(zero_copy_only=False), dtype=np.bool_
    )
    bad |= implausible
    candidates = pc.if_else(plausible, text, pa.scalar(None, pa.string()))
    return _bisect_cast(candidates, typ, bad, 0), bad


def _bisect_cast(text: pa.Array, typ: pa.DataType, bad: BoolArray, offset: int) -> pa.Array:
    """Cast halves recursively until each failing cell is found: O(bad * log n) casts."""
    try:
        return pc.cast(text, typ)
    except pa.ArrowInvalid:
        if len(text) == 1:
            bad[offset] = True
            return pa.nulls(1, typ)
    half = len(text) // 2
    left = _bisect_cast(text.slice(0, half), typ, bad, offset)
    right = _bisect_cast(text.slice(half), typ, bad, offset + half)
    return pa.concat_arrays([left, right])
