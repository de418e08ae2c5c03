"""The ClOrdIDs of the FIX adapter's cancels and replaces, ``{order}/{epoch}.{n}``: they
carry the sending run's epoch (so a venue can fence a deposed HA leader's cancels), and
every id of an order's chain still maps back to the order, in reports, reconciliation
and the adoption of orders the journal lost (``bastion.execution.ids.amend_id``)."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from pathlib import Path

from bastion.bus import MessageBus
from bastion.execution.engine import ExecutionEngine
from bastion.execution.ids import ClientOrderIdGenerator, amend_id, order_id_of
from bastion.fix.codec import FixMessage
from bastion.fix.session import FixSession
from bastion.model.enums import OrderStatus
from bastion.model.events import OrderAccepted, OrderCanceled, OrderEvent, OrderUpdated
from bastion.venue_server.fencing import cl_ord_id_epoch
from bastion.venues.base import ReconcileContext
from kit.fix_link import IID, INSTRUMENT, VENUE, Link, execution, order
from kit.ha_oracle import epoch_of


def test_when_amend_ids_made_then_the_order_id_and_the_senders_epoch_are_read_back() -> None:
    """``amend_id`` puts the order's id before the '/' and the epoch and hex number
    after; an older node's ``{order}/{n}`` and the new ids never meet."""
    assert amend_id("desk-1-7", 2, 255) == "desk-1-7/2.ff"
    assert order_id_of("desk-1-7/2.ff") == order_id_of("desk-1-7/1") == "desk-1-7"
    assert order_id_of("desk-1-7") == "desk-1-7"
    older = {f"desk-1-7/{n:x}" for n in range(4096)}
    newer = {amend_id("desk-1-7", epoch, n) for epoch in (1, 2, 3) for n in range(4096)}
    assert len(newer) == 3 * 4096 and not older & newer


def test_when_successor_replaces_and_cancels_then_ids_carry_its_epoch_and_map_to_the_order(
    tmp_path: Path,
) -> None:
    """A node of epoch 2 replaces, then cancels, an order of epoch 1: each ClOrdID is
    ``{order}/2.{n}``, n growing; the venue's fence and the HA oracle read epoch 2 in
    them, and the venue's reports on them become the order's events."""
    link = Link(tmp_path, epoch=2)
    link.connect()
    o = order()
    try:
        link.adapter.submit(o)
        link.send(execution(o.client_order_id, "0", "X-1"))
        link.adapter.modify(o, 2_000, None)
        link.pump()
        replace_id = link.venue_app.last("G").get(11) or ""
        replaced = (41, o.client_order_id), (38, "2.000"), (44, "101.25")
        link.send(execution(replace_id, "5", "X-2", *replaced))
        link.adapter.cancel(o)
        link.pump()
        cancel = link.venue_app.last("F")
        cancel_id = cancel.get(11) or ""
        link.send(execution(cancel_id, "4", "X-3", status="4"))
    finally:
        link.close()
    shape = re.compile(re.escape(o.client_order_id) + r"/2\.([0-9a-f]+)")
    numbers = []
    for cl_ord_id in (replace_id, cancel_id):
        match = shape.fullmatch(cl_ord_id)
        assert match is not None, cl_ord_id
        numbers.append(int(match.group(1), 16))
        assert cl_ord_id_epoch(cl_ord_id) == (2, False)
        assert epoch_of(cl_ord_id) == 2
    assert numbers[0] < numbers[1]
    assert cancel.get(41) == replace_id
    assert [type(e) for e in link.events] == [OrderAccepted, OrderUpdated, OrderCanceled]
    assert {e.client_order_id for e in link.events} == {o.client_order_id}


def _open_report(req_id: str, cl_ord_id: str, last: bool) -> FixMessage:
    """An open order (ExecType I) as the venue lists it, under ``cl_ord_id``."""
    return FixMessage.of(
        "8",
        (37, f"V-{cl_ord_id}"),
        (11, cl_ord_id),
        (17, f"S-{cl_ord_id}"),
        (150, "I"),
        (39, "0"),
        (55, IID),
        (54, "1"),
        (38, "1.500"),
        (40, "2"),
        (44, "101.25"),
        (151, "1.500"),
        (14, "0"),
        (6, "0"),
        (584, req_id),
        (911, 2),
        (912, "Y" if last else "N"),
    )


def test_when_venue_lists_a_predecessors_orders_by_amend_ids_then_reconciled_as_the_orders(
    tmp_path: Path,
) -> None:
    """Epoch 2 reconciles: the venue lists epoch 1's order under epoch 1's replace id
    (``{order}/1.{n}``) and one the journal lost under another: the first is the
    journal's order, the second is adopted under its own id; a cancel of each names the
    venue's id as OrigClOrdID and carries epoch 2."""
    link = Link(tmp_path, epoch=2)
    journaled: list[OrderEvent] = []
    engine = ExecutionEngine(
        bus=MessageBus(),
        clock=link.clock,
        ids=ClientOrderIdGenerator("node", 2),
        venues={VENUE: link.adapter},
        journal=journaled.append,
    )
    known = order()
    lost = order().client_order_id
    engine.restore([known], [])
    link.adapter.register(known)
    listed = {known.client_order_id: f"{known.client_order_id}/1.5", lost: f"{lost}/1.6"}

    def answer(session: FixSession, msg: FixMessage) -> None:
        if msg.msg_type == "AF":
            req_id = msg.get(584) or ""
            for n, cl_ord_id in enumerate(listed.values()):
                session.send(_open_report(req_id, cl_ord_id, last=n == len(listed) - 1))

    link.venue_app.answer = answer
    context = ReconcileContext(
        orders=engine,
        net_quantity=lambda iid: 0,
        clock=link.clock,
        instruments={IID: INSTRUMENT},
        order_id_prefix="node-",
        timeout_s=1.0,
        compare_positions=False,
        position_tolerance=Decimal(0),
    )

    async def main() -> None:
        task = asyncio.create_task(link.adapter.reconcile(context))
        await asyncio.sleep(0)
        link.pump()
        report = await task
        assert report.mismatches == []
        for coid in listed:
            held = engine.order(coid)
            assert held is not None and held.status is OrderStatus.ACCEPTED, coid
            assert engine.cancel(held)
        link.pump()

    link.connect()
    try:
        asyncio.run(main())
    finally:
        link.close()
    cancels = [m for m in link.venue_app.messages if m.msg_type == "F"]
    assert [m.get(41) for m in cancels] == list(listed.values())
    for coid, cancel in zip(listed, cancels, strict=True):
        assert re.fullmatch(re.escape(coid) + r"/2\.[0-9a-f]+", cancel.get(11) or "")
    assert engine.order(known.client_order_id) is known
