"""The audit trail of a node journaling to PostgreSQL: the console's ``audit`` answers
exactly as on a SQLite journal (newest first, searched, paged), read from the encrypted
journal with selects only; and a running PostgreSQL node answers ``audit`` on its
control socket with the kill it was just given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bastion.journal.locator import JournalLocator
from bastion.journal.sqlite import SqliteJournal
from bastion.node.control import request, socket_path
from bastion.vault.keysource import KEY_FILE_ENV
from kit.hoarder_node import hoarder_node_toml
from kit.node_process import START_TIMEOUT_S, STOP_TIMEOUT_S, running_node, status, still_running
from kit.operator_desk import Desk, audit_drill
from kit.pg_journal import SEALED_KEYS, open_pg, pg_locator, split_password
from kit.strategies import HOARDER
from kit.vaults import key_file, new_vault
from kit.waiting import eventually

KEYS = SEALED_KEYS


def test_when_audited_on_postgres_then_the_answers_are_those_on_sqlite(
    tmp_path: Path, pg_dsn: str
) -> None:
    """The same commands on two desks, one journaling to SQLite and one to an encrypted
    PostgreSQL journal: every audit answer is the same, and says what SQLite's says."""
    lite_dir, pg_dir = tmp_path / "sqlite", tmp_path / "pg"
    lite_dir.mkdir()
    pg_dir.mkdir()
    lite_journal = SqliteJournal(lite_dir / "j.sqlite")
    pg_journal = open_pg(pg_dsn, pg_dir, keys=KEYS)
    try:
        lite = audit_drill(Desk(lite_dir, lite_journal, JournalLocator.sqlite(lite_journal.path)))
        pg = audit_drill(Desk(pg_dir, pg_journal, pg_locator(pg_dsn, pg_dir, keys=KEYS)))
    finally:
        lite_journal.close()
        pg_journal.close()
    assert pg == lite
    records = pg["all"]["records"]
    assert pg["all"]["ok"] is True and pg["all"]["more"] is False
    assert [r["type"] for r in records][:3] == [
        "TradingStateChanged",
        "OperatorCommand",
        "OperatorRefused",
    ]
    assert records[1]["operator"] == "rita" and records[1]["source"] == "local socket"
    assert [r["type"] for r in pg["refused"]["records"]] == ["OperatorRefused"]
    assert pg["first"]["more"] is True
    assert pg["older"]["records"][0]["seq"] < pg["first"]["records"][0]["seq"]


NODE_TOML = hoarder_node_toml(
    "pg-audit",
    """
[journal]
backend = "postgres"
url = "{url}"
password = "secret:journal/password"
path = "j/pg-audit.pg"
encryption_key = "secret:journal/encryption"
""",
)


@pytest.mark.timeout(120)
def test_when_a_postgres_node_is_killed_then_its_audit_trail_shows_it(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node's own ``audit`` (what the console asks) reads its PostgreSQL journal:
    the kill and the state change it caused, newest first; no password in its log."""
    url, password = split_password(pg_dsn)
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file(tmp_path)))
    assert KEYS.encryption is not None
    new_vault(
        tmp_path / "vault.bastion",
        journal__password=password,
        journal__encryption=KEYS.encryption.hex(),
    )
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "hoarder.py").write_text(HOARDER, encoding="utf-8")
    (tmp_path / "node.toml").write_text(NODE_TOML.format(url=url), encoding="utf-8")
    local = tmp_path / "j" / "pg-audit.pg"

    def audit(query: str) -> dict[str, Any]:
        return request(
            socket_path(local), {"cmd": "audit", "query": query, "limit": 10}, timeout_s=10
        )

    with running_node("run", "node.toml", cwd=tmp_path) as (proc, log):
        eventually(lambda: still_running(proc, log) and status(local), START_TIMEOUT_S)
        killed = request(socket_path(local), {"cmd": "kill", "why": "audit drill"}, timeout_s=10)
        assert killed["ok"] is True, killed
        answer = audit("")
        found = audit("audit drill")
        proc.terminate()
        assert proc.wait(timeout=STOP_TIMEOUT_S) == 0, log.read_text()
    assert answer["ok"] is True, answer
    types = [r["type"] for r in answer["records"]]
    assert types[:2] == ["TradingStateChanged", "OperatorCommand"], types
    assert [r["type"] for r in found["records"]] == types[:2]  # both say why
    assert all("audit drill" in r["summary"] for r in found["records"])
    assert password not in log.read_text()
