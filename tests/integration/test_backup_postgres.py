"""Backups of a node journaling to PostgreSQL (encrypted and keyed): a full backup and
shipped segments taken while it trades hold its rows as stored; restored into a fresh
database the rows are byte for byte the source's (sealed payloads never decrypted),
``bastion journal verify --config`` passes, and a node started on it recovers and
trades on under a new run."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from bastion.backup.encryption import new_identity
from bastion.journal.pg_reader import PostgresJournalReader
from bastion.journal.reader import NotAJournalError
from bastion.model import events as ev
from bastion.vault.keysource import KEY_FILE_ENV
from kit.hoarder_node import hoarder_node_toml
from kit.journal_samples import fills
from kit.node_process import (
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    RunBastion,
    running_node,
    status,
    still_running,
)
from kit.pg_journal import SEALED_KEYS, as_superuser, dbname, open_pg, split_password, stored_rows
from kit.postgres import PostgresServer
from kit.strategies import HOARDER
from kit.vaults import key_file, new_vault
from kit.waiting import eventually

NAME = "pgb-1"
KEYS = SEALED_KEYS

NODE_TOML = hoarder_node_toml(
    "pgb-1",
    """
[journal]
backend = "postgres"
url = "{url}"
password = "secret:journal/password"
path = "j/pgb-1.pg"
encryption_key = "secret:journal/encryption"
chain_key = "secret:journal/chain"
snapshot_every_events = 50

[backup]
recipients = ["{recipient}"]

[backup.destination]
kind = "dir"
path = "{backups}"
""",
)


def _events(url: str, password: str) -> list[tuple[int, Any]]:
    try:
        with PostgresJournalReader(url, name=NAME, password=password, keys=KEYS) as reader:
            return reader.events_after(0, limit=1_000_000)
    except NotAJournalError:
        return []


def _fills_after(url: str, password: str, seq: int) -> int:
    events = _events(url, password)
    assert any(isinstance(e, ev.OrderFilled) for s, e in events if s > seq), "no fill yet"
    return events[-1][0]


@pytest.fixture
def desk(tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A desk whose node journals to PostgreSQL, encrypted and keyed, backed up to a
    directory; its vault holds the database password and the journal's keys."""
    url, password = split_password(pg_dsn)
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file(tmp_path)))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    root = tmp_path / "desk"
    (root / "strategies").mkdir(parents=True)
    (root / "strategies" / "hoarder.py").write_text(HOARDER, encoding="utf-8")
    assert KEYS.encryption is not None and KEYS.chain is not None
    new_vault(
        root / "vault.bastion",
        journal__password=password,
        journal__encryption=KEYS.encryption.hex(),
        journal__chain=KEYS.chain.hex(),
    )
    recipient = new_identity(tmp_path / "backup.key")
    (root / "node.toml").write_text(
        NODE_TOML.format(url=url, recipient=recipient, backups=tmp_path / "backups"),
        encoding="utf-8",
    )
    return root


@pytest.mark.timeout(240)
def test_when_a_postgres_node_is_backed_up_then_a_fresh_database_restores_it_and_a_node_recovers(
    desk: Path, tmp_path: Path, pg_dsn: str, postgres: PostgresServer, run_bastion: RunBastion
) -> None:
    url, password = split_password(pg_dsn)
    local = desk / "j" / "pgb-1.pg"
    with running_node("run", "node.toml", cwd=desk) as (proc, log):
        eventually(
            lambda: still_running(proc, log) and _fills_after(url, password, 0),
            timeout_s=START_TIMEOUT_S,
        )
        created = run_bastion("backup", "create", "node.toml", cwd=desk)
        assert created.returncode == 0, created.stdout + created.stderr
        mark = _events(url, password)[-1][0]
        eventually(lambda: _fills_after(url, password, mark), timeout_s=30)
        shipped = run_bastion("backup", "ship", "node.toml", "--once", cwd=desk)
        assert shipped.returncode == 0, shipped.stdout + shipped.stderr
        assert "shipped 1 segment(s)" in shipped.stdout
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_TIMEOUT_S) == 0, log.read_text()
    last = run_bastion("backup", "ship", "node.toml", "--once", cwd=desk)
    assert last.returncode == 0, last.stdout + last.stderr
    source_rows = stored_rows(postgres, pg_dsn, NAME)

    refused = run_bastion(
        "backup", "restore", "latest", "--from", "node.toml", "--to", tmp_path / "no-url",
        "--identity", tmp_path / "backup.key", cwd=desk,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "--to-url" in refused.stderr
    assert not (tmp_path / "no-url").exists()

    fresh_dsn = postgres.dsn(postgres.create_database())
    fresh_url, _ = split_password(fresh_dsn)
    restored_dir = tmp_path / "restored"
    started = time.monotonic()
    restored = run_bastion(
        "backup", "restore", "latest", "--from", "node.toml", "--to", restored_dir,
        "--identity", tmp_path / "backup.key", "--to-url", fresh_url, cwd=desk,
    )  # fmt: skip
    seconds = time.monotonic() - started
    assert restored.returncode == 0, restored.stdout + restored.stderr
    result = json.loads(restored.stdout)
    assert result["segments"] == 2 and result["last_seq"] == source_rows[-1][0], result
    assert NAME in result["journal"]
    assert password not in restored.stdout + restored.stderr
    # the rows as stored, sealed payloads included, byte for byte
    assert stored_rows(postgres, fresh_dsn, NAME) == source_rows
    again = run_bastion(
        "backup", "restore", "latest", "--from", "node.toml", "--to", tmp_path / "again",
        "--identity", tmp_path / "backup.key", "--to-url", fresh_url, cwd=desk,
    )  # fmt: skip
    assert again.returncode != 0 and "already exists" in again.stderr
    assert not (tmp_path / "again").exists()
    verified_backup = run_bastion(
        "backup", "verify", "node.toml", "latest", "--identity", tmp_path / "backup.key", cwd=desk
    )  # offline: the dump's chain, snapshots and anchors with the vault's keys
    assert verified_backup.returncode == 0, verified_backup.stdout + verified_backup.stderr
    assert "contents, pieces and journal" in verified_backup.stdout
    assert all(row[3] is None for row in source_rows)  # sealed: no order id in the clear

    config = restored_dir / "node.toml"
    config.write_text(config.read_text().replace(url, fresh_url), encoding="utf-8")
    verified = run_bastion("journal", "verify", "--config", config, cwd=restored_dir)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"ok: postgresql journal '{NAME}'" in verified.stdout
    print(f"restore of {len(source_rows)} events: {seconds:.2f} s; {created.stdout.strip()}")

    restored_local = restored_dir / "j" / "pgb-1.pg"
    with running_node("run", "node.toml", cwd=restored_dir) as (proc, log):
        eventually(
            lambda: (
                still_running(proc, log) and _fills_after(fresh_url, password, source_rows[-1][0])
            ),
            timeout_s=START_TIMEOUT_S,
        )
        assert eventually(lambda: status(restored_local), timeout_s=5)["ok"] is True
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_TIMEOUT_S) == 0, log.read_text()
    manifests = [e for _, e in _events(fresh_url, password) if isinstance(e, ev.RunManifest)]
    assert [m.epoch for m in manifests] == [1, 2]
    assert local.exists()


def test_when_a_row_was_edited_in_the_database_then_restore_refuses_before_writing_any(
    desk: Path, tmp_path: Path, pg_dsn: str, postgres: PostgresServer, run_bastion: RunBastion
) -> None:
    """The dump is checked offline with the keys first: an edited row names its seq and
    the target database is left without the journal."""
    journal = open_pg(pg_dsn, desk / "j", name=NAME, keys=KEYS)
    journal.begin_run(NAME, 1)
    for event in fills(30):
        journal.append(event)
    journal.close()
    as_superuser(postgres, pg_dsn, "UPDATE bastion_events SET ts_ns = ts_ns + 1 WHERE seq = 17")
    created = run_bastion("backup", "create", "node.toml", cwd=desk)
    assert created.returncode == 0, created.stdout + created.stderr  # copied as stored
    fresh_dsn = postgres.dsn(postgres.create_database())
    refused = run_bastion(
        "backup", "restore", "latest", "--from", "node.toml", "--to", tmp_path / "restored",
        "--identity", tmp_path / "backup.key", "--to-url", split_password(fresh_dsn)[0],
        cwd=desk,
    )  # fmt: skip
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "fails its check: seq 17" in refused.stderr
    assert not (tmp_path / "restored").exists()
    with postgres.superuser(dbname(fresh_dsn)) as conn:
        found = conn.execute("SELECT to_regclass('bastion_events')").fetchone()
    assert found == (None,)  # not even the tables
