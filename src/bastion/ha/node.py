"""A node that is one member of an HA group (``[ha]``): it starts as a standby and
trades only once it holds the group's lease.

``Standby.run`` is the standby's life: a journal-less kernel kept current by a
``JournalTail`` on the PostgreSQL journal (woken by each commit's NOTIFY, every wait
bounded), the control socket answering reads and ``ha_status`` (anything else:
"standby: not the leader"), and, concurrently, the lease's acquire loop
(``wait_until_leader``). No journal is opened for writing, no venue connected, no
strategy started. When it wins: a last ``poll``, ``promote`` (a broken tail or none
at all: the new leader starts cold from the journal), the standby's kernel closed,
and the lease keeper started at once (the fence's deadline runs from the acquire).
It returns a ``Leadership``, and the runner takes the normal start path with it: the
journal fenced by the epoch, ``recover_state(start=handover)``, venues (the epoch in
the Logon, FIX sequence numbers from the group's reservations), reconciliation,
strategies; then it logs ``ha_took_over``.

A leader that loses the lease, is fenced by the journal or switches over is
*deposed*: it halts at once, journals nothing more, sends nothing more (no cancel,
no Logout) and exits with ``EXIT_DEPOSED``; its supervisor restarts it, as a standby.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import structlog

from bastion.clock import Clock
from bastion.config import PaperConfig
from bastion.errors import CommandRefused, ConfigError, OperationalError, StandbyTailBroken
from bastion.ha.fence import Fence
from bastion.ha.fix_seqs import SenderSeqBlock, SeqReservations
from bastion.ha.lease import Lease, LeaseKeeper, wait_until_leader
from bastion.ha.lease import LeaseStatus as StoredLease
from bastion.ha.pg_source import PostgresTailSource
from bastion.ha.standby import HaMember, LeaseStatus, ReadOnlyLease, lease_view
from bastion.ha.tail import JournalTail
from bastion.journal._codec import Chain
from bastion.journal._pg_schema import describe
from bastion.journal.factory import journal_local_path, journal_password
from bastion.journal.keys import JournalKeys
from bastion.journal.postgres import write_marker
from bastion.journal.reader import NotAJournalError
from bastion.node.access import command_guard, socket_mode
from bastion.node.actions import NodeOperator
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

EXIT_DEPOSED: Final = 4
"""A leader's exit code once deposed (lease lost, fenced, switched over): its supervisor
restarts it, and it comes back as a standby."""
FOLLOW_WAIT_S: Final = 0.05
"""Longest wait for a commit's NOTIFY before the standby looks again."""
RETRY_S: Final = 0.5
"""Pause before opening the journal again (not created yet, or unreachable)."""
NOT_LEADER: Final = "standby: not the leader"


def ha_journal_name(config: PaperConfig) -> str:
    """The group's journal name: the lease's name, which the journal's fence reads."""
    assert config.ha is not None
    return config.ha.group


class Leadership:
    """What a member holds once it won the lease: the fence (its epoch), the keeper
    renewing it, the standby's state to start from (``handover``), and the group's FIX
    sequence reservations."""

    def __init__(
        self,
        *,
        config: PaperConfig,
        lease: Lease,
        fence: Fence,
        handover: Handover | None,
        won_at_s: float,
        previous: StoredLease | None,
        url: str,
        password: str | None,
        source: PostgresTailSource | None,
    ) -> None:
        assert config.ha is not None
        self.config = config
        self.lease = lease
        self.fence = fence
        self.handover = handover
        self.won_at_s = won_at_s
        self.previous = previous
        self.lost: str | None = None
        """Why the lead was lost (deadline, deposed, fenced, released), once it is."""
        self._on_lost: Callable[[str], None] | None = None
        self._source = source
        self.reservations = SeqReservations(
            url=url,
            password=password,
            group=config.ha.group,
            epoch=self.fence.epoch,
            timeout_ms=max(1_000, config.ha.statement_timeout_ms),
        )
        self.keeper = LeaseKeeper(lease, self.fence, on_lost=self._lost)

    @property
    def epoch(self) -> int:
        return self.fence.epoch

    @property
    def member(self) -> str:
        assert self.config.ha is not None
        return self.config.ha.member

    def sender_seqs(self, session_key: str) -> SenderSeqBlock:
        return self.reservations.session(session_key)

    def on_lost(self, handler: Callable[[str], None]) -> None:
        """Call ``handler(reason)`` (from a keeper's or the journal's thread) when the
        lead is lost; at once if it was lost already."""
        self._on_lost = handler
        if self.lost is not None:
            handler(self.lost)

    def _lost(self, reason: str) -> None:
        if self.lost is None:
            self.lost = reason
        handler = self._on_lost
        if handler is not None:
            handler(reason)

    def took_over(self, ready_at_s: float) -> None:
        """The node trades: ``ha_took_over`` (the place HA alerts hook in)."""
        previous = self.previous
        log.warning(
            "ha_took_over",
            epoch=self.epoch,
            member=self.member,
            previous_holder=None if previous is None else previous.holder,
            previous_epoch=None if previous is None else previous.epoch,
            handed_over_seq=None if self.handover is None else self.handover.seq,
            lease_to_ready_ms=round((ready_at_s - self.won_at_s) * 1000, 1),
        )

    def release(self, *, to: str | None) -> bool:
        """Stop renewing and hand the lease over now (the fence is revoked first)."""
        self.keeper.stop()
        return self.lease.release(self.fence, to=to)

    def close(self, *, release: bool = False) -> None:
        """Stop the keeper, close the connections; ``release``: a clean stop hands the
        lease to anyone at once (the fence is revoked first)."""
        self.keeper.stop()
        if release and self.lost is None:
            try:
                self.lease.release(self.fence)
            except OperationalError as error:
                log.warning("ha_release_failed", error=str(error))
        self.lease.close()
        self.reservations.close()
        if self._source is not None:
            self._source.close()


class LeaderLease:
    """The leader's ``LeaseView`` (``HaMember``): status from the lease, and the
    switchover: ``prepare`` (stop the strategies, commit the journal), release, then
    ``deposed`` (exit)."""

    def __init__(
        self,
        leadership: Leadership,
        *,
        prepare: Callable[[], None],
        deposed: Callable[[str], None],
    ) -> None:
        self.leadership = leadership
        self._prepare = prepare
        self._deposed = deposed

    def status(self) -> LeaseStatus | None:
        return lease_view(self.leadership.lease.status())

    def release(self, *, to: str | None) -> LeaseStatus:
        leadership = self.leadership
        if leadership.lost is not None:
            raise CommandRefused(f"this member no longer leads: {leadership.lost}")
        started = time.monotonic()
        self._prepare()
        if not leadership.release(to=to):
            self._deposed("switchover: the lease was no longer this member's")
            raise CommandRefused("the lease was no longer this member's")
        log.warning(
            "ha_switched_over",
            epoch=leadership.epoch,
            to=to,
            release_ms=round((time.monotonic() - started) * 1000, 1),
        )
        self._deposed(f"switched over to {to or 'any standby'}")
        status = self.status()
        assert status is not None
        return status


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
    ) -> None:
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
        self.previous: StoredLease | None = None
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
            asyncio.to_thread(wait_until_leader, self.lease, stop_acquiring, seen=self._seen),
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
            config=self.config,
            lease=self.lease,
            fence=fence,
            handover=None,
            won_at_s=won_at,
            previous=self.previous,
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
            previous_holder=None if self.previous is None else self.previous.holder,
            handed_over_seq=None if leadership.handover is None else leadership.handover.seq,
            promote_ms=round((self.clock.monotonic_s() - won_at) * 1000, 1),
        )
        return leadership

    def _seen(self, status: StoredLease) -> None:
        if status.holder != self.member:
            self.previous = status

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
            except StandbyTailBroken:
                await asyncio.sleep(RETRY_S)
            except OperationalError as error:
                log.warning("standby_follow_failed", error=str(error))
                await asyncio.sleep(RETRY_S)

    async def _open_tail(self) -> bool:
        config = self.config
        try:
            source = await asyncio.to_thread(
                PostgresTailSource,
                config.journal.url or "",
                name=ha_journal_name(config),
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
            write_marker(marker, describe(None, ha_journal_name(config)))
        operator = NodeOperator(self.kernel)
        operator.ha = self.ha
        guard = command_guard(operator, identities=self.identities, epoch=0, mode=config.node.mode)
        sock = open_control_socket(path, mode=socket_mode(config))
        return self.tasks.spawn("control-standby", serve_control(sock, path, StandbyGuard(guard)))
