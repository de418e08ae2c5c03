"""Logins and step-ups: each refusal has its reason and is counted, lockouts start at
the limit and end on time, and what a remote client is told never tells a name apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.clock import SimClock
from bastion.security.config import UsersConfig
from bastion.security.passwords import Passwords, Verified
from bastion.security.store import UserStore
from bastion.security.users import PUBLIC_REFUSAL, LoginReason, LoginResult
from bastion.vault.vault import KdfParams
from kit.users import FAST_USERS, PASSWORD, STEP_NS, add_operator, code, store
from kit.vaults import T0

LOCKOUT_NS = FAST_USERS.lockout_ns
MAX = FAST_USERS.max_failures


class CountingPasswords(Passwords):
    """Passwords that count verifications, and those against the dummy hash."""

    def __init__(self, params: KdfParams) -> None:
        super().__init__(params)
        self.verified = 0
        self.dummies = 0

    def verify(self, stored: str | None, password: str) -> Verified:
        self.verified += 1
        self.dummies += stored is None
        return super().verify(stored, password)


@pytest.fixture
def users(tmp_path: Path) -> UserStore:
    return store(tmp_path)


@pytest.fixture
def seed(users: UserStore) -> str:
    return add_operator(users, "alice", "risk_officer")


def _login(
    users: UserStore,
    seed: str,
    at: int,
    *,
    name: str = "alice",
    password: str = PASSWORD,
    steps: int = 0,
) -> LoginResult:
    return users.verify_login(
        name, password, code(seed, at, steps=steps), now_ns=at, source="10.0.0.7"
    )


def test_when_password_and_code_right_then_signed_in(users: UserStore, seed: str) -> None:
    """A success: reason OK, the operator's view, login time kept, the count cleared."""
    at = T0 + STEP_NS
    result = _login(users, seed, at)
    assert result.ok and result.reason is LoginReason.OK and result.message == "signed in"
    assert result.kind == "login" and result.source == "10.0.0.7" and result.at_ns == at
    assert result.user is not None and result.user.last_login_ns == at
    assert result.failures == 0 and not result.locked_out
    assert users.counts == {LoginReason.OK: 1}


@pytest.mark.parametrize(
    ("password", "steps", "reason"),
    [
        ("not-the-password!", 0, LoginReason.BAD_PASSWORD),
        (PASSWORD, 2, LoginReason.BAD_TOTP),
        (PASSWORD, -2, LoginReason.TOTP_EXPIRED),
    ],
)
def test_when_password_or_code_wrong_then_refused_with_reason_and_counted(
    users: UserStore, seed: str, password: str, steps: int, reason: LoginReason
) -> None:
    """A wrong password, a code from the wrong step or an expired one: refused, with
    its reason, counted on the operator and in the store's tally."""
    at = T0 + 10 * STEP_NS
    result = _login(users, seed, at, password=password, steps=steps)
    assert result.reason is reason and not result.ok
    assert result.message == PUBLIC_REFUSAL
    assert result.failures == 1 and users.get("alice").failed_logins == 1
    assert users.counts == {reason: 1}


def test_when_code_replayed_then_refused_even_within_its_step(users: UserStore, seed: str) -> None:
    """The same code twice in one step: the second is refused as a replay; so is the
    enrolment's own code (its step counts as used)."""
    assert _login(users, seed, T0).reason is LoginReason.TOTP_REPLAYED  # enrolled at T0
    at = T0 + STEP_NS
    assert _login(users, seed, at).ok
    again = _login(users, seed, at + 1)
    assert again.reason is LoginReason.TOTP_REPLAYED and again.failures == 1
    assert _login(users, seed, at + STEP_NS).ok


def test_when_wrong_password_with_right_code_then_code_not_consumed(
    users: UserStore, seed: str
) -> None:
    """The code is checked only after the password: a wrong password does not use up
    the step (and tells nothing about the code)."""
    at = T0 + STEP_NS
    assert _login(users, seed, at, password="wrong-password-x").reason is LoginReason.BAD_PASSWORD
    assert _login(users, seed, at).ok


def test_when_disabled_then_refused_even_with_everything_right(users: UserStore, seed: str) -> None:
    """A disabled operator: refused as disabled, counted; the same public message."""
    users.disable("alice")
    result = _login(users, seed, T0 + STEP_NS)
    assert result.reason is LoginReason.DISABLED and result.failures == 1
    assert result.message == PUBLIC_REFUSAL


def test_when_failures_reach_the_limit_then_locked_out(users: UserStore, seed: str) -> None:
    """MAX-1 failures: not locked; the MAX-th locks for lockout_s; then even the right
    password and code are refused as locked (counted, the lockout not extended)."""
    at = T0 + STEP_NS
    for n in range(1, MAX):
        result = _login(users, seed, at, password="wrong-password-x")
        assert (result.failures, result.locked_out) == (n, False)
    last = _login(users, seed, at, password="wrong-password-x")
    assert last.locked_out and last.locked_until_ns == at + LOCKOUT_NS
    assert users.get("alice").locked(at)
    later = at + LOCKOUT_NS - 1
    locked = _login(users, seed, later)
    assert locked.reason is LoginReason.LOCKED and not locked.locked_out
    assert locked.locked_until_ns == at + LOCKOUT_NS and locked.failures == MAX + 1


def test_when_lockout_passes_then_login_works_and_count_clears(users: UserStore, seed: str) -> None:
    """At locked_until_ns exactly the lockout is over: the right login succeeds."""
    at = T0 + STEP_NS
    for _ in range(MAX):
        _login(users, seed, at, password="wrong-password-x")
    end = at + LOCKOUT_NS
    assert not users.get("alice").locked(end)
    result = _login(users, seed, end)
    assert result.ok and result.failures == 0 and result.locked_until_ns == 0


def test_when_failing_again_after_lockout_then_locked_again_at_once(
    users: UserStore, seed: str
) -> None:
    """After a lockout ends, one more failure (before any success) locks again."""
    at = T0 + STEP_NS
    for _ in range(MAX):
        _login(users, seed, at, password="wrong-password-x")
    end = at + LOCKOUT_NS
    again = _login(users, seed, end, password="wrong-password-x")
    assert again.locked_out and again.locked_until_ns == end + LOCKOUT_NS


def test_when_admin_enables_then_lockout_ends(users: UserStore, seed: str) -> None:
    """enable() ends a lockout and clears the count at once."""
    at = T0 + STEP_NS
    for _ in range(MAX):
        _login(users, seed, at, password="wrong-password-x")
    assert users.enable("alice").failed_logins == 0
    assert _login(users, seed, at).ok


def test_when_name_unknown_then_dummy_hash_checked_and_same_message(tmp_path: Path) -> None:
    """An unknown name costs one Argon2 verification like a known one, is not stored,
    and is told the same public message as a wrong password."""
    passwords = CountingPasswords(FAST_USERS.password)
    users = UserStore(
        tmp_path / "users.bastion",
        bytes(32),
        clock=SimClock(T0),
        config=FAST_USERS,
        passwords=passwords,
    )
    seed = add_operator(users, "alice", "viewer")
    before = users.path.read_bytes()
    unknown = _login(users, seed, T0 + STEP_NS, name="mallory")
    assert (passwords.verified, passwords.dummies) == (1, 1)
    assert unknown.reason is LoginReason.UNKNOWN_USER and unknown.user is None
    assert users.path.read_bytes() == before  # nothing to count on
    wrong = _login(users, seed, T0 + STEP_NS, password="wrong-password-x")
    assert passwords.verified == 2 and passwords.dummies == 1
    assert unknown.message == wrong.message == PUBLIC_REFUSAL


def test_when_overlong_password_then_refused_after_the_same_work(tmp_path: Path) -> None:
    """A password over the maximum length is refused as wrong, after a dummy check."""
    passwords = CountingPasswords(FAST_USERS.password)
    users = UserStore(
        tmp_path / "users.bastion",
        bytes(32),
        clock=SimClock(T0),
        config=FAST_USERS,
        passwords=passwords,
    )
    seed = add_operator(users, "alice", "viewer")
    result = _login(users, seed, T0 + STEP_NS, password="x" * 5000)
    assert result.reason is LoginReason.BAD_PASSWORD and passwords.dummies == 1


def test_when_operator_has_no_totp_then_login_refused(users: UserStore) -> None:
    """An operator without a confirmed second factor cannot log in, even with the
    right password (and an empty code)."""
    users.add("sock", PASSWORD, roles=["viewer"], os_uid=1234, totp=None)
    result = users.verify_login("sock", PASSWORD, "", now_ns=T0, source="t")
    assert result.reason is LoginReason.MFA_NOT_ENROLLED
    assert not users.get("sock").mfa_enrolled


def test_when_hash_parameters_changed_then_rehashed_on_login(
    tmp_path: Path, seed: str, users: UserStore
) -> None:
    """A store configured with a higher cost rehashes an old hash at the first good
    login (and only then: not on a refusal, not twice)."""
    stronger = UsersConfig(password=KdfParams(time_cost=2, memory_kib=128, parallelism=1))
    upgraded = store(tmp_path, config=stronger)
    at = T0 + STEP_NS
    refused = _login(upgraded, seed, at, steps=5)
    assert not refused.rehashed
    first = _login(upgraded, seed, at)
    assert first.ok and first.rehashed
    second = _login(upgraded, seed, at + STEP_NS)
    assert second.ok and not second.rehashed
    assert _login(users, seed, at + 2 * STEP_NS).ok  # the new hash still verifies


def test_when_step_up_then_code_alone_checked_with_the_same_rules(
    users: UserStore, seed: str
) -> None:
    """verify_totp: a good code passes (kind step_up), a replay, a wrong code and a
    disabled operator are refused and counted towards the lockout."""
    at = T0 + STEP_NS
    assert _login(users, seed, at).ok
    replay = users.verify_totp("alice", code(seed, at), now_ns=at, source="s")
    assert replay.kind == "step_up" and replay.reason is LoginReason.TOTP_REPLAYED
    ok = users.verify_totp("alice", code(seed, at + STEP_NS), now_ns=at + STEP_NS)
    assert ok.ok and ok.user is not None and ok.user.last_login_ns == at
    for _ in range(MAX):
        users.verify_totp("alice", "000000", now_ns=at + STEP_NS)
    locked = users.verify_totp("alice", code(seed, at + 2 * STEP_NS), now_ns=at + 2 * STEP_NS)
    assert locked.reason is LoginReason.LOCKED
    assert users.verify_totp("nobody", "123456", now_ns=at).reason is LoginReason.UNKNOWN_USER


def test_when_every_refusal_compared_then_public_message_is_the_same(
    users: UserStore, seed: str
) -> None:
    """Unknown, disabled, locked, wrong password, wrong/replayed/expired code: one
    message; the reasons differ."""
    at = T0 + 20 * STEP_NS
    results = [
        _login(users, seed, at, name="nobody"),
        _login(users, seed, at, password="wrong-password-x"),
        _login(users, seed, at, steps=2),
    ]
    assert _login(users, seed, at).ok  # clears the count before the lockout
    results += [_login(users, seed, at), _login(users, seed, at, steps=-3)]
    users.disable("alice")
    results.append(_login(users, seed, at))
    users.enable("alice")
    for _ in range(MAX):
        _login(users, seed, at, password="wrong-password-x")
    results.append(_login(users, seed, at + STEP_NS))
    assert [r.reason for r in results] == [
        LoginReason.UNKNOWN_USER,
        LoginReason.BAD_PASSWORD,
        LoginReason.BAD_TOTP,
        LoginReason.TOTP_REPLAYED,
        LoginReason.TOTP_EXPIRED,
        LoginReason.DISABLED,
        LoginReason.LOCKED,
    ]
    assert {r.message for r in results} == {PUBLIC_REFUSAL}
