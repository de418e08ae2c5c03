"""A node with ``[journal] backend = "postgres"``: it trades, journals to PostgreSQL,
answers on its control socket, and after a SIGKILL restarts from what was committed,
continuing the chain under a new run epoch."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from bastion.journal.keys import JournalKeys
from bastion.journal.pg_reader import PostgresJournalReader
from bastion.journal.reader import NotAJournalError
from bastion.model import events as ev
from bastion.vault.keysource import KEY_FILE_ENV
from kit.hoarder_node import hoarder_node_toml
from kit.node_process import START_TIMEOUT_S, STOP_TIMEOUT_S, running_node, status, still_running
from kit.pg_journal import split_password
from kit.strategies import HOARDER
from kit.vaults import key_file, new_vault
from kit.waiting import eventually

NODE_TOML = hoarder_node_toml(
    "pg-1",
    """
[journal]
backend = "postgres"
url = "{url}"
password = "secret:journal/password"
path = "j/pg-1.pg"
chain_key = "secret:journal/chain"
""",
)


def _events(url: str, password: str) -> list[tuple[int, Any]]:
    try:
        with PostgresJournalReader(url, name="pg-1", password=password) as reader:
            return reader.events_after(0, limit=1_000_000)
    except NotAJournalError:  # the node has not created its tables yet
        return []


@pytest.mark.timeout(120)
def test_when_node_journals_to_postgres_then_it_recovers_after_sigkill(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, password = split_password(pg_dsn)
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file(tmp_path)))
    new_vault(
        tmp_path / "vault.bastion", journal__password=password, journal__chain=bytes(32).hex()
    )
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "hoarder.py").write_text(HOARDER, encoding="utf-8")
    (tmp_path / "node.toml").write_text(NODE_TOML.format(url=url), encoding="utf-8")
    local = tmp_path / "j" / "pg-1.pg"

    def filled_after(seq: int) -> int:
        events = _events(url, password)
        assert events, "no events yet"
        assert any(isinstance(e, ev.OrderFilled) for s, e in events if s > seq), "no fill yet"
        return events[-1][0]

    with running_node("run", "node.toml", cwd=tmp_path) as (proc, log):
        eventually(lambda: still_running(proc, log) and filled_after(0), timeout_s=START_TIMEOUT_S)
        assert eventually(lambda: status(local), timeout_s=5)["ok"] is True
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT_S)
    last_run_1 = _events(url, password)[-1][0]
    with running_node("run", "node.toml", cwd=tmp_path) as (proc, log):
        eventually(
            lambda: still_running(proc, log) and filled_after(last_run_1),
            timeout_s=START_TIMEOUT_S,
        )
        manifests = [e for _, e in _events(url, password) if isinstance(e, ev.RunManifest)]
        assert [m.epoch for m in manifests] == [1, 2]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_TIMEOUT_S) == 0, log.read_text()
    assert password not in log.read_text()
    with PostgresJournalReader(
        url, name="pg-1", password=password, keys=JournalKeys(chain=bytes(32))
    ) as reader:
        result = reader.verify(anchors=local.with_name(local.name + ".anchors"))
    assert result.ok, result
    assert result.keyed and result.anchors >= 1
