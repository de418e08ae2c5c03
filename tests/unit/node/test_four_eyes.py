"""Four-eyes on the control socket: a resume after a kill, a limit looser than the
config and a raised ceiling wait for a second, different operator allowed to approve
them within their window; approving one's own request, an expired or replayed
approval, an approver without the right, and a requester no longer allowed are
refused and journaled. Time is a simulated clock the test moves."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.clock import SimClock
from bastion.model.events import (
    ApprovalGranted,
    ApprovalRequested,
    OperatorCommand,
    OperatorRefused,
)
from bastion.node.approvals import MAX_PENDING
from bastion.node.identity import Identities
from bastion.security.store import UserStore
from kit.control import UIDS, Guarded, desk_store, guarded, peer
from kit.vaults import T0

WINDOW_S = 60.0
S = 1_000_000_000
RESUME = {"cmd": "resume", "why": "fills checked"}


@pytest.fixture
def desk(tmp_path: Path) -> tuple[Guarded, UserStore]:
    """One operator per role (two risk officers, two admins), four-eyes 60 s, HALTED."""
    clock = SimClock(T0)
    users = desk_store(tmp_path, clock)
    guard = guarded(
        identities=Identities(users, now_ns=clock.timestamp_ns), clock=clock, window_s=WINDOW_S
    )
    guard.node.halted = True
    return guard, users


def ask(guard: Guarded, name: str, request: dict[str, object], pid: int = 4242) -> dict:
    return guard.ask(request, peer(UIDS[name], pid=pid))


def approve(guard: Guarded, name: str, approval_id: str, why: str = "checked") -> dict:
    return ask(guard, name, {"cmd": "approve", "id": approval_id, "why": why})


def test_when_a_halted_node_is_resumed_then_it_waits_for_a_second_operator(
    desk: tuple[Guarded, UserStore],
) -> None:
    """rita's resume: pending (id, expiry), ApprovalRequested with her identity, listed;
    the node is not resumed. rob approves: it runs as "rita, approved by rob",
    ApprovalGranted with rob's identity precedes it."""
    guard, _ = desk
    pending = ask(guard, "rita", RESUME, pid=11)
    assert pending["ok"] is True and pending["pending"] == "7.a1"
    assert pending["action"] == "resume"
    assert pending["expires_ns"] == T0 + 60 * S
    assert "bastion approve CONFIG 7.a1" in pending["note"]
    assert guard.node.calls == []
    (asked,) = guard.of(ApprovalRequested)
    assert (asked.approval_id, asked.command, asked.operator, asked.uid, asked.pid) == (
        "7.a1",
        "resume",
        "rita",
        UIDS["rita"],
        11,
    )
    assert (asked.why, asked.expires_ns, asked.source) == (
        "fills checked",
        T0 + 60 * S,
        "local socket",
    )
    (listed,) = ask(guard, "vic", {"cmd": "approvals_list"})["approvals"]
    assert (listed["id"], listed["requested_by"], listed["command"]) == (
        "7.a1",
        "rita",
        "resume",
    )

    guard.clock.set_time(T0 + 59 * S)
    answer = approve(guard, "rob", "7.a1", why="looked at the book")
    assert answer["ok"] is True and answer["approved"] == "7.a1" and answer["state"] == "ACTIVE"
    assert guard.node.calls == [
        ("resume", {"who": "rita, approved by rob", "why": "fills checked"})
    ]
    (granted,) = guard.of(ApprovalGranted)
    assert (granted.approval_id, granted.requested_by, granted.operator, granted.uid) == (
        "7.a1",
        "rita",
        "rob",
        UIDS["rob"],
    )
    assert granted.why == "looked at the book"
    assert ask(guard, "vic", {"cmd": "approvals_list"})["approvals"] == []


def test_when_the_requester_approves_their_own_request_then_refused(
    desk: tuple[Guarded, UserStore],
) -> None:
    """Self-approval is refused and journaled; the request stays for someone else."""
    guard, _ = desk
    ask(guard, "rita", RESUME)
    response = approve(guard, "rita", "7.a1")
    assert response == {
        "ok": False,
        "error": "refused: rita asked for 7.a1 and may not approve it: a second, different "
        "operator must",
    }
    assert guard.node.calls == []
    (refused,) = guard.of(OperatorRefused)
    assert (refused.operator, refused.command, refused.detail) == (
        "rita",
        "approve",
        '{"id":"7.a1"}',
    )
    assert approve(guard, "rob", "7.a1")["ok"] is True


def test_when_an_approval_is_replayed_then_refused_saying_what_became_of_it(
    desk: tuple[Guarded, UserStore],
) -> None:
    """The same approval sent again (by rob or anyone) runs nothing a second time."""
    guard, _ = desk
    ask(guard, "rita", RESUME)
    assert approve(guard, "rob", "7.a1")["ok"] is True
    again = approve(guard, "rob", "7.a1")
    assert again == {
        "ok": False,
        "error": "refused: approval 7.a1 is no longer pending (granted by rob): nothing to approve",
    }
    assert len(guard.node.calls) == 1
    assert len(guard.of(ApprovalGranted)) == 1
    unknown = approve(guard, "rob", "3.a1")
    assert unknown["error"] == "refused: no pending approval '3.a1' on this node"


def test_when_the_window_has_passed_then_the_approval_is_refused(
    desk: tuple[Guarded, UserStore],
) -> None:
    """At the expiry (not a nanosecond later) the request is gone: refused, journaled,
    no longer listed; the command must be asked again."""
    guard, _ = desk
    ask(guard, "rita", RESUME)
    guard.clock.set_time(T0 + 60 * S)
    response = approve(guard, "rob", "7.a1")
    assert response["ok"] is False and "expired at" in response["error"]
    assert "rita must ask again" in response["error"]
    assert guard.node.calls == []
    assert "no longer pending (expired at" in approve(guard, "rob", "7.a1")["error"]
    ask(guard, "rita", RESUME)
    guard.clock.set_time(T0 + 200 * S)
    assert ask(guard, "vic", {"cmd": "approvals_list"})["approvals"] == []
    assert len(guard.of(OperatorRefused)) == 2


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("vic", "refused: vic (viewer) may not approve"),
        ("tom", "refused: tom (trader) may not approve"),
        ("ada", "refused: ada (admin) may not approve resume"),
    ],
)
def test_when_the_approver_has_not_the_right_then_refused(
    desk: tuple[Guarded, UserStore], name: str, error: str
) -> None:
    """Approving needs ``approve`` and the right to give the command: an admin may
    approve, but not a resume (a risk officer's)."""
    guard, _ = desk
    ask(guard, "rita", RESUME)
    assert approve(guard, name, "7.a1") == {"ok": False, "error": error}
    assert guard.node.calls == []
    assert approve(guard, "rob", "7.a1")["ok"] is True


def test_when_the_requester_is_disabled_before_approval_then_it_is_withdrawn(
    desk: tuple[Guarded, UserStore],
) -> None:
    """rita is disabled after asking: rob's approval runs nothing and the request is
    withdrawn."""
    guard, users = desk
    ask(guard, "rita", RESUME)
    users.disable("rita")
    response = approve(guard, "rob", "7.a1")
    assert response["ok"] is False
    assert "rita may no longer resume" in response["error"] and "withdrawn" in response["error"]
    assert guard.node.calls == []
    assert "withdrawn" in approve(guard, "rob", "7.a1")["error"]


def test_when_an_approval_gives_no_reason_then_refused(desk: tuple[Guarded, UserStore]) -> None:
    guard, _ = desk
    ask(guard, "rita", RESUME)
    assert approve(guard, "rob", "7.a1", why="  ")["error"] == (
        "refused: an approval needs a reason (why)"
    )
    assert guard.node.calls == []


def test_when_a_ceiling_is_raised_then_a_second_admin_approves_it(
    desk: tuple[Guarded, UserStore],
) -> None:
    """ada (admin) raises a ceiling: pending until abe (a second admin) approves; a risk
    officer may not approve it (raising ceilings is an admin's)."""
    guard, _ = desk
    request = {"cmd": "raise_ceiling", "path": "max_order_quantity", "value": "50", "why": "r"}
    assert ask(guard, "ada", request)["pending"] == "7.a1"
    assert approve(guard, "rita", "7.a1")["error"] == (
        "refused: rita (risk_officer) may not approve raise_ceiling"
    )
    assert approve(guard, "ada", "7.a1")["ok"] is False
    assert guard.node.calls == []
    assert approve(guard, "abe", "7.a1")["ok"] is True
    assert guard.node.calls == [
        (
            "raise_ceiling",
            {
                "path": "max_order_quantity",
                "value": "50",
                "who": "ada, approved by abe",
                "why": "r",
            },
        )
    ]


def test_when_an_override_is_looser_than_the_config_then_it_waits(
    desk: tuple[Guarded, UserStore],
) -> None:
    """risk_set looser than the config: pending; a tighter one runs at once."""
    guard, _ = desk
    request = {"cmd": "risk_set", "path": "max_order_quantity", "value": "15", "for_s": 60.0}
    guard.node.looser = True
    assert ask(guard, "rita", {**request, "why": "auction"})["pending"] == "7.a1"
    guard.node.looser = False
    assert ask(guard, "rita", {**request, "value": "5", "why": "calm"})["ok"] is True
    assert [c[1]["value"] for c in guard.node.calls] == ["5"]


def test_when_four_eyes_is_off_then_the_command_runs_at_once(tmp_path: Path) -> None:
    """Window 0 (a paper node's default): the resume runs, journaled as an
    OperatorCommand; nothing is pending."""
    clock = SimClock(T0)
    users = desk_store(tmp_path, clock)
    guard = guarded(identities=Identities(users, now_ns=clock.timestamp_ns), clock=clock)
    guard.node.halted = True
    assert ask(guard, "rita", RESUME) == {"ok": True, "state": "ACTIVE"}
    assert [e.command for e in guard.of(OperatorCommand)] == ["resume"]
    assert guard.of(ApprovalRequested) == []


def test_when_a_venue_or_an_instrument_is_resumed_then_no_second_operator(
    desk: tuple[Guarded, UserStore],
) -> None:
    """Four-eyes is for the node-wide resume after a kill; a venue or an instrument
    resumes at once."""
    guard, _ = desk
    assert ask(guard, "rita", {"cmd": "resume", "venue": "SIM", "why": "x"})["ok"] is True
    assert ask(guard, "rita", {"cmd": "resume", "instrument": "X", "why": "x"})["ok"] is True
    assert len(guard.node.calls) == 2


def test_when_too_many_approvals_are_pending_then_the_next_request_is_refused(
    desk: tuple[Guarded, UserStore],
) -> None:
    """At most 64 wait at once (a runaway script cannot fill the node's memory); once
    they expire, requests are taken again."""
    guard, _ = desk
    for _ in range(MAX_PENDING):
        assert "pending" in ask(guard, "rita", RESUME)
    refused = ask(guard, "rita", RESUME)
    assert refused == {
        "ok": False,
        "error": "refused: 64 approvals are pending already: approve or let them expire",
    }
    guard.clock.set_time(T0 + 60 * S)
    assert ask(guard, "rita", RESUME)["pending"] == f"7.a{MAX_PENDING + 1}"
