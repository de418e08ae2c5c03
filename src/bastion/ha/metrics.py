"""The HA metrics of a member (``bastion_ha_*``), sampled on the node's loop: its role,
a standby's own applied seq and lag (as it last reported them), the leader's epoch and
lease time left (its own fence's deadline), each standby's lag and heartbeat age as the
leader read them (``bastion.ha.members.StandbyWatch``), the standbys alive, and the
takeovers (by reason: ``failover``, ``switchover``, ``first_start``) and step-downs this
process saw.

The runner makes one ``HaReadings`` per process, says which role the member has now
(``as_standby``, ``as_leader``), lets it count ``LeaderTookOver`` and ``LeaderStepDown``
on each kernel's bus (``attach(bus)``) and hands ``source`` to the node's monitor
(``monitor.add_source(readings.source)``). It reads only references the other threads
swap, so sampling never waits on the database.
"""

from __future__ import annotations

from bastion.bus import MessageBus
from bastion.ha.fence import Fence
from bastion.ha.members import MemberHeartbeat, StandbyWatch
from bastion.ha.node import FIRST_START, LEASE_EXPIRED, SWITCHOVER
from bastion.model.events import LeaderStepDown, LeaderTookOver
from bastion.monitor.sample import SampleBuilder

ROLES = ("leader", "standby")
TAKEOVER_REASONS = {LEASE_EXPIRED: "failover", SWITCHOVER: "switchover", FIRST_START: "first_start"}
"""``LeaderTookOver.reason`` as the ``reason`` label of ``bastion_ha_takeovers_total``: a
rule on takeovers leaves out ``first_start`` (a group's first leader is no incident)."""


class HaReadings:
    """One member's HA metrics; see the module docstring."""

    def __init__(self, *, heartbeat: MemberHeartbeat | None = None) -> None:
        self.heartbeat = heartbeat
        self.role: str | None = None
        self.fence: Fence | None = None
        self.watch: StandbyWatch | None = None
        self.takeovers = dict.fromkeys(TAKEOVER_REASONS.values(), 0)
        self.step_downs = 0

    def as_standby(self) -> None:
        """This member follows the journal (no epoch, no standbys of its own to watch)."""
        self.role, self.fence, self.watch = "standby", None, None

    def as_leader(self, fence: Fence, *, watch: StandbyWatch | None = None) -> None:
        """This member leads under ``fence`` and watches its standbys with ``watch``."""
        self.role, self.fence, self.watch = "leader", fence, watch

    def attach(self, bus: MessageBus) -> None:
        """Count the takeovers and step-downs published on ``bus`` (each kernel's)."""
        bus.subscribe(LeaderTookOver, self._took_over)
        bus.subscribe(LeaderStepDown, self._stepped_down)

    def _took_over(self, event: LeaderTookOver) -> None:
        reason = TAKEOVER_REASONS.get(event.reason, "failover")  # unknown: worth an alert
        self.takeovers[reason] += 1

    def _stepped_down(self, event: LeaderStepDown) -> None:
        self.step_downs += 1

    def source(self, b: SampleBuilder) -> None:
        """The ``bastion_ha_*`` series (``NodeMonitor.add_source``)."""
        for reason, count in self.takeovers.items():
            b.set("bastion_ha_takeovers_total", count, reason=reason)
        b.set("bastion_ha_step_downs_total", self.step_downs)
        if self.heartbeat is not None:
            b.set("bastion_ha_heartbeat_failures_total", self.heartbeat.failures)
        if self.role is None:
            return
        for role in ROLES:
            b.set("bastion_ha_role", self.role == role, role=role)
        report = None if self.heartbeat is None else self.heartbeat.reported
        if self.role == "standby" and report is not None and report.role == "standby":
            if report.applied_seq is not None:
                b.set("bastion_ha_applied_seq", report.applied_seq)
            if report.lag_events is not None:
                b.set("bastion_ha_lag_events", report.lag_events)
            if report.lag_ms is not None:
                b.set("bastion_ha_lag_seconds", report.lag_ms / 1000)
        fence = self.fence
        if fence is not None:
            b.set("bastion_ha_epoch", fence.epoch)
            b.set("bastion_ha_lease_remaining_seconds", max(0, fence.remaining_ns()) / 1e9)
        watch = self.watch
        if watch is None:
            return
        b.set("bastion_ha_members_read_failures_total", watch.failures)
        view = watch.view
        if view is None:
            return
        b.set("bastion_ha_standbys", view.alive)
        for row in view.standbys:
            if row.lag_events is not None:
                b.set("bastion_ha_standby_lag_events", row.lag_events, member=row.member)
            if row.lag_ms is not None:
                b.set("bastion_ha_standby_lag_seconds", row.lag_ms / 1000, member=row.member)
            b.set(
                "bastion_ha_standby_heartbeat_age_seconds",
                row.heartbeat_age_ms / 1000,
                member=row.member,
            )
