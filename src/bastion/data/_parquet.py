"""Reading the required columns of a Parquet file in record batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.parquet as pq

from bastion.data._chunks import RawChunk
from bastion.data._convert import is_supported
from bastion.errors import DataError

BATCH_ROWS: Final = 65_536


class ParquetChunks:
    """Batches of a Parquet file's required columns; the schema is checked on open."""

    def __init__(self, path: Path, columns: Sequence[str], *, batch_rows: int | None = None):
        self.path = path
        self._columns = list(columns)
        self._batch_rows = BATCH_ROWS if batch_rows is None else batch_rows
        file = self._open()
        try:
            schema = file.schema_arrow
            self.n_rows: int = file.metadata.num_rows
        finally:
            file.close()
        names = list(schema.names)
        for name in self._columns:
            count = names.count(name)
            if count == 0:
                raise DataError(f"{path.name}: missing column '{name}' (file: {path})")
            if count > 1:
                raise DataError(f"{path.name}: column '{name}' appears {count} times")
            typ = schema.field(name).type
            if not is_supported(typ, timestamps=name == "ts_ns"):
                raise DataError(f"{path.name}: column '{name}' has type {typ}, not numbers")

    def where(self, row: int) -> str:
        return f"{self.path.name}:row {row}"

    def __iter__(self) -> Iterator[RawChunk]:
        file = self._open()
        try:
            first = 1
            batches = file.iter_batches(
                batch_size=self._batch_rows, columns=self._columns, use_threads=False
            )
            while True:
                try:
                    batch = next(batches, None)
                except (pa.ArrowException, OSError) as e:
                    raise DataError(f"{self.path.name}: cannot read Parquet data: {e}") from e
                if batch is None:
                    return
                columns = {name: batch.column(name) for name in self._columns}
                yield RawChunk(columns=columns, n_rows=batch.num_rows, first_position=first)
                first += batch.num_rows
        finally:
            file.close()

    def _open(self) -> pq.ParquetFile:
        try:
            return pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"{self.path.name}: not a readable Parquet file: {e}") from e
