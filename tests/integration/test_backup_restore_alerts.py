"""A failed ``bastion backup restore`` raises backup-failed through the desk config's
routes, delivered to real receivers (an HTTP webhook and an SMTP server): with
``--config`` (the config copy at the DR site) or ``--from`` a config; the alert names
the command and the error and holds no secret. Without a config the failure is logged
and exits non-zero, and nothing is sent."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bastion.backup.encryption import new_identity
from kit.backup_desk import (
    CANARY,
    SIGNING_SEEDS,
    BackupDesk,
    dir_destination,
    flip_byte,
    make_desk,
    secret_forms,
)
from kit.node_process import bastion_cmd
from kit.receivers import Arrival, HttpReceiver, SmtpReceiver, http_receiver, smtp_receiver
from kit.vaults import PASSPHRASE, vault_env
from kit.waiting import eventually

ROUTES = """
[monitoring]
listen = "127.0.0.1:0"

[[alert_routes]]
name = "ops"
urls = ["secret:notify/ops"]
backoff_initial_ms = 50
backoff_max_ms = 200

[[alert_routes]]
name = "mail"
urls = ["secret:notify/mail"]
min_interval_s = 0
backoff_initial_ms = 50
backoff_max_ms = 200
"""


def _desk(tmp_path: Path, web: HttpReceiver, mail: SmtpReceiver) -> BackupDesk:
    return make_desk(
        tmp_path / "desk",
        dir_destination(tmp_path / "offsite"),
        signing=SIGNING_SEEDS["desk"],
        extra=ROUTES,
        vault_values={"notify__ops": web.url(token="tok-3b9f"), "notify__mail": mail.url()},
    )


def _bastion(desk: BackupDesk, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        bastion_cmd(*args),
        cwd=desk.root.parent,
        env=vault_env(desk.vault_key),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _restore(desk: BackupDesk, to: Path, *extra: str | Path) -> list[str | Path]:
    return ["backup", "restore", "latest", "--to", to, *extra]


def _firing(receiver: HttpReceiver | SmtpReceiver, count: int) -> list[Arrival]:
    arrivals = receiver.about("backup-failed", "firing")
    assert len(arrivals) == count, f"{len(arrivals)} backup-failed arrived, {count} expected"
    return arrivals


def _no_secret(desk: BackupDesk, arrival: Arrival, *more: str) -> None:
    text = arrival.title + arrival.body + str(arrival.extra)
    assert desk.signing_seed is not None
    for secret in (CANARY, PASSPHRASE, desk.signing_seed, "tok-3b9f", *more):
        for form in secret_forms(secret):
            assert form.decode() not in text, secret


@pytest.mark.timeout(180)
def test_when_a_restore_with_a_config_fails_then_backup_failed_arrives_naming_the_error(
    tmp_path: Path,
) -> None:
    """A wrong identity (--config) and a damaged blob (--from the config): each failed
    restore is alerted through both routes, naming restore and its error, no secret."""
    with http_receiver() as web, smtp_receiver() as mail:
        desk = _desk(tmp_path, web, mail)
        made = _bastion(desk, "backup", "create", desk.config)
        assert made.returncode == 0, made.stderr
        wrong = tmp_path / "other-keys" / "wrong.key"
        wrong.parent.mkdir(mode=0o700)
        new_identity(wrong)
        store = tmp_path / "offsite" / "desk-1"

        failed = _bastion(
            desk,
            *_restore(desk, tmp_path / "r1", "--from", store, "--identity", wrong),
            "--config",
            desk.config,
        )
        assert failed.returncode == 2, failed.stderr
        assert "backup_failed" in failed.stderr and not (tmp_path / "r1").exists()
        for receiver in (web, mail):
            (arrival,) = eventually(lambda r=receiver: _firing(r, 1), timeout_s=15)
            assert "backup restore failed" in arrival.body
            assert "command=restore" in arrival.body
            assert "not one the backup was encrypted to" in arrival.body
            assert arrival.alert_id.startswith("cmd.")
            _no_secret(desk, arrival)

        (blob,) = store.glob("full-*.age")
        flip_byte(blob, blob.stat().st_size // 2)
        damaged = _bastion(
            desk,
            *_restore(desk, tmp_path / "r2", "--from", desk.config, "--identity", desk.identity),
        )
        assert damaged.returncode == 1, damaged.stderr
        assert "SHA-256 does not match" in damaged.stderr
        for receiver in (web, mail):
            second = eventually(lambda r=receiver: _firing(r, 2), timeout_s=15)[1]
            assert "command=restore" in second.body
            assert "the blob's SHA-256 does not match its record" in second.body
            _no_secret(desk, second)


@pytest.mark.timeout(120)
def test_when_a_restore_without_a_config_fails_then_it_is_logged_and_nothing_is_sent(
    tmp_path: Path,
) -> None:
    """--from a directory, no --config: exit 1, backup_failed and the reason no alert
    went out are logged; the receivers get nothing."""
    with http_receiver() as web, smtp_receiver() as mail:
        desk = _desk(tmp_path, web, mail)
        assert _bastion(desk, "backup", "create", desk.config).returncode == 0
        store = tmp_path / "offsite" / "desk-1"
        (blob,) = store.glob("full-*.age")
        blob.write_bytes(blob.read_bytes()[:-100])
        done = _bastion(
            desk, *_restore(desk, tmp_path / "r", "--from", store, "--identity", desk.identity)
        )
        assert done.returncode == 1, done.stderr
        assert "backup_failed" in done.stderr and "truncated or replaced" in done.stderr
        assert "backup_alert_not_sent" in done.stderr
        assert web.arrivals == [] and mail.arrivals == []
