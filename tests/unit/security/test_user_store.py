"""The operator store: administration, a private encrypted file, tampering refused
without a change, and no secret in anything it returns or shows."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bastion.clock import SimClock
from bastion.errors import (
    InsecureFile,
    PasswordRejected,
    UnknownUser,
    UsageError,
    UserStoreCorrupt,
)
from bastion.security import _sealed
from bastion.security.config import USERS_KEY, UsersConfig
from bastion.security.passwords import Passwords
from bastion.security.roles import Command, Role
from bastion.security.store import UserStore
from bastion.security.users import LoginReason
from bastion.vault import redact
from kit.users import (
    FAST_USERS,
    OTHER_KEY,
    PASSWORD,
    STEP_NS,
    add_operator,
    code,
    enrolled,
    store,
)
from kit.vaults import T0, new_vault


@pytest.fixture(autouse=True)
def _fresh_redaction() -> None:
    redact.forget_all()


def test_when_operators_added_then_listed_sorted_without_secrets(tmp_path: Path) -> None:
    """Names, roles, strategies, uid, flags and dates come back; a User has no field that
    holds the hash or the seed, and its repr shows neither."""
    users = store(tmp_path)
    seed = add_operator(users, "zoe", "trader", "viewer", strategies=("mm", "ema", "mm"))
    add_operator(users, "alice", "admin")
    listed = users.users()
    assert [u.name for u in listed] == ["alice", "zoe"]
    zoe = listed[1]
    assert zoe.roles == (Role.TRADER, Role.VIEWER)
    assert zoe.strategies == ("ema", "mm")
    assert (zoe.os_uid, zoe.disabled, zoe.mfa_enrolled) == (None, False, True)
    assert zoe.created_ns == zoe.changed_ns == T0
    assert not {"password_hash", "totp_seed", "totp_last_step"} & set(zoe.__struct_fields__)
    for shown in (repr(listed), str(zoe), repr(users)):
        assert seed not in shown and "argon2" not in shown and PASSWORD not in shown


def test_when_records_read_then_repr_hides_hash_and_seed(tmp_path: Path) -> None:
    """The stored record's repr (in a traceback, a debugger) shows no secret."""
    users = store(tmp_path)
    seed = add_operator(users, "alice", "admin")
    body = _sealed.open_sealed(users._key, users.path.read_bytes())
    record = body.users["alice"]
    assert record.totp_seed == seed
    assert seed not in repr(record) and record.password_hash not in repr(record)
    assert seed not in repr(body) and "argon2id" not in repr(body)


def test_when_secrets_loaded_then_registered_for_redaction(tmp_path: Path) -> None:
    """Each hash and seed the store reads is masked from logs from then on."""
    users = store(tmp_path)
    seed = add_operator(users, "alice", "admin")
    redact.forget_all()
    users.users()
    assert redact.redact(f"seed {seed}") == f"seed {redact.MASK}"


def test_when_file_written_then_private_and_encrypted(tmp_path: Path) -> None:
    """The file is 0600 and holds no name, role, strategy, hash, seed or password, in
    plain, hex or base32 form; no temporary file is left beside it."""
    users = store(tmp_path)
    seed = add_operator(users, "alice", "trader", strategies=("ema_cross",))
    data = users.path.read_bytes()
    assert users.path.stat().st_mode & 0o777 == 0o600
    record = _sealed.open_sealed(users._key, data).users["alice"]
    for secret in ("alice", "trader", "ema_cross", PASSWORD, seed, record.password_hash):
        for form in (secret.encode(), secret.encode().hex().encode()):
            assert form not in data, secret
    assert b"argon2" not in data
    assert sorted(p.name for p in tmp_path.iterdir()) == [".users.bastion.lock", "users.bastion"]
    assert (tmp_path / ".users.bastion.lock").stat().st_mode & 0o777 == 0o600


def test_when_file_readable_by_others_then_refused_naming_the_fix(tmp_path: Path) -> None:
    """A 0644 store is refused (naming `chmod 600`), as the vault is."""
    users = store(tmp_path)
    add_operator(users, "alice", "admin")
    users.path.chmod(0o644)
    with pytest.raises(InsecureFile, match="chmod 600"):
        users.users()


def _tampered(data: bytes) -> list[tuple[str, bytes]]:
    header_end = data.index(b"}") + 1
    return [
        ("magic", b"X" + data[1:]),
        ("length", data[:14] + b"\xff" + data[15:]),
        ("header", data[:20] + bytes([data[20] ^ 1]) + data[21:]),
        (
            "key id",
            data[: header_end - 3] + bytes([data[header_end - 3] ^ 1]) + data[header_end - 2 :],
        ),
        ("nonce", data[:header_end] + bytes([data[header_end] ^ 1]) + data[header_end + 1 :]),
        ("body", data[:-20] + bytes([data[-20] ^ 0x80]) + data[-19:]),
        ("tag", data[:-1] + bytes([data[-1] ^ 1])),
        ("truncated", data[:-1]),
        ("cut to header", data[:header_end]),
        ("empty", b""),
        ("appended", data + b"\0"),
    ]


@pytest.mark.parametrize("case", range(11))
def test_when_file_tampered_then_clear_error_and_nothing_changes(tmp_path: Path, case: int) -> None:
    """A flipped byte in any part, a cut or an extended file: every read, change and
    login is refused with UserStoreCorrupt, and the file keeps its (damaged) bytes."""
    users = store(tmp_path)
    seed = add_operator(users, "alice", "admin")
    what, damaged = _tampered(users.path.read_bytes())[case]
    users.path.write_bytes(damaged)
    attempts = (
        users.users,
        lambda: users.disable("alice"),
        lambda: add_operator(users, "bob", "viewer"),
        lambda: users.verify_login(
            "alice", PASSWORD, code(seed, T0 + STEP_NS), now_ns=T0 + STEP_NS, source="t"
        ),
    )
    for attempt in attempts:
        with pytest.raises(UserStoreCorrupt, match=r"user store .*users\.bastion is damaged") as e:
            attempt()
        assert seed not in str(e.value), what
    assert users.path.read_bytes() == damaged, what


def test_when_file_from_another_vault_then_refused_saying_so(tmp_path: Path) -> None:
    """A store sealed with another key (another desk's users/key) is refused as such,
    not as mere damage; this desk's file is not overwritten by a change."""
    other = store(tmp_path / "other", key=OTHER_KEY)
    add_operator(other, "mallory", "admin")
    mine = store(tmp_path / "mine")
    add_operator(mine, "alice", "admin")
    foreign = other.path.read_bytes()
    mine.path.write_bytes(foreign)
    with pytest.raises(UserStoreCorrupt, match="another vault's users/key"):
        mine.find("mallory")
    with pytest.raises(UserStoreCorrupt):
        mine.enable("mallory")
    assert mine.path.read_bytes() == foreign


def test_when_store_swapped_between_desks_then_each_vault_refuses_the_other(
    tmp_path: Path,
) -> None:
    """Two desks' vaults, each with its own users/key: a users.bastion copied from one
    desk to the other is refused as sealed with another vault's key."""
    clock = SimClock(T0)
    stores = []
    for desk in ("a", "b"):
        vault = new_vault(tmp_path / desk / "vault.bastion")
        users = UserStore.for_vault(vault, clock=clock, config=FAST_USERS, create_key=True)
        add_operator(users, f"op-{desk}", "admin")
        stores.append(users)
    a, b = stores
    b.path.write_bytes(a.path.read_bytes())
    with pytest.raises(UserStoreCorrupt, match="another vault's users/key"):
        b.users()


def test_when_administered_then_each_change_is_stored_and_dated(tmp_path: Path) -> None:
    """set_roles, set_os_uid, disable/enable, set_password, reset_mfa: each written,
    changed_ns moves, created_ns stays; another store object sees them."""
    clock = SimClock(T0)
    users = store(tmp_path, clock=clock)
    add_operator(users, "bob", "viewer")
    clock.set_time(T0 + 5)
    users.set_roles("bob", ["trader"], strategies=["ema"])
    users.set_os_uid("bob", 1001)
    users.disable("bob")
    again = store(tmp_path, clock=clock)
    bob = again.get("bob")
    assert (bob.roles, bob.strategies, bob.os_uid, bob.disabled) == (
        (Role.TRADER,),
        ("ema",),
        1001,
        True,
    )
    assert (bob.created_ns, bob.changed_ns) == (T0, T0 + 5)
    assert not bob.may(Command.READ)  # disabled: nothing
    assert again.enable("bob").may(Command.STRATEGY_STOP, strategy="ema")
    assert again.by_uid(1001) == again.get("bob")
    assert again.by_uid(1002) is None
    assert again.set_roles("bob", ["viewer"]).strategies == ("ema",)  # kept unless given


def test_when_password_changed_then_only_the_new_one_logs_in(tmp_path: Path) -> None:
    """set_password: the old password is refused, the new accepted."""
    users = store(tmp_path)
    seed = add_operator(users, "bob", "viewer")
    users.set_password("bob", "a-new-and-long-passphrase")
    at = T0 + STEP_NS
    old = users.verify_login("bob", PASSWORD, code(seed, at), now_ns=at, source="t")
    assert old.reason is LoginReason.BAD_PASSWORD
    at += STEP_NS
    new = users.verify_login(
        "bob", "a-new-and-long-passphrase", code(seed, at), now_ns=at, source="t"
    )
    assert new.ok


def test_when_mfa_reset_then_only_the_new_seed_works(tmp_path: Path) -> None:
    """reset_mfa replaces the seed; the confirming code's step cannot be replayed."""
    users = store(tmp_path)
    old_seed = add_operator(users, "bob", "viewer")
    at = T0 + 2 * STEP_NS
    new_seed, confirmed = enrolled("bob", at)
    users.reset_mfa("bob", confirmed)
    replay = users.verify_login("bob", PASSWORD, code(new_seed, at), now_ns=at, source="t")
    assert replay.reason is LoginReason.TOTP_REPLAYED
    at += STEP_NS
    stale = users.verify_login("bob", PASSWORD, code(old_seed, at), now_ns=at, source="t")
    assert stale.reason is LoginReason.BAD_TOTP
    assert users.verify_login("bob", PASSWORD, code(new_seed, at), now_ns=at, source="t").ok


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda s: add_operator(s, "alice", "admin"), UsageError, "already exists"),
        (lambda s: add_operator(s, "Bob", "admin"), UsageError, "not a valid operator name"),
        (lambda s: add_operator(s, "bob", "root"), UsageError, "no role 'root'"),
        (lambda s: s.add("bob", PASSWORD, roles=[], totp=None), UsageError, "at least one role"),
        (
            lambda s: s.add("bob", "short", roles=["viewer"], totp=None),
            PasswordRejected,
            "at least 12",
        ),
        (
            lambda s: s.add("bob", "bob-is-my-password", roles=["viewer"], totp=None),
            PasswordRejected,
            "name",
        ),
        (
            lambda s: add_operator(s, "bob", "trader", strategies=("a b",)),
            UsageError,
            "strategy name",
        ),
        (lambda s: s.set_os_uid("alice", -1), UsageError, "not a uid"),
        (lambda s: s.disable("nobody"), UnknownUser, "no operator 'nobody'"),
        (lambda s: s.get("nobody"), UnknownUser, "no operator 'nobody'"),
    ],
)
def test_when_change_is_invalid_then_refused_and_store_unchanged(
    tmp_path: Path, change: object, error: type[Exception], message: str
) -> None:
    """Each bad administration names its problem; the file keeps its bytes."""
    users = store(tmp_path)
    add_operator(users, "alice", "admin")
    before = users.path.read_bytes()
    with pytest.raises(error, match=message):
        change(users)  # type: ignore[operator]
    assert users.path.read_bytes() == before


def test_when_uid_already_mapped_then_refused(tmp_path: Path) -> None:
    """One local account is one operator: a second mapping of a uid is refused."""
    users = store(tmp_path)
    _, confirmed = enrolled("alice")
    users.add("alice", PASSWORD, roles=["admin"], os_uid=1000, totp=confirmed)
    add_operator(users, "bob", "viewer")
    with pytest.raises(UsageError, match="uid 1000 is already mapped to operator 'alice'"):
        users.set_os_uid("bob", 1000)
    users.set_os_uid("alice", 1000)  # re-stating one's own uid is fine


def test_when_store_opened_through_vault_then_key_made_once_and_kept(tmp_path: Path) -> None:
    """for_vault: users.bastion beside the vault, its key the vault's users/key, made
    only when asked; a vault without the key while a store exists is refused."""
    vault = new_vault(tmp_path / "desk" / "vault.bastion")
    clock = SimClock(T0)
    with pytest.raises(UsageError, match="no operators yet"):
        UserStore.for_vault(vault, clock=clock)
    users = UserStore.for_vault(vault, clock=clock, config=FAST_USERS, create_key=True)
    assert users.path == tmp_path / "desk" / "users.bastion"
    assert USERS_KEY in vault and len(bytes.fromhex(vault.get(USERS_KEY).reveal())) == 32
    add_operator(users, "alice", "admin")
    again = UserStore.for_vault(vault, clock=clock, config=FAST_USERS, create_key=True)
    assert again.get("alice").name == "alice"
    vault.remove(USERS_KEY)
    with pytest.raises(UserStoreCorrupt, match="has no users/key"):
        UserStore.for_vault(vault, clock=clock, create_key=True)


def test_when_vault_key_is_not_a_key_then_refused(tmp_path: Path) -> None:
    """A users/key set by hand to something that is not 32 bytes of hex: refused."""
    for value in ("not hex at all", "ab" * 16):
        vault = new_vault(tmp_path / value[:3] / "vault.bastion", users__key=value)
        with pytest.raises(UserStoreCorrupt, match="not a 32-byte key"):
            UserStore.for_vault(vault, clock=SimClock(T0))


def test_when_config_names_another_path_then_store_lives_there(tmp_path: Path) -> None:
    """UsersConfig.path is relative to the vault's directory."""
    vault = new_vault(tmp_path / "vault.bastion")
    config = UsersConfig(path="ops/people.bastion", password=FAST_USERS.password)
    users = UserStore.for_vault(vault, clock=SimClock(T0), config=config, create_key=True)
    add_operator(users, "alice", "admin")
    assert (tmp_path / "ops" / "people.bastion").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "ops").stat().st_mode & 0o777 == 0o700


def test_when_no_file_yet_then_empty_and_logins_refused(tmp_path: Path) -> None:
    """A store never written has no operators: lists are empty, a login is refused as
    an unknown user, nothing is created by reading."""
    users = store(tmp_path / "none")
    assert users.users() == [] and users.find("alice") is None and users.by_uid(0) is None
    result = users.verify_login("alice", PASSWORD, "123456", now_ns=T0, source="t")
    assert result.reason is LoginReason.UNKNOWN_USER
    assert not (tmp_path / "none").exists()


def test_when_two_processes_change_concurrently_then_no_change_is_lost(tmp_path: Path) -> None:
    """Two store objects (as the CLI and a console would be) failing logins from four
    threads at once: every failure is counted (each change re-reads under the lock)."""
    users = store(tmp_path, config=UsersConfig(password=FAST_USERS.password, max_failures=100))
    add_operator(users, "alice", "admin")
    stores = [users, store(tmp_path, config=users.config)]
    per_thread = 10

    def fail(s: UserStore) -> None:
        for _ in range(per_thread):
            s.verify_login("alice", "wrong-password-here", "000000", now_ns=T0, source="t")

    threads = [threading.Thread(target=fail, args=(stores[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert users.get("alice").failed_logins == 4 * per_thread


def test_when_passwords_given_then_used_for_hashing(tmp_path: Path) -> None:
    """A store built with Passwords at given params hashes at those params."""
    users = UserStore(
        tmp_path / "users.bastion",
        bytes(32),
        clock=SimClock(T0),
        passwords=Passwords(FAST_USERS.password),
    )
    add_operator(users, "alice", "admin")
    record = _sealed.open_sealed(bytes(32), users.path.read_bytes()).users["alice"]
    assert record.password_hash.startswith("$argon2id$v=19$m=64,t=1,p=1$")


def test_when_key_has_wrong_length_then_refused(tmp_path: Path) -> None:
    """A store key is 32 bytes."""
    with pytest.raises(ValueError, match="32 bytes"):
        UserStore(tmp_path / "u", b"short", clock=SimClock(T0))
