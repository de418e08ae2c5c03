"""The vault: one encrypted file of named secrets, unlocked with a passphrase.

``Vault.create`` makes a new file and ``Vault.open`` unlocks one; the unlocked object
holds the entries decrypted in memory only, implements ``SecretSource`` (``get``), and
writes every change back atomically (``set``, ``remove``, ``ensure_key``,
``rotate``). Every value it decrypts, and its passphrase, is registered for redaction
from the logs. The file format is in ``bastion.vault._format``.

What it protects: the values at rest (a copied disk, backup or config directory) and
the file's integrity (any change is detected). What not: a process that runs as the
node's user or as root while the vault is unlocked (docs/security.md, "Vault").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import msgspec

from bastion.clock import Clock
from bastion.errors import ConfigError, UsageError, VaultCorrupt, VaultError, VaultLocked
from bastion.vault import redact
from bastion.vault._format import (
    KEY_BYTES,
    Body,
    Entry,
    FormatError,
    Header,
    KdfParams,
    Scope,
    derive_kek,
    new_header,
    open_body,
    preamble,
    seal,
    split,
    unwrap,
    wrap,
)
from bastion.vault.files import (
    ensure_private,
    ensure_safe_parent,
    make_private_dir,
    write_private,
)
from bastion.vault.refs import _NAME, Secret, SecretNotFound

__all__ = [
    "MIN_PASSPHRASE",
    "EntryInfo",
    "KdfParams",
    "Scope",
    "Vault",
    "require_scope",
    "stated_scope",
]

MIN_PASSPHRASE: Final = 8
MAX_VALUE_BYTES: Final = 64 * 1024


class EntryInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What ``list`` shows of an entry: never its value."""

    name: str
    created_ns: int
    updated_ns: int


def check_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE:
        raise UsageError(f"the vault passphrase must have at least {MIN_PASSPHRASE} characters")


def check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"not a valid secret name: {name!r}: names are lowercase words separated by "
            "'/' (letters, digits, '_', '.', '-'), e.g. fix/acct1"
        )


class Vault:
    """An unlocked vault: named secrets, decrypted in memory. A ``SecretSource``."""

    def __init__(
        self,
        path: Path,
        *,
        header: Header,
        preamble_bytes: bytes,
        wrapped: bytes,
        data_key: bytes,
        body: Body,
        clock: Clock,
    ) -> None:
        self._path = path
        self._header = header
        self._preamble = preamble_bytes
        self._wrapped = wrapped
        self._data_key = data_key
        self._body = body
        self._clock = clock
        for entry in body.entries.values():
            redact.register(entry.value)

    def __repr__(self) -> str:
        return f"Vault({str(self._path)!r}, scope={self.scope!r}, entries={len(self)})"

    # -- opening ---------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: Path,
        passphrase: str,
        *,
        clock: Clock,
        scope: Scope = "paper",
        kdf: KdfParams | None = None,
    ) -> Vault:
        """A new, empty vault at ``path`` (refused if the file exists)."""
        check_passphrase(passphrase)
        params = kdf or KdfParams()
        problem = params.problem()
        if problem is not None:
            raise UsageError(f"Argon2 parameters: {problem}")
        if path.exists() or path.is_symlink():
            raise UsageError(f"{path} already exists; a vault is never overwritten")
        make_private_dir(path.parent)
        ensure_safe_parent(path, "vault")
        redact.register(passphrase)
        header = new_header(scope, params)
        head = preamble(header)
        data_key = os.urandom(KEY_BYTES)
        vault = cls(
            path,
            header=header,
            preamble_bytes=head,
            wrapped=wrap(derive_kek(passphrase, header.kdf), data_key, head),
            data_key=data_key,
            body=Body(),
            clock=clock,
        )
        vault._save()
        return vault

    @classmethod
    def open(cls, path: Path, passphrase: str, *, clock: Clock) -> Vault:
        """Unlock the vault at ``path``. ``VaultLocked`` for a wrong passphrase,
        ``VaultCorrupt`` for a damaged file, ``InsecureFile`` if others may read it."""
        redact.register(passphrase)
        try:
            ensure_private(path, "vault")
            data = path.read_bytes()
        except FileNotFoundError:
            raise VaultError(
                f"vault {path}: no such file (create one with `bastion secrets init`)"
            ) from None
        except IsADirectoryError:
            raise VaultError(f"vault {path}: is a directory, not a vault file") from None
        except PermissionError as e:
            raise VaultError(f"vault {path}: cannot read it: {e.strerror}") from None
        ensure_safe_parent(path, "vault")
        try:
            sealed = split(data)
        except FormatError as e:
            raise VaultCorrupt(f"vault {path} is damaged: {e}") from None
        data_key = unwrap(derive_kek(passphrase, sealed.header.kdf), sealed)
        if data_key is None:
            raise VaultLocked(f"vault {path}: wrong passphrase (or the file's header was altered)")
        try:
            body = open_body(data_key, sealed)
        except FormatError as e:
            raise VaultCorrupt(f"vault {path} is damaged: {e}") from None
        return cls(
            path,
            header=sealed.header,
            preamble_bytes=sealed.preamble,
            wrapped=sealed.wrapped,
            data_key=data_key,
            body=body,
            clock=clock,
        )

    # -- reading ---------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def scope(self) -> Scope:
        """``paper`` or ``live``: which kind of node may use this vault's secrets."""
        return self._header.scope

    @property
    def kdf(self) -> KdfParams:
        return self._header.kdf.params

    def __len__(self) -> int:
        return len(self._body.entries)

    def __contains__(self, name: object) -> bool:
        return name in self._body.entries

    def get(self, name: str) -> Secret:
        """The secret called ``name``; ``SecretNotFound`` naming it otherwise."""
        entry = self._body.entries.get(name)
        if entry is None:
            raise SecretNotFound(f"secret '{name}' is not in the vault {self._path}")
        return Secret(name, entry.value)

    def entries(self) -> list[EntryInfo]:
        """Names and dates, sorted by name; never a value."""
        return [
            EntryInfo(name=name, created_ns=e.created_ns, updated_ns=e.updated_ns)
            for name, e in sorted(self._body.entries.items())
        ]

    # -- changing (each change is written before it returns) ---------------------------

    def set(self, name: str, value: str) -> bool:
        """Store ``value`` under ``name``; True if it is new, False if it replaced one."""
        check_name(name)
        if not value:
            raise UsageError(f"secret '{name}': the value is empty")
        if len(value.encode()) > MAX_VALUE_BYTES:
            raise UsageError(f"secret '{name}': the value is over {MAX_VALUE_BYTES} bytes")
        redact.register(value)
        now = self._clock.timestamp_ns()
        old = self._body.entries.get(name)
        entries = dict(self._body.entries)
        entries[name] = Entry(
            value=value, created_ns=old.created_ns if old else now, updated_ns=now
        )
        self._commit(Body(entries=entries))
        return old is None

    def remove(self, name: str) -> None:
        """Delete ``name``; ``SecretNotFound`` if there is no such entry."""
        if name not in self._body.entries:
            raise SecretNotFound(f"secret '{name}' is not in the vault {self._path}")
        entries = dict(self._body.entries)
        del entries[name]
        self._commit(Body(entries=entries))

    def ensure_key(self, name: str, n_bytes: int = 32) -> bool:
        """A random machine key under ``name`` (``n_bytes`` random bytes, as hex) unless
        one is there already: True if it was made now. For keys no human types
        (``journal/encryption``, ``journal/chain``)."""
        if name in self._body.entries:
            return False
        return self.set(name, os.urandom(n_bytes).hex())

    def rotate(self, passphrase: str, *, kdf: KdfParams | None = None) -> None:
        """Re-key: a new passphrase, a new salt (and ``kdf`` cost, if given) and a new
        data key, every entry re-encrypted under it. Written atomically: a crash leaves
        the old file, which the old passphrase still opens."""
        check_passphrase(passphrase)
        params = kdf or self.kdf
        problem = params.problem()
        if problem is not None:
            raise UsageError(f"Argon2 parameters: {problem}")
        redact.register(passphrase)
        header = new_header(self.scope, params)
        head = preamble(header)
        data_key = os.urandom(KEY_BYTES)
        wrapped = wrap(derive_kek(passphrase, header.kdf), data_key, head)
        data = head + wrapped + seal(data_key, self._body, head + wrapped)
        self._write(data)
        self._header, self._preamble, self._wrapped = header, head, wrapped
        self._data_key = data_key

    def _commit(self, body: Body) -> None:
        aad = self._preamble + self._wrapped
        self._write(self._preamble + self._wrapped + seal(self._data_key, body, aad))
        self._body = body

    def _save(self) -> None:
        self._commit(self._body)

    def _write(self, data: bytes) -> None:
        try:
            write_private(self._path, data)
        except OSError as e:
            raise VaultError(
                f"vault {self._path}: cannot write it ({e.strerror or e}); it is unchanged"
            ) from None


def stated_scope(path: Path) -> Scope | None:
    """The scope the vault file at ``path`` states in its header, read without the
    passphrase (None: no readable vault there). Not authenticated: good for refusing a
    vault early, never for trusting one (``Vault.open`` checks the header)."""
    try:
        with path.open("rb") as f:
            data = f.read(64 * 1024)
        return split(data).header.scope
    except (OSError, FormatError):
        return None


def require_scope(vault: Vault, expected: Scope, key: str) -> None:
    """Refuse a vault of the other scope: a paper config must not reach live keys, nor a
    live node run on paper ones. ``key`` is the config key that named the vault."""
    if vault.scope != expected:
        raise ConfigError(
            f"key '{key}': the vault {vault.path} holds {vault.scope} secrets, and this "
            f"is a {expected} config; point it at a {expected} vault "
            f"(`bastion secrets init{' --live' if expected == 'live' else ''}`)"
        )
