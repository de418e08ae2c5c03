"""``open_journal``: the journal a ``[journal]`` table configures, SQLite or PostgreSQL;
``journal_locator``: the same journal, for the features that only read it.

The composition root calls them with the keys resolved from the vault (``journal_keys``)
and the vault itself (for ``journal.password``). The HA package passes the fencing
epoch it holds and what to do once fenced (halt trading).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bastion.errors import ConfigError, FencedError, OperationalError
from bastion.journal.base import Journal
from bastion.journal.config import JournalConfig
from bastion.journal.keys import JournalKeys
from bastion.journal.locator import JournalLocator
from bastion.vault import SecretSource
from bastion.vault.refs import SecretNotFound, secret_name


def journal_local_path(config: JournalConfig, base_dir: Path) -> Path:
    """The journal's file (SQLite), or the local path a PostgreSQL journal's node files
    (control socket, anchors) are named after: ``journal.path`` from ``base_dir``."""
    path = Path(config.path).expanduser()
    return path if path.is_absolute() else base_dir / path


def journal_password(config: JournalConfig, secrets: SecretSource | None) -> str | None:
    """The PostgreSQL password ``journal.password`` refers to (None: unset)."""
    if config.password is None:
        return None
    name = secret_name(config.password, "journal.password")
    if secrets is None:
        raise ConfigError(f"key 'journal.password': secret '{name}' needs a vault; none is open")
    try:
        return secrets.get(name).reveal()
    except SecretNotFound as error:
        raise SecretNotFound(f"key 'journal.password': {error}") from None


def open_journal(
    config: JournalConfig,
    *,
    base_dir: Path,
    keys: JournalKeys,
    secrets: SecretSource | None,
    name: str,
    fence_epoch: int | None = None,
    on_fenced: Callable[[FencedError], None] | None = None,
    on_failed: Callable[[OperationalError], None] | None = None,
    password: str | None = None,
) -> Journal:
    """The configured journal, open for writing. ``name``: the journal's name in a
    PostgreSQL database when ``journal.name`` is unset (the node id, or the HA group).
    ``password``: the database's, given here instead of ``journal.password``'s secret
    (the DR drill's scratch database).

    ``fence_epoch``/``on_fenced``/``on_failed`` (PostgreSQL only): see ``PostgresJournal``."""
    path = journal_local_path(config, base_dir)
    if config.backend == "sqlite":
        if fence_epoch is not None:
            raise ConfigError(
                "key 'journal.backend': a fenced (HA) journal needs backend = \"postgres\""
            )
        from bastion.journal.sqlite import SqliteJournal

        return SqliteJournal.from_config(path, config, keys=keys)
    from bastion.journal.postgres import PostgresJournal

    assert config.url is not None  # JournalConfig checks it
    return PostgresJournal(
        config.url,
        name=config.name or name,
        path=path,
        password=password if password is not None else journal_password(config, secrets),
        durability=config.durability,
        commit_interval_ms=config.flush_interval_ms,
        max_batch=config.group_commit_max_events,
        keys=keys,
        anchor_interval_s=config.anchor_interval_s,
        statement_timeout_ms=config.statement_timeout_ms,
        connect_timeout_s=config.connect_timeout_s,
        fence_epoch=fence_epoch,
        on_fenced=on_fenced,
        on_failed=on_failed,
    )


def journal_locator(
    config: JournalConfig,
    *,
    base_dir: Path,
    keys: JournalKeys,
    secrets: SecretSource | None,
    name: str,
    password: str | None = None,
) -> JournalLocator:
    """Where the configured journal is and what reading it takes, for the features that
    read it beside (or without) its writer: the SQLite file, or the PostgreSQL journal
    ``journal.name`` (else ``name``: ``PaperConfig.journal_name()``) with the password
    ``journal.password`` refers to (or ``password``, given)."""
    path = journal_local_path(config, base_dir)
    if config.backend == "sqlite":
        return JournalLocator.sqlite(path, keys)
    assert config.url is not None  # JournalConfig checks it
    return JournalLocator.postgres(
        config.url,
        name=config.name or name,
        path=path,
        password=password if password is not None else journal_password(config, secrets),
        keys=keys,
        connect_timeout_s=config.connect_timeout_s,
    )
