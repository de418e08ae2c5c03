"""What a member of an HA group (``[ha]``) holds once it leads, and how it stops.

A member starts as a standby (``bastion.node.standby``, the composition root's side:
the standby's kernel and control socket) and leads once it wins the group's lease.
``Leadership`` is what it then holds: the fence (its epoch), the keeper renewing it,
the standby's state to start from (``handover``), the group's FIX sequence
reservations, and what it saw of the lease before (``LeaseHistory``: who led, whether
the lease was released to it), from which it tells its takeover (``LeaderTookOver``)
and, on the way out, its step-down (``LeaderStepDown``). ``LeaderLease`` is the
leader's side of ``ha_status`` and ``ha_switchover``.

A leader that loses the lease, is fenced by the journal or switches over is
*deposed*: it halts at once, journals nothing more, sends nothing more (no cancel,
no Logout) and exits with ``EXIT_DEPOSED``; its supervisor restarts it, as a standby.
So does a leader whose journal can no longer write (its connection dropped, the
server restarted): nothing it sends could be journaled first, so it stops at once,
and releases the lease on its way out if the database answers, so that a standby
need not wait for the lease to run out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

import structlog

from bastion.errors import CommandRefused, LeaseUnavailable, OperationalError
from bastion.ha.config import HaConfig
from bastion.ha.fence import Fence
from bastion.ha.fix_seqs import SenderSeqBlock, SeqReservations
from bastion.ha.lease import Lease, LeaseKeeper
from bastion.ha.lease import LeaseStatus as StoredLease
from bastion.ha.pg_source import PostgresTailSource
from bastion.ha.standby import LeaseStatus, lease_view
from bastion.model.events import LeaderStepDown, LeaderTookOver
from bastion.recovery.replay import Handover

log = structlog.get_logger("bastion.ha")

EXIT_DEPOSED: Final = 4
"""A leader's exit code once deposed (lease lost, fenced, switched over): its supervisor
restarts it, and it comes back as a standby."""
NOT_LEADER: Final = "standby: not the leader"

# LeaderTookOver.reason
FIRST_START: Final = "first start"
SWITCHOVER: Final = "switchover"
LEASE_EXPIRED: Final = "lease expired"
# LeaderStepDown.reason (and SWITCHOVER)
DEPOSED: Final = "deposed"
LEASE_LOST: Final = "lease lost"
FENCED: Final = "fenced"
JOURNAL_FAILED: Final = "journal failed"


def ha_journal_name(ha: HaConfig | None) -> str:
    """The group's journal name: the lease's name, which the journal's fence reads."""
    assert ha is not None
    return ha.group


class LeaseHistory:
    """What a standby read of its group's lease before it won it (``wait_until_leader``'s
    ``seen``): the last member that held it (a status not released; after a release
    the row names the member it was handed to, not the one that released it)."""

    def __init__(self) -> None:
        self.holder: StoredLease | None = None

    def seen(self, status: StoredLease) -> None:
        if not status.released:
            self.holder = status

    def takeover(self, epoch: int, *, released: bool) -> tuple[str, int, str]:
        """Why ``epoch`` was won (``released``: the lease taken had been released), and
        from whom: (reason, previous epoch, previous holder; "" when unknown or none)."""
        previous = epoch - 1
        holder = self.holder
        who = holder.holder if holder is not None and holder.epoch == previous else ""
        if previous == 0:
            return FIRST_START, 0, ""
        return (SWITCHOVER if released else LEASE_EXPIRED), previous, who


class Leadership:
    """What a member holds once it won the lease: the fence (its epoch), the keeper
    renewing it, the standby's state to start from (``handover``), and the group's FIX
    sequence reservations."""

    def __init__(
        self,
        *,
        config: HaConfig,
        lease: Lease,
        fence: Fence,
        handover: Handover | None,
        won_at_s: float,
        history: LeaseHistory,
        url: str,
        password: str | None,
        source: PostgresTailSource | None,
    ) -> None:
        self.config = config
        self.lease = lease
        self.fence = fence
        self.handover = handover
        self.won_at_s = won_at_s
        self.history = history
        self.lost: str | None = None
        """Why the lead was lost (deadline, deposed, fenced, released), once it is."""
        self.lost_as = LEASE_LOST
        """``LeaderStepDown.reason`` for ``lost``: ``deposed`` (a renewal found another
        epoch) or ``lease lost`` (the local deadline passed)."""
        self.journal_failed: str | None = None
        """Why the journal can no longer write, once it cannot (the lease is then
        released on close, if the database answers)."""
        self._on_lost: Callable[[str], None] | None = None
        self._source = source
        self.reservations = SeqReservations(
            url=url,
            password=password,
            group=config.group,
            epoch=self.fence.epoch,
            timeout_ms=max(1_000, config.statement_timeout_ms),
        )
        self.keeper = LeaseKeeper(lease, self.fence, on_lost=self._lost)

    @property
    def epoch(self) -> int:
        return self.fence.epoch

    @property
    def member(self) -> str:
        return self.config.member

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
            # the keeper's reason: a Deposed error's text, or the deadline's
            self.lost_as = DEPOSED if "deposed" in reason else LEASE_LOST
        handler = self._on_lost
        if handler is not None:
            handler(reason)

    def stop_after_journal_failed(self, reason: str) -> None:
        """The journal failed (any thread): never send again (the keeper stops renewing
        once the fence is revoked); ``close(release=True)`` still releases the lease."""
        if self.journal_failed is None:
            self.journal_failed = reason
        self.fence.revoke(f"journal failed: {reason}")

    def took_over(self, *, ready_at_s: float, ts_ns: int) -> LeaderTookOver:
        """The node trades: ``ha_took_over`` logged, and the event that tells it (the
        runner publishes it, once its alerting listens)."""
        reason, previous_epoch, previous_holder = self.history.takeover(
            self.epoch, released=self.lease.took_released
        )
        wait_ms = round((ready_at_s - self.won_at_s) * 1000)
        log.warning(
            "ha_took_over",
            epoch=self.epoch,
            member=self.member,
            reason=reason,
            previous_holder=previous_holder,
            previous_epoch=previous_epoch,
            handed_over_seq=None if self.handover is None else self.handover.seq,
            lease_to_ready_ms=wait_ms,
        )
        return LeaderTookOver(
            ts_ns=ts_ns,
            group=self.config.group,
            member=self.member,
            epoch=self.epoch,
            previous_epoch=previous_epoch,
            previous_holder=previous_holder,
            wait_ms=wait_ms,
            reason=reason,
        )

    def step_down(self, reason: str, *, ts_ns: int) -> LeaderStepDown:
        """The event of this member leaving the lead (``reason``: switchover, deposed,
        lease lost, fenced, journal failed)."""
        return LeaderStepDown(
            ts_ns=ts_ns,
            group=self.config.group,
            member=self.member,
            epoch=self.epoch,
            reason=reason,
        )

    def release(self, *, to: str | None) -> bool:
        """Stop renewing and hand the lease over now (the fence is revoked first)."""
        self.keeper.stop()
        return self.lease.release(self.fence, to=to)

    def close(self, *, release: bool = False) -> None:
        """Stop the keeper, close the connections; ``release``: a clean stop (or one after
        the journal failed, while this member may still hold the lease) hands the lease
        to anyone at once (the fence is revoked first)."""
        self.keeper.stop()
        if release and (self.lost is None or self.journal_failed is not None):
            try:
                self.lease.release(self.fence)
            except (OperationalError, LeaseUnavailable) as error:
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
