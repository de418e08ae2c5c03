"""The node's side of access control, on a real kernel journaling to a real journal:
which requests are four-eyes ones as the node stands (a resume only while HALTED, an
override only when looser than the config), an override beyond its ceiling refused
before any second operator is asked, a ceiling raised only with a second admin, an
operator disabling a strategy; every decision in the journal with the identity."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bastion.journal import SqliteJournal
from bastion.journal.locator import JournalLocator
from bastion.model.enums import TradingState
from bastion.model.events import (
    ApprovalGranted,
    ApprovalRequested,
    OperatorCommand,
    OperatorRefused,
    RiskCeilingRaised,
    RiskOverrideSet,
    StrategyDisabled,
    TradingStateChanged,
)
from bastion.risk.config import RiskConfig
from kit.control import UIDS
from kit.journal_reading import peek_journal
from kit.operator_desk import Desk as OperatorDesk
from kit.risk_kernel import RISK


class Desk(OperatorDesk):
    """A backtest kernel (max_order_quantity 10, [risk]'s factor 2) behind a guard with
    one operator per role and four-eyes at 60 s."""

    def __init__(self, tmp_path: Path, journal: SqliteJournal) -> None:
        risk = RiskConfig(**{**_fields(RISK), "max_order_quantity": Decimal(10)})
        super().__init__(tmp_path, journal, JournalLocator.sqlite(journal.path), risk=risk)
        self.sqlite = journal

    def journaled(self, kind: type) -> list[Any]:
        self.sqlite.flush()
        return [e for _, e in peek_journal(self.sqlite.path) if isinstance(e, kind)]


def _fields(config: RiskConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in config.__struct_fields__}


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    journal = SqliteJournal(tmp_path / "j.sqlite")
    try:
        yield Desk(tmp_path, journal)
    finally:
        journal.close()


def test_when_the_node_is_active_then_a_resume_needs_nobody_else(desk: Desk) -> None:
    """Only a resume from HALTED is four-eyes: resuming an ACTIVE node runs at once."""
    assert desk.ask("rita", {"cmd": "resume", "why": "x"})["ok"] is True
    assert desk.journaled(ApprovalRequested) == []


def test_when_killed_then_resume_is_approved_by_a_second_risk_officer(desk: Desk) -> None:
    """rita kills, rita asks to resume (pending, still HALTED), rob approves: ACTIVE, and
    the journal holds who did what, with uids."""
    assert desk.ask("rita", {"cmd": "kill", "why": "drill"})["state"] == "HALTED"
    pending = desk.ask("rita", {"cmd": "resume", "why": "drill over"})
    assert desk.kernel.risk.state is TradingState.HALTED
    approved = desk.ask("rob", {"cmd": "approve", "id": pending["pending"], "why": "ok"})
    assert approved["ok"] is True and approved["state"] == "ACTIVE"
    assert desk.kernel.risk.state is TradingState.ACTIVE
    states = [(e.state, e.reason) for e in desk.journaled(TradingStateChanged)]
    assert states == [
        (TradingState.HALTED, "kill by rita: drill"),
        (TradingState.ACTIVE, "resume by rita, approved by rob: drill over"),
    ]
    (kill,) = desk.journaled(OperatorCommand)
    assert (kill.operator, kill.uid, kill.command) == ("rita", UIDS["rita"], "kill")
    (granted,) = desk.journaled(ApprovalGranted)
    assert (granted.requested_by, granted.operator, granted.uid) == ("rita", "rob", UIDS["rob"])


def test_when_an_override_is_beyond_its_ceiling_then_refused_before_asking_anyone(
    desk: Desk,
) -> None:
    """max_order_quantity 10, factor 2: 21 is refused naming the ceiling 20, journaled,
    and no approval is opened; 20 waits for a second operator; 5 (tighter) runs."""
    request = {"cmd": "risk_set", "path": "max_order_quantity", "for_s": 60.0, "why": "auction"}
    refused = desk.ask("rita", {**request, "value": "21"})
    assert refused["ok"] is False
    assert "21 is above its ceiling 20 (2 x the configured 10)" in refused["error"]
    assert desk.journaled(ApprovalRequested) == []
    (journaled,) = desk.journaled(OperatorRefused)
    assert "above its ceiling 20" in journaled.reason and journaled.operator == "rita"
    assert desk.ask("rita", {**request, "value": "20"})["pending"] == "1.a1"
    assert desk.ask("rita", {**request, "value": "5"})["override"]["value"] == "5"
    assert [e.value for e in desk.journaled(RiskOverrideSet)] == ["5"]


def test_when_an_admin_raises_a_ceiling_then_a_second_admin_must_approve(desk: Desk) -> None:
    """ada's raise_ceiling waits: the override of 50 is still refused; once abe approves
    (RiskCeilingRaised), rita's 50 waits for rob's approval and is then in force."""
    raise_ = {"cmd": "raise_ceiling", "path": "max_order_quantity", "value": "50", "why": "r"}
    override = {
        "cmd": "risk_set",
        "path": "max_order_quantity",
        "value": "50",
        "for_s": 60.0,
        "why": "rebalance",
    }
    asked = desk.ask("ada", raise_)
    assert asked["pending"] == "1.a1"
    assert "above its ceiling 20" in desk.ask("rita", override)["error"]
    assert desk.ask("ada", {"cmd": "approve", "id": "1.a1", "why": "mine"})["ok"] is False
    raised = desk.ask("abe", {"cmd": "approve", "id": "1.a1", "why": "agreed"})
    assert raised["ceiling"] == "50" and raised["previous"] is None
    (event,) = desk.journaled(RiskCeilingRaised)
    assert (event.path, event.ceiling, event.previous, event.who) == (
        "max_order_quantity",
        "50",
        "20",
        "ada, approved by abe",
    )
    pending = desk.ask("rita", override)["pending"]
    assert desk.ask("rob", {"cmd": "approve", "id": pending, "why": "ok"})["ok"] is True
    assert desk.kernel.risk_overrides.effective().max_order_quantity == Decimal(50)
    listed = desk.ask("vic", {"cmd": "risk_list"})
    assert listed["raised_ceilings"] == {"max_order_quantity": "50"}
    assert listed["max_override_factor"] == "2"


def test_when_a_raise_is_not_one_then_refused_before_asking_anyone(desk: Desk) -> None:
    """A ceiling below the current one, or on a limit without one: refused at once."""
    for path, value in (("max_order_quantity", "15"), ("self_trade", "off")):
        request = {"cmd": "raise_ceiling", "path": path, "value": value, "why": "r"}
        assert desk.ask("ada", request)["ok"] is False
    assert desk.journaled(ApprovalRequested) == []


def test_when_an_operator_disables_a_strategy_then_it_is_journaled_with_who(
    desk: Desk,
) -> None:
    """disable: StrategyDisabled "disabled by rita: why"; again: nothing to do; an
    unknown strategy refused, naming the known ones."""
    answer = desk.ask("rita", {"cmd": "disable", "strategy": "a", "why": "runaway"})
    assert answer == {
        "ok": True,
        "disabled": True,
        "strategy": "a",
        "reason": "disabled by rita: runaway",
    }
    assert desk.ask("rita", {"cmd": "disable", "strategy": "a", "why": "x"})["disabled"] is False
    unknown = desk.ask("rita", {"cmd": "disable", "strategy": "z", "why": "x"})
    assert unknown["error"] == "command failed: no strategy 'z' on this node (strategies: a, b)"
    (disabled,) = desk.journaled(StrategyDisabled)
    assert disabled.reason == "disabled by rita: runaway"
    assert desk.kernel.risk.disabled == {"a": "disabled by rita: runaway"}


def test_when_a_status_is_asked_then_it_says_who_you_are(desk: Desk) -> None:
    """status: the node's state and "you": tom, trader, ema, his uid."""
    status = desk.ask("tom", {"cmd": "status"})
    assert status["you"] == {
        "operator": "tom",
        "roles": ["trader"],
        "strategies": ["ema"],
        "uid": UIDS["tom"],
        "source": "local socket",
        "owner": False,
        "delegated": False,
    }
    assert status["access"]["four_eyes_s"]["resume"] == 60.0
    assert status["state"] == "ACTIVE"
