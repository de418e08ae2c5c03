"""The operator store: one encrypted file (``users.bastion`` beside the vault) of
operators, their roles, password hashes and TOTP seeds, and the login checks.

Its key is the vault's machine key ``users/key`` (``UserStore.for_vault``), or handed
in directly (a process that holds only that key, not the whole vault). The file format
is in ``bastion.security._sealed``: any changed, missing or foreign byte is refused
(``UserStoreCorrupt``) before anything is decrypted, and the file is left as it was.

Every change (an administration, and every login, which moves the failure count or
the last TOTP step) reads the file afresh, changes it and writes it back atomically
(0600, ``bastion.vault.files.write_private``) under an exclusive lock on a lock file
beside it, so the command line and a console may share the store without one
undoing the other's change. Logins are therefore serialised: one Argon2 verification
at a time per store. Reads take no lock (a write replaces the file whole).

Nothing secret leaves the store: reads return ``User`` (no hash, no seed), errors and
logs name operators only, and each hash and seed loaded is registered for redaction.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Final, Literal

import msgspec
import structlog

from bastion.clock import Clock
from bastion.errors import (
    PasswordRejected,
    UnknownUser,
    UsageError,
    UserStoreCorrupt,
    VaultError,
)
from bastion.security import _sealed
from bastion.security.config import USERS_KEY, UsersConfig
from bastion.security.passwords import MAX_PASSWORD, Passwords, password_problem
from bastion.security.roles import Role
from bastion.security.totp import ConfirmedTotp
from bastion.security.users import (
    LoginReason,
    LoginResult,
    User,
    UserRecord,
    UsersBody,
    attempt,
    check_name,
    check_strategy,
    sorted_unique,
)
from bastion.vault import redact
from bastion.vault._format import KEY_BYTES
from bastion.vault.files import (
    FILE_MODE,
    ensure_private,
    ensure_safe_parent,
    make_private_dir,
    write_private,
)
from bastion.vault.vault import Vault

__all__ = ["MAX_UID", "UserStore"]

log = structlog.get_logger("bastion.security.store")

MAX_UID: Final = 2**32 - 2
MAX_STORE_BYTES: Final = 16 * 1024 * 1024


class UserStore:
    """The operators in the store at ``path``, sealed with ``key`` (32 bytes).

    ``counts`` tallies the login and step-up outcomes this object has seen, by reason
    (for metrics)."""

    def __init__(
        self,
        path: Path,
        key: bytes,
        *,
        clock: Clock,
        config: UsersConfig | None = None,
        passwords: Passwords | None = None,
    ) -> None:
        self._path = path
        self._key = key
        self._clock = clock
        self._config = config or UsersConfig()
        self._passwords = passwords or Passwords(self._config.password)
        self.counts: Counter[LoginReason] = Counter()
        if len(key) != KEY_BYTES:
            raise ValueError(f"the users key must be {KEY_BYTES} bytes, got {len(key)}")

    @classmethod
    def for_vault(
        cls,
        vault: Vault,
        *,
        clock: Clock,
        config: UsersConfig | None = None,
        passwords: Passwords | None = None,
        create_key: bool = False,
    ) -> UserStore:
        """The store beside ``vault`` (``config.path``), sealed with its ``users/key``.
        ``create_key`` makes that key when the vault has none (adding the first
        operator); otherwise a vault without it is refused (``UsageError``: no
        operators yet), as is one without it while a store file exists."""
        config = config or UsersConfig()
        path = config.resolve(vault.path)
        if USERS_KEY not in vault:
            if path.exists():
                raise UserStoreCorrupt(
                    f"user store {path}: the vault {vault.path} has no {USERS_KEY}: the "
                    "store was sealed with another vault's key"
                )
            if not create_key:
                raise UsageError(
                    f"no operators yet for the vault {vault.path} "
                    "(add the first: bastion users add NAME --role admin)"
                )
            vault.ensure_key(USERS_KEY)
        try:
            key = bytes.fromhex(vault.get(USERS_KEY).reveal())
        except ValueError:
            key = b""
        if len(key) != KEY_BYTES:
            raise UserStoreCorrupt(
                f"the vault {vault.path}'s {USERS_KEY} is not a {KEY_BYTES}-byte key in hex "
                "(it is made by `bastion users add`, never by hand)"
            )
        return cls(path, key, clock=clock, config=config, passwords=passwords)

    def __repr__(self) -> str:
        return f"UserStore({str(self._path)!r})"

    @property
    def path(self) -> Path:
        return self._path

    @property
    def config(self) -> UsersConfig:
        return self._config

    # -- reading ---------------------------------------------------------------------

    def users(self) -> list[User]:
        """Every operator, sorted by name; never a secret."""
        body = self._load()
        return [body.users[name].view() for name in sorted(body.users)]

    def find(self, name: str) -> User | None:
        record = self._load().users.get(name)
        return None if record is None else record.view()

    def get(self, name: str) -> User:
        """The operator ``name``; ``UnknownUser`` if there is none."""
        found = self.find(name)
        if found is None:
            raise UnknownUser(f"no operator {name!r} in {self._path}")
        return found

    def by_uid(self, os_uid: int) -> User | None:
        """The operator mapped to the local account ``os_uid`` (the control socket's
        peer), or None. A disabled operator is returned too: check ``disabled``."""
        for record in self._load().users.values():
            if record.os_uid == os_uid:
                return record.view()
        return None

    # -- administration (each written before it returns) ------------------------------

    def add(
        self,
        name: str,
        password: str,
        *,
        roles: Iterable[Role | str],
        strategies: Iterable[str] = (),
        os_uid: int | None = None,
        totp: ConfirmedTotp | None,
    ) -> User:
        """A new operator. ``totp`` is their confirmed second factor; one without it
        cannot log in (a socket-only operator, mapped by ``os_uid``)."""
        check_name(name)
        _check_password(password, name)
        role_set = _roles(roles)
        strategy_set = _strategies(strategies)
        _check_uid(os_uid)
        hashed = self._passwords.hash(password)
        now = self._clock.timestamp_ns()
        record = UserRecord(
            name=name,
            roles=role_set,
            strategies=strategy_set,
            os_uid=os_uid,
            password_hash=hashed,
            totp_seed=None if totp is None else totp.seed,
            totp_last_step=-1 if totp is None else totp.step,
            created_ns=now,
            changed_ns=now,
        )

        def change(body: UsersBody) -> UserRecord:
            if name in body.users:
                raise UsageError(f"operator {name!r} already exists in {self._path}")
            _refuse_shared_uid(body, name, os_uid)
            return record

        return self._change(name, change, create=True)

    def set_password(self, name: str, password: str) -> User:
        _check_password(password, name)
        hashed = self._passwords.hash(password)
        return self._update(name, password_hash=hashed)

    def set_roles(
        self,
        name: str,
        roles: Iterable[Role | str],
        *,
        strategies: Iterable[str] | None = None,
    ) -> User:
        """Replace the operator's roles (and assigned strategies, when given)."""
        role_set = _roles(roles)
        if strategies is None:
            return self._update(name, roles=role_set)
        return self._update(name, roles=role_set, strategies=_strategies(strategies))

    def set_os_uid(self, name: str, os_uid: int | None) -> User:
        _check_uid(os_uid)

        def change(body: UsersBody) -> UserRecord:
            _refuse_shared_uid(body, name, os_uid)
            return self._replace(body, name, os_uid=os_uid)

        return self._change(name, change)

    def disable(self, name: str) -> User:
        """The operator may no longer log in nor give any command."""
        return self._update(name, disabled=True)

    def enable(self, name: str) -> User:
        """Allowed again; also ends a lockout and clears the failure count."""
        return self._update(name, disabled=False, failed_logins=0, locked_until_ns=0)

    def reset_mfa(self, name: str, totp: ConfirmedTotp) -> User:
        """A new confirmed second factor replaces the old (a lost phone)."""
        return self._update(name, totp_seed=totp.seed, totp_last_step=totp.step)

    # -- logins ----------------------------------------------------------------------

    def verify_login(
        self, name: str, password: str, totp_code: str, *, now_ns: int, source: str
    ) -> LoginResult:
        """Check a console login: password and TOTP code. See ``bastion.security.users``
        for the order of the checks and the lockout; an unknown name costs the same
        Argon2 verification as a known one."""
        return self._verify("login", name, password, totp_code, now_ns=now_ns, source=source)

    def verify_totp(self, name: str, code: str, *, now_ns: int, source: str = "") -> LoginResult:
        """Step-up: a TOTP code alone, from an operator already logged in (before a kill,
        a resume, an override, an arming). Refusals count towards the lockout."""
        return self._verify("step_up", name, None, code, now_ns=now_ns, source=source)

    def _verify(
        self,
        kind: Literal["login", "step_up"],
        name: str,
        password: str | None,
        code: str,
        *,
        now_ns: int,
        source: str,
    ) -> LoginResult:
        with self._locked(create=False):
            body = self._load()
            record = body.users.get(name)
            password_ok: bool | None = None
            needs_rehash = False
            if password is not None:
                usable = len(password) <= MAX_PASSWORD
                stored = record.password_hash if record is not None and usable else None
                checked = self._passwords.verify(stored, password if usable else "")
                password_ok, needs_rehash = checked.ok, checked.needs_rehash
            if record is None:
                return self._outcome(
                    LoginResult(
                        kind=kind,
                        reason=LoginReason.UNKNOWN_USER,
                        name=name,
                        source=source,
                        at_ns=now_ns,
                    )
                )
            reason, updated = attempt(
                record,
                password_ok=password_ok,
                code=code,
                now_ns=now_ns,
                max_failures=self._config.max_failures,
                lockout_ns=self._config.lockout_ns,
            )
            rehashed = reason is LoginReason.OK and needs_rehash and password is not None
            if rehashed and password is not None:
                updated = msgspec.structs.replace(
                    updated, password_hash=self._passwords.hash(password)
                )
            users = dict(body.users)
            users[name] = updated
            self._save(UsersBody(generation=body.generation, users=users))
            return self._outcome(
                LoginResult(
                    kind=kind,
                    reason=reason,
                    name=name,
                    source=source,
                    at_ns=now_ns,
                    user=updated.view(),
                    failures=updated.failed_logins,
                    locked_until_ns=updated.locked_until_ns,
                    locked_out=updated.locked_until_ns > max(now_ns, record.locked_until_ns),
                    rehashed=rehashed,
                )
            )

    def _outcome(self, result: LoginResult) -> LoginResult:
        self.counts[result.reason] += 1
        emit = log.info if result.ok else log.warning
        emit(
            "operator_auth",
            kind=result.kind,
            reason=result.reason.value,
            # a name nobody has may be a password typed in the wrong field: not logged
            operator=None if result.user is None else result.name,
            source=result.source,
            failures=result.failures,
            locked_out=result.locked_out,
        )
        return result

    # -- the file --------------------------------------------------------------------

    def _update(self, name: str, **fields: object) -> User:
        return self._change(name, lambda body: self._replace(body, name, **fields))

    def _replace(self, body: UsersBody, name: str, **fields: object) -> UserRecord:
        record = body.users.get(name)
        if record is None:
            raise UnknownUser(f"no operator {name!r} in {self._path}")
        return msgspec.structs.replace(record, changed_ns=self._clock.timestamp_ns(), **fields)

    def _change(
        self, name: str, change: Callable[[UsersBody], UserRecord], *, create: bool = False
    ) -> User:
        """Under the lock: read the store, make ``name``'s new record, write it."""
        with self._locked(create=create):
            body = self._load()
            record = change(body)
            users = dict(body.users)
            users[name] = record
            self._save(UsersBody(generation=body.generation, users=users))
            return record.view()

    @contextlib.contextmanager
    def _locked(self, *, create: bool) -> Iterator[None]:
        """An exclusive ``flock`` on ``.NAME.lock`` beside the store, for a change."""
        directory = self._path.parent
        if create:
            make_private_dir(directory)
        if directory.is_dir():
            ensure_safe_parent(self._path, "user store")
        lock_path = directory / f".{self._path.name}.lock"
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC
        try:
            fd: int | None = os.open(lock_path, flags, FILE_MODE)
        except FileNotFoundError:
            fd = None  # no directory, so no store: nothing to change or to race with
        except OSError as e:
            raise VaultError(f"user store {self._path}: cannot lock it: {e.strerror}") from None
        if fd is None:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _load(self) -> UsersBody:
        path = self._path
        try:
            ensure_private(path, "user store")
            with path.open("rb") as f:
                data = f.read(MAX_STORE_BYTES + 1)
        except FileNotFoundError:
            return UsersBody()
        except IsADirectoryError:
            raise VaultError(f"user store {path}: is a directory") from None
        except PermissionError as e:
            raise VaultError(f"user store {path}: cannot read it: {e.strerror}") from None
        if len(data) > MAX_STORE_BYTES:
            raise UserStoreCorrupt(f"user store {path} is damaged: over {MAX_STORE_BYTES} bytes")
        try:
            body = _sealed.open_sealed(self._key, data)
        except _sealed.FormatError as e:
            raise UserStoreCorrupt(f"user store {path} is damaged: {e}") from None
        for record in body.users.values():
            redact.register(record.password_hash)
            if record.totp_seed is not None:
                redact.register(record.totp_seed)
        return body

    def _save(self, body: UsersBody) -> None:
        body = UsersBody(generation=body.generation + 1, users=body.users)
        try:
            write_private(self._path, _sealed.seal(self._key, body))
        except OSError as e:
            raise VaultError(
                f"user store {self._path}: cannot write it ({e.strerror or e}); it is unchanged"
            ) from None


def _check_password(password: str, name: str) -> None:
    problem = password_problem(password, name=name)
    if problem is not None:
        raise PasswordRejected(problem)
    redact.register(password)


def _roles(roles: Iterable[Role | str]) -> tuple[Role, ...]:
    found: set[Role] = set()
    for role in roles:
        try:
            found.add(Role(role))
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise UsageError(f"no role {role!r} (roles: {known})") from None
    if not found:
        raise UsageError("an operator needs at least one role")
    return tuple(sorted(found))


def _strategies(strategies: Iterable[str]) -> tuple[str, ...]:
    chosen = sorted_unique(strategies)
    for name in chosen:
        check_strategy(name)
    return chosen


def _check_uid(os_uid: int | None) -> None:
    if os_uid is not None and not 0 <= os_uid <= MAX_UID:
        raise UsageError(f"not a uid: {os_uid}")


def _refuse_shared_uid(body: UsersBody, name: str, os_uid: int | None) -> None:
    if os_uid is None:
        return
    for other in body.users.values():
        if other.os_uid == os_uid and other.name != name:
            raise UsageError(
                f"uid {os_uid} is already mapped to operator {other.name!r}; one local "
                "account is one operator"
            )
