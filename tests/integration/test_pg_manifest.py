"""``bastion manifest show|diff --config`` on a node journaling to PostgreSQL: the same
output and exit codes as for the same starts in a SQLite journal; the password comes
from the vault only and is in no output."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bastion.model.events import RunManifest
from bastion.vault.keysource import KEY_FILE_ENV
from kit.journal_samples import T0, fills
from kit.node_process import RunBastion
from kit.pg_journal import PG_NODE_CONFIG, SEALED_KEYS, split_password, twin_journals
from kit.postgres import PostgresServer
from kit.vaults import key_file, new_vault

KEYS = SEALED_KEYS

CONFIG = PG_NODE_CONFIG


def started(epoch: int, strategy_sha: str, version: str) -> RunManifest:
    return RunManifest(
        ts_ns=T0 + epoch, node_id="node-1", epoch=epoch, mode="paper", version=version,
        python="3.11", host="h", who="ops", config_path="node.toml",
        config_sha256="00" * 32, files={"strategies/s.py": strategy_sha},
        git_commit="c0ffee", git_dirty=False, untracked=[],
    )  # fmt: skip


@pytest.fixture
def desk(tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """Three starts (the strategy changed before the second, bastion before the third)
    in twin journals, SQLite ``twin.sqlite`` and PostgreSQL ``node-1``, both encrypted
    and keyed; the PostgreSQL node's config and the vault of both; (desk, password)."""
    url, password = split_password(pg_dsn)
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file(tmp_path)))
    assert KEYS.encryption is not None and KEYS.chain is not None
    new_vault(
        tmp_path / "vault.bastion",
        journal__password=password,
        journal__encryption=KEYS.encryption.hex(),
        journal__chain=KEYS.chain.hex(),
    )
    events = [
        started(1, "aa" * 32, "1.0"),
        *fills(3),
        started(2, "bb" * 32, "1.0"),
        *fills(3, T0 + 10),
        started(3, "bb" * 32, "1.1"),
    ]
    twin_journals(tmp_path, pg_dsn, events, keys=KEYS)
    (tmp_path / "node.toml").write_text(CONFIG.format(url=url), encoding="utf-8")
    return tmp_path, password


def test_when_shown_and_diffed_then_postgres_answers_as_sqlite(
    desk: tuple[Path, str], run_bastion: RunBastion
) -> None:
    """show (latest, an epoch, JSON) and diff (the last two, two epochs, the same one):
    the PostgreSQL journal's output and exit code are the SQLite twin's."""
    _, password = desk
    asks = [
        ("show",),
        ("show", "--epoch", "1", "--json"),
        ("diff",),
        ("diff", "1", "2"),
        ("diff", "2", "2"),
        ("show", "--epoch", "9"),
    ]
    runs: list[subprocess.CompletedProcess[str]] = []
    for ask in asks:
        lite = run_bastion("manifest", ask[0], "twin.sqlite", *ask[1:], "--vault", "vault.bastion")
        pg = run_bastion("manifest", ask[0], "--config", "node.toml", *ask[1:])
        runs += [lite, pg]
        assert (pg.returncode, pg.stdout) == (lite.returncode, lite.stdout), ask
    shown, json_one, last_two, first_two, same, unknown = runs[1::2]
    assert shown.returncode == 0 and "epoch:    3 (paper, node node-1)" in shown.stdout
    assert '"epoch": 1' in json_one.stdout
    assert last_two.returncode == 1 and "version: '1.0' -> '1.1'" in last_two.stdout
    assert first_two.returncode == 1 and "file strategies/s.py:" in first_two.stdout
    assert same.returncode == 0 and "no change(s)" in same.stdout
    assert unknown.returncode == 2
    assert "postgresql journal 'node-1'" in unknown.stderr and "epochs: 1, 2, 3" in unknown.stderr
    assert all(password not in run.stdout + run.stderr for run in runs)


def test_when_a_journal_file_is_named_with_a_postgres_config_then_usage_error(
    desk: tuple[Path, str], run_bastion: RunBastion, postgres: PostgresServer, tmp_path: Path
) -> None:
    """The config's journal is in PostgreSQL: naming a file as well is refused (exit 2);
    a database holding no journal is named, exit 2."""
    named = run_bastion("manifest", "show", "twin.sqlite", "--config", "node.toml")
    assert named.returncode == 2 and "leave out the journal file" in named.stderr
    empty_db = tmp_path / "empty"
    empty_db.mkdir()
    other, _ = split_password(postgres.dsn(postgres.create_database()))
    (empty_db / "node.toml").write_text(CONFIG.format(url=other), encoding="utf-8")
    (empty_db / "vault.bastion").symlink_to(tmp_path / "vault.bastion")
    missing = run_bastion("manifest", "show", "--config", "empty/node.toml")
    assert missing.returncode == 2, missing.stderr
    assert "holds no bastion journals" in missing.stderr
