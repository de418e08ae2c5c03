"""Live arming and paper/live separation on a node journaling to PostgreSQL: the armings
already used and the modes of earlier starts are read from the PostgreSQL journal (as
from a SQLite file), so a copy of a consumed arming is refused, a paper node is refused
a live node's journal, and a live PostgreSQL node starts once per arming."""

from __future__ import annotations

import subprocess
from contextlib import closing
from pathlib import Path

import msgspec
import pytest

from bastion.clock import SimClock
from bastion.errors import ConfigError, NotArmed
from bastion.journal.pg_reader import PostgresJournalReader
from bastion.live.arming import (
    ARM_KEY_NAME,
    discard_arming,
    new_claims,
    token_path,
    used_token_ids,
    verify_arming,
    write_token,
)
from bastion.live.separation import check_journal_mode
from bastion.model.events import LiveArmed, RunManifest
from bastion.vault.refs import Secret
from bastion.vault.vault import Vault
from kit.live_desk import ME, ONE_ADMIN, bastion, commit_desk, enrol_operators, write_desk
from kit.pg_journal import open_pg, pg_locator, split_password
from kit.users import FreshCodes
from kit.vaults import FAST_KDF, PASSPHRASE, T0, key_file

KEY_HEX = "11" * 32
SECRET = Secret(ARM_KEY_NAME, KEY_HEX)
NODE = "node-1"  # kit.pg_journal's journal name
CONFIG_SHA = "ab" * 32
S = 1_000_000_000


def consume(locator_dir: Path, dsn: str, now_ns: int) -> LiveArmed:
    armed = verify_arming(
        pg_locator(dsn, locator_dir),
        key=SECRET,
        node_id=NODE,
        config_sha256=CONFIG_SHA,
        now_ns=now_ns,
    )
    discard_arming(pg_locator(dsn, locator_dir).path)  # its LiveArmed committed
    return armed


def test_when_a_consumed_token_is_replayed_from_a_copy_then_refused(
    tmp_path: Path, pg_dsn: str
) -> None:
    """The first start on an empty database consumes the arming; once its LiveArmed is
    in the PostgreSQL journal, a copy saved before the start is refused."""
    locator = pg_locator(pg_dsn, tmp_path)
    claims = new_claims(
        node_id=NODE, config_sha256=CONFIG_SHA, who="alice", why="go live", armed_at_ns=T0,
        valid_s=900,
    )  # fmt: skip
    write_token(token_path(locator.path), claims, bytes.fromhex(KEY_HEX))
    copy = token_path(locator.path).read_bytes()
    assert used_token_ids(locator) == set()  # no tables yet: nothing used
    armed = consume(tmp_path, pg_dsn, T0 + 60 * S)
    assert not token_path(locator.path).exists() and armed.who == "alice"
    journal = open_pg(pg_dsn, tmp_path)
    journal.begin_run(NODE, T0)
    journal.append(armed)
    journal.close()
    assert used_token_ids(locator) == {armed.token_id}
    token_path(locator.path).write_bytes(copy)
    with pytest.raises(NotArmed, match="already used"):
        consume(tmp_path, pg_dsn, T0 + 120 * S)


def manifest(mode: str) -> RunManifest:
    return RunManifest(
        ts_ns=T0, node_id=NODE, epoch=1, mode=mode, version="0", python="3", host="h",
        who="w", config_path="c.toml", config_sha256="00" * 32, files={},
        git_commit=None, git_dirty=None, untracked=[],
    )  # fmt: skip


@pytest.mark.parametrize(("written", "starting"), [("paper", "live"), ("live", "paper")])
def test_when_the_journal_was_written_by_the_other_mode_then_refused(
    tmp_path: Path, pg_dsn: str, written: str, starting: str
) -> None:
    """The journal's manifests refuse a node of the other mode, from another directory
    too (no marker there); another journal name in the same database is its own."""
    journal = open_pg(pg_dsn, tmp_path / "first")
    journal.begin_run(NODE, T0)
    journal.append(manifest(written))
    journal.close()
    elsewhere = tmp_path / "elsewhere"
    with pytest.raises(ConfigError, match=f"key 'journal.name': .* a {written} node"):
        check_journal_mode(pg_locator(pg_dsn, elsewhere), starting)  # type: ignore[arg-type]
    check_journal_mode(pg_locator(pg_dsn, elsewhere), written)  # type: ignore[arg-type]
    check_journal_mode(pg_locator(pg_dsn, elsewhere, name="other"), starting)  # type: ignore[arg-type]


@pytest.mark.timeout(240)
def test_when_a_live_postgres_node_is_armed_then_it_starts_once(
    tmp_path: Path, pg_dsn: str
) -> None:
    """Unarmed: refused. Armed by ada: it runs and journals LiveArmed to PostgreSQL;
    the next start needs a new arming, and a copy of the used one is refused as used.
    The database's password is in no output."""
    key = key_file(tmp_path)
    url, password = split_password(pg_dsn)
    desk = tmp_path / "desk"
    config = write_desk(desk, 'mode = "live"', access=ONE_ADMIN, journal="live-1.pg")
    config.write_text(
        config.read_text().replace(
            'path = "live-1.pg"',
            f'path = "live-1.pg"\nbackend = "postgres"\nurl = "{url}"\n'
            'password = "secret:journal/password"',
        )
    )
    vault = Vault.create(
        desk / "vault.bastion", PASSPHRASE, clock=SimClock(T0), scope="live", kdf=FAST_KDF
    )
    vault.set("journal/password", password)
    _, seeds = enrol_operators(desk / "vault.bastion", {"ada": (ME, "admin")})
    commit_desk(desk)
    codes = FreshCodes(seeds)
    token = token_path(desk / "live-1.pg")
    run = ("run", config.name, "--duration-s", "1")
    outputs: list[subprocess.CompletedProcess[str]] = []

    def cli(*args: str, stdin: str = "", vault_key: Path | None = key) -> int:
        done = bastion(*args, cwd=desk, key=vault_key, stdin=stdin)
        outputs.append(done)
        return done.returncode

    assert cli(*run) == 2 and "not armed" in outputs[-1].stderr
    arming = f"{PASSPHRASE}\n{codes('ada')}\n"
    assert cli("arm", config.name, "--why", "pg day one", "--passphrase-stdin", stdin=arming) == 0
    copy = token.read_bytes()
    assert cli(*run) == 0, outputs[-1].stderr
    assert not token.exists()
    with closing(PostgresJournalReader(url, name="m-1", password=password)) as reader:
        armed = [r.event for r in reader.events_of(("LiveArmed",))]
    assert len(armed) == 1 and isinstance(armed[0], LiveArmed)
    assert (armed[0].who, armed[0].why) == ("ada", "pg day one")
    assert msgspec.json.decode(copy)["claims"]["token_id"] == armed[0].token_id
    assert cli(*run) == 2 and "not armed" in outputs[-1].stderr
    token.write_bytes(copy)
    assert cli(*run) == 2 and "already used" in outputs[-1].stderr
    assert all(password not in done.stdout + done.stderr for done in outputs)
