"""A member of an HA group (``[ha]``) as a standby: it starts so, and trades only once
it holds the group's lease.

``Standby.run`` is the standby's life: a journal-less kernel kept current by a
``JournalTail`` on the PostgreSQL journal (woken by each commit's NOTIFY, every wait
bounded), the control socket answering reads (``audit`` from the group's journal, as
the leader wrote it) and ``ha_status`` (anything else: "standby: not the leader"),
and, concurrently, the lease's acquire loop (``wait_until_leader``). No journal is
opened for writing, no venue connected, no strategy started. After each poll the
tail's status goes to ``on_poll`` (the member's heartbeat). When it wins: a last
``poll``, ``promote`` (a broken tail or none at all: the new leader starts cold from
the journal), the standby's kernel closed, and the lease keeper started at once (the
fence's deadline runs from the acquire). It returns a ``Leadership``
(``bastion.ha.node``), and the runner takes the normal start path with it
(``bastion.node.ha_member``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import structlog

from bastion.clock import Clock
from bastion.config import PaperConfig
from bastion.errors import ConfigError, LeaseUnavailable, OperationalError, StandbyTailBroken
from bastion.ha.fence import Fence
from bastion.ha.lease import Lease, wait_until_leader
from bastion.ha.node import NOT_LEADER, Leadership, LeaseHistory, ha_journal_name
from bastion.ha.pg_source import PostgresTailSource
from bastion.ha.standby import HaMember, ReadOnlyLease
from bastion.ha.tail import JournalTail, TailStatus
from bastion.journal._codec import Chain
from bastion.journal._pg_schema import describe
from bastion.journal.factory import journal_local_path, journal_locator, journal_password
from bastion.journal.keys import JournalKeys
from bastion.journal.postgres import write_marker
from bastion.journal.reader import NotAJournalError
from bastion.node.access import command_guard, socket_mode
from bastion.node.actions import NodeOperator
from bastion.node.audit import AuditTrail
from bastion.node.authz import required
from bastion.node.control import (
    HaStatusRequest,
    Request,
    RequestHandler,
    open_control_socket,
    serve_control,
    socket_path,
)
from bastion.node.identity import Identities, PeerCredentials
from bastion.node.kernel import Kernel
from bastion.recovery.replay import Handover
from bastion.security.roles import Command
from bastion.tasks import TaskManager
from bastion.vault.refs import SecretSource

log = structlog.get_logger("bastion.ha")

FOLLOW_WAIT_S: Final = 0.05
"""Longest wait for a commit's NOTIFY before the standby looks again."""
RETRY_S: Final = 0.5
"""Pause before opening the journal again (not created yet, or unreachable)."""


class StandbyGuard:
    """The standby's control socket: reads and ``ha_status`` through the node's guard,
    every other command refused (it would act on no venue and journal nowhere)."""

    def __init__(self, guard: RequestHandler) -> None:
        self.guard = guard

    async def handle(self, req: Request, peer: PeerCredentials) -> dict[str, Any]:
        if isinstance(req, HaStatusRequest) or required(req).command is Command.READ:
            return await self.guard.handle(req, peer)
        return {"ok": False, "error": NOT_LEADER}


class Standby:
    """A member's standby phase (see the module docstring)."""

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
        on_poll: Callable[[TailStatus], None] | None = None,
    ) -> None:
        """``on_poll(status)``: the tail's status after each poll (on a worker thread)."""
        ha = config.ha
        if ha is None:
            raise ConfigError("key 'ha': this node is not an HA member")
        if config.journal.backend != "postgres" or config.journal.url is None:
            raise ConfigError(
                "key 'journal.backend': an HA member needs a PostgreSQL journal (\"postgres\")"
            )
        if ha.url is not None and ha.url != config.journal.url:
            raise ConfigError(
                "key 'ha.url': a member's lease must live in its journal's database, "
                "whose writes it fences: leave ha.url unset"
            )
        self.config = config
        self.base_dir = base_dir
        self.keys = keys
        self.secrets = secrets
        self.clock = clock
        self.identities = identities
        self.tasks = tasks
        self.member = ha.member
        self.url, self.password = config.ha_database(secrets)
        self.journal_password = journal_password(config.journal, secrets)
        self.kernel = Kernel(config=config, base_dir=base_dir, clock=clock, epoch=0)
        self.tail: JournalTail | None = None
        self.source: PostgresTailSource | None = None
        self.history = LeaseHistory()
        self.on_poll = on_poll
        self.report_every_s = ha.heartbeat_ms / 4000
        """``on_poll`` at most this often: a heartbeat carries the newest report."""
        self._report_at_s = 0.0
        self.broken: str | None = None
        """Why the journal could not be followed from the start (it is not retried)."""
        self.lease = Lease(ha, url=self.url, password=self.password)
        self.ha = HaMember(name=ha.member, lease=ReadOnlyLease(self.lease))

    async def run(self, stop: asyncio.Event) -> Leadership | None:
        """Follow the journal until this member wins the lease (its ``Leadership``) or
        ``stop`` is set (None)."""
        log.warning("ha_standby", group=self.lease.config.group, member=self.member)
        stop_acquiring = threading.Event()
        acquire = self.tasks.spawn(
            "ha-acquire",
            asyncio.to_thread(self._acquire, stop_acquiring),
        )
        stopped = self.tasks.spawn("ha-stop-wait", stop.wait())
        follow = self.tasks.spawn("ha-follow", self._follow())
        control = self._serve_control()
        try:
            await asyncio.wait({acquire, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_acquiring.set()
            for task in (follow, stopped, *(() if control is None else (control,))):
                task.cancel()
            await asyncio.gather(follow, stopped, return_exceptions=True)
            if control is not None:
                await asyncio.gather(control, return_exceptions=True)
        fence = await acquire if acquire.done() and not acquire.cancelled() else None
        if fence is None:  # stopped first: let the acquire loop end on its own
            await asyncio.gather(acquire, return_exceptions=True)
            await self._close()
            self.lease.close()
            return None
        won_at = self.clock.monotonic_s()
        leadership = Leadership(
            config=self.lease.config,
            lease=self.lease,
            fence=fence,
            handover=None,
            won_at_s=won_at,
            history=self.history,
            url=self.url,
            password=self.password,
            source=self.source,
        )
        leadership.keeper.start()  # the fence's deadline runs from the acquire
        leadership.handover = self._promote()
        await self._close(keep_source=True)
        log.warning(
            "ha_lease_won",
            epoch=fence.epoch,
            member=self.member,
            previous_holder=None if self.history.holder is None else self.history.holder.holder,
            handed_over_seq=None if leadership.handover is None else leadership.handover.seq,
            promote_ms=round((self.clock.monotonic_s() - won_at) * 1000, 1),
        )
        return leadership

    def _acquire(self, stop: threading.Event) -> Fence | None:
        """The acquire loop, after one look at the lease (who led before, even when the
        first try wins)."""
        with contextlib.suppress(LeaseUnavailable):
            status = self.lease.status()
            if status is not None:
                self.history.seen(status)
        return wait_until_leader(self.lease, stop, seen=self.history.seen)

    def _promote(self) -> Handover | None:
        tail = self.tail
        if tail is None:
            log.warning("ha_start_cold", reason="no journal tail (none yet, or unreachable)")
            return None
        try:
            tail.poll()
            return tail.promote()
        except (StandbyTailBroken, OperationalError) as error:
            log.error("ha_start_cold", reason=str(error))
            return None

    async def _close(self, *, keep_source: bool = False) -> None:
        """The standby's kernel is done: its venue stores closed (never connected)."""
        for venue in self.kernel.venues.values():
            await venue.disconnect()
        if not keep_source and self.source is not None:
            self.source.close()

    async def _follow(self) -> None:
        """Apply each commit as it is announced (bounded waits); open the tail when the
        journal exists; a broken tail stays broken (``ha_status`` says why)."""
        while True:
            tail, source = self.tail, self.source
            if self.broken is not None:  # the new leader starts cold, from the journal
                await asyncio.sleep(RETRY_S)
                continue
            if tail is None or source is None:
                if not await self._open_tail():
                    await asyncio.sleep(RETRY_S)
                continue
            try:
                await asyncio.to_thread(source.wait_for_commit, tail.applied_seq, FOLLOW_WAIT_S)
                tail.poll()
                now_s = self.clock.monotonic_s()
                if self.on_poll is not None and now_s >= self._report_at_s:
                    self._report_at_s = now_s + self.report_every_s
                    await asyncio.to_thread(self._polled, tail)
            except StandbyTailBroken:
                if self.on_poll is not None:  # the row says so: its lag grows from here
                    await asyncio.to_thread(self._polled, tail)
                await asyncio.sleep(RETRY_S)
            except OperationalError as error:
                log.warning("standby_follow_failed", error=str(error))
                await asyncio.sleep(RETRY_S)

    def _polled(self, tail: JournalTail) -> None:
        assert self.on_poll is not None
        self.on_poll(tail.status())  # reads the committed seq: off the loop

    async def _open_tail(self) -> bool:
        config = self.config
        try:
            source = await asyncio.to_thread(
                PostgresTailSource,
                config.journal.url or "",
                name=ha_journal_name(config.ha),
                password=self.journal_password,
                keys=self.keys,
                statement_timeout_ms=config.journal.statement_timeout_ms,
            )
        except NotAJournalError:
            return False  # no leader has created it yet
        except OperationalError as error:
            log.warning("standby_journal_unreachable", error=str(error))
            return False
        try:
            tail = JournalTail.start(
                self.kernel, source, chain=Chain(self.keys.chain), node_id=config.node.id
            )
        except (StandbyTailBroken, OperationalError) as error:
            # the kernel took part of it: a fresh one for the next try
            log.error("standby_tail_failed_at_start", error=str(error))
            source.close()
            await self._close()
            self.kernel = Kernel(config=config, base_dir=self.base_dir, clock=self.clock, epoch=0)
            if isinstance(error, StandbyTailBroken):
                self.broken = str(error)
            return False
        self.source, self.tail = source, tail
        self.ha.tail = tail
        status = tail.status()
        log.info(
            "standby_following",
            applied_seq=status.applied_seq,
            snapshot_seq=status.snapshot_seq,
            lag_events=status.lag_events,
        )
        return True

    def _serve_control(self) -> asyncio.Task[None] | None:
        if self.identities is None:
            return None
        config = self.config
        marker = journal_local_path(config.journal, self.base_dir)
        path = socket_path(marker)
        if not marker.exists():  # the control client looks for it beside the socket
            write_marker(marker, describe(None, ha_journal_name(config.ha)))
        operator = NodeOperator(self.kernel)
        operator.ha = self.ha
        # the group's audit trail, read from its journal as the leader wrote it
        operator.audit_trail = AuditTrail(
            journal_locator(
                config.journal,
                base_dir=self.base_dir,
                keys=self.keys,
                secrets=self.secrets,
                name=config.journal_name(),
                password=self.journal_password,
            )
        )
        guard = command_guard(operator, identities=self.identities, epoch=0, mode=config.node.mode)
        sock = open_control_socket(path, mode=socket_mode(config))
        return self.tasks.spawn("control-standby", serve_control(sock, path, StandbyGuard(guard)))
