"""Reading a CSV file in blocks of whole lines, with the exact line of every row.

The file is cut into blocks of about ``BLOCK_BYTES`` at line ends, and each block
is parsed by Arrow with the header line prepended. Knowing where a block starts
gives every row's line number for free as long as the block is *regular*: one
row per physical line. When it is not (blank lines, lines with the wrong number
of fields, quotes spanning lines), the block is re-parsed on a slower path that
maps rows back to lines exactly.

Each block is first parsed typed (``int64`` timestamps, ``float64`` prices and
sizes); if one cell spoils that, the block is parsed again as raw bytes and the
validator finds the bad cells one by one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, cast

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from bastion.data._chunks import BrokenRow, RawChunk
from bastion.data._reasons import Reason
from bastion.errors import DataError

BLOCK_BYTES: Final = 2 * 1024 * 1024
"""Bytes of CSV per chunk: about 50,000 quote rows."""
_ARROW_BLOCK_BYTES: Final = 512 * 1024
"""Arrow's own sub-blocks, parsed on its thread pool."""
_LINE_ENDS: Final = (b"\n", b"\r")
_NEWLINE: Final = ord("\n")
_FIELD_COUNT: Final = re.compile(r"Expected (\d+) columns, got (\d+)")


@dataclass(frozen=True, slots=True)
class _InvalidRow:
    number: int | None
    expected: int
    actual: int


@dataclass(frozen=True, slots=True)
class _Parsed:
    table: pa.Table
    invalid: list[_InvalidRow]


class CsvChunks:
    """Chunks of a CSV file's required columns; the header is checked on open.

    ``columns`` maps each required column to the type of its fast, typed parse.
    """

    def __init__(
        self, path: Path, columns: Mapping[str, pa.DataType], *, block_bytes: int | None = None
    ) -> None:
        self.path = path
        self._names = list(columns)
        self._block_bytes = BLOCK_BYTES if block_bytes is None else block_bytes
        self._header = _read_header(path)
        header_names = self._header_names()
        # Column name -> its name in the header, which may have blanks around it.
        self._in_file: dict[str, str] = {}
        for name in self._names:
            matches = [h for h in header_names if h.strip(" \t") == name]
            if not matches:
                raise DataError(
                    f"{path.name}:1: missing column '{name}'; the header has "
                    f"{', '.join(repr(h) for h in header_names) or 'no columns'}"
                )
            if len(matches) > 1:
                raise DataError(f"{path.name}:1: column '{name}' appears {len(matches)} times")
            self._in_file[name] = matches[0]
        in_file = [self._in_file[name] for name in self._names]
        null_values = {"null_values": [""], "strings_can_be_null": True}
        self._typed = pacsv.ConvertOptions(
            column_types={self._in_file[name]: typ for name, typ in columns.items()},
            include_columns=in_file,
            **null_values,
        )
        self._raw = pacsv.ConvertOptions(
            column_types={h: pa.binary() for h in in_file}, include_columns=in_file, **null_values
        )

    def where(self, line: int) -> str:
        return f"{self.path.name}:{line}"

    def __iter__(self) -> Iterator[RawChunk]:
        first_line = 2  # the header is line 1
        for block in self._blocks():
            n_lines = _count_lines(block)
            yield self._chunk(block, first_line, n_lines)
            first_line += n_lines

    # -- blocks ---------------------------------------------------------------

    def _blocks(self) -> Iterator[bytes]:
        try:
            with self.path.open("rb") as f:
                f.seek(len(self._header))
                rest = b""
                while piece := f.read(self._block_bytes):
                    buf = rest + piece
                    cut = _last_line_end(buf)
                    if cut:
                        yield buf[:cut]
                    rest = buf[cut:]
                if rest:
                    yield rest
        except OSError as e:
            raise DataError(f"{self.path.name}: cannot read: {e}") from e

    def _chunk(self, block: bytes, first_line: int, n_lines: int) -> RawChunk:
        parsed = self.parse(block, threads=True)
        if isinstance(parsed, _Parsed) and not parsed.invalid and parsed.table.num_rows == n_lines:
            return RawChunk(
                columns=self._columns(parsed.table),
                n_rows=parsed.table.num_rows,
                first_position=first_line,
                cell_text=_CellReader(self, block, first_line),
            )
        return self._irregular(block, first_line)

    def _irregular(self, block: bytes, first_line: int) -> RawChunk:
        """Map rows to lines around blank and broken lines; line by line if need be."""
        lines = block.splitlines()
        nonblank = [k for k, line in enumerate(lines) if line]
        parsed = self.parse(block, threads=False)
        if isinstance(parsed, str) or parsed.table.num_rows + len(parsed.invalid) != len(nonblank):
            return self._line_by_line(lines, first_line, block)
        broken_at: dict[int, _InvalidRow] = {}
        for row in parsed.invalid:
            # Arrow numbers non-blank lines from the header (1): data line j is j + 2.
            if row.number is None or not 0 <= row.number - 2 < len(nonblank):
                return self._line_by_line(lines, first_line, block)
            broken_at[row.number - 2] = row
        positions = [first_line + k for j, k in enumerate(nonblank) if j not in broken_at]
        broken = [
            BrokenRow(
                first_line + nonblank[j],
                Reason.WRONG_FIELD_COUNT,
                f"expected {row.expected} fields, got {row.actual}",
            )
            for j, row in sorted(broken_at.items())
        ]
        return RawChunk(
            columns=self._columns(parsed.table),
            n_rows=parsed.table.num_rows,
            first_position=positions[0] if positions else first_line,
            positions=np.array(positions, dtype=np.int64),
            broken=broken,
            cell_text=_CellReader(self, block, first_line),
        )

    def _line_by_line(self, lines: list[bytes], first_line: int, block: bytes) -> RawChunk:
        """Parse each line alone: slow, but a broken line cannot swallow its neighbours."""
        cells: dict[str, list[bytes | None]] = {name: [] for name in self._names}
        positions: list[int] = []
        broken: list[BrokenRow] = []
        for k, line in enumerate(lines):
            if not line:
                continue
            line_no = first_line + k
            parsed = self.parse(line + b"\n", threads=False, typed=False)
            if isinstance(parsed, str):
                counts = _FIELD_COUNT.search(parsed)
                if counts is None:
                    detail = "cannot split the line into fields"
                    broken.append(BrokenRow(line_no, Reason.UNPARSEABLE_ROW, detail))
                else:
                    detail = f"expected {counts[1]} fields, got {counts[2]}"
                    broken.append(BrokenRow(line_no, Reason.WRONG_FIELD_COUNT, detail))
            elif parsed.invalid:
                row = parsed.invalid[0]
                detail = f"expected {row.expected} fields, got {row.actual}"
                broken.append(BrokenRow(line_no, Reason.WRONG_FIELD_COUNT, detail))
            elif parsed.table.num_rows != 1:
                detail = "cannot split the line into fields"
                broken.append(BrokenRow(line_no, Reason.UNPARSEABLE_ROW, detail))
            else:
                for name in self._names:
                    cells[name].append(cast(bytes | None, self.cell(parsed.table, name)))
                positions.append(line_no)
        return RawChunk(
            columns={name: pa.array(values, pa.binary()) for name, values in cells.items()},
            n_rows=len(positions),
            first_position=positions[0] if positions else first_line,
            positions=np.array(positions, dtype=np.int64),
            broken=broken,
            cell_text=_CellReader(self, block, first_line),
        )

    # -- parsing --------------------------------------------------------------

    def _columns(self, table: pa.Table) -> dict[str, pa.Array]:
        return {name: table.column(self._in_file[name]).combine_chunks() for name in self._names}

    def cell(self, table: pa.Table, name: str) -> object:
        """The first cell of a column of a parsed table."""
        return table.column(self._in_file[name])[0].as_py()

    def _header_names(self) -> list[str]:
        try:
            table = pacsv.read_csv(
                pa.BufferReader(self._header),
                read_options=pacsv.ReadOptions(use_threads=False),
            )
            return [str(name) for name in table.column_names]
        except (pa.ArrowException, UnicodeDecodeError) as e:
            raise DataError(
                f"{self.path.name}:1: no usable header line (expected columns "
                f"{', '.join(self._names)}): {e}"
            ) from e

    def parse(self, data: bytes, *, threads: bool, typed: bool = True) -> _Parsed | str:
        """Parse header + ``data``; Arrow's error message if it cannot split it into rows."""
        # Arrow decodes a broken row as UTF-8 before handing it to the handler and cannot
        # report a failure to decode; without a handler a broken row fails the parse.
        handle_invalid = data.isascii() or _is_utf8(data)
        error = ""
        for options in (self._typed, self._raw) if typed else (self._raw,):
            invalid: list[_InvalidRow] = []

            def on_invalid(row: pacsv.InvalidRow, invalid: list[_InvalidRow] = invalid) -> str:
                invalid.append(_InvalidRow(row.number, row.expected_columns, row.actual_columns))
                return "skip"

            size = len(self._header) + len(data)
            block_size = _ARROW_BLOCK_BYTES if threads else max(size + 1, _ARROW_BLOCK_BYTES)
            try:
                table = pacsv.read_csv(
                    pa.BufferReader(self._header + data),
                    read_options=pacsv.ReadOptions(use_threads=threads, block_size=block_size),
                    parse_options=pacsv.ParseOptions(
                        invalid_row_handler=on_invalid if handle_invalid else None
                    ),
                    convert_options=options,
                )
            except pa.ArrowInvalid as e:
                error = str(e)  # typed: a cell that is not a number; raw: cannot split rows
                continue
            return _Parsed(table, invalid)
        return error


class _CellReader:
    """The source text of one cell, found again from the block (error messages only)."""

    def __init__(self, source: CsvChunks, block: bytes, first_line: int) -> None:
        self._source = source
        self._block = block
        self._first_line = first_line

    def __call__(self, line: int, name: str) -> str:
        lines = self._block.splitlines()
        k = line - self._first_line
        if not 0 <= k < len(lines):
            return ""
        parsed = self._source.parse(lines[k] + b"\n", threads=False, typed=False)
        if isinstance(parsed, str) or parsed.table.num_rows != 1:
            return lines[k].decode("utf-8", "replace")
        value = self._source.cell(parsed.table, name)
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""


def _read_header(path: Path) -> bytes:
    """The first line of the file with its line end (the whole file if it has one line)."""
    try:
        with path.open("rb") as f:
            buf = b""
            while piece := f.read(64 * 1024):
                buf += piece
                end = _first_line_end(buf, eof=False)
                if end is not None:
                    return buf[:end]
            end = _first_line_end(buf, eof=True)
            return buf if end is None else buf[:end]
    except OSError as e:
        raise DataError(f"{path.name}: cannot read: {e}") from e


def _first_line_end(buf: bytes, *, eof: bool) -> int | None:
    hits = [i for i in (buf.find(b"\n"), buf.find(b"\r")) if i >= 0]
    if not hits:
        return None
    i = min(hits)
    if buf[i : i + 1] == b"\r":
        if i + 1 < len(buf):
            return i + 2 if buf[i + 1 : i + 2] == b"\n" else i + 1
        return i + 1 if eof else None  # a "\n" may follow in the next read
    return i + 1


def _last_line_end(buf: bytes) -> int:
    """Offset just after the last complete line end in ``buf`` (0 if none)."""
    i = buf.rfind(b"\n")
    if i >= 0:
        return i + 1
    # A "\r" at the very end may be the first half of a "\r\n" split across reads.
    return buf.rfind(b"\r", 0, len(buf) - 1) + 1


def _count_lines(block: bytes) -> int:
    """Physical lines in a block, counting "\\n", "\\r\\n" and a lone "\\r" as line ends."""
    if b"\r" in block:
        ends = block.count(b"\n") + block.count(b"\r") - block.count(b"\r\n")
    else:
        # numpy releases the GIL and is faster than bytes.count, which holds it.
        ends = int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8) == _NEWLINE))
    return ends + (0 if block.endswith(_LINE_ENDS) else 1) if block else 0


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
