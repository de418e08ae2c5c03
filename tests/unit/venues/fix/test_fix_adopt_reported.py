"""The venue's resent reports (after a restart or an HA takeover rewound the inbound
stream) name orders whose journal records never committed: the previous leader's
last order (each member's FIX store holds only what it sent), or one journaled as
created whose submission was lost. The adapter takes each over from the report, once,
and applies its fill once."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.bus import MessageBus
from bastion.execution.engine import ExecutionEngine
from bastion.execution.ids import ClientOrderIdGenerator
from bastion.fix.codec import FixMessage
from bastion.fix.timestamps import format_utc_timestamp
from bastion.model.enums import OrderStatus
from bastion.model.events import OrderEvent, OrderFilled, OrderInitialized, OrderSubmitted
from kit.fix_link import T0, Link, execution, order


def _engine(link: Link, journaled: list[OrderEvent]) -> ExecutionEngine:
    return ExecutionEngine(
        bus=MessageBus(),
        clock=link.clock,
        ids=ClientOrderIdGenerator("node", 3),
        venues={link.adapter.name: link.adapter},
        journal=journaled.append,
    )


def _resent(cl_ord_id: str, exec_type: str, exec_id: str, *extra: tuple[int, object]) -> FixMessage:
    """A report as the venue resends it: PossDupFlag, and the order's own fields (given
    to the adapter as its session hands a message on)."""
    return execution(
        cl_ord_id,
        exec_type,
        exec_id,
        (43, "Y"),
        (122, format_utc_timestamp(T0)),
        (38, "1.5"),
        (40, "2"),
        (44, "101.25"),
        (59, "1"),
        *extra,
    )


def _fill(cl_ord_id: str, exec_id: str) -> FixMessage:
    return _resent(cl_ord_id, "F", exec_id, (32, "1.5"), (31, "101.25"), (39, "2"))


@pytest.mark.parametrize("acked_as", ["node-2-9/2.1f", "node-2-9/1"])
def test_when_a_previous_leaders_unjournaled_order_is_resent_then_adopted_and_filled_once(
    tmp_path: Path, acked_as: str
) -> None:
    """An order of an older epoch the journal never got: adopted from its resent ack
    (under its own ClOrdID, not a replace's, of this version or an older one), its fill
    applied once though resent twice."""
    link = Link(tmp_path, epoch=3)
    journaled: list[OrderEvent] = []
    engine = _engine(link, journaled)
    link.adapter.prepare_recovery(engine, order_id_prefix="node-")
    try:
        link.connect()
        for report in (_resent(acked_as, "0", "E-ack"), _fill("node-2-9", "E-fill")):
            link.adapter.on_message(link.session, report)
        link.adapter.on_message(link.session, _fill("node-2-9", "E-fill"))
    finally:
        link.close()
    adopted = engine.order("node-2-9")
    assert adopted is not None and adopted.status is OrderStatus.FILLED
    assert adopted.filled_qty == 1_500
    assert [type(e) for e in journaled].count(OrderFilled) == 1
    assert [e.client_order_id for e in journaled if isinstance(e, OrderInitialized)] == ["node-2-9"]
    assert isinstance(journaled[0], OrderInitialized) and isinstance(journaled[1], OrderSubmitted)


def test_when_an_order_journaled_only_as_created_is_reported_then_submitted_and_filled(
    tmp_path: Path,
) -> None:
    """Journaled as INITIALIZED, its submission lost, the venue reports a fill: the
    submission is journaled, then the fill applies (not refused as a transition)."""
    link = Link(tmp_path)
    journaled: list[OrderEvent] = []
    engine = _engine(link, journaled)
    created = order()
    engine.restore([created], [])
    link.adapter.prepare_recovery(engine, order_id_prefix="node-")
    try:
        link.connect()
        link.adapter.on_message(link.session, _fill(created.client_order_id, "E-1"))
    finally:
        link.close()
    assert created.status is OrderStatus.FILLED
    assert [type(e) for e in journaled] == [OrderSubmitted, OrderFilled]
    assert engine.refused_transitions == 0
