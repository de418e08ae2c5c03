"""The TOTP factor: ±1 step accepted, replays and older codes refused, enrolment only
confirmed by a matching code, and no seed in a repr."""

from __future__ import annotations

import base64
import pickle
from urllib.parse import parse_qs, urlparse

import pytest

from bastion.security.totp import (
    DIGITS,
    LOOKBACK_STEPS,
    ConfirmedTotp,
    Enrolment,
    TotpCheck,
    check,
    code_at,
    confirm,
    new_seed,
    step_at,
)
from kit.users import STEP_NS, code
from kit.vaults import T0

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = T0 + 7 * STEP_NS + 12_000_000_000  # 12 s into a step


def test_when_rfc6238_vector_then_codes_match() -> None:
    """RFC 6238's SHA-1 test vector (T = 59 s, seed "12345678901234567890"): 287082."""
    seed = base64.b32encode(b"12345678901234567890").decode()
    assert code_at(seed, step_at(59_000_000_000)) == "287082"


@pytest.mark.parametrize("steps", [-1, 0, 1])
def test_when_code_within_one_step_then_accepted_with_its_step(steps: int) -> None:
    """The previous, current and next step's codes are accepted (clock drift)."""
    result, step = check(SEED, code(SEED, NOW, steps=steps), NOW, last_step=-1)
    assert result is TotpCheck.OK
    assert step == step_at(NOW) + steps


@pytest.mark.parametrize("steps", [-2, -1 - LOOKBACK_STEPS])
def test_when_code_older_than_window_then_expired(steps: int) -> None:
    """Two steps old (and up to the lookback): refused as expired."""
    assert check(SEED, code(SEED, NOW, steps=steps), NOW, last_step=-1) == (
        TotpCheck.EXPIRED,
        None,
    )


def test_when_code_far_from_now_then_wrong() -> None:
    """Two steps ahead, or older than the lookback: just wrong."""
    for steps in (2, -2 - LOOKBACK_STEPS):
        result, _ = check(SEED, code(SEED, NOW, steps=steps), NOW, last_step=-1)
        assert result is TotpCheck.WRONG, steps


def test_when_code_of_used_step_or_older_then_replayed() -> None:
    """After step s is used, its code and the previous step's are refused as replays;
    the next step's is accepted."""
    now_step = step_at(NOW)
    assert check(SEED, code(SEED, NOW), NOW, last_step=now_step)[0] is TotpCheck.REPLAYED
    assert check(SEED, code(SEED, NOW, steps=-1), NOW, last_step=now_step)[0] is (
        TotpCheck.REPLAYED
    )
    assert check(SEED, code(SEED, NOW, steps=1), NOW, last_step=now_step)[0] is TotpCheck.OK


@pytest.mark.parametrize("given", ["", "12345", "1234567", "12a456", "١٢٣٤٥٦", "      "])
def test_when_code_malformed_then_wrong(given: str) -> None:
    """Not six ASCII digits: wrong, whatever it is."""
    assert check(SEED, given, NOW, last_step=-1) == (TotpCheck.WRONG, None)


def test_when_code_has_spaces_then_they_are_ignored() -> None:
    """Apps show "123 456": the space is dropped."""
    good = code(SEED, NOW)
    assert check(SEED, f"{good[:3]} {good[3:]}", NOW, last_step=-1)[0] is TotpCheck.OK


def test_when_enrolment_made_then_uri_holds_seed_and_repr_does_not() -> None:
    """The otpauth URI names issuer, operator, 6 digits, 30 s; repr and the confirmed
    factor's repr show no seed; neither pickles."""
    enrolment = Enrolment.new("alice", issuer="desk1")
    uri = urlparse(enrolment.uri)
    query = parse_qs(uri.query)
    assert (uri.scheme, uri.netloc, uri.path) == ("otpauth", "totp", "/desk1:alice")
    assert query["secret"] == [enrolment.seed] and query["issuer"] == ["desk1"]
    assert len(base64.b32decode(enrolment.seed)) == 20
    confirmed = confirm(enrolment, code(enrolment.seed, NOW), NOW)
    assert confirmed is not None
    for shown in (repr(enrolment), str(enrolment), repr(confirmed), f"{confirmed}"):
        assert enrolment.seed not in shown
    for obj in (enrolment, confirmed):
        with pytest.raises(TypeError):
            pickle.dumps(obj)


def test_when_enrolment_confirmed_then_step_of_the_code_is_kept() -> None:
    """A matching code confirms (remembering its step); a wrong or stale one does not."""
    enrolment = Enrolment(name="bob", seed=SEED, issuer="bastion")
    confirmed = confirm(enrolment, code(SEED, NOW, steps=1), NOW)
    assert isinstance(confirmed, ConfirmedTotp)
    assert confirmed.seed == SEED and confirmed.step == step_at(NOW) + 1
    assert confirm(enrolment, code(SEED, NOW, steps=-2), NOW) is None
    near = {code(SEED, NOW, steps=s) for s in (-1, 0, 1)}
    wrong = next(c for c in ("000000", "111111", "222222", "333333") if c not in near)
    assert confirm(enrolment, wrong, NOW) is None


def test_when_seeds_made_then_random_and_of_full_length() -> None:
    """160-bit base32 seeds, never the same twice."""
    seeds = {new_seed() for _ in range(50)}
    assert len(seeds) == 50
    assert all(len(s) == 32 and len(code_at(s, 1)) == DIGITS for s in seeds)
