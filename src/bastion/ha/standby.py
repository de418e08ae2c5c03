"""The operator's view of a high-availability group: who leads, at which epoch, and
each member's role and lag (``gather_status``, behind ``bastion ha status``), and the
node's side of the control socket's ``ha_status`` and ``ha_switchover`` (``HaMember``).

The leader lease itself (``bastion.ha.lease``: a row per group in PostgreSQL, with its
fencing epoch) is reached through ``LeaseView``, the two things the operator side needs
of it; the members table (``bastion.ha.members``: each member's own row, on any host)
through a ``MembersView``; the command line plugs the real ones in (``bastion.cli.ha``).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import msgspec

from bastion.errors import BastionError, CommandRefused, LeaseUnavailable, OperationalError
from bastion.ha.lease import Lease
from bastion.ha.lease import LeaseStatus as StoredLease
from bastion.ha.members import MemberRow, members_table, read_members
from bastion.ha.tail import JournalTail


class LeaseStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One lease as stored (``bastion_leases(name, epoch, holder, expires_at,
    renewed_at)``), times in ns since the epoch."""

    name: str
    epoch: int
    holder: str | None
    expires_ns: int
    renewed_ns: int


class LeaseView(Protocol):
    """What ``ha status`` and ``ha switchover`` need of the leader lease."""

    def status(self) -> LeaseStatus | None:
        """The lease as stored now (None: never taken)."""
        ...

    def release(self, *, to: str | None) -> LeaseStatus:
        """The leader gives the lease up now (for ``to`` only, if given: another member
        may not take it first); ``CommandRefused`` if this member does not hold it."""
        ...


def lease_view(stored: StoredLease | None) -> LeaseStatus | None:
    """The lease as ``bastion ha status`` shows it (times in ns since the epoch)."""
    if stored is None:
        return None
    now = time.time_ns()
    return LeaseStatus(
        name=stored.group,
        epoch=stored.epoch,
        holder=stored.holder or None,
        expires_ns=now + stored.expires_in_ms * 1_000_000,
        renewed_ns=now - stored.renewed_ms_ago * 1_000_000,
    )


class ReadOnlyLease:
    """A ``LeaseView`` that only reads (a standby's, the CLI's): it holds no lease to
    release."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease

    def status(self) -> LeaseStatus | None:
        return lease_view(self.lease.status())

    def release(self, *, to: str | None) -> LeaseStatus:
        raise CommandRefused("standby: not the leader")


class MembersView(Protocol):
    """What ``ha status`` needs of the members table."""

    lost_after_ms: int
    """A row whose heartbeat is older than this is shown ``lost`` (``ha.standby_lost_s``)."""

    def rows(self) -> list[MemberRow]:
        """Every member's row (``LeaseUnavailable``: the database did not answer)."""
        ...


class MembersTable:
    """The group's members table, read once per call (``MembersView``)."""

    def __init__(self, lease: Lease, *, url: str, password: str | None) -> None:
        config = lease.config
        self.lost_after_ms = round(config.standby_lost_s * 1000)
        self._db = members_table(config, url=url, password=password)

    def rows(self) -> list[MemberRow]:
        return read_members(self._db)


@dataclass(frozen=True, kw_only=True)
class Group:
    """An HA member's group as its config names it: the lease, the members table and
    this member's name."""

    member: str
    lease: LeaseView
    members: MembersView | None = None


class Role(enum.StrEnum):
    LEADER = "leader"
    STANDBY = "standby"
    SINGLE = "single"
    """No HA: a node on its own."""
    UNREACHABLE = "unreachable"
    """Its control socket did not answer (shown, never an error)."""
    LOST = "lost"
    """Its row in the members table has not been written for ``ha.standby_lost_s``."""


class MemberStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One member as it reports itself (``ha_status``), or as unreachable."""

    name: str
    role: Role
    epoch: int | None = None
    applied_seq: int | None = None
    committed_seq: int | None = None
    lag_events: int | None = None
    lag_s: float | None = None
    error: str | None = None
    host: str | None = None
    """Where it runs, as its row in the members table says."""
    heartbeat_age_ms: int | None = None
    """Since its row was last written (the database's clock); None: no row read."""


class GroupStatus(msgspec.Struct, frozen=True, kw_only=True):
    """``bastion ha status``: the lease and every member asked."""

    lease: LeaseStatus | None
    members: list[MemberStatus]


class HaMember:
    """This node in its HA group: the control socket's ``ha_status`` (any operator) and
    ``ha_switchover`` (admin; journaled by the guard, ``OperatorCommand``, before it runs).

    ``name``: this member's; ``lease``: the group's lease; ``tail``: while a standby,
    its journal tail (None on the leader); ``epoch``: the leader's fencing epoch."""

    def __init__(
        self,
        *,
        name: str,
        lease: LeaseView,
        tail: JournalTail | None = None,
        epoch: int | None = None,
    ) -> None:
        self.name = name
        self.lease = lease
        self.tail = tail
        self.epoch = epoch

    def status(self) -> MemberStatus:
        if self.tail is None and self.epoch is None:
            return MemberStatus(
                name=self.name, role=Role.STANDBY, error="not following the journal (yet)"
            )
        if self.tail is None:
            return MemberStatus(name=self.name, role=Role.LEADER, epoch=self.epoch)
        tail = self.tail.status()
        return MemberStatus(
            name=self.name,
            role=Role.STANDBY,
            applied_seq=tail.applied_seq,
            committed_seq=tail.committed_seq,
            lag_events=tail.lag_events,
            lag_s=tail.lag_s,
            error=tail.error,
        )

    def switchover(self, *, to: str | None) -> dict[str, Any]:
        """Hand the lead over: only the leader can; the lease is released for ``to`` (or
        the first standby to take it), which promotes its tail and starts trading."""
        if self.tail is not None or self.epoch is None:
            raise CommandRefused(f"{self.name} is a standby: ask the leader to switch over")
        if to == self.name:
            raise CommandRefused(f"{self.name} leads already")
        released = self.lease.release(to=to)
        return {"released": msgspec.to_builtins(released), "to": to}


Ask = Callable[[Path], dict[str, Any]]


def gather_status(
    lease: LeaseView | None,
    sockets: Mapping[str, Path],
    ask: Ask,
    *,
    members: MembersView | None = None,
) -> GroupStatus:
    """The lease as stored, each member's own answer to ``ha_status`` on its control
    socket (``ask``; a member that does not answer is ``unreachable``), and every
    member's row in the members table (``members``), so that members on other hosts
    appear too: their role, lag, host and heartbeat age, ``lost`` once the heartbeat is
    older than ``members.lost_after_ms``. A member both asked and in the table keeps
    its socket's answer, with its host and heartbeat age added."""
    found: list[MemberStatus] = []
    for name, path in sockets.items():
        try:
            answer = ask(path)
        except (BastionError, OSError) as error:
            found.append(MemberStatus(name=name, role=Role.UNREACHABLE, error=str(error)))
            continue
        if answer.get("ok") is not True or not isinstance(answer.get("ha"), dict):
            reason = str(answer.get("error", "no ha status in its answer"))
            found.append(MemberStatus(name=name, role=Role.UNREACHABLE, error=reason))
            continue
        try:
            found.append(msgspec.convert(answer["ha"], MemberStatus))
        except msgspec.ValidationError as error:
            found.append(MemberStatus(name=name, role=Role.UNREACHABLE, error=str(error)))
    if members is not None:
        try:
            found = _with_rows(found, members.rows(), members.lost_after_ms)
        except (LeaseUnavailable, OperationalError) as error:
            found.append(MemberStatus(name="members", role=Role.UNREACHABLE, error=str(error)))
    try:
        stored = None if lease is None else lease.status()
    except OperationalError as error:
        found.append(MemberStatus(name="lease", role=Role.UNREACHABLE, error=str(error)))
        stored = None
    return GroupStatus(lease=stored, members=found)


def _with_rows(
    asked: list[MemberStatus], rows: list[MemberRow], lost_after_ms: int
) -> list[MemberStatus]:
    by_name = {m.name: m for m in asked}
    out = list(asked)
    for row in rows:
        lost = row.heartbeat_age_ms > lost_after_ms
        seen = by_name.get(row.member)
        if seen is not None and seen.role is not Role.UNREACHABLE:
            out[out.index(seen)] = msgspec.structs.replace(
                seen, host=row.host, heartbeat_age_ms=row.heartbeat_age_ms
            )
            continue
        role = Role.LOST if lost else _row_role(row.role)
        error = f"no heartbeat for {row.heartbeat_age_ms / 1000:.1f}s" if lost else None
        if seen is not None and seen.error:  # its socket did not answer
            error = seen.error if error is None else f"{error}; {seen.error}"
        status = MemberStatus(
            name=row.member,
            role=role,
            applied_seq=row.applied_seq,
            lag_events=row.lag_events,
            lag_s=None if row.lag_ms is None else row.lag_ms / 1000,
            error=error,
            host=row.host,
            heartbeat_age_ms=row.heartbeat_age_ms,
        )
        if seen is None:
            out.append(status)
        else:
            out[out.index(seen)] = status
    return out


def _row_role(role: str) -> Role:
    return Role.LEADER if role == Role.LEADER.value else Role.STANDBY


def render(status: GroupStatus) -> str:
    """``ha status`` for a person."""
    lease = status.lease
    if lease is None:
        lines = ["lease: none (no leader)"]
    else:
        left_ms = (lease.expires_ns - time.time_ns()) / 1e6
        expiry = (
            f"expires in {left_ms:.0f} ms" if left_ms >= 0 else f"ran out {-left_ms:.0f} ms ago"
        )
        lines = [f"lease {lease.name}: leader {lease.holder or '-'}, epoch {lease.epoch}, {expiry}"]
    for m in status.members:
        line = f"  {m.name:<16} {m.role.value:<11}"
        if m.role is Role.LEADER and m.epoch is not None:
            line += f" epoch {m.epoch}"
        if m.role in (Role.STANDBY, Role.LOST) and m.applied_seq is not None:
            lag_s = "?" if m.lag_s is None else f"{m.lag_s:.1f}s"
            lag = "?" if m.lag_events is None else str(m.lag_events)
            line += f" applied {m.applied_seq} lag {lag} events, {lag_s}"
        if m.host is not None and m.heartbeat_age_ms is not None:
            line += f" on {m.host}, heartbeat {m.heartbeat_age_ms / 1000:.1f}s ago"
        if m.error:
            line += f" ({m.error})"
        lines.append(line)
    return "\n".join(lines)
