"""`bastion incident bundle` as an operator runs it against a real paper node: every part
is in the archive; on a desk encrypted from its vault no secret is in any member; bad
arguments get one clear error and leave no file."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from bastion.vault.keysource import KEY_FILE_ENV
from kit.leaks import Witness
from kit.net import free_tcp_port
from kit.node_process import (
    START_TIMEOUT_S,
    RunBastion,
    run_to_end,
    running_node,
    status,
    still_running,
)
from kit.strategies import HOARDER
from kit.vaults import DESK_KEYS, PASSPHRASE, desk_vault, key_file
from kit.waiting import eventually

CONFIG = """
[node]
id = "inc-1"

[[instruments]]
id = "XYZ.SIM"
tick_size = "0.01"

[[strategies]]
name = "hoarder"
path = "strategies/hoarder.py"
class = "Hoarder"
[strategies.params]
instrument = "XYZ.SIM"
market_every = 10

[risk]
max_order_quantity = "100"

[venue]
latency_ms = 1

[feed]
instrument = "XYZ.SIM"
interval_ms = 20

[journal]
path = "journal.sqlite"
{keys}

[monitoring]
listen = "127.0.0.1:{port}"
"""

ENCRYPTED = """\
encryption_key = "secret:journal/encryption"
chain_key = "secret:journal/chain"
# the old webhook was {webhook}"""

WEBHOOK = "https://hooks.slack.com/services/T0000/B0000/abcdefghijklmnopqrstuvwx"
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
# the node serves /metrics once the exposition is in (bastion.monitor.node)
NODE_SERVES_METRICS = importlib.util.find_spec("bastion.monitor.node") is not None


def write_desk(root: Path, keys: str = "") -> tuple[Path, Path]:
    """A paper node's config (with [monitoring] on a free port) and its strategy."""
    (root / "strategies").mkdir(parents=True, exist_ok=True)
    (root / "strategies" / "hoarder.py").write_text(HOARDER, encoding="utf-8")
    config = root / "node.toml"
    config.write_text(CONFIG.format(keys=keys, port=free_tcp_port()), encoding="utf-8")
    return config, root / "journal.sqlite"


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        found = {}
        for info in tar.getmembers():
            extracted = tar.extractfile(info)
            assert extracted is not None, info.name
            found[info.name.split("/", 1)[1]] = extracted.read()
    return found


def trading(proc: subprocess.Popen[bytes], log: Path, journal: Path) -> bool:
    still_running(proc, log)
    answer = status(journal)
    assert answer["open_orders"] >= 1, "no order working yet"
    assert answer["positions"].get("XYZ.SIM", "0") != "0", "no fill yet"
    return True


@pytest.mark.timeout(120)
def test_when_a_node_runs_then_its_bundle_holds_each_part(
    tmp_path: Path, run_bastion: RunBastion
) -> None:
    """Status from the running node, its last events, stats, metrics (or why not), the
    log's tail, the run manifest, the config; a 0600 file, and the command says so."""
    config, journal = write_desk(tmp_path)
    with running_node("run", config, cwd=tmp_path) as (proc, log):
        eventually(lambda: trading(proc, log, journal), START_TIMEOUT_S)
        done = run_bastion(
            *("incident", "bundle", config, "--out", "inc.tar.gz"),
            *("--events", "5", "--log", log, "--log-lines", "5"),
        )
    assert done.returncode == 0, done.stderr
    out = tmp_path / "inc.tar.gz"
    assert out.stat().st_mode & 0o777 == 0o600
    assert done.stdout.startswith("wrote inc.tar.gz (")
    got = members(out)
    assert set(got) == PARTS
    assert json.loads(got["status.json"])["state"] == "ACTIVE"
    events = [json.loads(line) for line in got["journal-events.jsonl"].splitlines()]
    assert (
        len(events) == 5 and events[-1]["seq"] <= json.loads(got["journal-stats.json"])["last_seq"]
    )
    assert [e["seq"] for e in events] == list(range(events[0]["seq"], events[0]["seq"] + 5))
    manifest = json.loads(got["manifest.json"])
    assert manifest["latest"]["node_id"] == "inc-1" and manifest["latest"]["epoch"] == 1
    assert 0 < len(got["log-tail.txt"].splitlines()) <= 5
    assert got["config.toml"] == config.read_bytes()  # nothing in it to mask
    index = json.loads(got["bundle.json"])
    assert index["node"] == "inc-1" and index["secrets_masked"] == {}
    if NODE_SERVES_METRICS:
        assert b"bastion_node_ready" in got["metrics.txt"]
        assert index["parts"]["metrics.txt"]["available"] is True
    else:  # the listener is not in this build: the bundle says what it tried
        assert got["metrics.txt"].startswith(b"unavailable: GET http://127.0.0.1:")


@pytest.mark.timeout(120)
def test_when_no_node_runs_then_the_bundle_says_so(tmp_path: Path) -> None:
    """After the node stopped: the journal's parts, and a status saying no node runs."""
    config, _ = write_desk(tmp_path)
    ran = run_to_end("run", config, "--duration-s", "1", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    done = run_to_end("incident", "bundle", config, "--out", "inc.tar.gz", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    got = members(tmp_path / "inc.tar.gz")
    assert json.loads(got["status.json"])["running"] is False
    assert got["metrics.txt"].startswith(b"unavailable: no node is running")
    assert got["journal-events.jsonl"].count(b"\n") > 10
    assert re.search(r"status\.json +unavailable: no node is listening", done.stdout)


@pytest.mark.timeout(120)
def test_when_desk_is_encrypted_from_its_vault_then_no_secret_is_in_any_member(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_bastion: RunBastion
) -> None:
    """An encrypted, keyed journal read with the vault's keys; a secret of the vault that
    leaked into the log and the config's comments is masked: no member holds any vault
    value or the passphrase, in any encoding, and the references stay references."""
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file(tmp_path)))  # the children inherit it
    desk_vault(tmp_path / "vault.bastion", notify__slack=WEBHOOK)
    config, journal = write_desk(tmp_path, ENCRYPTED.format(webhook=WEBHOOK))
    leaked_log = tmp_path / "supervisor.log"
    with running_node("run", config, cwd=tmp_path) as (proc, log):
        eventually(lambda: trading(proc, log, journal), START_TIMEOUT_S)
        leaked_log.write_bytes(
            log.read_bytes() + f"a careless line: webhook={WEBHOOK} pw={PASSPHRASE}\n".encode()
        )
        done = run_bastion("incident", "bundle", config, "--out", "inc.tar.gz", "--log", leaked_log)
    assert done.returncode == 0, done.stderr
    got = members(tmp_path / "inc.tar.gz")
    assert [json.loads(line)["seq"] for line in got["journal-events.jsonl"].splitlines()]
    assert b'encryption_key = "secret:journal/encryption"' in got["config.toml"]
    witness = Witness()
    for name, data in got.items():
        witness.add(f"member {name}", data)
    witness.add("archive", (tmp_path / "inc.tar.gz").read_bytes())
    witness.add("stdout", done.stdout)
    witness.add("stderr", done.stderr)
    secrets = {name: key.hex() for name, key in DESK_KEYS.items()}
    secrets |= {"notify/slack": WEBHOOK, "vault passphrase": PASSPHRASE}
    assert witness.leaks(secrets) == []
    masked = json.loads(got["bundle.json"])["secrets_masked"]
    assert masked["log-tail.txt"] == 2 and masked["config.toml"] == 1


def test_when_config_is_missing_then_exit_2_and_no_file(
    tmp_path: Path, run_bastion: RunBastion
) -> None:
    """A config that is not there: one error line naming it, exit 2, nothing written."""
    done = run_bastion("incident", "bundle", "nope.toml", "--out", "inc.tar.gz")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: nope.toml: config file not found"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("journal", "message"),
    [
        (None, "journal.sqlite: journal file not found"),
        (b"SQLite format 3\x00 but torn", "journal.sqlite: "),
    ],
)
def test_when_journal_cannot_be_read_then_exit_2_and_no_file(
    tmp_path: Path, run_bastion: RunBastion, journal: bytes | None, message: str
) -> None:
    """A journal that is missing or not one: exit 2 naming it, no archive (nor a
    temporary file) left beside --out."""
    config, path = write_desk(tmp_path)
    if journal is not None:
        path.write_bytes(journal)
    before = set(tmp_path.iterdir())
    done = run_bastion("incident", "bundle", config, "--out", tmp_path / "inc.tar.gz")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert set(tmp_path.iterdir()) == before


def test_when_arguments_are_bad_then_exit_2_naming_them(
    tmp_path: Path, run_bastion: RunBastion
) -> None:
    """--events 0, an --out that exists, a --log that does not: refused, nothing changed."""
    config, _ = write_desk(tmp_path)
    assert run_bastion("incident", "bundle", config, "--events", "0").returncode == 2
    (tmp_path / "old.tar.gz").write_bytes(b"earlier")
    exists = run_bastion("incident", "bundle", config, "--out", "old.tar.gz")
    assert exists.returncode == 2 and "never overwritten" in exists.stderr
    assert (tmp_path / "old.tar.gz").read_bytes() == b"earlier"
    no_log = run_bastion("incident", "bundle", config, "--log", "gone.log")
    assert no_log.returncode == 2 and "gone.log: no such file" in no_log.stderr
    assert not list(tmp_path.glob("incident-*"))
