"""Backups a node runs itself and the alerts about backups and drills: a paper node with
``[backup] ship_interval_s`` ships its journal from a child process while it trades;
when the destination breaks, the failures are counted in its metrics and the
backup-failed alert reaches a real HTTP receiver through the config's route, and
trading goes on. A drill run while the node runs is journaled on it
(``DrDrillCompleted``) and, too slow, its dr-drill-failed alert comes from the node;
with the node stopped, the drill says so, its report says it was not journaled on it, and
the command sends the alert itself, as does a ``bastion backup create`` that fails. Both
drills are in the drills' own journal on the host that ran them, which verifies."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from bastion.backup.encryption import new_identity
from bastion.model import events as ev
from bastion.vault.keysource import KEY_FILE_ENV
from kit.hoarder_node import hoarder_node_toml
from kit.journal_reading import peek_journal
from kit.net import free_tcp_port
from kit.node_process import (
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    bastion_cmd,
    child_env,
    running_node,
    still_running,
)
from kit.receivers import Arrival, HttpReceiver, http_receiver
from kit.scrape import Series, metrics, value
from kit.strategies import HOARDER
from kit.vaults import key_file, new_vault
from kit.waiting import eventually

NODE_TOML = hoarder_node_toml(
    "bk-1",
    """
[journal]
path = "state/bk-1.sqlite"

[backup]
recipients = ["{recipient}"]
ship_interval_s = 0.5

[backup.destination]
kind = "dir"
path = "{backups}"

[monitoring]
listen = "127.0.0.1:{port}"

[[alert_routes]]
name = "ops"
urls = ["secret:notify/ops"]
backoff_initial_ms = 50
backoff_max_ms = 200
""",
)


def _desk(tmp_path: Path, receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "desk"
    (root / "strategies").mkdir(parents=True)
    (root / "strategies" / "hoarder.py").write_text(HOARDER, encoding="utf-8")
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file(tmp_path)))
    new_vault(root / "vault.bastion", notify__ops=receiver.url())
    recipient = new_identity(tmp_path / "backup.key")
    (root / "node.toml").write_text(
        NODE_TOML.format(recipient=recipient, backups=tmp_path / "backups", port=free_tcp_port()),
        encoding="utf-8",
    )
    return root


def _bastion(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        bastion_cmd(*args),
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _segments(store: Path) -> list[str]:
    return sorted(p.name for p in store.glob("seg-*.json")) if store.is_dir() else []


def _fills(journal: Path) -> int:
    return sum(isinstance(e, ev.OrderFilled) for _, e in peek_journal(journal))


@pytest.mark.timeout(240)
def test_when_the_node_ships_and_the_destination_breaks_then_backup_failed_arrives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with http_receiver() as receiver:
        root = _desk(tmp_path, receiver, monkeypatch)
        store = tmp_path / "backups" / "bk-1"
        journal = root / "state" / "bk-1.sqlite"
        with running_node("run", "node.toml", cwd=root) as (proc, log):
            eventually(
                lambda: still_running(proc, log) and len(_segments(store)) >= 2,
                timeout_s=START_TIMEOUT_S + 10,
            )
            (shipper,) = [
                child
                for child in _children(proc.pid)
                if b"--report-rounds" in Path(f"/proc/{child}/cmdline").read_bytes()
            ]  # one shipping process (the strategies' are the node's other children)
            base = f"http://{_listen(root)}"
            scraped = eventually(lambda: _shipped(base), timeout_s=10)
            assert value(scraped, "bastion_backup_failures_total", command="ship") == 0
            shutil.move(store, tmp_path / "moved-away")
            store.write_text("not a directory\n", encoding="utf-8")  # every put now fails
            fills_then = _fills(journal)
            arrival = eventually(lambda: _one(receiver, "backup-failed", "firing"), timeout_s=20)
            assert "backup ship failed" in arrival.title + arrival.body
            assert arrival.alert_id.startswith("1.")  # the node's engine, not the child's
            failures = value(metrics(base), "bastion_backup_failures_total", command="ship")
            assert failures is not None and failures >= 1
            eventually(lambda: _fills(journal) > fills_then, timeout_s=10)  # trading goes on
            assert still_running(proc, log)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=STOP_TIMEOUT_S) == 0, log.read_text()
        assert "backup_failed" in log.read_text()
        assert not Path(f"/proc/{shipper}").exists()  # stopped with the node


@pytest.mark.timeout(300)
def test_when_a_drill_runs_then_it_is_journaled_on_the_node_or_alerted_by_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with http_receiver() as receiver:
        root = _desk(tmp_path, receiver, monkeypatch)
        config = root / "node.toml"
        journal = root / "state" / "bk-1.sqlite"
        drill = (
            "dr", "drill", config, "--identity", tmp_path / "backup.key",
            "--rto-target-s", "0.001",
        )  # fmt: skip
        with running_node("run", "node.toml", cwd=root) as (proc, log):
            eventually(lambda: still_running(proc, log) and _fills(journal) > 0, timeout_s=30)
            created = _bastion("backup", "create", config, cwd=root)
            assert created.returncode == 0, created.stdout + created.stderr
            report = tmp_path / "drill-1.json"
            slow = _bastion(*drill, "--scratch", tmp_path / "s1", "--report", report, cwd=root)
            assert slow.returncode == 1, slow.stdout + slow.stderr
            assert "journaled:      on the running node" in slow.stdout
            assert json.loads(report.read_text())["journaled"] is True
            from_node = eventually(
                lambda: _one(receiver, "dr-drill-failed", "firing"), timeout_s=10
            )
            assert from_node.alert_id.startswith("1.")  # the node's engine (run epoch 1)
            recorded = eventually(lambda: _drills(journal), timeout_s=5)
            assert recorded[-1].ok is False and recorded[-1].rto_target_s == 0.001
            assert recorded[-1].report == str(report.resolve())
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=STOP_TIMEOUT_S) == 0, log.read_text()

        report = tmp_path / "drill-2.json"
        alone = _bastion(*drill, "--scratch", tmp_path / "s2", "--report", report, cwd=root)
        assert alone.returncode == 1, alone.stdout + alone.stderr
        assert "not on the node (it is not running here)" in alone.stdout
        assert json.loads(report.read_text())["journaled"] is False
        # both drills are in the drills' own journal on this host, chained, the node up or not
        drills_journal = root / "dr-drills.sqlite"
        assert json.loads(report.read_text())["drill_journal"] == f"{drills_journal}#2"
        assert [d.report for d in _drills(drills_journal)] == [
            str((tmp_path / "drill-1.json").resolve()),
            str(report.resolve()),
        ]
        verified = _bastion("journal", "verify", drills_journal, cwd=root)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        eventually(lambda: len(receiver.about("dr-drill-failed", "firing")) == 2, timeout_s=15)
        (from_command,) = [
            a for a in receiver.about("dr-drill-failed", "firing") if a.alert_id.startswith("cmd.")
        ]
        assert "RTO" in from_command.title + from_command.body
        assert len(_drills(journal)) == 1  # nothing journaled without the node

        store = tmp_path / "backups" / "bk-1"
        shutil.rmtree(store)
        store.write_text("not a directory\n", encoding="utf-8")
        failed = _bastion("backup", "create", config, cwd=root)
        assert failed.returncode == 1
        assert "backup_failed" in failed.stderr
        eventually(lambda: _one(receiver, "backup-failed", "firing"), timeout_s=15)


def _listen(root: Path) -> str:
    text = (root / "node.toml").read_text(encoding="utf-8")
    return text.split('listen = "', 1)[1].split('"', 1)[0]


def _shipped(base: str) -> dict[Series, float]:
    scraped = metrics(base)
    segments = value(scraped, "bastion_backup_segments_total")
    assert segments is not None and segments >= 1, "no segment counted yet"
    shipped = value(scraped, "bastion_backup_shipped_seq")
    assert shipped is not None and shipped > 0
    return scraped


def _one(receiver: HttpReceiver, alert: str, status: str) -> Arrival:
    arrivals = receiver.about(alert, status)
    assert len(arrivals) == 1, f"{alert} {status}: {len(arrivals)} arrived"
    return arrivals[0]


def _drills(journal: Path) -> list[ev.DrDrillCompleted]:
    found = [e for _, e in peek_journal(journal) if isinstance(e, ev.DrDrillCompleted)]
    assert found, "no DrDrillCompleted yet"
    return found


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        if stat and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found
