"""The members table against a real PostgreSQL: each member's heartbeat writes its row,
the leader reads them and tells each standby's change of health (ok, lagging, lost,
left) as a ``StandbyStatus``; a database that cannot be reached is counted, never
raised."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bastion.ha.config import HaConfig
from bastion.ha.members import (
    MemberHeartbeat,
    MemberReport,
    StandbyState,
    StandbyWatch,
    members_table,
    read_members,
)
from bastion.model.events import Event, StandbyStatus
from kit.ha import split_dsn
from kit.net import free_tcp_port
from kit.waiting import eventually

TIMING = {"heartbeat_ms": 100, "standby_lost_s": 0.3}


def _config(name: str, **keys: object) -> HaConfig:
    return HaConfig(group="desk", member=name, **{**TIMING, **keys})  # type: ignore[arg-type]


class Group:
    """Heartbeats and a leader's watch on one database, closed at the end."""

    def __init__(self, dsn: str) -> None:
        self.url, self.password = split_dsn(dsn)
        self.events: list[StandbyStatus] = []
        self._made: list[MemberHeartbeat | StandbyWatch] = []

    def heartbeat(self, name: str, **keys: object) -> MemberHeartbeat:
        config = _config(name, **keys)
        db = members_table(config, url=self.url, password=self.password)
        heartbeat = MemberHeartbeat(db, config)
        self._made.append(heartbeat)
        return heartbeat

    def watch(self, name: str = "leader", **keys: object) -> StandbyWatch:
        config = _config(name, **keys)
        db = members_table(config, url=self.url, password=self.password)
        watch = StandbyWatch(db, config, publish=self._record)
        self._made.append(watch)
        return watch

    def _record(self, event: Event) -> None:
        assert isinstance(event, StandbyStatus)
        self.events.append(event)

    def states(self, member: str) -> list[str]:
        return [e.state for e in self.events if e.member == member]

    def close(self) -> None:
        for made in self._made:
            made.stop()


@pytest.fixture
def group(pg_dsn: str) -> Iterator[Group]:
    made = Group(pg_dsn)
    try:
        yield made
    finally:
        made.close()


def test_when_members_beat_then_their_rows_say_role_lag_and_age(group: Group) -> None:
    """One upsert per beat: the row holds what was reported, aged on the server's clock."""
    leader, standby = group.heartbeat("a"), group.heartbeat("b")
    assert standby.beat() is False  # nothing reported yet: nothing written
    leader.report(MemberReport.leader(42))
    standby.report(MemberReport(role="standby", applied_seq=40, lag_events=2, lag_ms=30))
    assert leader.beat() and standby.beat() and standby.beat()
    rows = {r.member: r for r in read_members(group.watch().db)}
    assert set(rows) == {"a", "b"}
    assert (rows["a"].role, rows["a"].applied_seq, rows["a"].lag_events) == ("leader", 42, 0)
    assert (rows["b"].role, rows["b"].applied_seq, rows["b"].lag_events) == ("standby", 40, 2)
    assert rows["b"].lag_ms is not None and rows["b"].lag_ms >= 30  # plus the report's age
    assert 0 <= rows["b"].heartbeat_age_ms < 5000
    assert rows["b"].pid > 0 and rows["b"].host
    assert (standby.beats, standby.failures) == (2, 0)


def test_when_a_standby_lags_then_recovers_then_goes_quiet_the_leader_tells_each_change(
    group: Group,
) -> None:
    """ok, then lagging past max_lag_events, ok again, lost once its heartbeat is older
    than standby_lost_s: one StandbyStatus per change, none while nothing changes."""
    standby, watch = group.heartbeat("b", max_lag_events=10), group.watch(max_lag_events=10)
    standby.report(MemberReport(role="standby", applied_seq=5, lag_events=0, lag_ms=0))
    standby.beat()
    view = watch.check()
    assert view is not None and view.alive == 1 and view.health == {"b": StandbyState.OK}
    watch.check()
    assert group.states("b") == ["ok"]
    standby.report(MemberReport(role="standby", applied_seq=5, lag_events=11, lag_ms=900))
    standby.beat()
    watch.check()
    assert group.states("b") == ["ok", "lagging"]
    lagging = group.events[-1]
    assert lagging.reason == "11 events behind (ha.max_lag_events 10)"
    assert (lagging.lag_events, lagging.group) == (11, "desk")
    standby.report(MemberReport(role="standby", applied_seq=16, lag_events=0, lag_ms=0))
    standby.beat()
    watch.check()
    assert group.states("b") == ["ok", "lagging", "ok"]
    # no more beats: lost once the row is older than standby_lost_s on the server's clock
    eventually(lambda: watch.check() and group.states("b")[-1] == "lost", what="lost")
    lost = group.events[-1]
    assert lost.heartbeat_age_ms > 300
    assert lost.reason.startswith("no heartbeat for ") and "ha.standby_lost_s 0.3" in lost.reason
    assert watch.view is not None and watch.view.alive == 0


def test_when_lag_in_time_passes_max_lag_ms_then_the_standby_is_lagging(group: Group) -> None:
    """Behind by time alone (few events, old ones) is lagging too."""
    standby, watch = group.heartbeat("b"), group.watch(max_lag_ms=500)
    standby.report(MemberReport(role="standby", applied_seq=5, lag_events=1, lag_ms=501))
    standby.beat()
    watch.check()
    assert group.states("b") == ["lagging"]
    assert group.events[-1].reason.endswith("s behind (ha.max_lag_ms 500)")


def test_when_a_standby_stops_cleanly_then_it_has_left_not_been_lost(group: Group) -> None:
    """stop() deletes the row: the leader tells 'left' (no lost alert); the leader's own
    row and other leaders' rows are never standbys."""
    leader, standby = group.heartbeat("leader"), group.heartbeat("b")
    leader.report(MemberReport.leader(1))
    standby.report(MemberReport(role="standby", applied_seq=1, lag_events=0, lag_ms=0))
    leader.beat()
    standby.beat()
    watch = group.watch("leader")
    watch.check()
    assert [e.member for e in group.events] == ["b"]
    standby.stop()
    view = watch.check()
    assert group.states("b") == ["ok", "left"]
    assert group.events[-1].reason == "its row is gone (it stopped)"
    assert view is not None and view.alive == 0 and view.standbys == ()


def test_when_the_threads_run_then_the_leader_sees_the_standby_within_a_beat(
    group: Group,
) -> None:
    """The heartbeat and the watch on their own threads (the runner's way)."""
    standby, watch = group.heartbeat("b"), group.watch()
    standby.report(MemberReport(role="standby", applied_seq=3, lag_events=0, lag_ms=0))
    standby.start()
    watch.start()
    eventually(lambda: group.states("b") == ["ok"], what="the standby seen ok")
    assert watch.view is not None and watch.view.alive == 1


def test_when_the_database_cannot_be_reached_then_failures_are_counted_not_raised() -> None:
    """A member whose database is gone keeps running: each failed beat or read counts."""
    config = _config("b", timeout_ms=200)
    url = f"postgresql://bastion@127.0.0.1:{free_tcp_port()}/nowhere"
    heartbeat = MemberHeartbeat(members_table(config, url=url, password=None), config)
    heartbeat.report(MemberReport(role="standby", applied_seq=1, lag_events=0, lag_ms=0))
    assert heartbeat.beat() is False and heartbeat.beat() is False
    assert heartbeat.failures == 2
    events: list[Event] = []
    watch = StandbyWatch(
        members_table(config, url=url, password=None), config, publish=events.append
    )
    assert watch.check() is None and watch.failures == 1 and events == []
    heartbeat.stop(timeout_s=1.0)
    watch.stop(timeout_s=1.0)
