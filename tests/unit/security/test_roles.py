"""The role matrix: every role and every command has an explicit answer, the answers are
the documented ones, and nothing unlisted is allowed."""

from __future__ import annotations

import itertools

import pytest

from bastion.security.roles import (
    MATRIX,
    STRATEGY_COMMANDS,
    Command,
    Grant,
    Role,
    allowed,
    allowed_any,
    matrix_markdown,
    may_approve,
)
from kit.paths import REPO_ROOT

V, T, R, A = Role.VIEWER, Role.TRADER, Role.RISK_OFFICER, Role.ADMIN

# The independent statement of the matrix (docs/security.md, "Roles"), written out by
# hand: who may give each command without restriction, and who only for their own
# strategies.
EXPECTED_YES: dict[Command, set[Role]] = {
    Command.READ: {V, T, R, A},
    Command.KILL: {R},
    Command.FLATTEN: {R},
    Command.RESUME: {R},
    Command.PAUSE_INSTRUMENT: {R},
    Command.RESUME_INSTRUMENT: {R},
    Command.STRATEGY_ENABLE: {R},
    Command.STRATEGY_DISABLE: {R},
    Command.STRATEGY_START: {R},
    Command.STRATEGY_STOP: {R},
    Command.RISK_SET: {R},
    Command.RISK_CLEAR: {R},
    Command.RAISE_CEILING: {A},
    Command.APPROVE: {R, A},
    Command.USERS: {A},
    Command.ARM_LIVE: {A},
    Command.ALERT_ACK: {T, R, A},
    Command.ALERT_SILENCE: {R, A},
    Command.HA_SWITCHOVER: {A},
    Command.RECORD_DRILL: {R, A},
}
EXPECTED_ASSIGNED: dict[Command, set[Role]] = {c: {T} for c in STRATEGY_COMMANDS}


def test_when_matrix_walked_then_every_role_and_command_has_an_explicit_answer() -> None:
    """MATRIX covers every Command and, for each, every Role, with a Grant."""
    assert set(MATRIX) == set(Command)
    for command in Command:
        assert set(MATRIX[command]) == set(Role), command
        assert all(isinstance(g, Grant) for g in MATRIX[command].values())


@pytest.mark.parametrize(("role", "command"), list(itertools.product(Role, Command)))
def test_when_role_gives_command_then_answer_is_the_documented_one(
    role: Role, command: Command
) -> None:
    """Each cell: YES allows with or without a strategy, NO refuses even an assigned
    one, ASSIGNED allows only a strategy the operator holds."""
    yes = role in EXPECTED_YES[command]
    mine = role in EXPECTED_ASSIGNED.get(command, set())
    assert not (yes and mine)
    assert allowed(role, command) is yes
    assert allowed(role, command, strategy="ema", assigned=["ema"]) is (yes or mine)
    assert allowed(role, command, strategy="ema", assigned=["other"]) is yes
    assert allowed(role, command, strategy=None, assigned=["ema"]) is yes
    assert allowed(role.value, command.value) is yes  # the string forms read the same


def test_when_role_or_command_unknown_then_refused() -> None:
    """Nothing unlisted is allowed: an unknown role or command is refused, not an error."""
    assert not allowed("root", Command.READ)
    assert not allowed(Role.ADMIN, "shutdown")
    assert not allowed("", "")
    assert not allowed_any([], Command.READ)


def test_when_operator_holds_several_roles_then_any_of_them_suffices() -> None:
    """A trader who is also a viewer may stop their strategy; trader+risk_officer may kill."""
    assert allowed_any([V, T], Command.STRATEGY_STOP, strategy="ema", assigned=["ema"])
    assert not allowed_any([V, T], Command.KILL)
    assert allowed_any([T, R], Command.KILL)


def test_when_approving_then_approver_needs_approve_and_the_command_itself() -> None:
    """A resume is approved by a risk officer, not an admin; an arming by an admin; a
    trader approves nothing, not even their own strategy's command."""
    assert may_approve([R], Command.RESUME)
    assert not may_approve([A], Command.RESUME)
    assert may_approve([A], Command.ARM_LIVE)
    assert not may_approve([R], Command.ARM_LIVE)
    assert not may_approve([T], Command.STRATEGY_START, strategy="ema", assigned=["ema"])
    assert may_approve([R, A], Command.RAISE_CEILING)


def test_when_docs_read_then_security_md_holds_the_rendered_matrix() -> None:
    """docs/security.md shows exactly the table the code enforces."""
    docs = (REPO_ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    assert matrix_markdown() in docs
    assert matrix_markdown().count("\n") == len(Command) + 2
