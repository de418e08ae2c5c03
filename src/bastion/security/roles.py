"""Operator roles and what each may do: one table, ``MATRIX``, read by ``allowed``.

Every command an operator can give (on the control socket, the command line or the
console) is a ``Command``; every operator holds one or more ``Role``. ``MATRIX`` says,
for each command and each role, ``YES``, ``NO``, or ``ASSIGNED`` (only for the
strategies assigned to that operator). Nothing is allowed that the table does not say:
an unknown role or command is refused. The table is rendered in docs/security.md
("Roles") by ``matrix_markdown``; a test keeps the two equal.

Roles add up: an operator holding several may do what any of them may
(``allowed_any``). They are kept apart on purpose: an admin manages people and arms
live trading but does not trade, kill or override limits unless also given the role
that does. Approving a four-eyes request needs ``APPROVE`` *and* the right to give the
command approved (``may_approve``): a resume is approved by a second risk officer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

__all__ = [
    "MATRIX",
    "STRATEGY_COMMANDS",
    "Command",
    "Grant",
    "Role",
    "allowed",
    "allowed_any",
    "matrix_markdown",
    "may_approve",
]


class Role(StrEnum):
    """What an operator is for (docs/security.md, "Roles")."""

    VIEWER = "viewer"
    """Reads everything an operator may see; changes nothing."""
    TRADER = "trader"
    """Runs the strategies assigned to them."""
    RISK_OFFICER = "risk_officer"
    """Stops and resumes trading, overrides limits within their ceilings."""
    ADMIN = "admin"
    """Manages operators, raises ceilings, arms live trading."""


class Command(StrEnum):
    """Every operator command, whatever channel it arrives by."""

    READ = "read"
    """Status, positions, orders, strategies, limits and overrides, alerts, the audit
    trail (the socket's ``status`` and ``risk_list``)."""
    KILL = "kill"
    """Halt and cancel every open order (the node, or one venue)."""
    FLATTEN = "flatten"
    """Kill and close every position (``kill --flatten``)."""
    RESUME = "resume"
    """Back to ACTIVE after a kill (the node, or one venue); four-eyes."""
    PAUSE_INSTRUMENT = "pause_instrument"
    RESUME_INSTRUMENT = "resume_instrument"
    STRATEGY_ENABLE = "strategy_enable"
    """Re-enable a disabled strategy (the socket's ``enable``)."""
    STRATEGY_DISABLE = "strategy_disable"
    STRATEGY_START = "strategy_start"
    STRATEGY_STOP = "strategy_stop"
    RISK_SET = "risk_set"
    """A temporary limit override, within the limit's ceiling."""
    RISK_CLEAR = "risk_clear"
    """End an override early."""
    RAISE_CEILING = "raise_ceiling"
    """Raise the bound overrides may reach; four-eyes."""
    APPROVE = "approve"
    """Approve another operator's four-eyes request (see ``may_approve``)."""
    USERS = "users"
    """Add, disable, enable operators; set roles, strategies, passwords, MFA."""
    ARM_LIVE = "arm_live"
    """Allow one start of a live node; four-eyes."""
    ALERT_ACK = "alert_ack"
    """Acknowledge an alert (it keeps firing until its cause ends)."""
    ALERT_SILENCE = "alert_silence"
    """Silence an alert's notifications for a while."""
    HA_SWITCHOVER = "ha_switchover"
    """Hand the lead of an HA group to a standby (``bastion ha switchover``)."""
    RECORD_DRILL = "record_drill"
    """Journal a disaster-recovery drill's result (``bastion dr drill`` does)."""


class Grant(StrEnum):
    """One cell of the matrix."""

    YES = "yes"
    NO = "no"
    ASSIGNED = "assigned"
    """Only for a strategy assigned to the operator."""


STRATEGY_COMMANDS: Final = frozenset(
    {
        Command.STRATEGY_ENABLE,
        Command.STRATEGY_DISABLE,
        Command.STRATEGY_START,
        Command.STRATEGY_STOP,
    }
)
"""The commands that act on one strategy (``allowed`` needs its name for ``ASSIGNED``)."""

_Y, _N, _A = Grant.YES, Grant.NO, Grant.ASSIGNED
_ROLES: Final = (Role.VIEWER, Role.TRADER, Role.RISK_OFFICER, Role.ADMIN)

# command: (viewer, trader, risk_officer, admin) -- the one place this is said
_TABLE: Final[dict[Command, tuple[Grant, Grant, Grant, Grant]]] = {
    Command.READ: (_Y, _Y, _Y, _Y),
    Command.KILL: (_N, _N, _Y, _N),
    Command.FLATTEN: (_N, _N, _Y, _N),
    Command.RESUME: (_N, _N, _Y, _N),
    Command.PAUSE_INSTRUMENT: (_N, _N, _Y, _N),
    Command.RESUME_INSTRUMENT: (_N, _N, _Y, _N),
    Command.STRATEGY_ENABLE: (_N, _A, _Y, _N),
    Command.STRATEGY_DISABLE: (_N, _A, _Y, _N),
    Command.STRATEGY_START: (_N, _A, _Y, _N),
    Command.STRATEGY_STOP: (_N, _A, _Y, _N),
    Command.RISK_SET: (_N, _N, _Y, _N),
    Command.RISK_CLEAR: (_N, _N, _Y, _N),
    Command.RAISE_CEILING: (_N, _N, _N, _Y),
    Command.APPROVE: (_N, _N, _Y, _Y),
    Command.USERS: (_N, _N, _N, _Y),
    Command.ARM_LIVE: (_N, _N, _N, _Y),
    Command.ALERT_ACK: (_N, _Y, _Y, _Y),
    Command.ALERT_SILENCE: (_N, _N, _Y, _Y),
    Command.HA_SWITCHOVER: (_N, _N, _N, _Y),
    Command.RECORD_DRILL: (_N, _N, _Y, _Y),
}

MATRIX: Final[Mapping[Command, Mapping[Role, Grant]]] = MappingProxyType(
    {
        command: MappingProxyType(dict(zip(_ROLES, grants, strict=True)))
        for command, grants in _TABLE.items()
    }
)
"""``MATRIX[command][role]``: every command and every role has an explicit answer."""


def allowed(
    role: Role | str,
    command: Command | str,
    *,
    strategy: str | None = None,
    assigned: Iterable[str] = (),
) -> bool:
    """May an operator with ``role`` give ``command``? For a strategy command,
    ``strategy`` is the strategy it acts on and ``assigned`` the operator's strategies
    (an ``ASSIGNED`` cell allows it only when one holds the other). An unknown role or
    command is refused, never an error: nothing unlisted is allowed."""
    try:
        grant = MATRIX[Command(command)][Role(role)]
    except ValueError:
        return False
    if grant is Grant.ASSIGNED:
        return strategy is not None and strategy in set(assigned)
    return grant is Grant.YES


def allowed_any(
    roles: Iterable[Role | str],
    command: Command | str,
    *,
    strategy: str | None = None,
    assigned: Iterable[str] = (),
) -> bool:
    """``allowed`` for an operator holding several roles: any of them suffices."""
    mine = tuple(assigned)
    return any(allowed(r, command, strategy=strategy, assigned=mine) for r in roles)


def may_approve(
    roles: Iterable[Role | str],
    command: Command | str,
    *,
    strategy: str | None = None,
    assigned: Iterable[str] = (),
) -> bool:
    """May an operator approve someone else's ``command``: they hold ``APPROVE`` and
    may give that command themselves. (That the approver is another operator than the
    requester is the four-eyes code's check, not the matrix's.)"""
    held = tuple(roles)
    return allowed_any(held, Command.APPROVE) and allowed_any(
        held, command, strategy=strategy, assigned=assigned
    )


def matrix_markdown() -> str:
    """The matrix as the Markdown table in docs/security.md ("Roles")."""
    header = "| command | " + " | ".join(r.value for r in _ROLES) + " |"
    rule = "|---|" + "---|" * len(_ROLES)
    cells = {Grant.YES: "yes", Grant.NO: "no", Grant.ASSIGNED: "assigned"}
    rows = [
        f"| `{c.value}` | " + " | ".join(cells[MATRIX[c][r]] for r in _ROLES) + " |"
        for c in Command
    ]
    return "\n".join([header, rule, *rows]) + "\n"
