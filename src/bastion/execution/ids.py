"""Client order ids: deterministic, and unique across restarts and nodes.

An id is ``{node_id}-{epoch}-{sequence}``. The epoch is a run counter kept in the
journal (each start of a node takes a new one), so a restarted node never
reuses an id it sent before; backtests use a fixed epoch so ids are reproducible.

A venue that names each cancel and replace with a new id of its own (FIX: ClOrdID)
gets ``{client order id}/{epoch}.{n}`` (``amend_id``): the order's id before the ``/``,
so any id of its chain maps back to it (``order_id_of``), and after it the epoch of the
run that sent the request (under HA, the sender's fencing epoch: a venue can refuse a
deposed leader's cancel of its successor's or its own order) and a number, in hex,
that only grows within the run. A run has an epoch of its own, so ids of different
runs differ even when their numbers meet; an older version's ``{client order id}/{n}``
has no ``.`` and equals none of them.
"""

from __future__ import annotations

import re

_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
AMEND_SEPARATOR = "/"
"""What separates an order's id from the rest in the id of a cancel or replace (never in
a client order id)."""


def amend_id(client_order_id: str, epoch: int, n: int) -> str:
    """The id of a cancel or replace of ``client_order_id``, the ``n``-th request of the
    run with ``epoch`` (``n`` must not repeat within the run)."""
    return f"{client_order_id}{AMEND_SEPARATOR}{epoch}.{n:x}"


def order_id_of(request_id: str) -> str:
    """The client order id a request's id names: an order's own id, or the part of a
    cancel's or replace's id before the ``/`` (of either version)."""
    return request_id.split(AMEND_SEPARATOR, 1)[0]


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
