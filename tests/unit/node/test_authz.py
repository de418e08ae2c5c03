"""Authorisation on the control socket: the operator is the kernel's (the peer's uid
mapped through the store, or the node's own account), every request type is one
command of the role matrix and is allowed or refused exactly as the matrix says, and
every refusal is journaled with the identity and the reason. Peers are injected
(tests cannot change uid); the real socket's peer credentials are
``test_control.py``'s."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bastion.clock import SimClock
from bastion.model.events import OperatorCommand, OperatorRefused
from bastion.node.authz import required
from bastion.node.control import COMMANDS, REQUEST_TYPES, Request
from bastion.node.identity import Identities, account_name
from bastion.security.roles import MATRIX, Command, Grant, Role
from bastion.security.store import UserStore
from kit.control import ROLES, STRANGER, UIDS, FakeNode, Guarded, desk_store, guarded, peer
from kit.vaults import T0

# The command each request is: pinned here as well as stated in ``required``, so that a
# request mapped to a weaker command (a kill read as ``read``) fails.
EXPECTED: dict[str, Command] = {
    "kill": Command.KILL,
    "kill --flatten": Command.FLATTEN,
    "kill --venue": Command.KILL,
    "resume": Command.RESUME,
    "resume --instrument": Command.RESUME_INSTRUMENT,
    "resume --venue": Command.RESUME,
    "status": Command.READ,
    "enable": Command.STRATEGY_ENABLE,
    "disable": Command.STRATEGY_DISABLE,
    "risk_set": Command.RISK_SET,
    "risk_clear": Command.RISK_CLEAR,
    "risk_list": Command.READ,
    "raise_ceiling": Command.RAISE_CEILING,
    "alerts_list": Command.READ,
    "alert_ack": Command.ALERT_ACK,
    "alert_silence": Command.ALERT_SILENCE,
    "approvals_list": Command.READ,
    "approve": Command.APPROVE,
    "view": Command.READ,
    "audit": Command.READ,
    "pause_instrument": Command.PAUSE_INSTRUMENT,
    "strategy_start": Command.STRATEGY_START,
    "strategy_stop": Command.STRATEGY_STOP,
    "ha_status": Command.READ,
    "ha_switchover": Command.HA_SWITCHOVER,
    "record_drill": Command.RECORD_DRILL,
}
PEER_GATED = {"record_auth"}
"""Not an operator's command: only a console's account may send it (test_delegation)."""
VARIANTS: dict[str, dict[str, Any]] = {
    "kill --flatten": {"cmd": "kill", "flatten": True},
    "kill --venue": {"cmd": "kill", "venue": "SIM"},
    "resume --instrument": {"cmd": "resume", "instrument": "XYZ.SIM"},
    "resume --venue": {"cmd": "resume", "venue": "SIM"},
}
SAMPLE_VALUES: dict[str, Any] = {
    "strategy": "ema",
    "path": "max_order_quantity",
    "value": "5",
    "for_s": 60.0,
    "id": "7.a99",
    "alert": "stale-market-data",
    "why": "drill",
    "instrument": "XYZ.SIM",
    "operator": "vic",
    "source": "203.0.113.7",
    "kind": "login",
    "outcome": "ok",
    "ok": False,
    "backup_id": "full-20261207T063029696Z-000000001234",
    "rto_s": 71.5,
    "rto_target_s": 60.0,
}


def sample(tag: str) -> dict[str, Any]:
    """A request of type ``tag`` (or a variant) with every required field filled."""
    if tag in VARIANTS:
        return {**VARIANTS[tag], "why": "drill"}
    (kind,) = [t for t in REQUEST_TYPES if t.__struct_config__.tag == tag]
    fields = {
        f.name: SAMPLE_VALUES[f.name]
        for f in msgspec.structs.fields(kind)
        if f.required or f.name == "why"
    }
    return {"cmd": tag, **fields}


def parsed(raw: dict[str, Any]) -> Request:
    return msgspec.convert(raw, Request)  # type: ignore[arg-type]


@pytest.fixture
def desk(tmp_path: Path) -> tuple[Guarded, UserStore]:
    """A guard with a store of one operator per role (two risk officers, two admins)."""
    clock = SimClock(T0)
    users = desk_store(tmp_path, clock)
    return guarded(identities=Identities(users, now_ns=clock.timestamp_ns), clock=clock), users


def test_when_request_types_are_listed_then_each_has_its_pinned_command() -> None:
    """Every request type the protocol parses (enumerated from the code) is pinned here
    and maps to the command pinned: a new command cannot slip out."""
    assert set(COMMANDS) == {tag for tag in EXPECTED if " " not in tag} | PEER_GATED
    for tag, command in EXPECTED.items():
        assert required(parsed(sample(tag))).command is command, tag
    assert set(EXPECTED.values()) <= set(MATRIX)


@pytest.mark.parametrize("tag", sorted(EXPECTED))
@pytest.mark.parametrize("name", ["vic", "tom", "rita", "ada"])
def test_when_any_role_sends_any_request_then_the_matrix_decides(
    desk: tuple[Guarded, UserStore], tag: str, name: str
) -> None:
    """Every request type x every role: refused with "refused: NAME (ROLES) may not
    COMMAND" exactly where the matrix says no (and the node is not called), else past
    the authorisation (tom's strategy ``ema`` is assigned to him)."""
    guard, _ = desk
    role = Role(ROLES[name][0])
    command = EXPECTED[tag]
    response = guard.ask(sample(tag), peer(UIDS[name]))
    grant = MATRIX[command][role]
    denied_text = f"refused: {name} ({role.value}) may not {command.value}"
    if grant is Grant.NO:
        assert response == {
            "ok": False,
            "error": denied_text + (" ema" if command.value.startswith("strategy_") else ""),
        }
        assert guard.node.calls == []
        (refused,) = guard.of(OperatorRefused)
        assert (refused.operator, refused.uid, refused.command) == (name, UIDS[name], command)
    else:
        assert denied_text not in response.get("error", "")
        if tag != "approve":  # no such approval: refused, but not for the role
            assert response["ok"] is True


def test_when_a_trader_acts_on_a_strategy_not_assigned_then_refused(
    desk: tuple[Guarded, UserStore],
) -> None:
    """``assigned``: tom may enable and disable ema, not another strategy."""
    guard, _ = desk
    tom = peer(UIDS["tom"])
    assert guard.ask({"cmd": "disable", "strategy": "ema", "why": "x"}, tom)["ok"] is True
    response = guard.ask({"cmd": "enable", "strategy": "arb", "why": "x"}, tom)
    assert response == {"ok": False, "error": "refused: tom (trader) may not strategy_enable arb"}
    assert [c[0] for c in guard.node.calls] == ["disable"]


MUTATING = [tag for tag, command in EXPECTED.items() if command is not Command.READ]


def test_when_a_viewer_tries_every_mutating_command_then_each_is_refused_and_journaled(
    desk: tuple[Guarded, UserStore],
) -> None:
    """vic (viewer) tries kill, flatten, resume, enable, disable, overrides, ceilings,
    alerts and approvals: all refused, none reaches the node, each journaled with vic's
    uid and pid and the reason given."""
    guard, _ = desk
    for n, tag in enumerate(MUTATING):
        response = guard.ask(sample(tag), peer(UIDS["vic"], pid=5000 + n))
        assert response["ok"] is False
        assert response["error"].startswith("refused: vic (viewer) may not ")
    assert guard.node.calls == []
    refused = guard.of(OperatorRefused)
    assert len(refused) == len(MUTATING)
    assert {(e.operator, e.uid, e.source) for e in refused} == {("vic", 2001, "local socket")}
    assert [e.pid for e in refused] == [5000 + n for n in range(len(MUTATING))]
    assert {e.why for e in refused} == {"drill"}
    assert guard.of(OperatorCommand) == []
    assert guard.ask({"cmd": "status"}, peer(UIDS["vic"]))["you"]["roles"] == ["viewer"]


def test_when_an_unmapped_uid_asks_then_refused_and_journaled_without_a_name(
    desk: tuple[Guarded, UserStore],
) -> None:
    """A local account the store does not map: nothing, not even status; journaled with
    its uid and pid."""
    guard, _ = desk
    for request in ({"cmd": "status"}, {"cmd": "kill", "why": "x"}):
        response = guard.ask(request, peer(STRANGER, pid=777))
        assert response == {
            "ok": False,
            "error": f"refused: uid {STRANGER} ({account_name(STRANGER)}) is not mapped to "
            "an operator",
        }
    assert guard.node.calls == []
    assert [(e.operator, e.uid, e.pid) for e in guard.of(OperatorRefused)] == [
        ("", STRANGER, 777),
        ("", STRANGER, 777),
    ]


def test_when_an_operator_is_disabled_then_refused_from_the_next_request(
    desk: tuple[Guarded, UserStore],
) -> None:
    """The store is read for every request: disabling rita takes effect at once."""
    guard, users = desk
    rita = peer(UIDS["rita"])
    assert guard.ask({"cmd": "kill", "why": "x"}, rita)["ok"] is True
    users.disable("rita")
    response = guard.ask({"cmd": "kill", "why": "y"}, rita)
    assert response == {"ok": False, "error": "refused: operator rita (uid 2003) is disabled"}
    assert len(guard.node.calls) == 1


def test_when_the_store_is_damaged_then_everyone_is_refused(
    desk: tuple[Guarded, UserStore],
) -> None:
    """A store that cannot be read names nobody: every request is refused, saying so."""
    guard, users = desk
    users.path.write_bytes(b"garbage")
    users.path.chmod(0o600)
    response = guard.ask({"cmd": "kill", "why": "x"}, peer(UIDS["rita"]))
    assert response["ok"] is False
    assert "the operator store cannot be read" in response["error"]
    assert guard.node.calls == []


def test_when_a_command_is_done_then_it_is_journaled_first_with_the_identity(
    desk: tuple[Guarded, UserStore],
) -> None:
    """OperatorCommand: operator, roles, uid, pid, source, command, what and why; the
    node is told the operator's name as ``who``. A read is not journaled."""
    guard, _ = desk
    guard.ask({"cmd": "kill", "flatten": True, "why": "runaway"}, peer(UIDS["rita"], pid=99))
    guard.ask({"cmd": "status"}, peer(UIDS["rita"]))
    (done,) = guard.of(OperatorCommand)
    assert (done.operator, done.roles, done.uid, done.pid, done.source) == (
        "rita",
        ["risk_officer"],
        UIDS["rita"],
        99,
        "local socket",
    )
    assert (done.command, done.detail, done.why) == ("flatten", '{"flatten":true}', "runaway")
    assert guard.node.calls[0] == ("kill", {"flatten": True, "who": "rita", "why": "runaway"})


def test_when_the_node_cannot_do_a_command_then_the_refusal_is_journaled(
    desk: tuple[Guarded, UserStore],
) -> None:
    """The node refuses (an unknown strategy): ``command failed: ...``, journaled after
    the OperatorCommand that asked."""
    guard, _ = desk
    guard.node.refuse = "no strategy 'ema' on this node"
    response = guard.ask({"cmd": "enable", "strategy": "ema", "why": "x"}, peer(UIDS["rita"]))
    assert response == {"ok": False, "error": "command failed: no strategy 'ema' on this node"}
    assert [type(e).__name__ for e in guard.events] == ["OperatorCommand", "OperatorRefused"]


def test_when_the_node_has_no_store_then_only_its_own_account_commands_it() -> None:
    """No [access]: this process's uid is the owner with every role; any other uid is
    refused, journaled."""
    guard = guarded(FakeNode())
    mine = peer(os.geteuid())
    status = guard.ask({"cmd": "status"}, mine)
    assert status["you"]["owner"] is True
    assert status["you"]["operator"] == account_name(os.geteuid())
    assert status["you"]["roles"] == [r.value for r in Role]
    other = os.geteuid() + 1
    response = guard.ask({"cmd": "kill", "why": "x"}, peer(other))
    assert response["ok"] is False
    assert f"uid {other}" in response["error"] and "only its owner" in response["error"]
    assert [c[0] for c in guard.node.calls] == ["status"]
    (refused,) = guard.of(OperatorRefused)
    assert refused.uid == other and refused.operator == ""
