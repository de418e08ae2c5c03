"""Operator passwords: the rule (each part at and one past its limit) and Argon2id
hashes at the stated parameters."""

from __future__ import annotations

import pytest

from bastion.security.passwords import (
    COMMON_PASSWORDS,
    MAX_PASSWORD,
    MIN_PASSWORD,
    PASSWORD_PARAMS,
    Passwords,
    password_problem,
)
from bastion.vault.vault import KdfParams
from kit.users import FAST_PASSWORD_PARAMS, PASSWORD


def test_when_default_params_hash_then_argon2id_at_the_stated_cost() -> None:
    """The default hash is Argon2id v19, 64 MiB, time cost 3, parallelism 2, a 16-byte
    salt and a 32-byte digest (PHC string), and it verifies."""
    assert KdfParams(time_cost=3, memory_kib=65536, parallelism=2) == PASSWORD_PARAMS
    passwords = Passwords()
    hashed = passwords.hash(PASSWORD)
    _, kind, version, params, salt, digest = hashed.split("$")
    assert (kind, version, params) == ("argon2id", "v=19", "m=65536,t=3,p=2")
    assert len(salt) == 22 and len(digest) == 43  # 16 and 32 bytes, base64 unpadded
    assert passwords.verify(hashed, PASSWORD).ok
    assert PASSWORD not in hashed and PASSWORD not in repr(passwords)


def test_when_same_password_hashed_twice_then_salts_differ() -> None:
    """A fresh random salt per hash: equal passwords do not show as equal hashes."""
    passwords = Passwords(FAST_PASSWORD_PARAMS)
    assert passwords.hash(PASSWORD) != passwords.hash(PASSWORD)


def test_when_password_wrong_or_hash_unreadable_then_no_match() -> None:
    """A wrong password, an empty one, and a garbled stored hash all fail, quietly."""
    passwords = Passwords(FAST_PASSWORD_PARAMS)
    hashed = passwords.hash(PASSWORD)
    assert not passwords.verify(hashed, PASSWORD + "x").ok
    assert not passwords.verify(hashed, "").ok
    assert not passwords.verify("not a hash", PASSWORD).ok


def test_when_no_stored_hash_then_dummy_verified_and_never_a_match() -> None:
    """An unknown operator: a dummy hash is checked (the same work), never a match."""
    passwords = Passwords(FAST_PASSWORD_PARAMS)
    assert passwords.verify(None, PASSWORD) == passwords.verify(None, "")
    assert not passwords.verify(None, PASSWORD).ok


def test_when_params_change_then_old_hash_still_verifies_and_needs_rehash() -> None:
    """A hash made at another cost verifies and asks to be made again; one at the
    current cost does not."""
    old = Passwords(FAST_PASSWORD_PARAMS).hash(PASSWORD)
    newer = Passwords(KdfParams(time_cost=2, memory_kib=64, parallelism=1))
    checked = newer.verify(old, PASSWORD)
    assert checked.ok and checked.needs_rehash
    assert not newer.verify(newer.hash(PASSWORD), PASSWORD).needs_rehash


def test_when_params_out_of_bounds_then_refused() -> None:
    """Parameters the vault's bounds refuse are refused for passwords too."""
    with pytest.raises(ValueError, match="time cost"):
        Passwords(KdfParams(time_cost=0, memory_kib=64, parallelism=1))


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("Ab3$efgh9jk", f"at least {MIN_PASSWORD} characters"),
        ("abababababababab", "at least 5 different characters"),
        ("Password1234", "not a commonly used password"),
        ("QWERTY123456", "not a commonly used password"),
        ("my-name-is-alice!", "must not contain the operator's name"),
        ("a" + "bcdef" * (MAX_PASSWORD // 5 + 1), f"at most {MAX_PASSWORD} characters"),
        ("", f"at least {MIN_PASSWORD} characters"),
    ],
)
def test_when_password_breaks_a_rule_then_the_rule_is_named(password: str, rule: str) -> None:
    """Each rule refuses with a message that names it (and never repeats the password)."""
    problem = password_problem(password, name="alice")
    assert problem is not None and rule in problem
    assert problem.startswith("password rule:")
    if password:
        assert password not in problem


def test_when_password_at_the_limits_then_accepted() -> None:
    """Exactly MIN_PASSWORD and MAX_PASSWORD characters, 5 different ones: accepted; one
    fewer (or more) refused."""
    at_min = "abcde" + "x" * (MIN_PASSWORD - 5)
    assert password_problem(at_min) is None
    assert password_problem(at_min[:-1]) is not None
    at_max = "abcde" + "x" * (MAX_PASSWORD - 5)
    assert password_problem(at_max) is None
    assert password_problem(at_max + "x") is not None
    assert password_problem("aaaabbbbcccdd") is not None  # 4 different
    assert password_problem("aaaabbbbcccde") is None  # 5 different


def test_when_common_list_read_then_every_entry_would_pass_the_length_rule() -> None:
    """The list holds only what the length and variety rules let through (the others
    could never be reached)."""
    for common in COMMON_PASSWORDS:
        assert len(common) >= MIN_PASSWORD, common
        assert common == common.lower(), common
