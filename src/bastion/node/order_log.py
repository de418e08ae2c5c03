"""What an operator reads of a node's orders in its log: each order sent, fill, reject,
denial and cancel, one structured line each (``order_submitted``, ``order_filled``, ...)
with the client order id, strategy and instrument, and the sizes in instrument units."""

from __future__ import annotations

import structlog

from bastion.model.events import (
    OrderCanceled,
    OrderDenied,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
)
from bastion.node.kernel import Kernel

log = structlog.get_logger("bastion.node")


def log_order_events(kernel: Kernel) -> None:
    """Log what an operator needs to see: orders sent, fills, rejects, denials, failures."""
    instruments = kernel.instruments

    def on_event(event: OrderEvent) -> None:
        inst = instruments.get(event.instrument_id)
        fields: dict[str, object] = {
            "client_order_id": event.client_order_id,
            "strategy": event.strategy_id,
            "instrument": event.instrument_id,
        }
        if type(event) is OrderSubmitted:
            order = kernel.execution.order(event.client_order_id)
            if order is not None and inst is not None:
                fields.update(
                    side=order.side.value,
                    qty=str(inst.size(order.quantity)),
                    type=order.order_type.value,
                )
        elif type(event) is OrderFilled and inst is not None:
            fields.update(
                side=event.side.value,
                qty=str(inst.size(event.last_qty)),
                price=str(inst.price(event.last_px)),
                fee=str(event.fee),
                position=str(inst.size(kernel.portfolio.net_quantity(event.instrument_id))),
                realized_pnl=str(kernel.portfolio.realized_pnl(event.instrument_id)),
            )
        elif isinstance(event, OrderRejected | OrderDenied | OrderCanceled):
            fields["reason"] = getattr(event, "reason", "")
        log.info(_EVENT_NAMES[type(event)], **fields)

    for event_type in _EVENT_NAMES:
        kernel.bus.subscribe(event_type, on_event)


_EVENT_NAMES: dict[type[OrderEvent], str] = {
    OrderSubmitted: "order_submitted",
    OrderFilled: "order_filled",
    OrderRejected: "order_rejected",
    OrderDenied: "order_denied",
    OrderCanceled: "order_canceled",
}
