"""An amend (35=G) lost when the FIX connection drops is gap-filled on the next logon,
never resent, so no answer ever comes: once the venue is reconciled on the new logon the
node rejects it (``OrderModifyRejected``; the order keeps the venue's size and price),
as after a restart. An amend sent on the new logon is left to the venue's answer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import bastion.node.runner as runner
from bastion.model.enums import OrderStatus
from bastion.model.events import OrderModifyRejected
from bastion.venues.fix.adapter import NOT_RECONCILED
from kit.fix_link import IID
from kit.fix_venue_node import Reconciler, buy, drop, fix_venue_kernel
from kit.waiting import until


def test_when_an_amend_is_lost_in_a_drop_then_rejected_once_the_new_logon_is_reconciled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``lost``'s amend is written and the line drops before the venue reads it;
    An amend of ``fresh`` while the new logon's reconciliation runs is refused and never
    sent; after it, ``lost`` is ACCEPTED at its old size and price, and an amend of
    ``fresh`` on the reconciled logon goes out and waits for the venue."""
    reconciler = Reconciler()
    monkeypatch.setattr(runner, "reconcile", reconciler)
    kernel, link = fix_venue_kernel(tmp_path)
    rejected: list[OrderModifyRejected] = []
    kernel.bus.subscribe(OrderModifyRejected, rejected.append)

    def amends_at_venue() -> list[str]:
        link.pump()
        return [
            (m.get(11) or "").split("/")[0] for m in link.venue_app.messages if m.msg_type == "G"
        ]

    async def main() -> None:
        link.connect()
        lost, fresh = buy(kernel, IID), buy(kernel, IID)
        link.pump()
        assert (lost.status, fresh.status) == (OrderStatus.ACCEPTED, OrderStatus.ACCEPTED)
        size, price = lost.quantity, lost.price
        assert kernel.risk.modify_order(lost, size * 2, 9_800)
        drop(link)  # the amend's bytes never reach the venue
        assert lost.status is OrderStatus.PENDING_REPLACE
        node = runner._Node(kernel.config, tmp_path)  # type: ignore[arg-type]
        watch = asyncio.create_task(node._watch_venue(kernel, link.adapter))
        try:
            reconciler.gate.clear()
            link.connect(reconciled=False)
            await until(lambda: reconciler.calls == [2], what="the new logon reconciled")
            # while the new logon is not reconciled, an amend is refused, never sent
            assert kernel.risk.modify_order(fresh, size * 3, 9_700)
            await until(lambda: fresh.status is OrderStatus.ACCEPTED, what="refused amend")
            assert [e.client_order_id for e in rejected] == [fresh.client_order_id]
            assert rejected[0].reason == NOT_RECONCILED
            assert amends_at_venue() == []  # and the lost one gap-filled
            assert lost.status is OrderStatus.PENDING_REPLACE
            reconciler.gate.set()
            await until(lambda: lost.status is OrderStatus.ACCEPTED, what="the lost amend")
            assert (lost.quantity, lost.price) == (size, price)
            assert [e.client_order_id for e in rejected[1:]] == [lost.client_order_id]
            assert "dropped connection" in rejected[1].reason
            # on the reconciled logon an amend goes out and is left to the venue
            assert kernel.risk.modify_order(fresh, size * 3, 9_700)
            assert amends_at_venue() == [fresh.client_order_id]
            assert fresh.status is OrderStatus.PENDING_REPLACE
        finally:
            watch.cancel()

    try:
        asyncio.run(main())
    finally:
        link.close()
