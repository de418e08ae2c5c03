"""What a desk is, for a backup: the files its config names and the keys that open them.

``open_desk`` loads the node's config (and the venue simulator's, when ``[backup]
venue_config`` names one), resolves every path against the config's directory, and
reads from the vault only the keys the backup needs: the encrypted databases' (so they
are copied online through SQLite, and stay encrypted in the copy), the journal's chain
key (to read its head), the object store's credentials, and the key that signs the
backups' records (``[backup] signing_key``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bastion.backup.config import BackupConfig
from bastion.backup.manifest import PieceKind
from bastion.backup.pg_journal import PgJournalSource
from bastion.backup.signing import RecordSigner, signer_from_secret
from bastion.clock import Clock
from bastion.config import PaperConfig, load_config, resolve_path
from bastion.errors import ConfigError
from bastion.journal.anchors import anchor_path
from bastion.journal.factory import journal_password
from bastion.storage.keys import resolve_key
from bastion.vault.config import load_secrets
from bastion.vault.refs import SecretSource
from bastion.venue_server.config import VenueSimConfig
from bastion.venues.fix.config import FixVenueConfig


@dataclass(frozen=True)
class Source:
    """A file to back up; ``database`` files are copied online (SQLite backup API)."""

    path: Path
    kind: PieceKind
    database: bool = False
    key: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Desk:
    config_path: Path
    base_dir: Path
    config: PaperConfig
    backup: BackupConfig
    secrets: SecretSource | None
    journal: Path
    journal_key: bytes | None
    sources: list[Source]
    pg: PgJournalSource | None = None
    """A PostgreSQL journal (``journal`` is then its local path: anchors beside it)."""
    signer: RecordSigner | None = None
    """Signs every record stored (``[backup] signing_key``); None: records unsigned."""

    @property
    def node_id(self) -> str:
        return self.config.node.id


def load_backup_config(config_path: Path) -> tuple[PaperConfig, BackupConfig]:
    config = load_config(config_path, PaperConfig)
    if config.backup is None:
        raise ConfigError(f"{config_path}: no [backup] section (docs/dr.md shows one)")
    return config, config.backup


def open_desk(config_path: Path, *, clock: Clock, sign: bool = True) -> Desk:
    """The desk to back up; ``sign``: also its signing key, for a command that stores
    backups (``create``, ``ship``), not one that only reads the desk."""
    config, backup = load_backup_config(config_path)
    base_dir = config_path.resolve().parent
    postgres = config.journal.backend == "postgres"
    refs = [*backup.secret_refs()]
    signing = backup.signing_ref() if sign else None
    if sign and signing is None and backup.signing_public_keys:
        raise ConfigError(
            "key 'backup.signing_key': not set, and backup.signing_public_keys makes "
            "every verifier refuse an unsigned record; name the signing key in the vault "
            "(bastion backup keygen --signing)"
        )
    if signing is not None:
        refs.append(signing)
    # a PostgreSQL journal's rows are backed up as stored (sealed): only its password
    wanted = "journal.password" if postgres else "journal.encryption_key"
    refs += [r for r in config.journal.secret_refs() if r[0] == wanted]
    fix_venues = [v for v in config.venue_configs() if isinstance(v, FixVenueConfig)]
    for n, venue in enumerate(fix_venues):
        refs += [
            r for r in venue.secret_refs(f"venues[{n}]") if r[0].endswith("store_encryption_key")
        ]
    secrets = _secrets(config, base_dir, refs, clock)
    signer = _signer(backup, signing, secrets)
    journal = resolve_path(base_dir, config.journal.path)
    pg = None
    if postgres:
        assert config.journal.url is not None  # JournalConfig checks it
        pg = PgJournalSource(
            url=config.journal.url,
            name=config.journal_name(),
            password=journal_password(config.journal, secrets),
        )
        journal_key = None
    else:
        journal_key = resolve_key(config.journal.encryption_key, "journal.encryption_key", secrets)
    sources = [Source(config_path.resolve(), "config")]
    sources += [Source(resolve_path(base_dir, s.path), "strategy") for s in config.strategies]
    vault = config.vault.resolve(base_dir)
    if vault.is_file():
        sources.append(Source(vault, "vault"))
    anchors = anchor_path(journal)
    # the anchors first: every anchor then names a record the journal copy holds
    sources.append(Source(anchors, "journal_anchors"))
    if pg is None:  # a PostgreSQL journal is dumped after the files (``pg_journal``)
        sources.append(Source(journal, "journal", database=True, key=journal_key))
    seen_stores: set[Path] = set()
    for n, venue in enumerate(fix_venues):
        store = resolve_path(base_dir, venue.store_path).resolve()
        if store in seen_stores:
            continue
        seen_stores.add(store)
        key = resolve_key(venue.store_encryption_key, f"venues[{n}].store_encryption_key", secrets)
        sources.append(Source(store, "fix_store", database=True, key=key))
    if backup.venue_config is not None:
        sources += _venue_sources(resolve_path(base_dir, backup.venue_config), clock)
    for extra in backup.include:
        path = resolve_path(base_dir, extra)
        if path.is_dir():
            sources += [Source(p, "file") for p in sorted(path.rglob("*")) if p.is_file()]
        else:
            sources.append(Source(path, "file"))
    return Desk(
        config_path=config_path.resolve(),
        base_dir=base_dir,
        config=config,
        backup=backup,
        secrets=secrets,
        journal=journal,
        journal_key=journal_key,
        sources=sources,
        pg=pg,
        signer=signer,
    )


def _signer(
    backup: BackupConfig, signing: tuple[str, str] | None, secrets: SecretSource | None
) -> RecordSigner | None:
    """The signing key, which must be one the config's verifiers trust (when it names
    any): a key they do not would make backups every restore refuses."""
    if signing is None:
        return None
    assert secrets is not None  # opened: the reference is among the refs
    signer = signer_from_secret(secrets.get(signing[1]), signing[0])
    if backup.signing_public_keys and signer.public not in backup.signers():
        raise ConfigError(
            f"key 'backup.signing_key': its public key {signer.public} is not in "
            "backup.signing_public_keys; add it there (every verifier would refuse the "
            "backups it signs)"
        )
    return signer


def _secrets(
    config: PaperConfig, base_dir: Path, refs: list[tuple[str, str]], clock: Clock
) -> SecretSource | None:
    if not refs:
        return None
    return load_secrets(
        refs,
        vault=config.vault,
        base_dir=base_dir,
        scope="live" if config.node.mode == "live" else "paper",
        clock=clock,
    )


def _venue_sources(venue_path: Path, clock: Clock) -> list[Source]:
    """The venue simulator's config, ledger, session stores and vault."""
    venue = load_config(venue_path, VenueSimConfig)
    base = venue_path.resolve().parent
    refs = [
        r for r in venue.secret_refs() if r[0] in ("ledger_encryption_key", "store_encryption_key")
    ]
    secrets = None
    if refs:
        secrets = load_secrets(refs, vault=venue.vault, base_dir=base, scope="paper", clock=clock)
    sources = [Source(venue_path.resolve(), "venue_config")]
    vault = venue.vault.resolve(base)
    if vault.is_file():
        sources.append(Source(vault, "vault"))
    sources.append(
        Source(
            resolve_path(base, venue.ledger_path),
            "venue_ledger",
            database=True,
            key=resolve_key(venue.ledger_encryption_key, "ledger_encryption_key", secrets),
        )
    )
    sources.append(
        Source(
            resolve_path(base, venue.session_store_path),
            "venue_store",
            database=True,
            key=resolve_key(venue.store_encryption_key, "store_encryption_key", secrets),
        )
    )
    return sources
