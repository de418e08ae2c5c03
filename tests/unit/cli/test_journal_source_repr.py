"""A PostgreSQL journal's source, as the journal commands hold it, never shows its
password or keys in its repr (it may reach a log line or an error)."""

from __future__ import annotations

from pathlib import Path

from bastion.cli.journal_keys import PostgresSource
from bastion.journal.keys import JournalKeys


def test_when_a_postgres_source_is_shown_then_its_password_and_keys_are_not() -> None:
    keys = JournalKeys(encryption=bytes(range(32)), chain=bytes(range(32, 64)))
    source = PostgresSource(
        url="postgresql://bastion@db:5432/desk",
        name="desk-1",
        password="hunter2-pg-password",
        keys=keys,
        anchors=Path("j.anchors"),
        connect_timeout_s=5,
        local_path=Path("j.pg"),
    )
    shown = repr(source) + str(source) + f"{source}"
    assert "desk-1" in shown and "postgresql://bastion@db:5432/desk" in shown
    assert "hunter2-pg-password" not in shown
    assert bytes(range(32)).hex() not in shown and repr(bytes(range(32))) not in shown
