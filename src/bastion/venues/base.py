"""The one interface every venue adapter implements.

Order commands are non-blocking: ``submit``, ``cancel`` and ``modify`` hand the
request to the adapter (which sends it or queues it) and return at once.
Everything the venue says back — acks, rejects, fills, cancels — arrives as
order events through the ``on_event`` callback given to ``bind``. Connection
lifecycle and queries that wait on the venue are async.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from bastion.model.events import OrderEvent
from bastion.model.orders import Order

EventSink = Callable[[OrderEvent], None]


class VenueAdapter(ABC):
    """A connection to one venue."""

    name: str

    def __init__(self, name: str) -> None:
        self.name = name
        self.emit: EventSink = self._unbound

    def bind(self, sink: EventSink) -> None:
        """Route this venue's order events to ``sink`` (the execution engine).

        After this, ``emit`` *is* the sink: one call per event, no indirection.
        """
        self.emit = sink

    def _unbound(self, event: OrderEvent) -> None:
        raise RuntimeError(f"venue {self.name} is not bound to an execution engine")

    async def connect(self) -> None:  # noqa: B027 - optional hook
        """Open the session. The in-process venue has nothing to open."""

    async def disconnect(self) -> None:  # noqa: B027 - optional hook
        """Close the session."""

    @abstractmethod
    def submit(self, order: Order) -> None:
        """Send a new order."""

    @abstractmethod
    def cancel(self, order: Order) -> None:
        """Request cancellation of an open order."""

    @abstractmethod
    def modify(self, order: Order, quantity: int, price: int | None) -> None:
        """Request a cancel/replace with a new total quantity and/or price."""

    @abstractmethod
    async def open_order_ids(self) -> set[str]:
        """Client order ids the venue holds open (for reconciliation)."""
