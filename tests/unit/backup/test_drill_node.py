"""The drill's recover-only node config: each FIX venue through its read-only session,
nothing pointing at the live desk."""

from __future__ import annotations

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
