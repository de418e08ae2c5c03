"""A console acting for its signed-in operators (``on_behalf``), and the ways around it
tried: only a uid listed in ``[access] consoles`` may name an operator, who must be
the store's, enabled and not locked out, with their own roles; four-eyes still needs a
second operator's name; ``record_auth`` is the console's alone; ``who`` stays refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import pytest

from bastion.clock import SimClock
from bastion.errors import ConfigError
from bastion.model.events import OperatorAuth, OperatorCommand, OperatorRefused
from bastion.node.identity import Identities
from bastion.security.config import AccessConfig
from bastion.security.store import UserStore
from kit.control import UIDS, Guarded, desk_store, guarded, peer
from kit.users import PASSWORD
from kit.vaults import T0

CONSOLE: Final = 2100
"""The uid the console runs as (no operator of its own)."""
SOURCE: Final = "203.0.113.7"


@pytest.fixture
def desk(tmp_path: Path) -> tuple[Guarded, UserStore]:
    clock = SimClock(T0)
    users = desk_store(tmp_path, clock)
    identities = Identities(users, consoles=[CONSOLE], now_ns=clock.timestamp_ns)
    return guarded(identities=identities, clock=clock, window_s=60.0), users


def via(name: str, request: dict[str, Any], source: str = SOURCE) -> dict[str, Any]:
    return {**request, "on_behalf": {"operator": name, "source": source}}


def test_when_a_console_acts_for_an_operator_then_it_runs_as_them_and_names_the_console(
    desk: tuple[Guarded, UserStore],
) -> None:
    """rita's kill through the console: the node is told rita, the journal names rita,
    her roles and the console's address and uid."""
    guard, _ = desk
    response = guard.ask(via("rita", {"cmd": "kill", "why": "drill"}), peer(CONSOLE))
    assert response["ok"] is True
    assert guard.node.calls == [("kill", {"flatten": False, "who": "rita", "why": "drill"})]
    (command,) = guard.of(OperatorCommand)
    assert (command.operator, command.roles, command.uid) == ("rita", ["risk_officer"], CONSOLE)
    assert command.source == f"console {SOURCE} (uid {CONSOLE})"
    assert "on_behalf" not in command.detail


def test_when_a_non_console_uid_sends_on_behalf_then_refused_and_journaled(
    desk: tuple[Guarded, UserStore],
) -> None:
    """vic (a mapped operator, not a console) naming rita gets nothing of rita's."""
    guard, _ = desk
    response = guard.ask(via("rita", {"cmd": "kill", "why": "x"}), peer(UIDS["vic"]))
    assert response["ok"] is False and "is not a console" in response["error"]
    assert guard.node.calls == []
    (refused,) = guard.of(OperatorRefused)
    assert (refused.operator, refused.uid) == ("", UIDS["vic"])


@pytest.mark.parametrize(
    ("name", "why_not"),
    [("nobody", "no operator 'nobody'"), ("rob", "disabled"), ("rita", "locked out")],
)
def test_when_the_named_operator_is_unknown_disabled_or_locked_then_refused(
    desk: tuple[Guarded, UserStore], name: str, why_not: str
) -> None:
    guard, users = desk
    users.disable("rob")
    for _ in range(users.config.max_failures):
        users.verify_login("rita", "wrong", "000000", now_ns=T0, source=SOURCE)
    response = guard.ask(via(name, {"cmd": "kill", "why": "x"}), peer(CONSOLE))
    assert response["ok"] is False and why_not in response["error"]
    assert guard.node.calls == []
    (refused,) = guard.of(OperatorRefused)
    assert refused.source == f"console {SOURCE} (uid {CONSOLE})"


@pytest.mark.parametrize(
    "on_behalf",
    [
        {"operator": "a" * 65, "source": SOURCE},
        {"operator": "Rita", "source": SOURCE},
        {"operator": "rita\n", "source": SOURCE},
        {"operator": "rita", "source": "x" * 129},
        {"operator": "rita", "source": "1.2.3.4\x1b[2J"},
        {"operator": "rita", "source": "1.2.3.4\n"},
        {"operator": "rita", "source": ""},
        {"operator": "rita", "source": SOURCE, "roles": ["admin"]},
        {"operator": "rita"},
        "rita",
        ["rita", SOURCE],
    ],
)
def test_when_on_behalf_is_garbage_then_the_request_never_reaches_the_node(
    desk: tuple[Guarded, UserStore], on_behalf: Any
) -> None:
    guard, _ = desk
    response = guard.ask({"cmd": "kill", "why": "x", "on_behalf": on_behalf}, peer(CONSOLE))
    assert response["ok"] is False and response["error"].startswith("bad request")
    assert guard.node.calls == []


def test_when_a_viewer_via_the_console_kills_then_refused_by_the_matrix(
    desk: tuple[Guarded, UserStore],
) -> None:
    guard, _ = desk
    response = guard.ask(via("vic", {"cmd": "kill", "why": "x"}), peer(CONSOLE))
    assert response == {"ok": False, "error": "refused: vic (viewer) may not kill"}
    (refused,) = guard.of(OperatorRefused)
    assert (refused.operator, refused.source) == ("vic", f"console {SOURCE} (uid {CONSOLE})")


def test_when_a_console_sends_who_then_still_refused(desk: tuple[Guarded, UserStore]) -> None:
    guard, _ = desk
    response = guard.ask(via("rita", {"cmd": "kill", "who": "rita"}), peer(CONSOLE))
    assert response["ok"] is False and "`who`" in response["error"]
    assert guard.node.calls == []


def test_when_a_console_asks_without_on_behalf_then_it_may_read_and_nothing_else(
    desk: tuple[Guarded, UserStore],
) -> None:
    """The console's account maps to no operator: it reads (its polling of ``view`` for
    every browser) as the read-only ``console``, and every command is refused."""
    guard, _ = desk
    response = guard.ask({"cmd": "status"}, peer(CONSOLE))
    assert response["ok"] is True
    for request in (
        {"cmd": "kill", "why": "x"},
        {"cmd": "resume", "why": "x"},
        {"cmd": "disable", "strategy": "ema", "why": "x"},
        {"cmd": "risk_set", "path": "max_order_notional", "value": "1", "for_s": 60.0, "why": "x"},
        {"cmd": "approve", "id": "1.a1", "why": "x"},
    ):
        refused = guard.ask(request, peer(CONSOLE))
        assert refused["ok"] is False and "console (viewer) may not" in refused["error"]
    assert guard.node.calls == [("status", {})]


def test_when_an_unmapped_uid_that_is_no_console_asks_then_refused(
    desk: tuple[Guarded, UserStore],
) -> None:
    guard, _ = desk
    response = guard.ask({"cmd": "status"}, peer(CONSOLE + 1))
    assert response["ok"] is False and "not mapped to an operator" in response["error"]


def test_when_delegated_then_a_second_operator_approves_through_the_same_console(
    desk: tuple[Guarded, UserStore],
) -> None:
    """rita's resume waits; rita cannot approve it (same name, even through the
    console); rob, through the same console (same uid), can."""
    guard, _ = desk
    guard.node.halted = True
    asked = guard.ask(via("rita", {"cmd": "resume", "why": "fixed"}), peer(CONSOLE))
    pending = asked["pending"]
    own = guard.ask(via("rita", {"cmd": "approve", "id": pending, "why": "ok"}), peer(CONSOLE))
    assert own["ok"] is False and "may not approve it" in own["error"]
    rob = guard.ask(via("rob", {"cmd": "approve", "id": pending, "why": "ok"}), peer(CONSOLE))
    assert rob["ok"] is True and rob["approved"] == pending
    assert guard.node.calls[-1][1]["who"] == "rita, approved by rob"


def test_when_one_operator_approves_from_a_second_session_then_refused(
    desk: tuple[Guarded, UserStore],
) -> None:
    """rita asks from one browser and approves from another (another address, another
    session): one person is one pair of eyes; an upper-case name is no other operator."""
    guard, _ = desk
    guard.node.halted = True
    pending = guard.ask(via("rita", {"cmd": "resume", "why": "x"}), peer(CONSOLE))["pending"]
    other = guard.ask(
        via("rita", {"cmd": "approve", "id": pending, "why": "ok"}, "198.51.100.9"), peer(CONSOLE)
    )
    assert other["ok"] is False and "may not approve it" in other["error"]
    upper = guard.ask(via("RITA", {"cmd": "approve", "id": pending, "why": "ok"}), peer(CONSOLE))
    assert upper["ok"] is False
    assert guard.node.calls == []


def test_when_the_console_account_itself_approves_its_users_request_then_refused(
    tmp_path: Path,
) -> None:
    """A console whose own uid is mapped to an operator (cody, risk officer) cannot
    approve, as cody over its own uid, what it asked for rita."""
    clock = SimClock(T0)
    users = desk_store(tmp_path, clock)
    users.add("cody", PASSWORD, roles=("risk_officer",), os_uid=CONSOLE, totp=None)
    identities = Identities(users, consoles=[CONSOLE], now_ns=clock.timestamp_ns)
    guard = guarded(identities=identities, clock=clock, window_s=60.0)
    guard.node.halted = True
    pending = guard.ask(via("rita", {"cmd": "resume", "why": "x"}), peer(CONSOLE))["pending"]
    answer = guard.ask({"cmd": "approve", "id": pending, "why": "ok"}, peer(CONSOLE))
    assert answer["ok"] is False and "may not approve it" in answer["error"]


def test_when_a_delegated_requester_is_disabled_before_approval_then_withdrawn(
    desk: tuple[Guarded, UserStore],
) -> None:
    """The approval re-checks the requester by name in the store, not by the console's uid."""
    guard, users = desk
    guard.node.halted = True
    pending = guard.ask(via("rita", {"cmd": "resume", "why": "x"}), peer(CONSOLE))["pending"]
    users.disable("rita")
    answer = guard.ask(via("rob", {"cmd": "approve", "id": pending, "why": "ok"}), peer(CONSOLE))
    assert answer["ok"] is False and "withdrawn" in answer["error"]
    assert [c for c, _ in guard.node.calls] == []


def test_when_a_console_records_a_sign_in_then_it_is_journaled(
    desk: tuple[Guarded, UserStore],
) -> None:
    guard, _ = desk
    line = {
        "cmd": "record_auth",
        "operator": "mallory",
        "source": SOURCE,
        "kind": "login",
        "outcome": "bad_password",
        "why": "",
    }
    assert guard.ask(line, peer(CONSOLE)) == {"ok": True, "recorded": "login"}
    (auth,) = guard.of(OperatorAuth)
    assert (auth.operator, auth.kind, auth.outcome, auth.uid) == (
        "mallory",
        "login",
        "bad_password",
        CONSOLE,
    )
    assert auth.source == f"console {SOURCE} (uid {CONSOLE})"


def test_when_anyone_else_records_a_sign_in_then_refused_and_journaled(
    desk: tuple[Guarded, UserStore],
) -> None:
    guard, _ = desk
    line = {
        "cmd": "record_auth",
        "operator": "rita",
        "source": "x",
        "kind": "login",
        "outcome": "ok",
    }
    for uid in (UIDS["ada"], UIDS["rita"], 2999):
        answer = guard.ask(line, peer(uid))
        assert answer["ok"] is False and "not a console" in answer["error"]
    assert guard.of(OperatorAuth) == []
    assert [r.command for r in guard.of(OperatorRefused)] == ["record_auth"] * 3


@pytest.mark.parametrize(("strategy", "ok"), [("ema", True), ("mr", False)])
@pytest.mark.parametrize("cmd", ["strategy_start", "strategy_stop"])
def test_when_a_trader_starts_or_stops_a_strategy_then_only_an_assigned_one(
    desk: tuple[Guarded, UserStore], cmd: str, strategy: str, ok: bool
) -> None:
    """tom trades ema: he may start and stop it (through the console too), not mr."""
    guard, _ = desk
    request = {"cmd": cmd, "strategy": strategy, "why": "x"}
    assert guard.ask(request, peer(UIDS["tom"]))["ok"] is ok
    assert guard.ask(via("tom", request), peer(CONSOLE))["ok"] is ok


def test_when_consoles_are_configured_then_they_are_uids_listed_once() -> None:
    assert AccessConfig(consoles=[0, 1001]).consoles == [0, 1001]
    with pytest.raises(ConfigError, match="listed twice"):
        AccessConfig(consoles=[1001, 1001])
    with pytest.raises(ConfigError, match=r"access\.consoles"):
        AccessConfig(consoles=[-1])
