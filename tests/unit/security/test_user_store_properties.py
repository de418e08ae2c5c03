"""Properties of the operator store's file: whatever it holds comes back unchanged, and
no byte of it can change unnoticed."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.clock import SimClock
from bastion.security import _sealed
from bastion.security.roles import Role
from bastion.security.users import UserRecord, UsersBody
from bastion.vault._format import FormatError
from kit.users import KEY, enrolled, store
from kit.vaults import T0

PROPERTY = settings(max_examples=60, derandomize=True, database=None, deadline=None)

names = st.from_regex(r"[a-z][a-z0-9._-]{0,31}", fullmatch=True)
strategy_names = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", fullmatch=True)
ns = st.integers(min_value=0, max_value=2**63 - 1)


@st.composite
def records(draw: st.DrawFn, name: str) -> UserRecord:
    return UserRecord(
        name=name,
        roles=tuple(sorted(draw(st.sets(st.sampled_from(Role), min_size=1)))),
        strategies=tuple(sorted(draw(st.sets(strategy_names, max_size=4)))),
        os_uid=draw(st.none() | st.integers(min_value=0, max_value=2**32 - 2)),
        disabled=draw(st.booleans()),
        password_hash=draw(st.text(min_size=1, max_size=120)),
        totp_seed=draw(st.none() | st.from_regex(r"[A-Z2-7]{32}", fullmatch=True)),
        totp_last_step=draw(st.integers(min_value=-1, max_value=2**40)),
        failed_logins=draw(st.integers(min_value=0, max_value=10**6)),
        locked_until_ns=draw(ns),
        last_login_ns=draw(st.none() | ns),
        created_ns=draw(ns),
        changed_ns=draw(ns),
    )


@st.composite
def bodies(draw: st.DrawFn) -> UsersBody:
    chosen = draw(st.sets(names, max_size=6))
    users = {name: draw(records(name)) for name in chosen}
    return UsersBody(generation=draw(st.integers(min_value=0, max_value=2**40)), users=users)


@PROPERTY
@given(bodies())
def test_when_any_body_sealed_then_it_opens_to_the_same(body: UsersBody) -> None:
    """seal then open_sealed is the identity, and two seals differ (fresh nonce)."""
    sealed = _sealed.seal(KEY, body)
    assert _sealed.open_sealed(KEY, sealed) == body
    assert _sealed.seal(KEY, body) != sealed


@PROPERTY
@given(bodies(), st.data())
def test_when_any_byte_flipped_or_cut_then_refused(body: UsersBody, data: st.DataObject) -> None:
    """Any single changed bit, and any truncation, fails to open."""
    sealed = _sealed.seal(KEY, body)
    index = data.draw(st.integers(min_value=0, max_value=len(sealed) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=7))
    flipped = sealed[:index] + bytes([sealed[index] ^ (1 << bit)]) + sealed[index + 1 :]
    with pytest.raises(FormatError):
        _sealed.open_sealed(KEY, flipped)
    with pytest.raises(FormatError):
        _sealed.open_sealed(KEY, sealed[:index])


@settings(max_examples=10, derandomize=True, database=None, deadline=None)
@given(
    st.lists(
        st.tuples(
            names,
            st.sets(st.sampled_from(Role), min_size=1),
            st.sets(strategy_names, max_size=3),
            st.none() | st.integers(min_value=0, max_value=2**32 - 2),
        ),
        max_size=4,
        unique_by=lambda t: t[0],
    )
)
def test_when_operators_added_then_a_fresh_store_reads_them_back(
    operators: list[tuple[str, set[Role], set[str], int | None]],
) -> None:
    """Through the store's own file: every operator added reads back, from another store
    object, with the roles, strategies and uid given (uids made unique)."""
    seen_uids: set[int] = set()
    with tempfile.TemporaryDirectory() as directory:
        users = store(Path(directory), clock=SimClock(T0))
        expected = {}
        for name, roles, strategies, uid in operators:
            uid = None if uid in seen_uids else uid
            if uid is not None:
                seen_uids.add(uid)
            users.add(
                name,
                "a-long-enough-secret!",
                roles=roles,
                strategies=strategies,
                os_uid=uid,
                totp=enrolled(name)[1],
            )
            expected[name] = (tuple(sorted(roles)), tuple(sorted(strategies)), uid)
        again = store(Path(directory), clock=SimClock(T0))
        got = {u.name: (u.roles, u.strategies, u.os_uid) for u in again.users()}
        assert got == expected
