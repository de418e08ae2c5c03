"""The drill's recover-only node config: each FIX venue through its read-only session,
nothing pointing at the live desk."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from bastion.backup.config import DrConfig, DrVenueSessionConfig, VenuePositionsConfig
from bastion.backup.drill_node import DRILL_STORE, confined, drill_config
from bastion.backup.pg_scratch import ScratchDatabase, ScratchServer
from bastion.config import PaperConfig, load_config
from bastion.errors import BackupError, ConfigError
from bastion.venues.fix.config import CancelOnDisconnect, FixVenueConfig
from kit.fix_desk import node_fix_venue_toml

NODE = """
[node]
id = "desk-1"

[[instruments]]
id = "XYZ.SIM"
venue = "FIXSIM"
tick_size = "0.01"
lot_size = "1"

[[strategies]]
name = "idle"
path = "idle.py"
class = "Idle"

[journal]
path = "{journal}"
{backend}
"""

SESSION = DrVenueSessionConfig(
    sender_comp_id="NODE-DR", username="drill", password="secret:venue/drill-password"
)


def restored(tmp_path: Path, *, journal: str = "journal.sqlite", backend: str = "") -> PaperConfig:
    desk = tmp_path / "desk"
    desk.mkdir(exist_ok=True)
    (desk / "idle.py").write_text("")
    fix = node_fix_venue_toml(9999, extra='cancel_on_disconnect = "venue"\naccount = "acct"\n')
    text = NODE.format(journal=journal, backend=backend) + fix
    (desk / "paper.toml").write_text(text)
    return load_config(desk / "paper.toml", PaperConfig)


def test_when_the_venue_has_a_read_only_session_then_the_drill_logs_on_with_it(
    tmp_path: Path,
) -> None:
    """CompID, credentials, a store of its own in the scratch desk, sequence numbers from
    1, no cancel-on-disconnect; where the venue is and the account stay the desk's."""
    config = drill_config(
        restored(tmp_path), {"FIXSIM": SESSION}, desk=tmp_path / "desk", scratch=None
    )
    venue = config.fix_venue
    assert isinstance(venue, FixVenueConfig)
    assert (venue.sender_comp_id, venue.username) == ("NODE-DR", "drill")
    assert venue.password == "secret:venue/drill-password" and venue.password_env is None
    assert venue.store_path == DRILL_STORE.format(venue="FIXSIM")
    assert venue.reset_on_logon and venue.cancel_on_disconnect is CancelOnDisconnect.OFF
    assert (venue.host, venue.port, venue.target_comp_id, venue.account) == (
        "127.0.0.1",
        9999,
        "SIM",
        "acct",
    )
    assert config.ha is None and config.recording is None and config.backup is None


def test_when_the_dr_site_reaches_the_venue_elsewhere_then_host_and_port_are_its_own(
    tmp_path: Path,
) -> None:
    session = msgspec.structs.replace(SESSION, host="10.1.2.3", port=7001, account="acct-ro")
    with pytest.raises(ConfigError, match="clear text"):  # a password off loopback needs TLS
        drill_config(restored(tmp_path), {"FIXSIM": session}, desk=tmp_path / "desk", scratch=None)
    session = msgspec.structs.replace(session, host="127.0.0.2")
    venue = drill_config(
        restored(tmp_path), {"FIXSIM": session}, desk=tmp_path / "desk", scratch=None
    ).fix_venue
    assert venue is not None and (venue.host, venue.port, venue.account) == (
        "127.0.0.2",
        7001,
        "acct-ro",
    )


@pytest.mark.parametrize(
    ("sessions", "refused"),
    [
        ({}, r"FIXSIM have no \[dr.venue_sessions.NAME\]"),
        ({"FIXSIM": SESSION, "OTHER": SESSION}, r"names OTHER: not a FIX venue"),
        (
            {"FIXSIM": msgspec.structs.replace(SESSION, sender_comp_id="NODE")},
            r"is the live node's session",
        ),
        (
            {"FIXSIM": msgspec.structs.replace(SESSION, password=None)},
            r"give password or password_env",
        ),
    ],
)
def test_when_a_venue_would_be_reached_through_the_live_session_then_the_drill_refuses(
    tmp_path: Path, sessions: dict[str, DrVenueSessionConfig], refused: str
) -> None:
    with pytest.raises(BackupError, match=refused):
        drill_config(restored(tmp_path), sessions, desk=tmp_path / "desk", scratch=None)


def test_when_the_journal_path_points_at_the_source_desk_then_the_drill_refuses(
    tmp_path: Path,
) -> None:
    """An absolute journal path the backup did not restore under outside/ is the source
    desk's: the drill's node would write there."""
    source = tmp_path / "live" / "journal.sqlite"
    with pytest.raises(BackupError, match=r"journal.path .* outside the scratch desk"):
        drill_config(
            restored(tmp_path, journal=str(source)),
            {"FIXSIM": SESSION},
            desk=tmp_path / "desk",
            scratch=None,
        )
    moved = tmp_path / "desk" / "outside" / source.as_posix().lstrip("/")
    moved.parent.mkdir(parents=True)
    config = drill_config(
        restored(tmp_path, journal=str(source)),
        {"FIXSIM": SESSION},
        desk=tmp_path / "desk",
        scratch=None,
    )
    assert config.journal.path == str(moved.resolve())
    assert confined(tmp_path / "desk", "state/j.sqlite", "journal.path") == "state/j.sqlite"


def test_when_the_journal_is_postgres_then_the_drill_opens_its_scratch_database_only(
    tmp_path: Path,
) -> None:
    backend = 'backend = "postgres"\nurl = "postgresql://bastion@db.example:5432/desk"'
    config = restored(tmp_path, journal="journal.pg", backend=backend)
    with pytest.raises(BackupError, match=r"scratch database"):
        drill_config(config, {"FIXSIM": SESSION}, desk=tmp_path / "desk", scratch=None)
    server = ScratchServer(url="postgresql://drill@127.0.0.1:5432/postgres", password="pw")
    scratch = ScratchDatabase(
        server=server,
        name="bastion_drill_1",
        url="postgresql://drill@127.0.0.1:5432/bastion_drill_1",
    )
    drilled = drill_config(config, {"FIXSIM": SESSION}, desk=tmp_path / "desk", scratch=scratch)
    assert drilled.journal.url == scratch.url
    assert drilled.journal.name == "desk-1"
    assert drilled.journal.password == "secret:dr/scratch-journal"


def test_when_dr_venue_sessions_are_wrong_then_the_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"dr.venue_sessions.FIXSIM.password'"):
        DrConfig(venue_sessions={"FIXSIM": DrVenueSessionConfig(sender_comp_id="X", password="pw")})
    with pytest.raises(ConfigError, match=r"dr.venue_sessions.FIXSIM.sender_comp_id"):
        DrConfig(venue_sessions={"FIXSIM": DrVenueSessionConfig(sender_comp_id="")})
    with pytest.raises(ConfigError, match=r"dr.venue_sessions.FIXSIM.port"):
        DrConfig(venue_sessions={"FIXSIM": DrVenueSessionConfig(sender_comp_id="X", port=0)})
    with pytest.raises(ConfigError, match=r"not both"):
        DrConfig(
            venue_sessions={"FIXSIM": SESSION},
            venue_positions=VenuePositionsConfig(kind="positions_file", path="s.json"),
        )


TWO_VENUES = """
[node]
id = "desk-1"

[[instruments]]
id = "A.SIM"
venue = "{a}"
tick_size = "0.01"

[[instruments]]
id = "B.SIM"
venue = "FIXB"
tick_size = "0.01"

[[strategies]]
name = "idle"
path = "idle.py"
class = "Idle"

[[venues]]
kind = "fix"
name = "{a}"
port = 9999
sender_comp_id = "NODE-A"
target_comp_id = "SIM"
username = "trader"
password_env = "BASTION_FIX_PASSWORD"
store_path = "fix/a.sqlite"

[[venues]]
kind = "fix"
name = "FIXB"
port = 9999
sender_comp_id = "NODE-B"
target_comp_id = "SIM"
username = "trader"
password_env = "BASTION_FIX_PASSWORD"
store_path = "fix/b.sqlite"

[[feeds]]
kind = "venue"
name = "a"
venue = "{a}"

[[feeds]]
kind = "venue"
name = "b"
venue = "FIXB"
"""


def two_venues(tmp_path: Path, *, a: str = "FIXA") -> PaperConfig:
    """A restored desk with two FIX venues at one venue server, sessions NODE-A, NODE-B."""
    desk = tmp_path / "desk"
    desk.mkdir(exist_ok=True)
    (desk / "idle.py").write_text("")
    (desk / "paper.toml").write_text(TWO_VENUES.format(a=a))
    return load_config(desk / "paper.toml", PaperConfig)


def session(sender: str) -> DrVenueSessionConfig:
    return msgspec.structs.replace(SESSION, sender_comp_id=sender)


@pytest.mark.parametrize(
    ("sessions", "refused"),
    [
        (
            {"FIXA": session("NODE-B"), "FIXB": session("NODE-DR")},
            "NODE-B' is the live node's session at venue FIXB",
        ),
        (
            {"FIXA": session("NODE-DR"), "FIXB": session("node-b")},
            "'node-b' is the live node's session:",
        ),
        (
            {"FIXA": session("node-a"), "FIXB": session("NODE-DR")},
            "'node-a' is the live node's session:",
        ),
        ({"FIXA": session("NODE-DR"), "FIXB": session("NODE-ß".upper())}, None),
    ],
)
def test_when_a_read_only_session_would_use_any_live_session_then_the_drill_refuses(
    tmp_path: Path, sessions: dict[str, DrVenueSessionConfig], refused: str | None
) -> None:
    """Two FIX venues of one desk: a read-only session may not be the other venue's live
    session, nor its own venue's in another case (a venue may compare CompIDs so)."""
    config = two_venues(tmp_path)
    if refused is None:
        drilled = drill_config(config, sessions, desk=tmp_path / "desk", scratch=None)
        assert sorted(v.sender_comp_id for v in drilled.venues) == ["NODE-DR", "NODE-SS"]
        return
    with pytest.raises(BackupError, match=re.escape(refused)):
        drill_config(config, sessions, desk=tmp_path / "desk", scratch=None)


def test_when_a_venue_name_climbs_out_then_the_drill_store_is_refused(tmp_path: Path) -> None:
    """A venue named ``x/../../..``: its drill store would land outside ``dr-drill``."""
    desk = tmp_path / "desk"
    for name in ("X/../../../live/fix", "../fix", "A/../../x"):
        config = two_venues(tmp_path, a=name)
        sessions = {name: session("DR-A"), "FIXB": session("DR-B")}
        with pytest.raises(BackupError, match="cannot name the drill's FIX session store"):
            drill_config(config, sessions, desk=desk, scratch=None)
    config = two_venues(tmp_path, a="FIX.A-1")
    drilled = drill_config(
        config, {"FIX.A-1": session("DR-A"), "FIXB": session("DR-B")}, desk=desk, scratch=None
    )
    assert {v.store_path for v in drilled.venues} == {
        DRILL_STORE.format(venue="FIX.A-1"),
        DRILL_STORE.format(venue="FIXB"),
    }


def test_when_a_strategy_file_is_outside_the_scratch_desk_then_the_restored_copy_is_used(
    tmp_path: Path,
) -> None:
    """An absolute strategy path (or one with ``..``) is the source desk's file: the drill
    imports the copy the backup restored under outside/, or refuses."""
    desk = tmp_path / "desk"
    config = restored(tmp_path)
    source = tmp_path / "live" / "strategies" / "idle.py"
    for path in (str(source), "../live/strategies/idle.py"):
        outside = msgspec.structs.replace(
            config, strategies=[msgspec.structs.replace(config.strategies[0], path=path)]
        )
        with pytest.raises(BackupError, match=r"strategies\[0\]\.path .* outside the scratch"):
            drill_config(outside, {"FIXSIM": SESSION}, desk=desk, scratch=None)
    moved = desk / "outside" / source.as_posix().lstrip("/")
    moved.parent.mkdir(parents=True)
    outside = msgspec.structs.replace(
        config, strategies=[msgspec.structs.replace(config.strategies[0], path=str(source))]
    )
    drilled = drill_config(outside, {"FIXSIM": SESSION}, desk=desk, scratch=None)
    assert drilled.strategies[0].path == str(moved.resolve())
    assert (
        drill_config(config, {"FIXSIM": SESSION}, desk=desk, scratch=None).strategies[0].path
        == "idle.py"
    )


def test_when_the_restored_journal_is_halted_with_orders_open_then_recover_only_cancels_none(
    tmp_path: Path,
) -> None:
    """A journal HALTED (a kill the venues never heard) with an order open at each of two
    venues, one of them halted too: started to trade, the node cancels both once
    reconciled (``cancel_if_halted``); recovering only, as the drill's node does, it
    sends nothing: no cancel is journaled and both orders stay open."""
    from bastion.config import resolve_path
    from bastion.journal import SqliteJournal
    from bastion.journal.reader import read_events
    from bastion.model.enums import TradingState
    from bastion.node.runner import recover_node, run_node
    from kit.two_venues import X, Y, send, two_venue_config, two_venue_kernel

    def halted_desk(root: Path) -> Path:
        path = resolve_path(root, two_venue_config().journal.path)
        journal = SqliteJournal(path)
        try:
            kernel = two_venue_kernel(root, journal)
            send(kernel, X)
            send(kernel, Y)
            kernel.risk.set_trading_state(TradingState.HALTED, "kill while the venues were down")
            kernel.halt_venue("B", "reconciliation mismatch", who="node", why="test")
            kernel.flush()
        finally:
            journal.close()
        return path

    def cancels(path: Path) -> int:
        return sum(len(read_events(path, t)) for t in ("OrderPendingCancel", "OrderCanceled"))

    recovering = halted_desk(tmp_path / "recover")
    code, report = recover_node(two_venue_config(), base_dir=tmp_path / "recover")
    assert code == 0 and report["state"] == "HALTED" and report["open_orders"] == 2
    assert cancels(recovering) == 0
    again, _ = recover_node(two_venue_config(), base_dir=tmp_path / "recover")
    assert again == 0 and cancels(recovering) == 0  # both still open to cancel

    trading = halted_desk(tmp_path / "trade")
    config = msgspec.structs.replace(two_venue_config(), run_for_s=0.2)
    assert run_node(config, base_dir=tmp_path / "trade") == 0
    assert cancels(trading) >= 2  # the contrast: a trading start does cancel them
