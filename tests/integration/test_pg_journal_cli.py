"""``bastion journal verify|export|stats --config`` on a PostgreSQL journal: the same
outputs and exit codes as for SQLite; a row edited, forged or deleted by someone with
database access is named by ``verify``; the password comes from the vault only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.vault.keysource import KEY_FILE_ENV
from kit.journal_samples import fills
from kit.node_process import RunBastion
from kit.pg_journal import PG_NODE_CONFIG, SEALED_KEYS, as_superuser, open_pg, split_password
from kit.postgres import PostgresServer
from kit.vaults import key_file, new_vault

KEYS = SEALED_KEYS

CONFIG = PG_NODE_CONFIG


@pytest.fixture
def desk(tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A keyed, encrypted PostgreSQL journal of 20 events, its config and its vault."""
    url, password = split_password(pg_dsn)
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file(tmp_path)))
    assert KEYS.encryption is not None and KEYS.chain is not None
    new_vault(
        tmp_path / "vault.bastion",
        journal__password=password,
        journal__encryption=KEYS.encryption.hex(),
        journal__chain=KEYS.chain.hex(),
    )
    journal = open_pg(pg_dsn, tmp_path, keys=KEYS)
    journal.begin_run("node-1", 1)
    for event in fills(20):
        journal.append(event)
    journal.snapshot(b"state", 5)
    journal.close()
    (tmp_path / "node.toml").write_text(CONFIG.format(url=url), encoding="utf-8")
    return tmp_path


def test_when_intact_then_verify_stats_and_export_read_it(
    desk: Path, pg_dsn: str, run_bastion: RunBastion
) -> None:
    config = desk / "node.toml"
    proc = run_bastion("journal", "verify", "--config", config)
    assert proc.returncode == 0, proc.stderr
    assert "ok: postgresql journal 'node-1'" in proc.stdout
    assert "20 events (seq 1..20)" in proc.stdout
    assert "keyed (HMAC-SHA256), 2 anchor(s) checked" in proc.stdout
    stats = run_bastion("journal", "stats", "--config", config)
    assert stats.returncode == 0, stats.stderr
    assert "events:         20" in stats.stdout and "runs:           1" in stats.stdout
    export = run_bastion("journal", "export", "--config", config, "--from-seq", "11")
    assert export.returncode == 0, export.stderr
    lines = [json.loads(line) for line in export.stdout.splitlines()]
    assert [line["seq"] for line in lines] == list(range(11, 21))
    assert lines[0]["client_order_id"] == fills(20)[10].client_order_id
    _, password = split_password(pg_dsn)
    for done in (proc, stats, export):
        assert password not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("tamper", "seq", "problem"),
    [
        ("UPDATE bastion_events SET ts_ns = ts_ns + 1 WHERE seq = 7", 7, "hash mismatch"),
        (
            "UPDATE bastion_events SET payload = (SELECT payload FROM bastion_events "
            "WHERE seq = 8) WHERE seq = 7",
            7,
            "sealed payload does not open",
        ),
        ("DELETE FROM bastion_events WHERE seq = 7", 8, "gap in seq"),
        ("DELETE FROM bastion_events WHERE seq > 15", None, "were cut off"),
    ],
    ids=["edited", "moved", "deleted", "cut"],
)
def test_when_rows_tampered_then_verify_names_the_first_bad_record(
    desk: Path,
    postgres: PostgresServer,
    pg_dsn: str,
    run_bastion: RunBastion,
    tamper: str,
    seq: int | None,
    problem: str,
) -> None:
    as_superuser(postgres, pg_dsn, tamper)
    proc = run_bastion("journal", "verify", "--config", desk / "node.toml")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert problem in proc.stdout
    if seq is not None:
        assert f"first bad record seq {seq}" in proc.stdout


def test_when_database_holds_no_journal_then_exit_2(
    desk: Path, postgres: PostgresServer, pg_dsn: str, run_bastion: RunBastion
) -> None:
    as_superuser(postgres, pg_dsn, "DROP TABLE bastion_meta")
    proc = run_bastion("journal", "stats", "--config", desk / "node.toml")
    assert proc.returncode == 2
    assert "holds no bastion journals" in proc.stderr
