"""The incident bundle of a node journaling to PostgreSQL: the journal's parts hold what
they hold for the same events in a SQLite journal; a running PostgreSQL node's bundle
holds each part, and no member holds the database's password or the journal's keys."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from bastion.incident import BundleSource, NodeNotRunning, make_bundle
from bastion.journal.locator import JournalLocator
from bastion.model.events import RunManifest
from bastion.vault.keysource import KEY_FILE_ENV
from kit.hoarder_node import hoarder_node_toml
from kit.journal_samples import T0, fills
from kit.leaks import Witness
from kit.net import free_tcp_port
from kit.node_process import START_TIMEOUT_S, RunBastion, running_node, status, still_running
from kit.pg_journal import SEALED_KEYS, split_password, twin_journals
from kit.strategies import HOARDER
from kit.vaults import PASSPHRASE, key_file, new_vault
from kit.waiting import eventually

KEYS = SEALED_KEYS
NOW_NS = 1_767_225_600_000_000_000
PARTS = {
    "bundle.json",
    "status.json",
    "journal-events.jsonl",
    "journal-stats.json",
    "metrics.txt",
    "readyz.json",
    "log-tail.txt",
    "manifest.json",
    "config.toml",
}


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        found = {}
        for info in tar.getmembers():
            extracted = tar.extractfile(info)
            assert extracted is not None, info.name
            found[info.name.split("/", 1)[1]] = extracted.read()
    return found


def started(epoch: int, strategy_sha: str) -> RunManifest:
    return RunManifest(
        ts_ns=T0 + epoch, node_id="node-1", epoch=epoch, mode="paper", version="1.0",
        python="3.11", host="h", who="ops", config_path="node.toml",
        config_sha256="00" * 32, files={"strategies/s.py": strategy_sha}, git_commit=None,
        git_dirty=None, untracked=[],
    )  # fmt: skip


def not_running(path: Path) -> dict[str, Any]:
    raise NodeNotRunning(f"no node is listening on {path}")


def bundle(root: Path, journal: JournalLocator, name: str) -> dict[str, bytes]:
    source = BundleSource(
        config_path=root / "node.toml",
        config_text='[node]\nid = "node-1"\n',
        node_id="node-1",
        journal=journal,
        control_socket=root / f"{name}.sock",
        monitoring=None,
    )
    out = root / f"{name}.tar.gz"
    make_bundle(source, out, now_ns=NOW_NS, who="ops", events=7, node_status=not_running)
    return members(out)


def test_when_the_same_events_are_in_both_then_the_journal_parts_are_the_same(
    tmp_path: Path, pg_dsn: str
) -> None:
    """Two starts (the strategy changed between them) and their fills: the last events,
    the manifest part and the stats (but where and how big) are SQLite's."""
    events = [started(1, "aa" * 32), *fills(10), started(2, "bb" * 32), *fills(10, T0 + 100)]
    sqlite, postgres = twin_journals(tmp_path, pg_dsn, events, keys=KEYS)
    lite, pg = bundle(tmp_path, sqlite, "sqlite"), bundle(tmp_path, postgres, "pg")
    assert pg["journal-events.jsonl"] == lite["journal-events.jsonl"]
    assert [json.loads(line)["seq"] for line in pg["journal-events.jsonl"].splitlines()] == list(
        range(16, 23)
    )
    assert pg["manifest.json"] == lite["manifest.json"]
    manifest = json.loads(pg["manifest.json"])
    assert manifest["starts"] == 2 and manifest["latest"]["epoch"] == 2
    assert manifest["changes_since_previous"] == [
        f"file strategies/s.py: {'aa' * 32} -> {'bb' * 32}"
    ]
    where = {"path", "file_bytes", "schema_version"}
    lite_stats = json.loads(lite["journal-stats.json"])
    pg_stats = json.loads(pg["journal-stats.json"])
    assert {k: v for k, v in pg_stats.items() if k not in where} == {
        k: v for k, v in lite_stats.items() if k not in where
    }
    assert pg_stats["path"].startswith("postgresql journal 'node-1' (")
    assert json.loads(pg["bundle.json"])["journal"] == "postgresql journal 'node-1'"


NODE_TOML = hoarder_node_toml(
    "pg-inc",
    """
[journal]
backend = "postgres"
url = "{url}"
password = "secret:journal/password"
path = "j/pg-inc.pg"
encryption_key = "secret:journal/encryption"
chain_key = "secret:journal/chain"

[monitoring]
listen = "127.0.0.1:{port}"
""",
)


@pytest.mark.timeout(120)
def test_when_a_postgres_node_runs_then_its_bundle_holds_each_part(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch, run_bastion: RunBastion
) -> None:
    """Status from the node (its socket beside the journal's local path), its last
    events from PostgreSQL, stats, the run manifest, the log's tail; no member, nor the
    output, holds the password, the keys or the passphrase."""
    url, password = split_password(pg_dsn)
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file(tmp_path)))  # the children inherit it
    assert KEYS.encryption is not None and KEYS.chain is not None
    new_vault(
        tmp_path / "vault.bastion",
        journal__password=password,
        journal__encryption=KEYS.encryption.hex(),
        journal__chain=KEYS.chain.hex(),
    )
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "hoarder.py").write_text(HOARDER, encoding="utf-8")
    config = tmp_path / "node.toml"
    config.write_text(NODE_TOML.format(url=url, port=free_tcp_port()), encoding="utf-8")
    local = tmp_path / "j" / "pg-inc.pg"

    def trading() -> bool:
        assert status(local)["positions"].get("XYZ.SIM", "0") != "0", "no fill yet"
        return True

    with running_node("run", config, cwd=tmp_path) as (proc, log):
        eventually(lambda: still_running(proc, log) and trading(), START_TIMEOUT_S)
        done = run_bastion(
            *("incident", "bundle", config, "--out", "inc.tar.gz"),
            *("--events", "5", "--log", log, "--log-lines", "5"),
        )
    assert done.returncode == 0, done.stderr
    got = members(tmp_path / "inc.tar.gz")
    assert set(got) == PARTS
    assert json.loads(got["status.json"])["state"] == "ACTIVE"
    events = [json.loads(line) for line in got["journal-events.jsonl"].splitlines()]
    assert [e["seq"] for e in events] == list(range(events[0]["seq"], events[0]["seq"] + 5))
    stats = json.loads(got["journal-stats.json"])
    assert stats["path"].startswith("postgresql journal 'pg-inc'") and stats["runs"] == 1
    manifest = json.loads(got["manifest.json"])
    assert manifest["latest"]["node_id"] == "pg-inc" and manifest["latest"]["epoch"] == 1
    index = json.loads(got["bundle.json"])
    assert index["journal"] == "postgresql journal 'pg-inc'"
    assert all(part["available"] for part in index["parts"].values()), index["parts"]
    witness = Witness()
    for name, data in got.items():
        witness.add(f"member {name}", data)
    witness.add("archive", (tmp_path / "inc.tar.gz").read_bytes())
    witness.add("stdout", done.stdout)
    witness.add("stderr", done.stderr)
    secrets = {
        "database password": password,
        "journal/encryption": KEYS.encryption.hex(),
        "journal/chain": KEYS.chain.hex(),
        "vault passphrase": PASSPHRASE,
    }
    assert witness.leaks(secrets) == []
