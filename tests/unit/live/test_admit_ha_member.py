"""An HA member is admitted in two steps: at start only what is local (the directory's
marker, the arming's MAC and expiry), so a standby starts while the group's database is
away; what reads the group's journal (the other mode's runs, an arming already used)
once it holds the lease (``admit_writer``)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from bastion.config import PaperConfig, load_config
from bastion.errors import ConfigError, NotArmed, OperationalError
from bastion.journal.locator import JournalLocator
from bastion.journal.sqlite import SqliteJournal
from bastion.live.arming import ARM_KEY_NAME, new_claims, token_path, write_token
from bastion.live.preflight import admit_start, admit_writer, node_manifest
from bastion.model.events import RunManifest
from bastion.vault.refs import MemorySecrets
from kit.risk_config import HEAD, LIVE_LIMITS

T0 = 1_767_225_600_000_000_000
S = 1_000_000_000
KEY_HEX = "11" * 32
NODE = (
    """
[node]
id = "desk-a"
{mode}

"""
    + HEAD
    + LIVE_LIMITS
)


def node(tmp_path: Path, mode: str) -> tuple[PaperConfig, RunManifest]:
    (tmp_path / "s.py").write_text("# placeholder strategy\n")
    path = tmp_path / "node.toml"
    extra = "\nallow_dirty = true" if mode == "live" else ""
    path.write_text(NODE.format(mode=f'mode = "{mode}"{extra}'))
    config = load_config(path, PaperConfig)
    return config, node_manifest(config, base_dir=tmp_path, source=str(path), who="op", ts_ns=1)


def away(tmp_path: Path) -> JournalLocator:
    """The group's PostgreSQL journal with nothing listening (port 1): any read fails."""
    return JournalLocator.postgres(
        "postgresql://bastion@127.0.0.1:1/desk",
        name="desk",
        path=tmp_path / "j" / "desk.pg",
        password="pw",
        connect_timeout_s=1,
    )


def armed_live(tmp_path: Path, locator: JournalLocator, manifest: RunManifest) -> None:
    claims = new_claims(
        node_id="desk-a", config_sha256=manifest.config_sha256, who="alice", why="go live",
        armed_at_ns=T0, valid_s=900,
    )  # fmt: skip
    locator.path.parent.mkdir(parents=True, exist_ok=True)
    write_token(token_path(locator.path), claims, bytes.fromhex(KEY_HEX))


def test_when_the_database_is_away_then_a_member_is_admitted_to_stand_by(
    tmp_path: Path,
) -> None:
    """Local checks only: admitted (and the arming verified) with no journal to read;
    the same start reading the journal fails on the database, as a node's would."""
    config, manifest = node(tmp_path, "live")
    locator = away(tmp_path)
    armed_live(tmp_path, locator, manifest)
    secrets = MemorySecrets({ARM_KEY_NAME: KEY_HEX})
    armed = admit_start(
        config, manifest, journal=locator, secrets=secrets, now_ns=T0 + 60 * S,
        trading=True, read_journal=False,
    )  # fmt: skip
    assert armed is not None and armed.who == "alice"
    assert token_path(locator.path).exists()  # deleted only once LiveArmed is committed
    with pytest.raises(OperationalError):
        admit_start(
            config, manifest, journal=locator, secrets=secrets, now_ns=T0 + 60 * S,
            trading=True,
        )  # fmt: skip
    with pytest.raises(OperationalError):
        admit_writer(config, locator, armed)  # as leader: the journal must answer


def test_when_the_member_leads_then_an_arming_already_used_is_refused(tmp_path: Path) -> None:
    config, manifest = node(tmp_path, "live")
    journal = tmp_path / "j" / "desk.sqlite"
    locator = JournalLocator.sqlite(journal)
    armed_live(tmp_path, locator, manifest)
    secrets = MemorySecrets({ARM_KEY_NAME: KEY_HEX})
    armed = admit_start(
        config, manifest, journal=locator, secrets=secrets, now_ns=T0 + 60 * S,
        trading=True, read_journal=False,
    )  # fmt: skip
    assert armed is not None
    admit_writer(config, locator, armed)  # nothing used yet
    store = SqliteJournal(journal)
    store.begin_run("desk-a", T0)
    store.append(armed)  # another member of the group used this arming first
    store.close()
    with pytest.raises(NotArmed, match="already used"):
        admit_writer(config, locator, armed)


def test_when_the_member_leads_a_journal_of_the_other_mode_then_refused(tmp_path: Path) -> None:
    config, manifest = node(tmp_path, "paper")
    journal = tmp_path / "j" / "desk.sqlite"
    store = SqliteJournal(journal)
    store.begin_run("desk-a", T0)
    store.append(msgspec.structs.replace(manifest, mode="live"))
    store.close()
    locator = JournalLocator.sqlite(journal)
    assert admit_start(
        config, manifest, journal=locator, secrets=None, now_ns=T0, trading=True,
        read_journal=False,
    ) is None  # fmt: skip
    with pytest.raises(ConfigError, match="written by a live node"):
        admit_writer(config, locator, None)
