"""Steps shared by the risk property tests that drive a whole ``Kernel``: a strategy's
order through the gate, and a cancel or an amend of one of the open orders."""

from __future__ import annotations

from bastion.model.enums import OrderSide, OrderType
from bastion.model.orders import Order
from bastion.node.kernel import Kernel


def send(
    kernel: Kernel, iid: str, strategy: str, side: OrderSide, quantity: int, price: int | None
) -> Order:
    """A market order (``price`` None) or a limit order, submitted through the gate."""
    order = kernel.execution.create_order(
        strategy_id=strategy,
        instrument_id=iid,
        venue="SIM",
        side=side,
        order_type=OrderType.MARKET if price is None else OrderType.LIMIT,
        quantity=quantity,
        price=price,
    )
    kernel.risk.submit_order(order)
    return order


def cancel_or_modify(kernel: Kernel, kind: str, index: int, quantity: int) -> None:
    """Cancel (``kind`` "cancel") or resize (to at least one more than its fills) the
    open order at ``index`` (modulo their number), if there is one."""
    open_orders = kernel.execution.open_orders()
    if not open_orders:
        return
    target = open_orders[index % len(open_orders)]
    if kind == "cancel":
        kernel.risk.cancel_order(target)
    else:
        kernel.risk.modify_order(target, max(target.filled_qty + 1, quantity), target.price)
