"""Journal configuration."""

from __future__ import annotations

from typing import Literal

import msgspec

from bastion.errors import ConfigError
from bastion.vault import secret_name

Durability = Literal["group", "fsync_each"]
Backend = Literal["sqlite", "postgres"]


class JournalConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where events are appended (a SQLite file, WAL mode) and how durably.

    ``durability``: ``"group"`` (default) commits batches on a writer thread, one
    fsync per batch, every ``flush_interval_ms`` or as soon as
    ``group_commit_max_events`` are queued, so the trading loop never waits on the
    disk; ``"fsync_each"`` commits and fsyncs every event before ``append`` returns.
    Everything queued is committed on shutdown.

    A live node also stores a snapshot of its state every ``snapshot_interval_s``
    seconds, or sooner once ``snapshot_every_events`` events were journaled since the
    last one, so recovery replays at most that many events on top of it.

    ``encryption_key`` and ``chain_key`` are references to the vault
    (``"secret:journal/encryption"``), each holding 32 bytes as 64 hex characters: the
    first encrypts the file (SQLCipher), the second keys the hash chain (HMAC-SHA256),
    seals snapshots and MACs the anchors written every ``anchor_interval_s`` to
    ``<path>.anchors``. Unset, the journal is plaintext and its chain unkeyed.

    ``backend = "postgres"`` keeps the journal in PostgreSQL instead (what an HA group
    runs on): ``url`` is a libpq URL without a password (``postgresql://bastion@db:5432/
    desk``), ``password`` a vault reference to the role's password, ``name`` the
    journal's name in that database (default: the node id; an HA group shares one).
    ``path`` then only places the node's local files (control socket, anchors). The
    encryption key seals payloads (AES-256-GCM) before they leave the process. A
    write that the database does not answer within ``statement_timeout_ms`` fails
    (and the journal refuses further events); connecting gives up after
    ``connect_timeout_s``.
    """

    path: str = "journal.sqlite"
    durability: Durability = "group"
    flush_interval_ms: int = 5
    group_commit_max_events: int = 1024
    snapshot_every_events: int = 10_000
    snapshot_interval_s: float = 60.0
    encryption_key: str | None = None
    chain_key: str | None = None
    anchor_interval_s: float = 10.0
    backend: Backend = "sqlite"
    url: str | None = None
    password: str | None = None
    name: str | None = None
    statement_timeout_ms: int = 5_000
    connect_timeout_s: int = 5

    def secret_refs(self) -> list[tuple[str, str]]:
        """The vault secrets the journal's keys are: ``(config key, secret name)`` pairs."""
        return [
            (f"journal.{field}", secret_name(value, f"journal.{field}"))
            for field in ("encryption_key", "chain_key", "password")
            if (value := getattr(self, field)) is not None
        ]

    def __post_init__(self) -> None:
        for ref in ("encryption_key", "chain_key", "password"):
            value = getattr(self, ref)
            if value is not None:
                secret_name(value, f"journal.{ref}")
        for key in (
            "flush_interval_ms",
            "group_commit_max_events",
            "snapshot_every_events",
            "snapshot_interval_s",
            "anchor_interval_s",
            "statement_timeout_ms",
            "connect_timeout_s",
        ):
            value = getattr(self, key)
            if value <= 0:
                raise ConfigError(f"key 'journal.{key}': must be a positive number, got {value}")
        if self.backend == "postgres":
            if self.url is None:
                raise ConfigError(
                    "key 'journal.url': required with backend = \"postgres\" (a libpq URL "
                    "such as postgresql://bastion@db.example:5432/desk)"
                )
            check_url(self.url)
        for key in ("url", "password", "name"):
            if self.backend == "sqlite" and getattr(self, key) is not None:
                raise ConfigError(f"key 'journal.{key}': only for backend = \"postgres\"")
        if self.name is not None and not self.name.strip():
            raise ConfigError("key 'journal.name': must not be empty")


def check_url(url: str, key: str = "journal.url", password_key: str = "journal.password") -> None:
    """Refuse a libpq URL that is not one, or that holds a password, never echoing it."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(url)
    except Exception:
        raise ConfigError(f"key '{key}': not a valid libpq URL or connection string") from None
    if "password" in params:
        raise ConfigError(
            f"key '{key}': holds a password; give it through the vault instead "
            f"(key '{password_key}' = \"secret:NAME\")"
        )
