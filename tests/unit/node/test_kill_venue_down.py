"""A kill while a FIX venue is down: no cancel can reach it, so the kill's answer counts
that venue's orders as ``cancels_pending_reconnect`` (not as cancels sent), and once the
venue has logged on again and been reconciled the node cancels them, because the node is
HALTED (``bastion kill``) or that venue halted (``bastion kill --venue``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import bastion.node.runner as runner
from bastion.model.enums import OrderStatus, TradingState
from bastion.node.actions import NodeOperator
from kit.fix_link import IID, VENUE
from kit.fix_venue_node import Reconciler, X, buy, drop, fix_venue_kernel
from kit.waiting import until


@pytest.mark.parametrize("scope", ["node", "venue"])
def test_when_killed_while_a_fix_venue_is_down_then_its_orders_canceled_once_reconciled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scope: str
) -> None:
    """The FIX order stays ACCEPTED through the kill (nothing sent, counted pending); the
    cancel goes out after the new logon's reconciliation, not before it."""
    reconciler = Reconciler()
    monkeypatch.setattr(runner, "reconcile", reconciler)
    kernel, link = fix_venue_kernel(tmp_path)

    def cancels_at_venue() -> list[str]:
        link.pump()  # what the node wrote reaches the venue
        return [m.get(41) or "" for m in link.venue_app.messages if m.msg_type == "F"]

    async def main() -> None:
        link.connect()
        at_a, at_fix = buy(kernel, X), buy(kernel, IID)
        link.pump()
        assert (at_a.status, at_fix.status) == (OrderStatus.ACCEPTED, OrderStatus.ACCEPTED)
        drop(link)
        answer = await NodeOperator(kernel).kill(
            flatten=False, who="op", why="drill", venue=None if scope == "node" else VENUE
        )
        sent = 1 if scope == "node" else 0  # A's order, canceled at once
        assert (answer["cancels_sent"], answer["cancels_pending_reconnect"]) == (sent, 1)
        await asyncio.sleep(0)  # a cancel refused locally would be answered by now
        assert at_fix.status is OrderStatus.ACCEPTED and cancels_at_venue() == []
        node = runner._Node(kernel.config, tmp_path)  # type: ignore[arg-type]
        watch = asyncio.create_task(node._watch_venue(kernel, link.adapter))
        try:
            reconciler.gate.clear()
            link.connect(reconciled=False)
            await until(lambda: reconciler.calls == [2], what="the new logon reconciled")
            assert cancels_at_venue() == []  # not before the reconciliation
            reconciler.gate.set()
            await until(cancels_at_venue, what="the cancel at the venue")
            assert cancels_at_venue() == [at_fix.client_order_id]
            assert at_fix.status is OrderStatus.PENDING_CANCEL
            assert kernel.halt_cancels[VENUE] == 1
            assert kernel.risk.state is (
                TradingState.HALTED if scope == "node" else TradingState.ACTIVE
            )
            status = await NodeOperator(kernel).status()
            assert status["venues"][VENUE]["cancels_after_halt"] == 1
        finally:
            watch.cancel()

    try:
        asyncio.run(main())
    finally:
        link.close()


def test_when_not_halted_then_reconciliation_cancels_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drop and a new logon of an active node leave the order working (cancel on
    disconnect ``off``)."""
    reconciler = Reconciler()
    monkeypatch.setattr(runner, "reconcile", reconciler)
    kernel, link = fix_venue_kernel(tmp_path)

    async def main() -> None:
        link.connect()
        order = buy(kernel, IID)
        link.pump()
        drop(link)
        node = runner._Node(kernel.config, tmp_path)  # type: ignore[arg-type]
        watch = asyncio.create_task(node._watch_venue(kernel, link.adapter))
        try:
            link.connect(reconciled=False)
            await until(lambda: link.adapter.reconciled, what="the new logon reconciled")
            link.pump()
            assert [m for m in link.venue_app.messages if m.msg_type == "F"] == []
            assert order.status is OrderStatus.ACCEPTED and kernel.halt_cancels[VENUE] == 0
        finally:
            watch.cancel()

    try:
        asyncio.run(main())
    finally:
        link.close()
