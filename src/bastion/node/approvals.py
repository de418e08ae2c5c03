"""Four-eyes requests waiting for a second operator, and what became of them.

A command that needs a second, different operator (``bastion.security.config.FourEyes``)
is not run when asked: ``Approvals.open`` keeps it, under an id unique to this node's
run (``<epoch>.a<n>``), until ``expires_ns``. ``take`` is the check an approval passes
before it runs: the id is pending, not expired, and the approver is not the requester
(neither by name nor, but for two operators a console names, by uid). A granted,
expired or withdrawn request is remembered for the rest of the run, so an approval sent
twice (a replay) is refused saying what became of it. Pending requests live in memory
only: a restart drops them (their ``ApprovalRequested`` stays in the journal); the
command must be asked again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from bastion.clock import Clock
from bastion.node.control import Request
from bastion.node.identity import Operator
from bastion.security.config import FourEyes
from bastion.security.roles import Command

__all__ = ["MAX_PENDING", "Approvals", "Pending"]

MAX_PENDING: Final = 64
"""Requests waiting at once; more are refused (a runaway script cannot fill memory)."""


class Pending(msgspec.Struct, frozen=True, kw_only=True):
    """One four-eyes request: ``request`` as ``requester`` sent it, for ``why``."""

    id: str
    action: FourEyes
    command: Command
    strategy: str | None
    request: Request
    detail: str
    requester: Operator
    why: str
    created_ns: int
    expires_ns: int

    def listing(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action.value,
            "command": self.command.value,
            "detail": self.detail,
            "requested_by": self.requester.name,
            "why": self.why,
            "requested": iso(self.created_ns),
            "expires": iso(self.expires_ns),
            "expires_ns": self.expires_ns,
        }


class Approvals:
    """The node's four-eyes requests (ids ``<id_prefix>a<n>``)."""

    def __init__(self, *, clock: Clock, id_prefix: str) -> None:
        self._clock = clock
        self._id_prefix = id_prefix
        self._count = 0
        self.pending: dict[str, Pending] = {}
        self.closed: dict[str, str] = {}
        """What became of each request no longer pending (``granted by bob``, ...)."""

    def open(
        self,
        *,
        action: FourEyes,
        command: Command,
        strategy: str | None,
        request: Request,
        detail: str,
        requester: Operator,
        why: str,
        window_s: float,
    ) -> Pending | str:
        """A new pending request, or why not (``MAX_PENDING`` already wait)."""
        self.listing()  # closes the expired ones
        if len(self.pending) >= MAX_PENDING:
            return f"{MAX_PENDING} approvals are pending already: approve or let them expire"
        now = self._clock.timestamp_ns()
        self._count += 1
        pending = Pending(
            id=f"{self._id_prefix}a{self._count}",
            action=action,
            command=command,
            strategy=strategy,
            request=request,
            detail=detail,
            requester=requester,
            why=why,
            created_ns=now,
            expires_ns=now + round(window_s * 1e9),
        )
        self.pending[pending.id] = pending
        return pending

    def take(self, approval_id: str, approver: Operator) -> Pending | str:
        """The pending request ``approval_id`` if ``approver`` may be its second
        operator (the matrix is the caller's to check), or why not. An expired request
        is closed now."""
        pending = self.pending.get(approval_id)
        if pending is None:
            became = self.closed.get(approval_id)
            if became is not None:
                return f"approval {approval_id} is no longer pending ({became}): nothing to approve"
            return f"no pending approval {approval_id!r} on this node"
        now = self._clock.timestamp_ns()
        if now >= pending.expires_ns:
            self.close(approval_id, f"expired at {iso(pending.expires_ns)}")
            return (
                f"approval {approval_id} expired at {iso(pending.expires_ns)}: "
                f"{pending.requester.name} must ask again"
            )
        requester = pending.requester
        # the same name, or the same local account: but a console's operators share its
        # uid, so among them only the names tell them apart (the console's own account
        # approving what it asked for someone is refused: one side is not delegated)
        same_account = approver.uid == requester.uid and not (
            approver.delegated and requester.delegated
        )
        if approver.name == requester.name or same_account:
            return (
                f"{approver.name} asked for {approval_id} and may not approve it: a second, "
                "different operator must"
            )
        return pending

    def close(self, approval_id: str, became: str) -> Pending | None:
        """No longer pending: ``became`` (``granted by bob``, ``expired at ...``)."""
        self.closed[approval_id] = became
        return self.pending.pop(approval_id, None)

    def listing(self) -> list[dict[str, Any]]:
        """The requests still pending (an expired one is closed now), oldest first."""
        now = self._clock.timestamp_ns()
        for pending in [p for p in self.pending.values() if now >= p.expires_ns]:
            self.close(pending.id, f"expired at {iso(pending.expires_ns)}")
        return [p.listing() for p in sorted(self.pending.values(), key=lambda p: p.created_ns)]


def iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).isoformat(timespec="milliseconds")
