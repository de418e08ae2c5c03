"""``bastion backup`` against a real S3-compatible store (SeaweedFS on loopback): create,
ship, list, verify with and without the key, prune, restore; refused when damaged,
partial, or opened with the wrong key; no secret readable in any stored object."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import obstore
import pytest
from obstore.store import S3Store

from bastion.backup.encryption import new_identity
from kit.backup_desk import CANARY, BackupDesk, make_desk, s3_destination, secret_forms
from kit.backup_trading import bastion as run
from kit.journal_samples import fills
from kit.s3_server import S3Server


def store(s3: S3Server, bucket: str) -> S3Store:
    """The test's prefix of the bucket, as an obstore store."""
    name, prefix = bucket.split("/")
    return s3.store(name, prefix)


BUCKET = "desk-backups"  # one bucket: SeaweedFS gives each its own volumes


@pytest.fixture
def bucket() -> str:
    """This test's own prefix in the bucket: ``BUCKET/PREFIX``."""
    return f"{BUCKET}/t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def desk(tmp_path: Path, s3: S3Server, bucket: str) -> BackupDesk:
    name, prefix = bucket.split("/")
    return make_desk(tmp_path / "desk", s3_destination(name, s3.endpoint, prefix), events=40)


def restore_args(s3: S3Server, bucket: str, desk: BackupDesk, to: Path) -> list[str | Path]:
    return [
        "backup",
        "restore",
        "latest",
        "--from",
        f"s3://{bucket}/desk-1",
        "--endpoint",
        s3.endpoint,
        "--allow-http",
        "--to",
        to,
        "--identity",
        desk.identity,
    ]


def test_when_backed_up_and_shipped_to_s3_then_a_restore_elsewhere_has_every_event(
    desk: BackupDesk, s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    """create, ship, verify, restore through the CLI: the restored journal ends where the
    source does and `bastion journal verify` passes on it."""
    done = run("backup", "create", desk.config, cwd=desk.root)
    assert done.returncode == 0, done.stderr
    desk.append(fills(7, ts_ns=9))
    done = run("backup", "ship", desk.config, "--once", cwd=desk.root)
    assert done.returncode == 0, done.stderr
    assert "shipped 1 segment" in done.stdout
    listed = run("backup", "list", desk.config, cwd=desk.root)
    assert [line.split()[1] for line in listed.stdout.splitlines()] == ["full", "segment"]
    checked = run("backup", "verify", desk.config, cwd=desk.root)
    assert checked.returncode == 0 and checked.stdout.count("integrity (no key)") == 2
    checked = run(
        "backup", "verify", desk.config, "latest", "--identity", desk.identity, cwd=desk.root
    )
    assert checked.returncode == 0, checked.stderr
    target = tmp_path / "rebuilt"
    done = run(*restore_args(s3, bucket, desk, target), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["last_seq"], report["segments"]) == (47, 1)
    verified = run("journal", "verify", target / "state" / "journal.sqlite", cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout
    assert "47 events" in verified.stdout
    # nothing in the bucket says the canary, in any form
    for entry in obstore.list(store(s3, bucket)).collect():
        data = bytes(obstore.get(store(s3, bucket), entry["path"]).bytes())
        for form in secret_forms(CANARY):
            assert form not in data, entry["path"]


def test_when_the_stored_blob_is_damaged_or_the_key_wrong_then_restore_fails_and_leaves_nothing(
    desk: BackupDesk, s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    """A wrong identity exits 2; a flipped byte, a truncated blob exit 1 naming the cause;
    each leaves no directory behind, and logs backup_failed."""
    assert run("backup", "create", desk.config, cwd=desk.root).returncode == 0
    target = tmp_path / "rebuilt"
    wrong = tmp_path / "keys" / "wrong.key"
    wrong.parent.mkdir(mode=0o700)
    new_identity(wrong)
    args = restore_args(s3, bucket, desk, target)
    done = run(*args[:-1], wrong, cwd=tmp_path)
    assert done.returncode == 2 and "not one the backup was encrypted to" in done.stderr
    assert "backup_failed" in done.stderr
    assert not target.exists()
    objects = store(s3, bucket)
    (blob,) = [e["path"] for e in obstore.list(objects).collect() if e["path"].endswith(".age")]
    data = bytearray(bytes(obstore.get(objects, blob).bytes()))
    data[len(data) // 2] ^= 1
    obstore.put(objects, blob, bytes(data))
    done = run(*args, cwd=tmp_path)
    assert done.returncode == 1 and "SHA-256 does not match" in done.stderr
    obstore.put(objects, blob, bytes(data[: len(data) // 2]))
    done = run(*args, cwd=tmp_path)
    assert done.returncode == 1 and "truncated or replaced" in done.stderr
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bastion-restore")] == []


def test_when_a_multipart_upload_never_completed_then_the_backup_does_not_exist(
    desk: BackupDesk, s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    """An upload cut off mid-way (multipart not completed) and a blob without its record
    are not backups: latest is the last whole one, and naming the partial one fails."""
    assert run("backup", "create", desk.config, cwd=desk.root).returncode == 0
    objects = store(s3, bucket)
    writer = obstore.open_writer(objects, "desk-1/full-20990101T000000000Z-000000000999.age")
    writer.write(b"x" * (6 * 1024 * 1024))
    writer.flush()  # parts uploaded, never completed
    obstore.put(objects, "desk-1/full-20990102T000000000Z-000000000999.age", b"half")
    target = tmp_path / "rebuilt"
    done = run(*restore_args(s3, bucket, desk, target), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["last_seq"] == 40
    args = restore_args(s3, bucket, desk, tmp_path / "other")
    args[2] = "full-20990102T000000000Z-000000000999"
    done = run(*args, cwd=tmp_path)
    assert done.returncode == 1 and "incomplete" in done.stderr
