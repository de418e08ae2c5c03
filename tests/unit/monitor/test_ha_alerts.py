"""The HA alerts: a takeover and an unplanned step-down (journal events), a standby
lagging or lost (the leader's ``StandbyStatus``, from the members table's rows through
``StandbyWatch``), no standby (``bastion_ha_standbys``): each fires once with a clear
summary and resolves."""

from __future__ import annotations

from bastion.ha.config import HaConfig
from bastion.ha.fence import Fence
from bastion.ha.members import MemberRow, StandbyWatch, members_table
from bastion.ha.metrics import HaReadings
from bastion.model.events import AlertFired, AlertResolved, LeaderStepDown, LeaderTookOver
from bastion.monitor.sample import SampleBuilder
from kit.alerts import Bench, bench

CONFIG = HaConfig(
    group="desk", member="a", heartbeat_ms=100, standby_lost_s=1.0, max_lag_events=100
)
NOWHERE = "postgresql://bastion@127.0.0.1:9/nowhere"  # the rows are handed in, never read


def took_over(reason: str = "lease expired", member: str = "a") -> LeaderTookOver:
    return LeaderTookOver(
        ts_ns=1,
        group="desk",
        member=member,
        epoch=8,
        previous_epoch=7,
        previous_holder="b",
        wait_ms=412,
        reason=reason,
    )


def step_down(reason: str) -> LeaderStepDown:
    return LeaderStepDown(ts_ns=1, group="desk", member="a", epoch=8, reason=reason)


def row(member: str, *, lag_events: int = 0, age_ms: int = 100) -> MemberRow:
    return MemberRow(
        member=member,
        role="standby",
        applied_seq=500 - lag_events,
        lag_events=lag_events,
        lag_ms=0 if lag_events == 0 else 2500,
        heartbeat_age_ms=age_ms,
        pid=1,
        host="h",
    )


def summaries(b: Bench, alert: str) -> list[str]:
    return [e.summary for e in b.alert_events(AlertFired) if e.alert == alert]


def resolved(b: Bench, alert: str) -> list[str]:
    return [e.how for e in b.alert_events(AlertResolved) if e.alert == alert]


def test_when_a_member_takes_over_then_a_critical_alert_says_who_from_whom_and_why() -> None:
    """ha-takeover: critical, the new and old holder, epochs, reason and the wait; quiet
    for 15 minutes, it resolves."""
    b = bench(only=["ha-takeover"])
    b.publish(took_over())
    (fired,) = b.alert_events(AlertFired)
    assert fired.severity == "critical"
    assert fired.summary == (
        "HA group desk: a took over at epoch 8 (lease expired) from b (epoch 7); "
        "trading 412 ms after it won the lease"
    )
    assert fired.labels == {"group": "desk"}
    b.advance_s(899)
    assert b.active() == ["ha-takeover"]
    b.advance_s(1)
    assert resolved(b, "ha-takeover") == ["no new event for 900 s"]


def test_when_a_group_first_starts_then_no_takeover_alert() -> None:
    """A first start is not a failover: nothing fires; a switchover does."""
    b = bench(only=["ha-takeover"])
    b.publish(took_over("first start"))
    assert b.active() == []
    b.publish(took_over("switchover"))
    assert summaries(b, "ha-takeover") == [
        "HA group desk: a took over at epoch 8 (switchover) from b (epoch 7); "
        "trading 412 ms after it won the lease"
    ]
    assert b.active() == ["ha-takeover"]


def test_when_the_leader_is_deposed_then_step_down_fires_and_a_takeover_resolves_it() -> None:
    """ha-step-down: deposed, lease lost, fenced or journal failed fire (a switchover does
    not); this member leading the group again resolves it."""
    b = bench(only=["ha-step-down"])
    b.publish(step_down("switchover"))
    assert b.active() == []
    b.publish(step_down("deposed"))
    assert summaries(b, "ha-step-down") == ["HA group desk: a stopped leading (epoch 8): deposed"]
    b.publish(step_down("lease lost"))  # counts in the same alert
    b.publish(step_down("journal failed"))
    assert len(b.alert_events(AlertFired)) == 1
    b.publish(took_over(member="a"))
    assert resolved(b, "ha-step-down") == ["LeaderTookOver"]
    assert b.notifier.statuses("ops") == ["firing", "resolved"]


def _watching(b: Bench) -> StandbyWatch:
    return StandbyWatch(
        members_table(CONFIG, url=NOWHERE, password=None),
        CONFIG,
        publish=b.publish,
        now_ns=b.now_ns,
    )


def test_when_a_standby_falls_behind_then_lagging_fires_and_catching_up_resolves_it() -> None:
    """ha-standby-lagging, per standby, from the rows the leader reads."""
    b = bench(only=["ha-standby-lagging", "ha-standby-lost"])
    watch = _watching(b)
    watch.seen([row("b"), row("c")])
    assert b.active() == []
    watch.seen([row("b", lag_events=101), row("c")])
    assert summaries(b, "ha-standby-lagging") == [
        "HA group desk: standby b is lagging: 101 events behind (ha.max_lag_events 100)"
    ]
    (fired,) = b.alert_events(AlertFired)
    assert (fired.severity, fired.labels) == ("warning", {"group": "desk", "member": "b"})
    watch.seen([row("b", lag_events=101), row("c")])  # no change: nothing more
    assert len(b.alert_events(AlertFired)) == 1
    watch.seen([row("b"), row("c")])
    assert resolved(b, "ha-standby-lagging") == ["StandbyStatus"]
    assert b.active() == []


def test_when_a_standby_goes_quiet_then_lost_fires_and_its_return_resolves_it() -> None:
    """ha-standby-lost when its heartbeat is older than standby_lost_s; resolved when it
    beats again (or leaves cleanly)."""
    b = bench(only=["ha-standby-lagging", "ha-standby-lost"])
    watch = _watching(b)
    watch.seen([row("b")])
    watch.seen([row("b", age_ms=1001)])
    assert summaries(b, "ha-standby-lost") == [
        "HA group desk: standby b is lost: no heartbeat for 1.0 s (ha.standby_lost_s 1)"
    ]
    assert b.active() == ["ha-standby-lost"]
    watch.seen([row("b")])
    assert resolved(b, "ha-standby-lost") == ["StandbyStatus"]
    watch.seen([row("b", age_ms=5000)])
    watch.seen([])  # its row deleted: it left
    assert resolved(b, "ha-standby-lost") == ["StandbyStatus", "StandbyStatus"]
    assert b.active() == []


def test_when_the_leader_has_no_standby_alive_then_no_standby_fires_until_one_beats() -> None:
    """ha-no-standby on the leader's bastion_ha_standbys sample; a node that reports no
    such series (not HA, or a standby) never raises it."""
    b = bench(only=["ha-no-standby"])
    watch = _watching(b)
    readings = HaReadings()

    def read() -> None:
        builder = SampleBuilder()
        readings.source(builder)
        b.engine.on_sample(builder.build(b.now_ns(), b.clock.monotonic_s()))

    readings.as_standby()
    read()
    readings.as_leader(Fence(8, 10**18), watch=watch)
    watch.seen([row("b")])
    read()
    assert b.active() == []
    watch.seen([row("b", age_ms=1001)])
    read()
    (fired,) = b.alert_events(AlertFired)
    assert fired.severity == "critical"
    assert fired.summary == (
        "no standby is heartbeating (0 alive): if this leader fails, nobody takes over"
    )
    watch.seen([row("b")])
    read()
    assert resolved(b, "ha-no-standby") == ["cleared"]
