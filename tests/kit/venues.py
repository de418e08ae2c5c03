"""Venue fakes for tests that drive the OMS and the risk gate without a venue."""

from __future__ import annotations

from bastion.model.orders import Order
from bastion.venues.base import VenueAdapter


class RecordingVenue(VenueAdapter):
    """A venue that only records what the node asked of it (client order ids, in order)
    and emits nothing: a test feeds the OMS the venue's events itself."""

    def __init__(self, name: str = "SIM") -> None:
        super().__init__(name)
        self.submitted: list[str] = []
        self.canceled: list[str] = []
        self.modified: list[tuple[str, int, int | None]] = []

    def submit(self, order: Order) -> None:
        self.submitted.append(order.client_order_id)

    def cancel(self, order: Order) -> None:
        self.canceled.append(order.client_order_id)

    def modify(self, order: Order, quantity: int, price: int | None) -> None:
        self.modified.append((order.client_order_id, quantity, price))

    async def open_order_ids(self) -> set[str]:
        return set(self.submitted)
