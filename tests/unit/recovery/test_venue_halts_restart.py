"""A venue the operator halted (``kill --venue``) stays halted across a restart: the halt
and the resume are journaled with who and why (``VenueHalted`` / ``VenueResumed``), and
recovery takes them over, from the snapshot and from the journal tail, before any order
can be sent; the node's other venue trades on."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest
import structlog
import structlog.testing

from bastion.clock import SimClock
from bastion.config import InstrumentConfig, PaperConfig
from bastion.errors import CommandRefused
from bastion.feeds.config import SyntheticFeedEntry
from bastion.journal import SqliteJournal
from bastion.model.data import QuoteTick
from bastion.model.enums import OrderSide, OrderStatus, OrderType
from bastion.model.events import (
    OrderAccepted,
    OrderRejected,
    OrderSubmitted,
    VenueHalted,
    VenueResumed,
)
from bastion.model.orders import Order
from bastion.node.actions import NodeOperator
from bastion.node.kernel import Kernel
from bastion.recovery.replay import RecoveryReport, recover_state
from bastion.recovery.state import capture, decode
from bastion.venues.sim.config import SimVenueEntry

T0 = 1_704_205_800_000_000_000
X, Y = "X.A", "Y.B"
HALT = "kill by op: drill"


def config(venues: tuple[str, ...]) -> PaperConfig:
    """X.A at venue A, Y.B at venue B, of the ``venues`` configured."""
    instruments = [(iid, venue) for iid, venue in ((X, "A"), (Y, "B")) if venue in venues]
    return PaperConfig(
        instruments=[
            InstrumentConfig(id=iid, venue=venue, tick_size=Decimal("0.01"))
            for iid, venue in instruments
        ],
        strategies=[],
        venues=[SimVenueEntry(name=name) for name in venues],
        feeds=[SyntheticFeedEntry(name="house", instruments=[iid for iid, _ in instruments])],
    )


@contextmanager
def node(
    path: Path, *, recover: bool = False, venues: tuple[str, ...] = ("A", "B")
) -> Iterator[tuple[Kernel, NodeOperator, RecoveryReport | None]]:
    """A two-venue kernel on the journal at ``path`` (recovered from it if ``recover``),
    quoted on both instruments; the journal is closed (committed) on exit."""
    journal = SqliteJournal(path / "j.sqlite")
    try:
        kernel = Kernel(
            config=config(venues), base_dir=path, clock=SimClock(T0), epoch=1, journal=journal
        )
        operator = NodeOperator(kernel)
        report = recover_state(kernel, journal) if recover else None
        for iid in kernel.instruments:
            kernel.on_quote(QuoteTick(iid, T0, 10_000, 10_002, 500, 500))
        yield kernel, operator, report
    finally:
        journal.close()


def send(kernel: Kernel, iid: str) -> Order:
    order = kernel.execution.create_order(
        strategy_id="s",
        instrument_id=iid,
        venue=kernel.instruments[iid].venue,
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=1,
        price=9_000,
    )
    assert kernel.risk.submit_order(order)
    kernel.flush()
    return order


def kill(operator: NodeOperator, venue: str) -> None:
    asyncio.run(operator.kill(flatten=False, who="op", why="drill", venue=venue))


def resume(operator: NodeOperator, venue: str) -> bool:
    answer = asyncio.run(operator.resume(who="op", why="over", venue=venue))
    return bool(answer["resumed"])


def journaled(path: Path) -> list[object]:
    journal = SqliteJournal(path / "j.sqlite")
    try:
        return [event for _, event in journal.read()]
    finally:
        journal.close()


def snapshot(kernel: Kernel) -> None:
    assert kernel.journal is not None
    kernel.journal.snapshot(capture(kernel, node_id="n", epoch=1), T0)


def assert_b_halted_a_trades(kernel: Kernel) -> None:
    """B refuses a new order with the halt's reason, nothing reaches it; A accepts."""
    rejected: list[OrderRejected] = []
    kernel.bus.subscribe(OrderRejected, rejected.append)
    assert kernel.venues["B"].halted == HALT
    assert kernel.unavailable_instruments() == [Y]
    at_b = send(kernel, Y)
    assert at_b.status is OrderStatus.REJECTED
    assert [e.reason for e in rejected] == [f"venue B halted: {HALT}"]
    assert asyncio.run(kernel.venues["B"].open_order_ids()) == set()
    assert send(kernel, X).status is OrderStatus.ACCEPTED


def test_when_a_venue_is_killed_and_resumed_then_both_are_journaled_with_who_and_why(
    tmp_path: Path,
) -> None:
    """kill --venue B journals VenueHalted (before B's cancels), resume --venue B journals
    VenueResumed; a resume of a venue that is not halted changes and journals nothing."""
    with node(tmp_path) as (kernel, operator, _):
        resting = send(kernel, Y)
        kill(operator, "B")
        assert resume(operator, "B") is True
        assert resume(operator, "B") is False
        assert resume(operator, "A") is False
    events = journaled(tmp_path)
    halts = [e for e in events if isinstance(e, VenueHalted | VenueResumed)]
    assert [(type(e), e.venue, e.who, e.why) for e in halts] == [
        (VenueHalted, "B", "op", "drill"),
        (VenueResumed, "B", "op", "over"),
    ]
    assert isinstance(halts[0], VenueHalted) and halts[0].reason == HALT
    kinds = [(type(e).__name__, getattr(e, "client_order_id", None)) for e in events]
    assert kinds.index(("VenueHalted", None)) < kinds.index(
        ("OrderPendingCancel", resting.client_order_id)
    )


@pytest.mark.parametrize("with_snapshot", [False, True], ids=["journal-tail", "snapshot"])
def test_when_node_restarts_after_kill_venue_then_the_venue_stays_halted(
    tmp_path: Path, with_snapshot: bool
) -> None:
    """Halted before the restart (taken over from the journal tail, or from a snapshot
    taken after the halt): B still refuses, A trades, status says so; resume lets B trade."""
    with node(tmp_path) as (kernel, operator, _):
        kill(operator, "B")
        if with_snapshot:
            snapshot(kernel)
    with node(tmp_path, recover=True) as (kernel, operator, report):
        assert report is not None and report.halted_venues == {"B": HALT}
        assert (report.snapshot_seq is not None) is with_snapshot
        assert_b_halted_a_trades(kernel)
        status = asyncio.run(operator.status())
        assert status["venues"]["B"]["halted"] == HALT
        assert status["venues"]["A"]["halted"] is None
        assert status["unavailable_instruments"] == [Y]
        assert resume(operator, "B") is True
        assert send(kernel, Y).status is OrderStatus.ACCEPTED
    with node(tmp_path, recover=True) as (kernel, _, report):
        assert report is not None and report.halted_venues == {}
        assert kernel.venues["B"].halted is None
        assert send(kernel, Y).status is OrderStatus.ACCEPTED


def test_when_snapshot_says_halted_and_the_tail_resumed_then_the_venue_trades(
    tmp_path: Path,
) -> None:
    """The journal tail after the snapshot wins: halted in the snapshot, resumed after it."""
    with node(tmp_path) as (kernel, operator, _):
        kill(operator, "B")
        snapshot(kernel)
        assert resume(operator, "B") is True
    with node(tmp_path, recover=True) as (kernel, _, report):
        assert report is not None and report.snapshot_seq is not None
        assert report.halted_venues == {}
        assert kernel.venues["B"].halted is None
        assert send(kernel, Y).status is OrderStatus.ACCEPTED


def test_when_halted_after_the_snapshot_then_the_tail_halts_the_venue(tmp_path: Path) -> None:
    """Trading in the snapshot, halted in the tail after it: halted after the restart."""
    with node(tmp_path) as (kernel, operator, _):
        snapshot(kernel)
        kill(operator, "B")
    with node(tmp_path, recover=True) as (kernel, _, report):
        assert report is not None and report.snapshot_seq is not None
        assert_b_halted_a_trades(kernel)


def test_when_a_snapshot_is_taken_then_it_holds_the_halted_venues(tmp_path: Path) -> None:
    """The snapshot carries each halted venue's reason (and none for the others)."""
    with node(tmp_path) as (kernel, operator, _):
        assert decode(capture(kernel, node_id="n", epoch=1)).halted_venues == {}
        kill(operator, "B")
        assert decode(capture(kernel, node_id="n", epoch=1)).halted_venues == {"B": HALT}


def test_when_resuming_an_unknown_venue_then_refused_and_nothing_journaled(
    tmp_path: Path,
) -> None:
    """resume --venue C on a node without C is refused; after a restart, B (halted) still
    refuses: the journal holds no resume and no order of B's that B accepted."""
    with node(tmp_path) as (kernel, operator, _):
        kill(operator, "B")
        with pytest.raises(CommandRefused, match="no venue 'C' on this node"):
            asyncio.run(operator.resume(who="op", why="sneak", venue="C"))
    with node(tmp_path, recover=True) as (kernel, operator, _):
        with pytest.raises(CommandRefused, match="no venue 'C' on this node"):
            asyncio.run(operator.resume(who="op", why="sneak", venue="C"))
        assert_b_halted_a_trades(kernel)
    events = journaled(tmp_path)
    assert not [e for e in events if isinstance(e, VenueResumed)]
    at_b = {e.client_order_id for e in events if isinstance(e, OrderSubmitted) and e.venue == "B"}
    refused = {
        e.client_order_id
        for e in events
        if isinstance(e, OrderRejected) and e.reason == f"venue B halted: {HALT}"
    }
    assert at_b and at_b == refused  # B's adapter refused each: none was sent to B
    assert not [e for e in events if isinstance(e, OrderAccepted) and e.instrument_id == Y]


def test_when_a_halted_venue_is_no_longer_configured_then_the_others_are_unaffected(
    tmp_path: Path,
) -> None:
    """A node restarted without the halted venue reports the halt (once, from the snapshot
    and the tail alike) and trades at A."""
    with node(tmp_path) as (kernel, operator, _):
        kill(operator, "B")
        snapshot(kernel)
    # captured whatever logging an earlier test configured (stdout or stderr)
    with (
        structlog.testing.capture_logs() as logs,
        node(tmp_path, recover=True, venues=("A",)) as (kernel, _, report),
    ):
        assert report is not None and report.halted_venues == {"B": HALT}
        assert kernel.venues["A"].halted is None
        assert send(kernel, X).status is OrderStatus.ACCEPTED
    assert [e["event"] for e in logs].count("venue_halt_of_unknown_venue") == 1


def test_when_kill_or_resume_venue_answers_then_the_change_is_committed(tmp_path: Path) -> None:
    """The operator's answer comes once the event is on disk (a crash right after it cannot
    lose the halt), even with a journal that commits seldom."""
    journal = SqliteJournal(tmp_path / "j.sqlite", commit_interval_ms=60_000)
    try:
        kernel = Kernel(
            config=config(("A", "B")),
            base_dir=tmp_path,
            clock=SimClock(T0),
            epoch=1,
            journal=journal,
        )
        operator = NodeOperator(kernel)
        kill(operator, "B")
        assert journal.committed_seq == journal.last_seq >= 1
        halted_seq = journal.last_seq
        assert resume(operator, "B") is True
        assert journal.committed_seq == journal.last_seq > halted_seq
    finally:
        journal.close()
