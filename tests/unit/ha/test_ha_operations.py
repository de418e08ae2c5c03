"""The operator side of HA: ``ha_status`` and ``ha_switchover`` on the control socket
(roles, journaling), the group status gathered from a lease and the members' sockets
(an unreachable member is shown, not an error), and ``bastion ha`` on the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bastion.cli import ha as cli_ha
from bastion.cli.main import main
from bastion.errors import CommandRefused, LeaseUnavailable
from bastion.ha import standby
from bastion.ha.members import MemberRow
from bastion.ha.sqlite_source import SqliteTailSource
from bastion.ha.standby import (
    GroupStatus,
    HaMember,
    LeaseStatus,
    MemberStatus,
    Role,
    gather_status,
    render,
)
from bastion.ha.tail import JournalTail
from bastion.journal import SqliteJournal
from bastion.journal._codec import Chain
from bastion.model.events import OperatorCommand, OperatorRefused
from bastion.node.control import NoNodeListening
from bastion.node.identity import Identities
from kit.control import UIDS, FakeNode, guarded, peer
from kit.live_desk import write_desk
from kit.standby_session import NODE, Session, build

T0 = 1_704_205_800_000_000_000


class FakeLease:
    """A lease held by ``holder`` at ``epoch``; ``release`` records whom it was for."""

    def __init__(self, holder: str = "node-a", epoch: int = 7) -> None:
        self.lease = LeaseStatus(
            name="desk", epoch=epoch, holder=holder, expires_ns=T0 + 10**10, renewed_ns=T0
        )
        self.released: list[str | None] = []

    def status(self) -> LeaseStatus | None:
        return self.lease

    def release(self, *, to: str | None) -> LeaseStatus:
        self.released.append(to)
        return self.lease


def test_when_members_answer_or_not_then_status_lists_each_and_the_unreachable_one() -> None:
    answers: dict[Path, dict[str, Any]] = {
        Path("/a.sock"): {"ok": True, "ha": {"name": "node-a", "role": "leader", "epoch": 7}},
        Path("/b.sock"): {
            "ok": True,
            "ha": {
                "name": "node-b",
                "role": "standby",
                "applied_seq": 90,
                "committed_seq": 100,
                "lag_events": 10,
                "lag_s": 1.5,
            },
        },
    }

    def ask(path: Path) -> dict[str, Any]:
        if path not in answers:
            raise NoNodeListening(f"no node is listening on {path}")
        return answers[path]

    sockets = {"a": Path("/a.sock"), "b": Path("/b.sock"), "c": Path("/c.sock")}
    status = gather_status(FakeLease(), sockets, ask)
    assert [(m.name, m.role) for m in status.members] == [
        ("node-a", Role.LEADER),
        ("node-b", Role.STANDBY),
        ("c", Role.UNREACHABLE),
    ]
    assert status.members[1].lag_events == 10
    text = render(status)
    assert "lease desk: leader node-a, epoch 7" in text
    assert "applied 90 lag 10 events, 1.5s" in text
    assert "unreachable" in text and "no node is listening on /c.sock" in text


def test_when_a_standby_follows_then_its_member_status_has_its_lag(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = SqliteJournal(path, durability="fsync_each")
    source = SqliteTailSource(path)
    try:
        session = Session(build(tmp_path, journal), journal, 2)
        for _ in range(10):
            session.step()
        tail = JournalTail.start(build(tmp_path, None), source, chain=Chain(), node_id=NODE)
        session.step()
        member = HaMember(name="node-b", lease=FakeLease(), tail=tail)
        seen = member.status()
        assert seen.role is Role.STANDBY and seen.applied_seq == tail.applied_seq
        assert seen.lag_events == journal.committed_seq - tail.applied_seq > 0
        with pytest.raises(CommandRefused, match="standby"):
            member.switchover(to=None)
    finally:
        source.close()
        journal.close()


def test_when_the_leader_switches_over_then_the_lease_is_released_for_the_member() -> None:
    lease = FakeLease()
    leader = HaMember(name="node-a", lease=lease, epoch=7)
    assert leader.status() == MemberStatus(name="node-a", role=Role.LEADER, epoch=7)
    answer = leader.switchover(to="node-b")
    assert lease.released == ["node-b"] and answer["to"] == "node-b"
    with pytest.raises(CommandRefused, match="leads already"):
        leader.switchover(to="node-a")


def test_when_an_admin_switches_over_then_it_is_journaled_with_who_and_why(
    tmp_path: Path,
) -> None:
    from bastion.clock import SimClock
    from kit.control import desk_store
    from kit.vaults import T0 as CLOCK_T0

    clock = SimClock(CLOCK_T0)
    users = desk_store(tmp_path, clock)
    guard = guarded(identities=Identities(users, now_ns=clock.timestamp_ns), clock=clock)
    answer = guard.ask({"cmd": "ha_switchover", "to": "node-b", "why": "patch"}, peer(UIDS["ada"]))
    assert answer["ok"] is True
    (done,) = guard.of(OperatorCommand)
    assert (done.operator, done.command, done.why) == ("ada", "ha_switchover", "patch")
    assert done.detail == '{"to":"node-b"}'
    assert guard.node.calls == [("ha_switchover", {"to": "node-b", "who": "ada", "why": "patch"})]
    refused = guard.ask({"cmd": "ha_switchover", "why": "x"}, peer(UIDS["rita"]))
    assert refused == {"ok": False, "error": "refused: rita (risk_officer) may not ha_switchover"}
    assert len(guard.of(OperatorRefused)) == 1
    viewer = guard.ask({"cmd": "ha_status"}, peer(UIDS["vic"]))
    assert viewer["ok"] is True and viewer["ha"]["role"] == "leader"
    missing_why = guard.ask({"cmd": "ha_switchover"}, peer(UIDS["ada"]))
    assert missing_why["ok"] is False
    assert isinstance(guard.node, FakeNode)


def test_when_no_node_answers_then_ha_status_shows_it_unreachable_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_desk(tmp_path)
    monkeypatch.setattr(
        cli_ha, "open_group", lambda _config: standby.Group(member="node-a", lease=FakeLease())
    )
    assert main(["ha", "status", str(config), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["lease"]["holder"] == "node-a" and status["lease"]["epoch"] == 7
    (member,) = status["members"]
    assert member["name"] == "node-a" and member["role"] == "unreachable"
    assert main(["ha", "status", str(config)]) == 0
    assert "node-a" in capsys.readouterr().out


def test_when_switchover_has_no_node_listening_then_exit_2(tmp_path: Path) -> None:
    config = write_desk(tmp_path)
    assert main(["ha", "switchover", str(config), "--to", "node-b", "--why", "drill"]) == 2
    assert main(["ha", "status", str(config), "--member", "bad"]) == 2


def test_when_a_node_has_no_ha_then_ha_status_says_single() -> None:
    status = GroupStatus(lease=None, members=[MemberStatus(name="n", role=Role.SINGLE)])
    assert render(status).startswith("lease: none (no leader)")


class FakeMembers:
    """The members table's rows as given (``MembersView``)."""

    lost_after_ms = 10_000

    def __init__(self, *rows: MemberRow) -> None:
        self._rows = list(rows)

    def rows(self) -> list[MemberRow]:
        return self._rows


def _row(
    member: str, role: str, *, age_ms: int, host: str, applied: int | None = None
) -> MemberRow:
    return MemberRow(
        member=member,
        role=role,
        applied_seq=applied,
        lag_events=None if applied is None else 100 - applied,
        lag_ms=None if applied is None else 250,
        heartbeat_age_ms=age_ms,
        pid=42,
        host=host,
    )


def test_when_members_table_has_rows_then_hosts_without_a_socket_appear_and_stale_is_lost() -> None:
    """node-a answers on its socket (its host and heartbeat added); node-b on another
    host has no socket here: its row's role and lag; node-c stopped heartbeating past
    lost_after_ms: lost; node-d's socket is unreachable but its row is fresh."""

    def ask(path: Path) -> dict[str, Any]:
        if path == Path("/a.sock"):
            return {"ok": True, "ha": {"name": "node-a", "role": "leader", "epoch": 7}}
        raise NoNodeListening(f"no node is listening on {path}")

    rows = FakeMembers(
        _row("node-a", "leader", age_ms=300, host="nyc-1", applied=100),
        _row("node-b", "standby", age_ms=800, host="nyc-2", applied=90),
        _row("node-c", "standby", age_ms=12_500, host="ldn-1", applied=40),
        _row("node-d", "standby", age_ms=100, host="nyc-3", applied=100),
    )
    sockets = {"node-a": Path("/a.sock"), "node-d": Path("/d.sock")}
    status = gather_status(FakeLease(), sockets, ask, members=rows)
    by_name = {m.name: m for m in status.members}
    assert [m.name for m in status.members] == ["node-a", "node-d", "node-b", "node-c"]
    a, b, c, d = (by_name[n] for n in ("node-a", "node-b", "node-c", "node-d"))
    assert (a.role, a.epoch, a.host, a.heartbeat_age_ms) == (Role.LEADER, 7, "nyc-1", 300)
    assert (b.role, b.applied_seq, b.lag_events, b.lag_s) == (Role.STANDBY, 90, 10, 0.25)
    assert (b.host, b.heartbeat_age_ms, b.error) == ("nyc-2", 800, None)
    assert c.role is Role.LOST and c.error == "no heartbeat for 12.5s"
    assert d.role is Role.STANDBY and d.error is not None and "/d.sock" in d.error
    text = render(status)
    assert "node-b           standby     applied 90 lag 10 events, 0.2s on nyc-2" in text
    assert "heartbeat 0.8s ago" in text
    assert "node-c           lost" in text and "(no heartbeat for 12.5s)" in text


def test_when_members_table_is_unreachable_then_status_still_answers_and_says_so() -> None:
    """The table's database not answering is one unreachable line, never an error."""

    class Down:
        lost_after_ms = 10_000

        def rows(self) -> list[MemberRow]:
            raise LeaseUnavailable("the members table: connection refused")

    status = gather_status(FakeLease(), {}, lambda _p: {}, members=Down())
    assert [(m.name, m.role) for m in status.members] == [("members", Role.UNREACHABLE)]
    assert "connection refused" in render(status)
