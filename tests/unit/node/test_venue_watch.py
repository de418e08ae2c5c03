"""The venue watcher reconciles a venue after every new logon, told by the venue's
logon count rather than its logged-on flag; from a drop until that reconciliation the
venue's instruments are unavailable and its new orders are rejected at once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import bastion.node.runner as runner
from bastion.bus import MessageBus
from bastion.model.events import OrderRejected, VenueLoggedOn, VenueSessionLost
from bastion.venues.fix.adapter import NOT_RECONCILED
from kit.fix_link import IID, Link, order
from kit.fix_venue_node import Reconciler, drop
from kit.two_venues import two_venue_config
from kit.waiting import until


def fake_kernel(settled: list[set[str]], sessions: list[Any] | None = None) -> Any:
    """What the watcher uses of a kernel; ``sessions`` records the venue session events
    it journals (through the bus)."""
    bus = MessageBus()
    for kind in (VenueSessionLost, VenueLoggedOn):
        bus.subscribe(kind, (sessions if sessions is not None else []).append)
    return SimpleNamespace(
        bus=bus,
        instruments={},
        execution=SimpleNamespace(open_orders=list),
        risk=SimpleNamespace(cancel_order=lambda order: True),
        settle_after_restart=settled.append,
        cancel_if_halted=lambda name: 0,
        reject_lost_amends=lambda name: 0,
    )


def test_when_a_deferred_venue_logged_on_before_its_watcher_started_then_it_is_reconciled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Down at the start, then logged on while the other venues were reconciled: its
    watcher reconciles it at once (it does not wait for a drop first) and settles it."""
    reconciler = Reconciler()
    monkeypatch.setattr(runner, "reconcile", reconciler)
    link = Link(tmp_path)
    settled: list[set[str]] = []
    sessions: list[Any] = []

    async def main() -> None:
        link.connect(reconciled=False)
        node = runner._Node(two_venue_config(), tmp_path)
        watch = asyncio.create_task(
            node._watch_venue(fake_kernel(settled, sessions), link.adapter, deferred=0)
        )
        try:
            await until(lambda: reconciler.calls == [1] and settled, what="the reconciliation")
            assert link.adapter.reconciled
        finally:
            watch.cancel()

    try:
        asyncio.run(main())
    finally:
        link.close()
    assert settled == [{link.adapter.name}]
    assert [(type(e), e.logons) for e in sessions] == [(VenueLoggedOn, 1)]


def test_when_a_venue_drops_and_logs_on_again_while_reconciled_then_it_is_reconciled_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drop and a new logon while the reconciliation of the previous logon is still
    running (the session is logged on again when it ends): the new logon is reconciled
    too, and the venue counts as reconciled only then."""
    reconciler = Reconciler()
    monkeypatch.setattr(runner, "reconcile", reconciler)
    link = Link(tmp_path)
    sessions: list[Any] = []

    async def main() -> None:
        link.connect()  # logon 1, reconciled at start
        node = runner._Node(two_venue_config(), tmp_path)
        watch = asyncio.create_task(node._watch_venue(fake_kernel([], sessions), link.adapter))
        try:
            reconciler.gate.clear()
            drop(link)
            link.connect(reconciled=False)  # logon 2
            await until(lambda: reconciler.calls == [2], what="logon 2 being reconciled")
            drop(link)
            link.connect(reconciled=False)  # logon 3, while logon 2 is reconciled
            reconciler.gate.set()
            await until(lambda: reconciler.calls == [2, 3], what="logon 3 reconciled")
            await until(lambda: link.adapter.reconciled, what="the venue reconciled")
            assert link.adapter.reconciled_logon == 3
        finally:
            watch.cancel()

    try:
        asyncio.run(main())
    finally:
        link.close()
    # each drop journaled once, each new logon once, in order
    assert [(type(e).__name__, getattr(e, "logons", None)) for e in sessions] == [
        ("VenueSessionLost", None),
        ("VenueLoggedOn", 2),
        ("VenueSessionLost", None),
        ("VenueLoggedOn", 3),
    ]


def test_when_logged_on_but_not_reconciled_then_new_orders_rejected_with_the_reason(
    tmp_path: Path,
) -> None:
    """From the logon until its reconciliation an order is rejected at once and never
    sent; once reconciled on that logon, the same order goes out."""
    link = Link(tmp_path)

    async def main() -> None:
        link.connect(reconciled=False)
        assert not link.adapter.reconciled
        early = order()
        link.adapter.submit(early)
        await until(lambda: link.events, what="the rejection")
        (rejected,) = link.events
        assert isinstance(rejected, OrderRejected) and rejected.reason == NOT_RECONCILED
        assert [m for m in link.venue_app.messages if m.msg_type == "D"] == []
        link.adapter.reconciled_logon = link.adapter.logons  # the node reconciled it
        later = order()
        link.adapter.submit(later)
        link.pump()
        assert link.venue_app.last("D").get(11) == later.client_order_id
        assert later.instrument_id == IID

    try:
        asyncio.run(main())
    finally:
        link.close()
