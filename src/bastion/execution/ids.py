"""Client order ids: deterministic, and unique across restarts and nodes.

An id is ``{node_id}-{epoch}-{sequence}``. The epoch is a run counter kept in the
journal (each start of a node takes a new one), so a restarted node never
reuses an id it sent before; backtests use a fixed epoch so ids are reproducible.
"""

from __future__ import annotations

import re

_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class ClientOrderIdGenerator:
    __slots__ = ("_prefix", "_seq")

    def __init__(self, node_id: str, epoch: int, start: int = 0) -> None:
        if not _NODE_ID.fullmatch(node_id):
            raise ValueError(f"node id {node_id!r} must be letters, digits, '.', '_' or '-'")
        if epoch < 0:
            raise ValueError("epoch must be non-negative")
        self._prefix = f"{node_id}-{epoch}-"
        self._seq = start

    def next(self) -> str:
        self._seq += 1
        return f"{self._prefix}{self._seq}"

    def reserve(self, n: int) -> tuple[int, int]:
        """Set aside the next ``n`` sequence numbers (for a strategy process, which
        makes ids of them itself: ``prefix`` + number); returns (first, last)."""
        first = self._seq + 1
        self._seq += n
        return first, self._seq

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def count(self) -> int:
        return self._seq
