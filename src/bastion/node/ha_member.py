"""The node runner's side of an HA member (``[ha]``): one ``HaNode`` per process, from
its standby phase to its last moment as a leader.

- both roles: the member's row in the members table (``MemberHeartbeat``) and its
  ``bastion_ha_*`` series on the node's monitor (``HaReadings``); a standby's
  monitoring listener serves them, ``/healthz`` and ``/readyz`` (not ready: standby);
- standby (``stand_by``): ``bastion.node.standby.Standby`` until the lease is won, its
  tail's status reported after each poll;
- leader: ``lead`` once its kernel exists (``ha_status``, ``ha_switchover``, the
  takeovers and step-downs counted), ``took_over`` once it trades (``LeaderTookOver``
  published, after the alerting subscribed; the leader's ``StandbyWatch`` started);
- deposed (``depose``: the lease lost, another epoch, the journal's fence, a
  switchover, a journal that can no longer write): it halts, drops its venue sessions
  without a Logout, publishes ``LeaderStepDown`` (on a switchover before the release,
  so it is journaled; else after the journal refuses, so it reaches only the bus, the
  alerts and the log) and asks the runner to stop with ``EXIT_DEPOSED``.

The composition root imports this; nothing under ``bastion.ha`` imports the node.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import structlog

from bastion.clock import Clock
from bastion.config import PaperConfig
from bastion.errors import FencedError, OperationalError
from bastion.ha.members import MemberHeartbeat, MemberReport, StandbyWatch, members_table
from bastion.ha.metrics import HaReadings
from bastion.ha.node import (
    DEPOSED,
    EXIT_DEPOSED,
    FENCED,
    JOURNAL_FAILED,
    SWITCHOVER,
    LeaderLease,
    Leadership,
)
from bastion.ha.standby import HaMember
from bastion.ha.tail import TailStatus
from bastion.journal.base import Journal
from bastion.journal.keys import JournalKeys
from bastion.model.events import Event
from bastion.monitor.node import NodeMonitor
from bastion.node.identity import Identities
from bastion.node.kernel import Kernel
from bastion.node.standby import Standby
from bastion.tasks import TaskManager, spawn
from bastion.vault.refs import SecretSource

log = structlog.get_logger("bastion.node")


class HaNode:
    """One process's life as a member of its HA group (see the module docstring)."""

    def __init__(
        self,
        config: PaperConfig,
        *,
        base_dir: Path,
        keys: JournalKeys,
        secrets: SecretSource | None,
        clock: Clock,
        identities: Identities | None,
        tasks: TaskManager,
        stop: Callable[[int], None],
    ) -> None:
        """``stop(exit_code)``: end the run (called on the loop once deposed)."""
        ha = config.ha
        assert ha is not None
        self.config = config
        self.ha = ha
        self.base_dir = base_dir
        self.keys = keys
        self.secrets = secrets
        self.clock = clock
        self.identities = identities
        self.tasks = tasks
        self._stop = stop
        self.url, self.password = config.ha_database(secrets)
        self.heartbeat = MemberHeartbeat(
            members_table(ha, url=self.url, password=self.password), ha
        )
        self.readings = HaReadings(heartbeat=self.heartbeat)
        self.leader: Leadership | None = None
        self.kernel: Kernel | None = None
        self.deposed: str | None = None
        """Why this leader was deposed: it sends and journals nothing more, and exits."""
        self._watch: StandbyWatch | None = None
        self._stepped_down = False
        self._abandoning: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- standby -------------------------------------------------------------------------
    async def stand_by(
        self,
        stop: asyncio.Event,
        *,
        monitor: NodeMonitor | None,
        on_signal: Callable[[signal.Signals], None],
    ) -> Leadership | None:
        """Follow the journal as a standby until this member leads (None: stopped first;
        the member has then left its group)."""
        loop = self._loop = asyncio.get_running_loop()
        self.readings.as_standby()
        self.heartbeat.report(MemberReport(role="standby"))
        self.heartbeat.start()
        if monitor is not None:
            monitor.add_source(self.readings.source)
            monitor.standing_by()
            monitor.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        standby = Standby(
            self.config,
            base_dir=self.base_dir,
            keys=self.keys,
            secrets=self.secrets,
            clock=self.clock,
            identities=self.identities,
            tasks=self.tasks,
            on_poll=self._polled,
        )
        leader = await standby.run(stop)
        if leader is None:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await self.tasks.cancel_all()
            self.heartbeat.stop()
            return None
        self.leader = leader

        def lost(reason: str) -> None:  # on a keeper's thread
            loop.call_soon_threadsafe(self.depose, reason, leader.lost_as)

        leader.on_lost(lost)
        return leader

    def _polled(self, status: TailStatus) -> None:
        """After a tail poll (a worker thread): what the next heartbeat writes."""
        self.heartbeat.report(MemberReport.standby(status))

    # -- leader --------------------------------------------------------------------------
    def lead(self, kernel: Kernel, journal: Journal) -> HaMember:
        """The leader's kernel exists: its bus counts the takeovers and step-downs, and
        this is its side of ``ha_status`` and ``ha_switchover``."""
        leader = self.leader
        assert leader is not None
        self.kernel = kernel
        self.readings.attach(kernel.bus)

        def prepare() -> None:  # journaled before the release; the open orders keep working
            self._step_down(kernel, SWITCHOVER)
            kernel.stop_strategies()
            journal.flush()

        lease = LeaderLease(leader, prepare=prepare, deposed=self.depose)
        return HaMember(name=leader.member, lease=lease, epoch=leader.epoch)

    def took_over(self, kernel: Kernel) -> None:
        """The leader trades (recovered, reconciled, strategies started): its row says
        so, it watches its standbys, and ``LeaderTookOver`` is published (journaled,
        and the ``ha-takeover`` alert's trigger: the alerting is subscribed by now)."""
        leader = self.leader
        assert leader is not None
        event = leader.took_over(
            ready_at_s=self.clock.monotonic_s(), ts_ns=self.clock.timestamp_ns()
        )
        loop = asyncio.get_running_loop()

        def publish(event: Event) -> None:  # on the watch's thread
            loop.call_soon_threadsafe(kernel.bus.publish, event)

        watch = StandbyWatch(
            members_table(self.ha, url=self.url, password=self.password),
            self.ha,
            publish=publish,
            now_ns=kernel.clock.timestamp_ns,
        )
        self._watch = watch
        self.readings.as_leader(leader.fence, watch=watch)
        self.heartbeat.report(MemberReport.leader())
        kernel.bus.publish(event)
        watch.start()

    def on_fenced(self, error: FencedError) -> None:
        """The journal found another epoch (on its writer thread)."""
        loop = self._loop
        assert loop is not None
        loop.call_soon_threadsafe(self.depose, f"journal fenced: {error}", FENCED)

    def on_journal_failed(self, error: OperationalError) -> None:
        """The journal can no longer write (its connection dropped, the server restarted
        or stopped answering; on the thread that wrote, before the journal refuses): the
        journal-before-send rule cannot hold, so the fence is revoked now (nothing more
        to the venues, the lease no longer renewed) and the member steps down as a
        deposed one does; the lease is released on the way out if the database answers."""
        loop = self._loop
        assert loop is not None
        reason = f"journal failed: {error}"
        loop.call_soon_threadsafe(self.depose, reason, JOURNAL_FAILED)  # before the keeper's
        if self.leader is not None:
            self.leader.stop_after_journal_failed(str(error))

    def depose(self, reason: str, as_: str = DEPOSED) -> None:
        """No longer the leader (on the loop): halt now (nothing journaled, nothing sent),
        tell it (``LeaderStepDown``, reason ``as_``), then stop the run with
        ``EXIT_DEPOSED`` for the supervisor to restart this member as a standby."""
        if self.deposed is not None:
            return
        self.deposed = reason
        log.critical(
            "ha_deposed",
            reason=reason,
            epoch=None if self.leader is None else self.leader.epoch,
            note="no order, cancel, Logout or journal write from here on; exiting",
        )
        kernel = self.kernel
        if kernel is not None:
            kernel.lease_lost(reason)  # the journal refuses from here: the halt is ours
            # at once: a session that drops now must not reconnect (a Logon) meanwhile
            self._abandoning = spawn("ha-abandon-venues", _abandon(kernel))
            self._step_down(kernel, as_)
        elif self.leader is not None:
            self.leader.fence.revoke(reason)
        self._stop(EXIT_DEPOSED)

    def _step_down(self, kernel: Kernel, reason: str) -> None:
        leader = self.leader
        if self._stepped_down or leader is None:
            return
        self._stepped_down = True
        kernel.bus.publish(leader.step_down(reason, ts_ns=self.clock.timestamp_ns()))

    # -- the end -------------------------------------------------------------------------
    async def settle(self) -> None:
        """Wait for the venue sessions a deposition dropped."""
        if self._abandoning is not None:
            await asyncio.gather(self._abandoning, return_exceptions=True)

    def close_journal(self, journal: Journal) -> None:
        """Close the leader's journal; once deposed, its refusal is expected."""
        if self.deposed is None:
            journal.close()
            return
        try:
            journal.close()
        except OperationalError as error:  # fenced: nothing more was written
            log.warning("journal_closed_deposed", error=str(error))

    def close(self, *, release: bool) -> None:
        """Stop watching, close the lease (``release``, unless deposed: hand it to anyone
        at once, a clean stop), leave the members table."""
        if self._watch is not None:
            self._watch.stop()
        leader = self.leader
        if leader is not None:
            may_release = self.deposed is None or leader.journal_failed is not None
            leader.close(release=release and may_release)
        self.heartbeat.stop()


async def _abandon(kernel: Kernel) -> None:
    for venue in kernel.venues.values():
        await venue.abandon()
