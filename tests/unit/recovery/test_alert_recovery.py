"""The alerts firing and the silences running survive a restart: recovery rebuilds the
kernel's ``AlertBook`` from the journal tail, from a snapshot, or from both (the tail
after the snapshot wins), and a snapshot taken before the book existed still loads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from bastion.clock import SimClock
from bastion.config import BacktestConfig, InstrumentConfig
from bastion.data.config import ReplaySourceConfig
from bastion.journal import SqliteJournal
from bastion.model.events import AlertFired, VenueLoggedOn, VenueSessionLost
from bastion.node.kernel import Kernel
from bastion.recovery.replay import Handover, RecoveryReport, recover_state
from bastion.recovery.state import capture, decode, snapshot_of
from kit.alerts import T0, Bench, S, bench

RULES = ["venue-disconnected"]


def build(path: Path, clock: SimClock) -> tuple[Kernel, Bench, SqliteJournal]:
    """A kernel journaling to ``path`` with an alert engine on its bus and clock."""
    journal = SqliteJournal(path / "j.sqlite")
    config = BacktestConfig(
        instruments=[InstrumentConfig(id="X", tick_size=Decimal("0.01"))],
        strategies=[],
        data=[ReplaySourceConfig(path="unused.csv", instrument="X")],
        progress=False,
    )
    kernel = Kernel(config=config, base_dir=path, clock=clock, epoch=1, journal=journal)
    return kernel, bench(only=RULES, clock=clock, bus=kernel.bus), journal


@contextmanager
def run(path: Path, at_ns: int) -> Iterator[tuple[Kernel, Bench, RecoveryReport]]:
    """One run of the node at ``at_ns``: recovered from the journal, which is closed
    (committed) on exit."""
    kernel, engine, journal = build(path, SimClock(at_ns))
    try:
        yield kernel, engine, recover_state(kernel, journal)
    finally:
        journal.close()


def lost(venue: str) -> VenueSessionLost:
    return VenueSessionLost(ts_ns=T0, venue=venue, reason="session dropped")


def snapshot(kernel: Kernel) -> None:
    assert kernel.journal is not None
    kernel.journal.snapshot(capture(kernel, node_id="n", epoch=1), kernel.clock.timestamp_ns())


@pytest.mark.parametrize("snapshot_at", ["none", "middle", "end"])
def test_when_alerts_were_firing_then_recovery_brings_them_back(
    tmp_path: Path, snapshot_at: str
) -> None:
    """A firing and acknowledged, B fired then resolved, a silence running: recovered
    from the tail, from a snapshot taken between (B's end in the tail), or after."""
    with run(tmp_path, T0) as (kernel, first, _):
        first.publish(lost("A"))
        first.publish(lost("B"))
        a_id, _ = first.engine.by_id
        first.engine.acknowledge(a_id, who="alice", why="on it")
        silence = first.engine.silence("venue-disconnected", {}, for_s=600, who="a", why="w")
        if snapshot_at == "middle":
            snapshot(kernel)
        first.publish(VenueLoggedOn(ts_ns=T0, venue="B", logons=2))
        if snapshot_at == "end":
            snapshot(kernel)
        (fired_a, _) = first.alert_events(AlertFired)
    with run(tmp_path, T0 + 60 * S) as (kernel, _, report):
        assert (report.snapshot_seq is None) is (snapshot_at == "none")
        (firing,) = kernel.alerts.firing.values()
        assert (firing.alert_id, firing.fired_ns, firing.labels) == (
            a_id,
            fired_a.ts_ns,
            {"venue": "A"},
        )
        assert (firing.acknowledged_by, firing.acknowledged_why) == ("alice", "on it")
        assert list(kernel.alerts.silences) == [silence.id]


def test_when_the_engine_resolves_an_alert_carried_over_then_the_book_follows(
    tmp_path: Path,
) -> None:
    """The next run's engine takes the book over; its resolution (on the kernel's bus)
    leaves the book, and so the run after, with nothing firing."""
    with run(tmp_path, T0) as (_, first, _):
        first.publish(lost("A"))
    with run(tmp_path, T0 + 60 * S) as (kernel, second, _):
        second.engine.take_over(kernel.alerts)
        assert second.journaled == []
        second.publish(VenueLoggedOn(ts_ns=T0, venue="A", logons=2))
        assert kernel.alerts.firing == {}
    with run(tmp_path, T0 + 120 * S) as (kernel, _, _):
        assert kernel.alerts.firing == {}


def test_when_a_snapshot_is_taken_then_its_alerts_and_silences_round_trip(
    tmp_path: Path,
) -> None:
    """``capture`` holds the book; ``decode`` gives it back whole."""
    kernel, b, journal = build(tmp_path, SimClock(T0))
    try:
        b.publish(lost("A"))
        b.engine.silence("venue-disconnected", {"venue": "A"}, for_s=60, who="a", why="w")
        stored = decode(capture(kernel, node_id="n", epoch=1))
        assert stored.alerts == list(kernel.alerts.firing.values())
        assert stored.silences == list(kernel.alerts.silences.values())
        assert len(stored.alerts) == len(stored.silences) == 1
    finally:
        journal.close()


def test_when_a_silence_ran_out_then_the_snapshot_leaves_it_out(tmp_path: Path) -> None:
    """Only silences still running are stored."""
    clock = SimClock(T0)
    kernel, b, journal = build(tmp_path, clock)
    try:
        b.engine.silence("venue-disconnected", {}, for_s=60, who="a", why="w")
        clock.advance_to(T0 + 60 * S)
        assert decode(capture(kernel, node_id="n", epoch=1)).silences == []
    finally:
        journal.close()


def test_when_a_snapshot_has_no_alerts_then_it_still_loads_and_the_tail_applies(
    tmp_path: Path,
) -> None:
    """A snapshot written before alerts were stored in it (no ``alerts`` nor
    ``silences``): it decodes, recovery uses it, and an alert fired after it is back."""
    with run(tmp_path, T0) as (kernel, first, _):
        fields = msgspec.msgpack.decode(capture(kernel, node_id="n", epoch=1))
        del fields["alerts"], fields["silences"]
        older = msgspec.msgpack.encode(fields)
        assert decode(older).alerts == []
        assert kernel.journal is not None
        kernel.journal.snapshot(older, T0)
        first.publish(lost("A"))
    with run(tmp_path, T0 + 60 * S) as (kernel, _, _):
        assert kernel.journal is not None
        latest = kernel.journal.latest_snapshot()
        assert latest is not None and latest.payload == older
        assert [f.labels for f in kernel.alerts.firing.values()] == [{"venue": "A"}]


def test_when_a_standby_hands_its_state_over_then_the_alerts_go_with_it(tmp_path: Path) -> None:
    """A warm standby's handover (its state as a snapshot, ``Handover``) carries the
    book: the new leader recovers the alerts firing without reading the journal."""
    with run(tmp_path, T0) as (kernel, first, _):
        first.publish(lost("A"))
        assert kernel.journal is not None
        kernel.journal.flush()
        handover = Handover(
            seq=kernel.journal.last_seq, snapshot=snapshot_of(kernel, node_id="n", epoch=1)
        )
    leader, _, journal = build(tmp_path, SimClock(T0 + S))
    try:
        report = recover_state(leader, journal, start=handover)
        assert report.replayed_events == 0
        assert [f.labels for f in leader.alerts.firing.values()] == [{"venue": "A"}]
    finally:
        journal.close()
