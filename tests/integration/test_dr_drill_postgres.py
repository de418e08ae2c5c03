"""The DR drill of a desk journaling to PostgreSQL: a node trades over FIX with the venue
simulator, its journal (encrypted and keyed) in PostgreSQL, backed up and shipped to a
directory. ``bastion dr drill`` restores the backup into a database it creates on
``[dr] scratch_url``'s server, starts the node recover-only on it, logged on through
the venue's read-only session (its password from the restored vault), agrees with
the venue, measures the RPO from the source journal (read only) and drops its database;
the source database is byte for byte what it was. A tampered backup fails the drill
with the reason, leaves no scratch database, and dr-drill-failed arrives."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bastion.backup.encryption import new_identity
from bastion.backup.pg_scratch import PREFIX
from bastion.journal.pg_reader import PostgresJournalReader
from bastion.journal.reader import NotAJournalError
from bastion.model import events as ev
from bastion.vault.keysource import KEY_FILE_ENV
from kit.chaos_harness import (
    ACCOUNT,
    NODE_ID,
    Desk,
    alive,
    kill,
    start_node,
    venue_process,
    write_desk,
)
from kit.chaos_oracle import read_ledger
from kit.net import free_tcp_port
from kit.node_process import bastion_cmd, child_env, terminate
from kit.pg_journal import SEALED_KEYS, dbname, open_pg, split_password
from kit.postgres import PostgresServer
from kit.receivers import HttpReceiver, http_receiver
from kit.vaults import key_file, new_vault
from kit.waiting import eventually

SEED = 20_261_208
KEYS = SEALED_KEYS

PG_SECTIONS = """
[journal]
backend = "postgres"
url = "{url}"
password = "secret:journal/password"
path = "j/chaos.pg"
encryption_key = "secret:journal/encryption"
chain_key = "secret:journal/chain"
snapshot_every_events = 50

[backup]
recipients = ["{recipient}"]

[backup.destination]
kind = "dir"
path = "{backups}"

[dr]
rto_target_s = 60
scratch_url = "{scratch_url}"
scratch_password = "secret:dr/scratch"

[dr.venue_sessions.FIXSIM]
sender_comp_id = "NODE-DR"
username = "drill"
password = "secret:venue/drill"

[monitoring]
listen = "127.0.0.1:{port}"

[[alert_routes]]
name = "ops"
urls = ["secret:notify/ops"]
backoff_initial_ms = 50
backoff_max_ms = 200
"""


READ_ONLY_SESSION = """
[[read_only_sessions]]
name = "drill"
comp_id = "NODE-DR"
username = "drill"
password_env = "BASTION_FIX_PASSWORD"
account = "{account}"
"""


def _pg_desk(tmp_path: Path, pg_dsn: str, postgres: PostgresServer, receiver: HttpReceiver) -> Desk:
    """The chaos desk with its journal in PostgreSQL; the vault holds the database's
    password, the journal's keys, the scratch server's password and the alert route."""
    desk = write_desk(tmp_path / "desk", seed=SEED, snapshot_every_events=None)
    url, password = split_password(pg_dsn)
    scratch_url, scratch_password = split_password(postgres.dsn("postgres"))
    assert KEYS.encryption is not None and KEYS.chain is not None
    new_vault(
        desk.root / "vault.bastion",
        journal__password=password,
        journal__encryption=KEYS.encryption.hex(),
        journal__chain=KEYS.chain.hex(),
        dr__scratch=scratch_password,
        venue__drill="chaos-test-password",
        notify__ops=receiver.url(),
    )
    recipient = new_identity(tmp_path / "backup.key")
    with desk.venue_config.open("a", encoding="utf-8") as venue:
        venue.write(READ_ONLY_SESSION.format(account=ACCOUNT))
    text = desk.node_config.read_text(encoding="utf-8")
    head, _, _ = text.partition("[journal]")
    desk.node_config.write_text(
        head
        + PG_SECTIONS.format(
            url=url,
            recipient=recipient,
            backups=tmp_path / "backups",
            scratch_url=scratch_url,
            port=free_tcp_port(),
        ),
        encoding="utf-8",
    )
    return desk


def _bastion(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        bastion_cmd(*args),
        cwd=cwd,
        env={**child_env(), "BASTION_FIX_PASSWORD": "chaos-test-password"},
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _fills(pg_dsn: str) -> int:
    url, password = split_password(pg_dsn)
    try:
        with PostgresJournalReader(url, name=NODE_ID, password=password, keys=KEYS) as reader:
            events = reader.events_after(0, limit=1_000_000)
    except NotAJournalError:
        return 0
    return sum(isinstance(e, ev.OrderFilled) for _, e in events)


def _source_state(postgres: PostgresServer, pg_dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table in the source database, as stored."""
    with postgres.superuser(dbname(pg_dsn)) as conn:
        tables = [
            str(t)
            for (t,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            ).fetchall()
        ]
        state = {}
        for table in tables:
            rows = conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            state[table] = [
                tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows
            ]
    return state


def _scratch_databases(postgres: PostgresServer) -> list[str]:
    with postgres.superuser() as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1", (PREFIX + "%",)
        ).fetchall()
    return [str(r[0]) for r in rows]


@pytest.mark.timeout(300)
def test_when_a_postgres_desk_is_drilled_then_it_recovers_agrees_and_leaves_the_source_as_it_was(
    tmp_path: Path,
    pg_dsn: str,
    postgres: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Passed and reconciled with the ledger, RPO counted from the source, scratch
    database dropped (or kept), source rows unchanged; a tampered backup fails, alerted."""
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file(tmp_path)))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    with http_receiver() as receiver:
        desk = _pg_desk(tmp_path, pg_dsn, postgres, receiver)
        identity = tmp_path / "backup.key"
        drill = ("dr", "drill", desk.node_config, "--identity", identity)
        with venue_process(desk):
            node = start_node(desk)
            try:
                eventually(lambda: alive(node, desk.log("node")) and _fills(pg_dsn) >= 3, 90)
                created = _bastion("backup", "create", desk.node_config, cwd=desk.root)
                assert created.returncode == 0, created.stdout + created.stderr
                mark = _fills(pg_dsn)
                eventually(lambda: alive(node, desk.log("node")) and _fills(pg_dsn) > mark, 60)
                assert terminate(node) == 0
            finally:
                kill(node)
            shipped = _bastion("backup", "ship", desk.node_config, "--once", cwd=desk.root)
            assert shipped.returncode == 0, shipped.stdout + shipped.stderr
            before = _source_state(postgres, pg_dsn)
            books = read_ledger(desk.ledger)
            drilled = _bastion(
                *drill, "--scratch", tmp_path / "s1", "--report", tmp_path / "d1.json",
                cwd=tmp_path,
            )  # fmt: skip
            assert drilled.returncode == 0, drilled.stdout + drilled.stderr[-3000:]
            assert _source_state(postgres, pg_dsn) == before  # not a row written
            assert read_ledger(desk.ledger) == books  # queried, never traded
        report = json.loads((tmp_path / "d1.json").read_text())
        assert report["ok"] and report["reconciled"] is True, report
        assert report["reconciled_by"] == "venue sessions (FIXSIM)"
        assert report["reconciliation"]["positions_compared"] is True
        assert report["node_positions"] != {}
        assert report["segments"] >= 1 and report["restored_last_seq"] == max(
            r[1] for r in before["bastion_events"]
        )
        assert report["rpo_events"] == 0 and report["rpo_s"] == 0.0
        assert {
            "scratch_db",
            "fetch",
            "segments",
            "verify",
            "load",
            "recover_and_reconcile",
        } <= set(report["phases_s"])
        assert 0 < report["rto_s"] < 60
        assert PREFIX in report["scratch_journal"] and report["scratch_kept"] is False
        assert "DR drill PASSED" in drilled.stdout and "(dropped)" in drilled.stdout
        assert _scratch_databases(postgres) == []

        # journaled since the last shipped segment: the RPO counts it, from the source
        journal = open_pg(pg_dsn, desk.root / "j", name=NODE_ID, keys=KEYS)
        for rto in (1.0, 2.0, 3.0):
            journal.append(
                ev.DrDrillCompleted(
                    ts_ns=before["bastion_events"][-1][2] + int(rto * 1e9), ok=True,
                    backup_id="b", rto_s=rto, rto_target_s=60.0, rpo_events=0, rpo_s=0.0,
                    reconciled=True, mismatches=[], report="",
                )
            )  # fmt: skip
        journal.close()
        before = _source_state(postgres, pg_dsn)
        with venue_process(desk):
            kept = _bastion(
                *drill, "--scratch", tmp_path / "s2", "--report", tmp_path / "d2.json",
                "--keep", cwd=tmp_path,
            )  # fmt: skip
        assert kept.returncode == 0, kept.stdout + kept.stderr[-3000:]
        assert _source_state(postgres, pg_dsn) == before
        report = json.loads((tmp_path / "d2.json").read_text())
        assert report["rpo_events"] == 3 and report["rpo_s"] >= 2.9, report
        (database,) = _scratch_databases(postgres)
        assert report["scratch_kept"] is True and database in report["scratch_journal"]
        with postgres.superuser(database) as conn:
            restored = conn.execute(
                "SELECT count(*) FILTER (WHERE seq <= %s), max(seq) FROM bastion_events "
                "WHERE name = %s",
                (report["restored_last_seq"], NODE_ID),
            ).fetchone()
            # the restored rows, then the drill's recover-only node's own (its reconciliation)
            assert restored[0] == report["restored_last_seq"] < restored[1], restored
        with postgres.superuser() as conn:
            conn.execute(f'DROP DATABASE "{database}"')

        full = sorted((tmp_path / "backups" / NODE_ID).glob("full-*.age"))[-1]
        blob = bytearray(full.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        full.write_bytes(bytes(blob))
        tampered = _bastion(*drill, "--scratch", tmp_path / "s3", cwd=tmp_path)
        assert tampered.returncode == 1, tampered.stdout + tampered.stderr
        assert "dr_drill_failed" in tampered.stderr
        assert "SHA-256 does not match its record" in tampered.stderr
        assert _scratch_databases(postgres) == []
        assert _source_state(postgres, pg_dsn) == before
        arrived = eventually(lambda: receiver.about("dr-drill-failed", "firing"), timeout_s=15)
        assert arrived[0].alert_id.startswith("cmd.")  # from the command: no node runs
