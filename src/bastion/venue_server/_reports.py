"""Building FIX-semantics reports from the ledger's order and position rows."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Final

import bastion.venue_server._exact as _exact
from bastion.model.enums import OrderSide
from bastion.venue_server.ledger import OrderRow, PositionRow
from bastion.venue_server.messages import (
    EXEC_STATUS,
    NONE_ID,
    POS_RESULT_NONE_FOUND,
    POS_RESULT_VALID,
    POS_STATUS_COMPLETED,
    POS_STATUS_REJECTED,
    STATUS_REJECTED,
    CancelReject,
    ExecReport,
    ExecTypeCode,
    LiquidityCode,
    OrdStatusCode,
    PositionReport,
    PositionsAck,
    PositionsRequest,
    ResponseToCode,
)

# AvgPx (6) carries this many decimals beyond the instrument's price precision,
# rounded half-even; it is exact whenever the fills' average divides evenly.
AVG_PX_EXTRA_DECIMALS: Final = 6


def avg_px(order: OrderRow, price_precision: int) -> Decimal:
    if not order.cum_qty:
        return _exact.ZERO
    exact = Fraction(order.cum_notional) / Fraction(order.cum_qty)
    return _exact.rounded(exact, price_precision + AVG_PX_EXTRA_DECIMALS)


def order_report(
    order: OrderRow,
    *,
    exec_type: ExecTypeCode,
    exec_id: str,
    ts_ns: int,
    price_precision: int,
    orig_cl_ord_id: str | None = None,
    last_qty: Decimal = _exact.ZERO,
    last_px: Decimal | None = None,
    commission: Decimal | None = None,
    liquidity: LiquidityCode | None = None,
    ord_rej_reason: int | None = None,
    text: str = "",
    mass_status_req_id: str | None = None,
    tot_num_reports: int | None = None,
    last_rpt_requested: bool | None = None,
) -> ExecReport:
    """An ExecutionReport on ``order`` as it stands (after the change it reports)."""
    return ExecReport(
        exec_type=exec_type,
        ord_status=order.status,
        order_id=order.order_id,
        exec_id=exec_id,
        cl_ord_id=order.cl_ord_id,
        orig_cl_ord_id=orig_cl_ord_id if orig_cl_ord_id is not None else order.orig_cl_ord_id,
        symbol=order.symbol,
        side=order.side,
        order_type=order.order_type,
        time_in_force=order.time_in_force,
        order_qty=order.quantity,
        price=order.price,
        last_qty=last_qty,
        last_px=last_px,
        leaves_qty=order.leaves_qty,
        cum_qty=order.cum_qty,
        avg_px=avg_px(order, price_precision),
        commission=commission,
        liquidity=liquidity,
        ord_rej_reason=ord_rej_reason,
        text=text,
        transact_time_ns=ts_ns,
        mass_status_req_id=mass_status_req_id,
        tot_num_reports=tot_num_reports,
        last_rpt_requested=last_rpt_requested,
    )


def no_order_report(
    *,
    exec_type: ExecTypeCode,
    exec_id: str,
    ts_ns: int,
    cl_ord_id: str = NONE_ID,
    symbol: str = NONE_ID,
    side: OrderSide | None = None,
    ord_rej_reason: int | None = None,
    text: str = "",
    mass_status_req_id: str | None = None,
) -> ExecReport:
    """A Rejected-status report that names no venue order (``order_id`` "NONE").

    Used for a duplicate ClOrdID reject, a status request for an unknown order and a
    mass status answer with no open orders (``tot_num_reports`` 0, last report).
    """
    mass = mass_status_req_id is not None and exec_type == EXEC_STATUS
    return ExecReport(
        exec_type=exec_type,
        ord_status=STATUS_REJECTED,
        order_id=NONE_ID,
        exec_id=exec_id,
        cl_ord_id=cl_ord_id,
        symbol=symbol,
        side=side,
        order_type=None,
        time_in_force=None,
        order_qty=_exact.ZERO,
        price=None,
        last_qty=_exact.ZERO,
        leaves_qty=_exact.ZERO,
        cum_qty=_exact.ZERO,
        avg_px=_exact.ZERO,
        ord_rej_reason=ord_rej_reason,
        text=text,
        transact_time_ns=ts_ns,
        mass_status_req_id=mass_status_req_id,
        tot_num_reports=0 if mass else None,
        last_rpt_requested=True if mass else None,
    )


def cancel_reject(
    *,
    cl_ord_id: str,
    orig_cl_ord_id: str,
    order: OrderRow | None,
    response_to: ResponseToCode,
    reason: int,
    text: str,
    ts_ns: int,
) -> CancelReject:
    status: OrdStatusCode = STATUS_REJECTED if order is None else order.status
    return CancelReject(
        cl_ord_id=cl_ord_id,
        orig_cl_ord_id=orig_cl_ord_id,
        order_id=None if order is None else order.order_id,
        ord_status=status,
        response_to=response_to,
        reason=reason,
        text=text,
        transact_time_ns=ts_ns,
    )


def positions_ack(
    request: PositionsRequest,
    *,
    account: str,
    rpt_id: str,
    total: int,
    problem: tuple[int, str] | None,
) -> PositionsAck:
    """The RequestForPositionsAck: rejected with ``problem`` (PosReqResult, text), else
    valid, or "no positions found" (2) when no report follows."""
    if problem is not None:
        result, status, text = problem[0], POS_STATUS_REJECTED, problem[1]
    else:
        result = POS_RESULT_VALID if total else POS_RESULT_NONE_FOUND
        status, text = POS_STATUS_COMPLETED, ""
    return PositionsAck(
        pos_maint_rpt_id=rpt_id,
        pos_req_id=request.pos_req_id,
        total_num_pos_reports=total,
        pos_req_result=result,
        pos_req_status=status,
        account=request.account or account,
        text=text,
    )


def position_report(
    position: PositionRow,
    *,
    request: PositionsRequest,
    rpt_id: str,
    total: int,
    ts_ns: int,
    price_precision: int,
) -> PositionReport:
    """The PositionReport of ``position``: net long as LongQty, net short as ShortQty."""
    net = position.net_qty
    return PositionReport(
        pos_maint_rpt_id=rpt_id,
        pos_req_id=request.pos_req_id,
        total_num_pos_reports=total,
        clearing_business_date=business_date(ts_ns),
        account=position.account,
        symbol=position.symbol,
        settl_price=open_price(position, price_precision),
        long_qty=net if net > 0 else _exact.ZERO,
        short_qty=net.copy_abs() if net < 0 else _exact.ZERO,
    )


def open_price(position: PositionRow, price_precision: int) -> Decimal:
    """The average price of the open quantity (zero when flat), rounded as AvgPx is."""
    if not position.net_qty:
        return _exact.ZERO
    exact = position.cost / Fraction(position.net_qty)
    return _exact.rounded(exact, price_precision + AVG_PX_EXTRA_DECIMALS)


def business_date(ts_ns: int) -> str:
    """The UTC date of ``ts_ns`` as a FIX LocalMktDate (YYYYMMDD)."""
    return datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=UTC).strftime("%Y%m%d")
