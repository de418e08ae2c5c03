"""ExecutionReports (8) into order events: what a report says about one order.

``report_event`` reads the report's fields into the event it states (accepted,
canceled, replaced, rejected, expired, filled), checking every value: a missing or
malformed tag raises ``RejectMessage`` naming it, so a bad report never changes order
state. Whether the event is applied (an ExecID seen before, a resend the journal
already holds) is the adapter's decision (``bastion.venues.fix.adapter``).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from bastion.fix.codec import (
    INCORRECT_DATA_FORMAT,
    REQUIRED_TAG_MISSING,
    VALUE_INCORRECT,
    FixMessage,
)
from bastion.fix.rejects import RejectMessage
from bastion.model.enums import LiquiditySide, OrderSide
from bastion.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderUpdated,
)
from bastion.model.instruments import Instrument
from bastion.model.orders import Order

_SIDE_IN = {"1": OrderSide.BUY, "2": OrderSide.SELL}
_OUT_OF_RANGE = "Value is incorrect (out of range) for this tag"


def report_event(
    msg: FixMessage, order: Order, instrument: Instrument, ts_ns: int
) -> OrderEvent | None:
    """The event an ExecutionReport (ExecType other than I) states about ``order``;
    None for an ExecType that changes nothing here."""
    exec_type = msg.get(150) or ""
    base: dict[str, Any] = {
        "ts_ns": ts_ns,
        "client_order_id": order.client_order_id,
        "strategy_id": order.strategy_id,
        "instrument_id": order.instrument_id,
    }
    venue_order_id = msg.get(37) or ""
    if exec_type == "F":
        return _fill(msg, instrument, base, venue_order_id)
    if exec_type == "0":
        return OrderAccepted(venue_order_id=venue_order_id, **base)
    if exec_type == "4":
        return OrderCanceled(reason=msg.get(58) or "canceled", **base)
    if exec_type == "5":
        price_text = msg.get(44)
        return OrderUpdated(
            quantity=_to_raw(instrument.size_raw, _decimal_field(msg, 38), 38),
            price=None
            if price_text is None
            else _to_raw(instrument.price_raw, _decimal_field(msg, 44), 44),
            **base,
        )
    if exec_type == "8":
        return OrderRejected(reason=_reject_text(msg), **base)
    if exec_type == "C":
        return OrderExpired(**base)
    return None


def already_applied(order: Order, event: OrderEvent) -> bool:
    """True when ``event`` repeats what the order already reflects."""
    if not order.can_apply(event):
        return True
    if type(event) is OrderUpdated:
        return order.quantity == event.quantity and (
            event.price is None or order.price == event.price
        )
    return type(event) is OrderAccepted and order.venue_order_id == event.venue_order_id


def _fill(
    msg: FixMessage, instrument: Instrument, base: dict[str, Any], venue_order_id: str
) -> OrderFilled:
    last_qty = _to_raw(instrument.size_raw, _decimal_field(msg, 32), 32)
    last_px = _to_raw(instrument.price_raw, _decimal_field(msg, 31), 31)
    if last_qty <= 0 or last_px <= 0:
        raise RejectMessage(VALUE_INCORRECT, 32 if last_qty <= 0 else 31, _OUT_OF_RANGE)
    side = _SIDE_IN.get(msg.get(54) or "")
    if side is None:
        raise RejectMessage(VALUE_INCORRECT, 54, _OUT_OF_RANGE)
    fee = _decimal_field(msg, 12) if msg.get(12) is not None else Decimal(0)
    return OrderFilled(
        venue_order_id=venue_order_id,
        exec_id=msg.get(17) or "",
        side=side,
        last_qty=last_qty,
        last_px=last_px,
        fee=fee,
        fee_currency=instrument.quote_currency,
        liquidity=LiquiditySide.MAKER if msg.get(851) == "1" else LiquiditySide.TAKER,
        **base,
    )


def _decimal_field(msg: FixMessage, tag: int) -> Decimal:
    text = msg.get(tag)
    if text is None:
        raise RejectMessage(REQUIRED_TAG_MISSING, tag, f"Required tag missing: {tag}")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise RejectMessage(INCORRECT_DATA_FORMAT, tag, "Incorrect data format for value") from None
    if not value.is_finite():
        raise RejectMessage(INCORRECT_DATA_FORMAT, tag, "Incorrect data format for value")
    return value


def _to_raw(convert: Callable[[Decimal], int], value: Decimal, tag: int) -> int:
    try:
        return convert(value)
    except (ValueError, ArithmeticError):
        raise RejectMessage(VALUE_INCORRECT, tag, _OUT_OF_RANGE) from None


def _reject_text(msg: FixMessage) -> str:
    text = msg.get(58)
    reason = msg.get(103)
    if text and reason:
        return f"{text} (OrdRejReason {reason})"
    return text or (f"OrdRejReason {reason}" if reason else "rejected by venue")
