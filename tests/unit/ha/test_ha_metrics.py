"""The HA metrics of a member (``HaReadings.source``): each ``bastion_ha_*`` series as
the role, the fence, the leader's view of its standbys and the bus make it, and each
in the catalogue with its labels."""

from __future__ import annotations

from bastion.bus import MessageBus
from bastion.ha.config import HaConfig
from bastion.ha.fence import Fence
from bastion.ha.members import (
    MemberHeartbeat,
    MemberReport,
    MemberRow,
    StandbyWatch,
    members_table,
)
from bastion.ha.metrics import HaReadings
from bastion.model.events import Event, LeaderStepDown, LeaderTookOver
from bastion.monitor.catalogue import check_series
from bastion.monitor.sample import Sample, SampleBuilder

CONFIG = HaConfig(group="desk", member="a", heartbeat_ms=100, standby_lost_s=1.0)
NOWHERE = "postgresql://bastion@127.0.0.1:9/nowhere"  # never connected to here


class Clock:
    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        return self.ns


def _sample(readings: HaReadings) -> Sample:
    builder = SampleBuilder()
    readings.source(builder)
    sample = builder.build(0, 0.0)
    for name, series in sample.values.items():
        for labels in series:
            assert check_series(name, tuple(k for k, _ in labels)) is None
    return sample


def _row(member: str, *, lag_events: int = 0, lag_ms: int = 0, age_ms: int = 50) -> MemberRow:
    return MemberRow(
        member=member,
        role="standby",
        applied_seq=100 - lag_events,
        lag_events=lag_events,
        lag_ms=lag_ms,
        heartbeat_age_ms=age_ms,
        pid=1,
        host="h",
    )


def _leader(clock: Clock) -> tuple[HaReadings, StandbyWatch, list[Event]]:
    events: list[Event] = []
    watch = StandbyWatch(
        members_table(CONFIG, url=NOWHERE, password=None), CONFIG, publish=events.append
    )
    readings = HaReadings()
    readings.as_leader(Fence(7, clock.ns + 750_000_000, now_ns=clock), watch=watch)
    return readings, watch, events


def test_when_a_member_has_no_role_yet_then_only_its_counters_are_sampled() -> None:
    """Before the runner says leader or standby: the takeover counters, at 0."""
    sample = _sample(HaReadings())
    for reason in ("failover", "switchover", "first_start"):
        assert sample.get("bastion_ha_takeovers_total", reason=reason) == 0
    assert sample.get("bastion_ha_role", role="leader") is None


def test_when_standby_then_role_is_standby_and_no_leader_series() -> None:
    """bastion_ha_role: 1 for standby, 0 for leader; no epoch, lease or standbys."""
    readings = HaReadings()
    readings.as_standby()
    sample = _sample(readings)
    assert sample.get("bastion_ha_role", role="standby") == 1
    assert sample.get("bastion_ha_role", role="leader") == 0
    for name in ("bastion_ha_epoch", "bastion_ha_lease_remaining_seconds", "bastion_ha_standbys"):
        assert sample.get(name) is None, name


def test_when_leader_then_role_and_epoch_are_its_fences() -> None:
    """bastion_ha_role leader = 1 and bastion_ha_epoch the fence's epoch."""
    readings, _, _ = _leader(Clock())
    sample = _sample(readings)
    assert sample.get("bastion_ha_role", role="leader") == 1
    assert sample.get("bastion_ha_role", role="standby") == 0
    assert sample.get("bastion_ha_epoch") == 7


def test_when_time_passes_then_lease_remaining_counts_down_to_zero_not_below() -> None:
    """bastion_ha_lease_remaining_seconds: until the fence's local deadline, then 0."""
    clock = Clock()
    readings, _, _ = _leader(clock)
    assert _sample(readings).get("bastion_ha_lease_remaining_seconds") == 0.75
    clock.ns += 500_000_000
    assert _sample(readings).get("bastion_ha_lease_remaining_seconds") == 0.25
    clock.ns += 1_000_000_000
    assert _sample(readings).get("bastion_ha_lease_remaining_seconds") == 0.0


def test_when_standbys_read_then_each_ones_lag_and_heartbeat_age_are_series() -> None:
    """bastion_ha_standby_lag_events / _lag_seconds / _heartbeat_age_seconds per member."""
    readings, watch, _ = _leader(Clock())
    assert _sample(readings).get("bastion_ha_standbys") is None  # not read yet
    watch.seen([_row("b", lag_events=12, lag_ms=1500, age_ms=200), _row("c")])
    sample = _sample(readings)
    assert sample.get("bastion_ha_standby_lag_events", member="b") == 12
    assert sample.get("bastion_ha_standby_lag_seconds", member="b") == 1.5
    assert sample.get("bastion_ha_standby_heartbeat_age_seconds", member="b") == 0.2
    assert sample.get("bastion_ha_standby_lag_events", member="c") == 0


def test_when_a_standby_is_lost_then_standbys_counts_only_the_living() -> None:
    """bastion_ha_standbys: heartbeating within standby_lost_s (lagging ones count)."""
    readings, watch, _ = _leader(Clock())
    watch.seen([_row("b", lag_events=5000), _row("c", age_ms=1001), _row("d")])
    assert _sample(readings).get("bastion_ha_standbys") == 2
    watch.seen([_row("c", age_ms=5000)])
    assert _sample(readings).get("bastion_ha_standbys") == 0


def test_when_leaders_change_on_the_bus_then_takeovers_and_step_downs_count() -> None:
    """bastion_ha_takeovers_total (by reason) and _step_downs_total count the bus's
    events; a group's first start is its own reason, which the rules leave out."""
    readings, bus = HaReadings(), MessageBus()
    readings.attach(bus)
    bus.publish(
        LeaderTookOver(
            ts_ns=1,
            group="desk",
            member="a",
            epoch=2,
            previous_epoch=1,
            previous_holder="b",
            wait_ms=10,
            reason="lease expired",
        )
    )
    bus.publish(LeaderStepDown(ts_ns=2, group="desk", member="a", epoch=2, reason="switchover"))
    first = LeaderTookOver(
        ts_ns=3, group="d2", member="a", epoch=1, previous_epoch=0, previous_holder="",
        wait_ms=5, reason="first start",
    )  # fmt: skip
    bus.publish(first)
    sample = _sample(readings)
    assert sample.get("bastion_ha_takeovers_total", reason="failover") == 1
    assert sample.get("bastion_ha_takeovers_total", reason="first_start") == 1
    assert sample.get("bastion_ha_takeovers_total", reason="switchover") == 0
    assert sample.get("bastion_ha_step_downs_total") == 1


def test_when_heartbeats_or_reads_fail_then_their_failures_are_counted() -> None:
    """bastion_ha_heartbeat_failures_total and bastion_ha_members_read_failures_total."""
    heartbeat = MemberHeartbeat(members_table(CONFIG, url=NOWHERE, password=None), CONFIG)
    readings = HaReadings(heartbeat=heartbeat)
    readings2, watch, _ = _leader(Clock())
    heartbeat.failures, watch.failures = 3, 2
    assert _sample(readings).get("bastion_ha_heartbeat_failures_total") == 3
    assert _sample(readings2).get("bastion_ha_members_read_failures_total") == 2


def test_when_standby_reported_then_its_applied_seq_and_lag_are_sampled() -> None:
    """A standby's last report (its tail's status): bastion_ha_applied_seq, _lag_events
    and _lag_seconds; none before a report, none on a leader."""
    heartbeat = MemberHeartbeat(members_table(CONFIG, url=NOWHERE, password=None), CONFIG)
    readings = HaReadings(heartbeat=heartbeat)
    readings.as_standby()
    assert _sample(readings).get("bastion_ha_applied_seq") is None
    heartbeat.report(MemberReport(role="standby", applied_seq=90, lag_events=10, lag_ms=1500))
    sample = _sample(readings)
    assert sample.get("bastion_ha_applied_seq") == 90
    assert sample.get("bastion_ha_lag_events") == 10
    assert sample.get("bastion_ha_lag_seconds") == 1.5
    heartbeat.report(MemberReport.leader())
    readings.as_leader(Fence(7, 2_000_000_000, now_ns=Clock()))
    assert _sample(readings).get("bastion_ha_applied_seq") is None
