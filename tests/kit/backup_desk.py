"""A small desk to back up: a paper config with ``[backup]``, a strategy, a journal of
fills (plaintext, or encrypted and keyed with a desk vault), a vault holding a canary
secret (and, signed, the key that signs the backups' records), and an age identity for
its backups. Helpers to tamper with stored backups."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bastion.backup.encryption import new_identity
from bastion.journal.keys import PLAINTEXT, JournalKeys
from bastion.journal.sqlite import SqliteJournal
from kit.journal_samples import fills
from kit.strategies import IDLE_STRATEGY
from kit.vaults import DESK_KEYS, desk_vault, key_file

CANARY: Final = "canary-Zq8v1Lx0-never-in-a-backup"
"""A secret value put in the desk's vault and config comment: no stored object may
hold it, nor its hex or base64 forms."""

CONFIG: Final = """
# {canary}
[node]
id = "{node_id}"

[[instruments]]
id = "X"
tick_size = "0.01"

[[strategies]]
name = "idle"
path = "strategies/idle.py"
class = "Idle"

[feed]
instrument = "X"

[journal]
path = "state/journal.sqlite"
{journal_keys}

[backup]
recipients = ["{recipient}"]
ship_interval_s = 1.0
copy_pages_per_step = 8
copy_pause_ms = 0.5
{signing}
{destination}
{extra}
"""

KEYED: Final = 'encryption_key = "secret:journal/encryption"\nchain_key = "secret:journal/chain"'

SIGNING_NAME: Final = "backup/signing"
SIGNING_SEEDS: Final = {
    "desk": "5a" * 16 + "c3" * 16,
    "next": "0f1e2d3c4b5a69788796a5b4c3d2e1f0" * 2,
    "intruder": "77" * 32,
}
"""Ed25519 seeds (64 hex characters, as the vault holds them): the desk's signing key,
the one it rotates to, and an intruder's. Fixed, so every run draws the same keys."""


def signing_public(seed: str) -> str:
    """The ``ed25519:...`` public key of ``seed``."""
    from bastion.backup.signing import signer_from_secret
    from bastion.vault import Secret

    return signer_from_secret(Secret("test", seed), "test").public


def signing_toml(seed: str | None, trusted: list[str]) -> str:
    """``[backup]`` lines: the signing key in the vault (when ``seed``) and the trusted
    public keys."""
    lines = [f'signing_key = "secret:{SIGNING_NAME}"'] if seed else []
    if trusted:
        lines.append("signing_public_keys = [" + ", ".join(f'"{t}"' for t in trusted) + "]")
    return "\n".join(lines)


@dataclass(frozen=True)
class BackupDesk:
    root: Path
    config: Path
    journal: Path
    identity: Path
    recipient: str
    keys: JournalKeys
    vault_key: Path | None
    signing_seed: str | None = None

    def append(self, events: list[Any]) -> None:
        """Journal more events (the node's writer, opened and closed)."""
        journal = SqliteJournal(self.journal, keys=self.keys, anchor_interval_s=0.01)
        try:
            for event in events:
                journal.append(event)
        finally:
            journal.close()


def dir_destination(path: Path) -> str:
    return f'[backup.destination]\nkind = "dir"\npath = "{path}"\n'


def s3_destination(bucket: str, endpoint: str, prefix: str = "") -> str:
    return (
        f'[backup.destination]\nkind = "s3"\nbucket = "{bucket}"\nendpoint = "{endpoint}"\n'
        f'prefix = "{prefix}"\nallow_http = true\n'
    )


def make_desk(
    root: Path,
    destination: str,
    *,
    events: int = 50,
    keyed: bool = False,
    node_id: str = "desk-1",
    keys_dir: Path | None = None,
    signing: str | None = None,
    trusted: list[str] | None = None,
    extra: str = "",
    vault_values: dict[str, str] | None = None,
    recipient: str | None = None,
) -> BackupDesk:
    """The desk in ``root``; the identity in ``keys_dir`` (default: beside ``root``).
    ``signing``: a seed the vault holds as the records' signing key; ``trusted``: the
    public keys verifiers require (default: ``signing``'s, if any); ``extra``: more
    TOML after ``[backup]``; ``vault_values``: more vault secrets (``notify__ops`` is
    ``notify/ops``); ``recipient``: encrypt to this age public key instead of the
    desk's own identity's (an intruder's desk)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "strategies").mkdir()
    (root / "strategies" / "idle.py").write_text(IDLE_STRATEGY)
    keys_dir = keys_dir or root.parent / f"{root.name}-keys"
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    identity = keys_dir / "backup.key"
    own = new_identity(identity)
    recipient = recipient or own
    values = {"canary__secret": CANARY, **(vault_values or {})}
    if signing is not None:
        values[SIGNING_NAME.replace("/", "__")] = signing
    desk_vault(root / "vault.bastion", **values)
    # the vault's key file, for the commands that open it (keys, signing, more secrets)
    vault_key = key_file(keys_dir) if keyed or signing or vault_values else None
    if trusted is None:
        trusted = [signing_public(signing)] if signing is not None else []
    keys = (
        JournalKeys(encryption=DESK_KEYS["journal/encryption"], chain=DESK_KEYS["journal/chain"])
        if keyed
        else PLAINTEXT
    )
    config = root / "paper.toml"
    config.write_text(
        CONFIG.format(
            canary=CANARY,
            node_id=node_id,
            journal_keys=KEYED if keyed else "",
            recipient=recipient,
            destination=destination,
            signing=signing_toml(signing, trusted),
            extra=extra,
        )
    )
    desk = BackupDesk(
        root=root,
        config=config,
        journal=root / "state" / "journal.sqlite",
        identity=identity,
        recipient=recipient,
        keys=keys,
        vault_key=vault_key,
        signing_seed=signing,
    )
    desk.append(fills(events))
    return desk


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x01
    path.write_bytes(bytes(data))


def secret_forms(value: str) -> list[bytes]:
    """``value``'s bytes, hex and base64 (standard and URL-safe) forms."""
    import base64

    raw = value.encode()
    return [
        raw,
        raw.hex().encode(),
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw),
        base64.b64encode(raw).rstrip(b"="),
    ]


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def env_with_vault_key(desk: BackupDesk) -> dict[str, str]:
    from kit.vaults import vault_env

    return vault_env(desk.vault_key) if desk.vault_key else dict(os.environ)
