"""The unit a file reader hands to the validator: a few tens of thousands of rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from bastion.data._reasons import Reason


@dataclass(frozen=True, slots=True)
class BrokenRow:
    """A row the reader could not split into fields (CSV only)."""

    position: int
    reason: Reason
    detail: str


@dataclass(frozen=True, slots=True)
class RawChunk:
    """Rows of the required columns, in file order, with where each row came from.

    ``position`` numbers rows the way errors report them: the CSV line number
    (header = 1) or the Parquet row number (first row = 1). Rows are consecutive
    from ``first_position`` unless ``positions`` lists them (blank or broken lines
    in between). ``broken`` rows were counted as read but have no cells.
    """

    columns: Mapping[str, pa.Array]
    n_rows: int
    first_position: int
    positions: npt.NDArray[np.int64] | None = None
    broken: Sequence[BrokenRow] = field(default=())
    cell_text: Callable[[int, str], str] | None = None
    """Source text of the cell at (position, column), for error messages."""

    def position(self, i: int) -> int:
        if self.positions is None:
            return self.first_position + i
        return int(self.positions[i])

    def rows_before(self, position: int) -> int:
        """How many rows of this chunk come before ``position`` in the file."""
        if self.positions is None:
            return max(0, min(self.n_rows, position - self.first_position))
        return int(np.searchsorted(self.positions, position))
