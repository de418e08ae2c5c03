"""Operator passwords: the rule a new one must meet, and Argon2id hashes of them.

``password_problem`` names the rule a password breaks (too short, too long, too few
different characters, the operator's own name, or in a small list of passwords every
guesser tries first). ``Passwords`` hashes and verifies with argon2-cffi's
``PasswordHasher`` at the parameters given (``PASSWORD_PARAMS`` by default: Argon2id,
time cost 3, 64 MiB, parallelism 2, about 0.13 s on the 2-core reference machine), and
says when a stored hash was made with other parameters so that a login rehashes it.
A login for a name that does not exist verifies a dummy hash at the same cost, so the
answer takes about as long either way.
"""

from __future__ import annotations

import os
from typing import Final

import msgspec
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from bastion.vault.vault import KdfParams

__all__ = [
    "COMMON_PASSWORDS",
    "HASH_BYTES",
    "MAX_PASSWORD",
    "MIN_DISTINCT",
    "MIN_PASSWORD",
    "PASSWORD_PARAMS",
    "Passwords",
    "Verified",
    "password_problem",
]

PASSWORD_PARAMS: Final = KdfParams(time_cost=3, memory_kib=64 * 1024, parallelism=2)
"""Argon2id cost of operator password hashes (RFC 9106's second recommendation, with
the parallelism of a 2-core node)."""
HASH_BYTES: Final = 32
SALT_BYTES: Final = 16

MIN_PASSWORD: Final = 12
MAX_PASSWORD: Final = 1024
MIN_DISTINCT: Final = 5

COMMON_PASSWORDS: Final = frozenset(
    {
        "123456789012",
        "1234567890123",
        "12345678901234",
        "123456789abc",
        "1q2w3e4r5t6y",
        "1qaz2wsx3edc",
        "abcdefghijkl",
        "abc123456789",
        "administrator",
        "administrator1",
        "baseball1234",
        "changemenow!",
        "changeme1234",
        "correcthorsebatterystaple",
        "correct horse battery staple",
        "football1234",
        "iloveyou1234",
        "letmein12345",
        "letmeinplease",
        "monkey123456",
        "passw0rd1234",
        "password1234",
        "password12345",
        "password123!",
        "password!234",
        "passwordpassword",
        "p@ssw0rd1234",
        "p@ssword1234",
        "qazwsxedcrfv",
        "qwerty123456",
        "qwertyuiop12",
        "qwertyuiop123",
        "qwertyuiopasdf",
        "superman1234",
        "trustno11234",
        "welcome12345",
        "welcome@1234",
        "zaq12wsxcde3",
        "bastion12345",
        "bastionbastion",
        "trading12345",
        "tradingdesk1",
    }
)
"""Passwords long enough to pass the length rule that guessers try first (compared
without regard to case). Small on purpose: the length and variety rules do most."""


def password_problem(password: str, *, name: str = "") -> str | None:
    """The rule ``password`` breaks, as a sentence naming it, or None if it is fine."""
    if len(password) < MIN_PASSWORD:
        return f"password rule: at least {MIN_PASSWORD} characters (this one has {len(password)})"
    if len(password) > MAX_PASSWORD:
        return f"password rule: at most {MAX_PASSWORD} characters"
    if len(set(password)) < MIN_DISTINCT:
        return f"password rule: at least {MIN_DISTINCT} different characters"
    if password.lower() in COMMON_PASSWORDS:
        return "password rule: not a commonly used password (it is on the list guessers try first)"
    if len(name) >= 3 and name.lower() in password.lower():
        return "password rule: must not contain the operator's name"
    return None


class Verified(msgspec.Struct, frozen=True):
    """A password check: did it match, and should the hash be made again."""

    ok: bool
    needs_rehash: bool = False


class Passwords:
    """Argon2id hashing at fixed parameters."""

    def __init__(self, params: KdfParams = PASSWORD_PARAMS) -> None:
        problem = params.problem()
        if problem is not None:
            raise ValueError(f"password hashing parameters: {problem}")
        self.params = params
        self._hasher = PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            hash_len=HASH_BYTES,
            salt_len=SALT_BYTES,
            type=Type.ID,
        )
        self._dummy: str | None = None

    def __repr__(self) -> str:
        p = self.params
        return f"Passwords(argon2id, t={p.time_cost}, m={p.memory_kib} KiB, p={p.parallelism})"

    def hash(self, password: str) -> str:
        """A new hash (PHC string: parameters, random salt, digest)."""
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> Verified:
        """Check ``password`` against ``stored``; with None (no such operator), against a
        dummy hash at the same cost, and never a match."""
        if stored is None:
            self._verify(self._dummy_hash(), password)
            return Verified(ok=False)
        if not self._verify(stored, password):
            return Verified(ok=False)
        return Verified(ok=True, needs_rehash=self._hasher.check_needs_rehash(stored))

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self._hasher.hash(os.urandom(16).hex())
        return self._dummy
