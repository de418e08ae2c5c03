"""Signed backup records through the CLI against a real S3-compatible store (SeaweedFS
on loopback): ``keygen --signing`` puts the key in the vault and prints the public key;
create and ship sign, list/verify/restore check; a backup an intruder stores with only
the public recipient key is refused by every verifier and restores nothing; the
signing key is in no object, output or restored file."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import obstore
import pytest
from obstore.store import S3Store

from kit.backup_desk import (
    CANARY,
    BackupDesk,
    make_desk,
    s3_destination,
    secret_forms,
    stored_files,
)
from kit.journal_samples import fills
from kit.node_process import bastion_cmd
from kit.s3_server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, S3Server
from kit.vaults import PASSPHRASE, vault_env

BUCKET = "desk-backups"
EVIL = "raise SystemExit('an intruder's strategy')\n"


@pytest.fixture
def prefix() -> str:
    return f"sig-{uuid.uuid4().hex[:8]}"


def desk_at(root: Path, s3: S3Server, prefix: str, **kw: object) -> BackupDesk:
    return make_desk(
        root,
        s3_destination(BUCKET, s3.endpoint, prefix),
        events=30,
        vault_values={"notify__none": "unused"},  # the vault's key file: keygen opens it
        **kw,  # type: ignore[arg-type]
    )


class Cli:
    """Runs ``bastion`` for a desk and keeps every output, to look for the key in."""

    def __init__(self, desk: BackupDesk) -> None:
        self.desk = desk
        self.outputs: list[str] = []

    def __call__(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        env = {
            **vault_env(self.desk.vault_key),
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        }
        done = subprocess.run(
            bastion_cmd(*args),
            cwd=self.desk.root.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        self.outputs += [done.stdout, done.stderr]
        return done


def objects(s3: S3Server, prefix: str) -> S3Store:
    return s3.store(BUCKET, prefix)


def enable_signing(cli: Cli) -> tuple[str, str]:
    """``keygen --signing`` into the desk's vault, its lines pasted into the config; the
    public key and the seed (read back from the vault, for the canary checks)."""
    from bastion.clock import LiveClock
    from bastion.vault.vault import Vault

    made = cli("backup", "keygen", "--signing", "--config", cli.desk.config)
    assert made.returncode == 0, made.stderr
    lines = [line for line in made.stdout.splitlines() if line.startswith("signing_")]
    assert lines[0] == 'signing_key = "secret:backup/signing"'
    public = re.fullmatch(r'signing_public_keys = \["(ed25519:[^"]+)"\]', lines[1])
    assert public is not None
    text = cli.desk.config.read_text()
    cli.desk.config.write_text(
        text.replace("[backup.destination]", "\n".join([*lines, "[backup.destination]"]))
    )
    vault = Vault.open(cli.desk.root / "vault.bastion", PASSPHRASE, clock=LiveClock())
    return public.group(1), vault.get("backup/signing").reveal()


def restore_args(s3: S3Server, prefix: str, desk: BackupDesk, to: Path) -> list[str | Path]:
    return [
        "backup", "restore", "latest", "--from", f"s3://{BUCKET}/{prefix}/desk-1",
        "--endpoint", s3.endpoint, "--allow-http", "--to", to, "--identity", desk.identity,
    ]  # fmt: skip


@pytest.mark.timeout(240)
def test_when_records_are_signed_then_verifiers_accept_them_and_refuse_an_intruders_backup(
    tmp_path: Path, s3: S3Server, prefix: str
) -> None:
    """keygen, create, ship, list, verify, restore signed; an intruder's backup refused
    by restore, verify, list and prune (nothing deleted); the key in no byte or output."""
    desk = desk_at(tmp_path / "desk", s3, prefix)
    cli = Cli(desk)
    public, seed = enable_signing(cli)
    assert re.fullmatch(r"[0-9a-f]{64}", seed)
    created = cli("backup", "create", desk.config)
    assert created.returncode == 0, created.stderr
    own = re.search(r"backup (full-\S+):", created.stdout)
    assert own is not None
    desk.append(fills(4, ts_ns=7))
    shipped = cli("backup", "ship", desk.config, "--once")
    assert shipped.returncode == 0 and "shipped 1 segment" in shipped.stdout, shipped.stderr
    listed = cli("backup", "list", desk.config)
    assert listed.returncode == 0 and listed.stdout.count("  signed") == 2, listed.stdout
    checked = cli("backup", "verify", desk.config)
    assert checked.stdout.count("signed by a trusted key") == 2 and "unsigned" not in checked.stdout
    done = cli(*restore_args(s3, prefix, desk, tmp_path / "r1"), "--signer", public)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["last_seq"] == 34
    done = cli(*restore_args(s3, prefix, desk, tmp_path / "r2"), "--config", desk.config)
    assert done.returncode == 0, done.stderr

    # an intruder with write access and the public recipient key stores a newer backup
    intruder = desk_at(
        tmp_path / "intruder", s3, prefix, recipient=desk.recipient, keys_dir=tmp_path / "ik"
    )
    (intruder.root / "strategies" / "idle.py").write_text(EVIL)
    planted = Cli(intruder)("backup", "create", intruder.config, "--no-prune")
    assert planted.returncode == 0, planted.stderr
    forged = re.search(r"backup (full-\S+):", planted.stdout)
    assert forged is not None
    forged_id = forged.group(1)
    unsigned = Cli(intruder)("backup", "verify", intruder.config)
    assert re.search(r"^unsigned: 1 of 3 record\(s\) carry no signature", unsigned.stdout, re.M)

    before = sorted(o["path"] for o in obstore.list(objects(s3, prefix)).collect())
    target = tmp_path / "r3"
    refused = cli(*restore_args(s3, prefix, desk, target), "--signer", public)
    assert refused.returncode == 1
    assert f"backup {forged_id}: its record is not signed" in refused.stderr
    assert not target.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".bastion-restore")] == []
    for args in (("verify",), ("list",), ("prune",)):
        failed = cli("backup", *args, desk.config)
        assert failed.returncode == 1, (args, failed.stdout, failed.stderr)
        assert forged_id in failed.stdout + failed.stderr
    assert sorted(o["path"] for o in obstore.list(objects(s3, prefix)).collect()) == before
    other = "ed25519:" + "A" * 43 + "="
    args = restore_args(s3, prefix, desk, target)
    args[2] = own.group(1)  # the desk's own backup, under a key that did not sign it
    refused = cli(*args, "--signer", other)
    assert refused.returncode == 1
    assert f"backup {own.group(1)}: its record is signed by {public}" in refused.stderr
    assert "not one of the trusted keys" in refused.stderr

    # the signing key: in no stored object, no output, no restored plaintext file
    store = objects(s3, prefix)
    stored = [bytes(obstore.get(store, o["path"]).bytes()) for o in obstore.list(store).collect()]
    restored = [p.read_bytes() for p in stored_files(tmp_path / "r1")]
    forms = [*secret_forms(seed), bytes.fromhex(seed)]
    for form in forms:
        for data in stored + restored:
            assert form not in data
        for output in cli.outputs:
            assert form.decode(errors="replace") not in output
    assert all(CANARY.encode() not in data for data in stored)
