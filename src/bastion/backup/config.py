"""The ``[backup]`` config section: where backups go, to whom they are encrypted, who
signs their records, how often the journal ships, how long backups are kept, and how
gently a backup reads the node's files.

```toml
[backup]
recipients = ["age1..."]          # public keys; the private key stays offline
signing_key = "secret:backup/signing"        # the machine that makes backups signs
signing_public_keys = ["ed25519:..."]        # verifiers require one of these signatures
ship_interval_s = 5.0             # optional: the node ships its journal this often (the RPO)
venue_config = "venue-sim.toml"   # optional: also the venue simulator's ledger and stores

[backup.destination]
kind = "s3"                       # or kind = "dir", path = "/mnt/offsite/bastion"
bucket = "desk-backups"
endpoint = "https://s3.example.net"
access_key_id = "secret:backup/s3-key-id"
secret_access_key = "secret:backup/s3-secret"

[backup.retention]
hourly = 48
daily = 30
monthly = 12
```
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from bastion.backup.signing import Signers
from bastion.errors import ConfigError
from bastion.vault import secret_name

_AGE_PREFIX = "age1"


class RetentionConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Grandfather-father-son: the newest full backup of each of the last ``hourly``
    hours, ``daily`` days and ``monthly`` months is kept (the newest backup always)."""

    hourly: int = 48
    daily: int = 30
    monthly: int = 12

    def __post_init__(self) -> None:
        for key in ("hourly", "daily", "monthly"):
            value = getattr(self, key)
            if isinstance(value, bool) or value < 0:
                raise ConfigError(f"key 'backup.retention.{key}': must be 0 or more, got {value}")


class DirDestinationConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="dir",
    tag_field="kind",
):
    """A directory: mounted off-site storage (NFS, SMB, a removable disk). ``path`` is
    relative to the config file's directory."""

    path: str

    def __post_init__(self) -> None:
        if not self.path.strip():
            raise ConfigError("key 'backup.destination.path': must not be empty")


class S3DestinationConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="s3",
    tag_field="kind",
):
    """An S3-compatible object store. ``access_key_id`` and ``secret_access_key`` are
    vault references; left out, they come from ``AWS_ACCESS_KEY_ID`` and
    ``AWS_SECRET_ACCESS_KEY`` in the environment. ``allow_http`` only for an endpoint
    on loopback (a test store)."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    allow_http: bool = False

    def __post_init__(self) -> None:
        if not self.bucket.strip():
            raise ConfigError("key 'backup.destination.bucket': must not be empty")
        for field in ("access_key_id", "secret_access_key"):
            value = getattr(self, field)
            if value is not None:
                secret_name(value, f"backup.destination.{field}")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ConfigError(
                "key 'backup.destination.access_key_id': give both access_key_id and "
                "secret_access_key, or neither (then they come from the environment)"
            )
        if self.allow_http and self.endpoint is not None:
            host = self.endpoint.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
            if host not in ("127.0.0.1", "localhost", "[::1]"):
                raise ConfigError(
                    "key 'backup.destination.allow_http': plain HTTP only to a store on "
                    f"loopback, not {host}"
                )

    def secret_refs(self) -> list[tuple[str, str]]:
        return [
            (f"backup.destination.{field}", secret_name(value, f"backup.destination.{field}"))
            for field in ("access_key_id", "secret_access_key")
            if (value := getattr(self, field)) is not None
        ]


DestinationConfig = DirDestinationConfig | S3DestinationConfig


class BackupConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[backup]``. ``copy_pages_per_step`` and ``copy_pause_ms``: a database is
    copied that many pages at a time with that pause between steps, from one read
    snapshot (the node's writer is never blocked; see docs/dr.md for the bound).
    ``ship_interval_s``: set, the running node ships its journal that often (a niced
    process of its own, ``bastion.backup.scheduled``); unset, nothing ships but
    ``bastion backup ship`` (every 5 s unless ``--every`` says otherwise).
    ``signing_key``: a vault reference to the Ed25519 key ``create`` and ``ship`` sign
    every record with (``bastion backup keygen --signing`` makes it); read only by
    them, so a verifier's vault need not hold it. ``signing_public_keys``: when one is
    given, ``verify``, ``restore``, ``list``, ``prune`` and the drill refuse a record
    not signed by one of them (a list: old and new keys while rotating; see
    ``bastion.backup.signing`` and docs/dr.md)."""

    destination: DestinationConfig
    recipients: list[str]
    signing_key: str | None = None
    signing_public_keys: list[str] = []
    ship_interval_s: float | None = None
    venue_config: str | None = None
    retention: RetentionConfig = msgspec.field(default_factory=RetentionConfig)
    copy_pages_per_step: int = 1024
    copy_pause_ms: float = 2.0
    include: list[str] = []
    """More files or directories to back up (relative to the config's directory)."""

    def __post_init__(self) -> None:
        if not self.recipients:
            raise ConfigError(
                "key 'backup.recipients': name at least one age public key (age1...), "
                "made with `bastion backup keygen`"
            )
        for n, recipient in enumerate(self.recipients):
            if not recipient.startswith(_AGE_PREFIX):
                raise ConfigError(
                    f"key 'backup.recipients[{n}]': not an age public key (it starts with "
                    f"'{_AGE_PREFIX}'); never put a private key (AGE-SECRET-KEY-...) here"
                )
        if self.ship_interval_s is not None and not 0 < self.ship_interval_s < float("inf"):
            raise ConfigError(
                f"key 'backup.ship_interval_s': must be a positive number, got "
                f"{self.ship_interval_s}"
            )
        if self.copy_pages_per_step < 1 and self.copy_pages_per_step != -1:
            raise ConfigError(
                "key 'backup.copy_pages_per_step': must be 1 or more (or -1: all at once)"
            )
        if self.copy_pause_ms < 0:
            raise ConfigError("key 'backup.copy_pause_ms': must be 0 or more")
        if self.signing_key is not None:
            secret_name(self.signing_key, "backup.signing_key")
        self.signers()

    def secret_refs(self) -> list[tuple[str, str]]:
        """The store's credentials (what every command on the backups needs)."""
        if isinstance(self.destination, S3DestinationConfig):
            return self.destination.secret_refs()
        return []

    def signing_ref(self) -> tuple[str, str] | None:
        """The signing key's reference (only the commands that make backups read it)."""
        if self.signing_key is None:
            return None
        return ("backup.signing_key", secret_name(self.signing_key, "backup.signing_key"))

    def signers(self) -> Signers:
        """``signing_public_keys`` as the keys a record must be signed by."""
        return Signers(
            (text, f"key 'backup.signing_public_keys[{n}]'")
            for n, text in enumerate(self.signing_public_keys)
        )

    def destination_dir(self, base_dir: Path) -> Path:
        assert isinstance(self.destination, DirDestinationConfig)
        path = Path(self.destination.path).expanduser()
        return path if path.is_absolute() else base_dir / path


class VenuePositionsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[dr.venue_positions]``: where a drill reads the venue's positions without
    touching the live node's venue session. ``kind = "positions_file"``: a JSON object
    ``{"INSTRUMENT": "net quantity"}`` (a broker's end-of-day statement or drop-copy
    export); ``kind = "venue_sim_ledger"``: the venue simulator's ledger (SQLite, read
    only), ``account`` naming the desk's account there."""

    kind: str
    path: str
    account: str | None = None
    encryption_key: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("positions_file", "venue_sim_ledger"):
            raise ConfigError(
                f"key 'dr.venue_positions.kind': 'positions_file' or 'venue_sim_ledger', "
                f"got {self.kind!r}"
            )
        if self.kind == "venue_sim_ledger" and not self.account:
            raise ConfigError("key 'dr.venue_positions.account': the desk's account at the venue")


class DrVenueSessionConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[dr.venue_sessions.NAME]``: the read-only session at FIX venue ``NAME`` the
    drill's recover-only node logs on with instead of the desk's own (a broker's
    drop-copy or query session; the venue simulator's ``[[read_only_sessions]]``): it
    answers order status, mass status and positions for the desk's account and refuses
    orders, so the drill reconciles orders, fills and positions without touching the
    live node's session. ``sender_comp_id`` and ``username`` are the session's;
    ``password`` a reference to the desk's vault (restored with the backup) or
    ``password_env`` the environment variable holding it; ``host``/``port``/
    ``target_comp_id``: where and whom the DR site reaches, when not the config's;
    ``account``: the account positions are asked for (default: the venue's)."""

    sender_comp_id: str
    username: str | None = None
    password: str | None = None
    password_env: str | None = None
    target_comp_id: str | None = None
    host: str | None = None
    port: int | None = None
    account: str | None = None

    def check(self, key: str) -> None:
        if not self.sender_comp_id:
            raise ConfigError(f"key '{key}.sender_comp_id': must not be empty")
        if self.password is not None and self.password_env is not None:
            raise ConfigError(f"key '{key}': give password or password_env, not both")
        if self.password is not None:
            secret_name(self.password, f"{key}.password")
        if self.port is not None and not 0 < self.port < 65536:
            raise ConfigError(f"key '{key}.port': must be 1..65535, got {self.port}")
        for field in ("host", "target_comp_id", "account", "username"):
            if getattr(self, field) == "":
                raise ConfigError(f"key '{key}.{field}': must not be empty")


class DrConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[dr]``: the disaster-recovery drill (``bastion dr drill``; docs/dr.md).
    ``rto_target_s``: a drill slower than this fails; ``rpo_target_s``: the RPO the
    report checks its measured one against (``rpo_ok``; reported, not a failure: what a
    drill measures depends on when it ran against the shipping interval).
    ``venue_sessions``: per FIX venue, the read-only session the drill's recover-only
    node logs on with to reconcile orders, fills and positions (``DrVenueSessionConfig``);
    or ``venue_positions``: where the drill reads the venue's positions to reconcile
    with, for a venue that offers no such session (neither: no reconciliation, the drill
    reports it as not checked). ``journal_path``: the drills' own journal on the host
    that runs them (``bastion.backup.drill_log``), relative to the config's directory.
    A desk journaling to PostgreSQL: ``scratch_url``
    (a libpq URL without a password) names the server where the drill creates, and then
    drops, a database of its own to restore the journal into (``bastion.backup.
    pg_scratch``); ``scratch_password`` a vault reference to its password (else
    ``PGPASSWORD``, else libpq's ``~/.pgpass``)."""

    rto_target_s: float = 60.0
    rpo_target_s: float = 5.0
    venue_positions: VenuePositionsConfig | None = None
    venue_sessions: dict[str, DrVenueSessionConfig] = {}
    journal_path: str = "dr-drills.sqlite"
    scratch_url: str | None = None
    scratch_password: str | None = None

    def __post_init__(self) -> None:
        from bastion.journal.config import check_url

        if self.scratch_url is not None:
            check_url(self.scratch_url, "dr.scratch_url", "dr.scratch_password")
        if self.scratch_password is not None:
            secret_name(self.scratch_password, "dr.scratch_password")
        for name, session in self.venue_sessions.items():
            session.check(f"dr.venue_sessions.{name}")
        if self.venue_sessions and self.venue_positions is not None:
            raise ConfigError(
                "key 'dr.venue_positions': give [dr.venue_sessions.NAME] (the drill logs "
                "on and reconciles orders, fills and positions) or [dr.venue_positions] "
                "(positions read from a statement), not both"
            )
        for key in ("rto_target_s", "rpo_target_s"):
            value = getattr(self, key)
            if not 0 < value < float("inf"):
                raise ConfigError(f"key 'dr.{key}': must be a positive number, got {value}")
