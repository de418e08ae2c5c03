"""The TOTP second factor (RFC 6238, as authenticator apps use it): 6 digits, 30 s
steps, HMAC-SHA1 over a 160-bit seed (pyotp computes the codes).

Enrolment is two steps, so that no seed is stored before the operator's app has shown
it works: ``Enrolment.new`` makes a seed and its ``otpauth://`` URI (to show once, as
a QR code), and ``confirm`` turns it into a ``ConfirmedTotp`` only when a code from the
app matches. The user store takes only a ``ConfirmedTotp``.

``check`` accepts a code from the current step or one step either side (clock drift),
and refuses a code of a step at or before the last one used (``last_step``): a code
seen by someone else cannot be replayed, even within its 90 s. A code from an older
step is told apart (``EXPIRED``: the phone's clock is probably wrong), though it is
refused the same.
"""

from __future__ import annotations

import base64
import hmac
import os
from enum import StrEnum
from typing import Final

import pyotp

__all__ = [
    "DIGITS",
    "LOOKBACK_STEPS",
    "STEP_S",
    "WINDOW_STEPS",
    "ConfirmedTotp",
    "Enrolment",
    "TotpCheck",
    "check",
    "code_at",
    "confirm",
    "new_seed",
    "step_at",
]

DIGITS: Final = 6
STEP_S: Final = 30
WINDOW_STEPS: Final = 1
"""Steps accepted either side of the current one."""
LOOKBACK_STEPS: Final = 10
"""How far back a matching code is reported as ``EXPIRED`` rather than ``WRONG``."""
SEED_BYTES: Final = 20  # 160 bits, RFC 4226's recommendation; 32 base32 characters
_NS: Final = 1_000_000_000


class TotpCheck(StrEnum):
    OK = "ok"
    WRONG = "wrong"
    REPLAYED = "replayed"
    EXPIRED = "expired"


def new_seed() -> str:
    """A random seed, base32 (as authenticator apps take it)."""
    return base64.b32encode(os.urandom(SEED_BYTES)).decode()


def step_at(now_ns: int) -> int:
    """The TOTP step (counter) at ``now_ns``."""
    return now_ns // (STEP_S * _NS)


def code_at(seed: str, step: int) -> str:
    """The code for ``step`` (tests, and a client's side)."""
    return pyotp.TOTP(seed, digits=DIGITS, interval=STEP_S).generate_otp(step)


def _normalised(code: str) -> str | None:
    code = code.replace(" ", "")
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    return code


def _matching_step(seed: str, code: str, steps: range) -> int | None:
    """The latest step in ``steps`` whose code is ``code``; every step is compared (in
    constant time) whatever matched before."""
    found = None
    for step in steps:
        if step >= 0 and hmac.compare_digest(code_at(seed, step), code):
            found = step
    return found


def check(seed: str, code: str, now_ns: int, *, last_step: int) -> tuple[TotpCheck, int | None]:
    """Is ``code`` good now? ``(OK, step)`` when it is, with the step to remember as
    ``last_step``; otherwise the reason and None."""
    given = _normalised(code)
    if given is None:
        return TotpCheck.WRONG, None
    now = step_at(now_ns)
    step = _matching_step(seed, given, range(now - WINDOW_STEPS, now + WINDOW_STEPS + 1))
    if step is not None:
        if step <= last_step:
            return TotpCheck.REPLAYED, None
        return TotpCheck.OK, step
    old = range(now - WINDOW_STEPS - LOOKBACK_STEPS, now - WINDOW_STEPS)
    if _matching_step(seed, given, old) is not None:
        return TotpCheck.EXPIRED, None
    return TotpCheck.WRONG, None


class Enrolment:
    """A new seed for ``name``, not yet confirmed. ``uri`` is shown once (as a QR
    code); ``repr`` shows neither."""

    __slots__ = ("_seed", "issuer", "name")

    def __init__(self, name: str, seed: str, *, issuer: str) -> None:
        self.name = name
        self.issuer = issuer
        self._seed = seed

    @classmethod
    def new(cls, name: str, *, issuer: str = "bastion") -> Enrolment:
        return cls(name, new_seed(), issuer=issuer)

    @property
    def seed(self) -> str:
        return self._seed

    @property
    def uri(self) -> str:
        """``otpauth://totp/ISSUER:NAME?secret=...``: what the QR code holds."""
        return pyotp.TOTP(self._seed, digits=DIGITS, interval=STEP_S).provisioning_uri(
            name=self.name, issuer_name=self.issuer
        )

    def __repr__(self) -> str:
        return f"Enrolment({self.name!r}, seed='***')"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("an Enrolment is not pickled")


class ConfirmedTotp:
    """A seed whose code an operator's app produced (``confirm``), and the step of that
    code (used: a login cannot reuse it)."""

    __slots__ = ("_seed", "step")

    def __init__(self, seed: str, step: int) -> None:
        self._seed = seed
        self.step = step

    @property
    def seed(self) -> str:
        return self._seed

    def __repr__(self) -> str:
        return f"ConfirmedTotp(seed='***', step={self.step})"

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a ConfirmedTotp is not pickled")


def confirm(enrolment: Enrolment, code: str, now_ns: int) -> ConfirmedTotp | None:
    """The enrolment confirmed, if ``code`` is its code now (±1 step); else None."""
    result, step = check(enrolment.seed, code, now_ns, last_step=-1)
    if result is not TotpCheck.OK or step is None:
        return None
    return ConfirmedTotp(enrolment.seed, step)
