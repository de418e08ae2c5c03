"""Read-only sessions of the venue simulator without a network: their config
(``[[read_only_sessions]]``), the fence passing them by, and the engine answering their
queries and refusals before it returns, with latency too."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.clock import SimClock
from bastion.config import InstrumentConfig, load_config
from bastion.errors import ConfigError
from bastion.fix.codec import FixMessage
from bastion.fix.session import FixSession, SessionSettings
from bastion.fix.store import SqliteSessionStore
from bastion.model.enums import OrderType
from bastion.venue_server.config import AccountConfig, ReadOnlySessionConfig, VenueSimConfig
from bastion.venue_server.fencing import VenueFence
from bastion.venue_server.ledger import VenueLedger
from bastion.venue_server.messages import (
    REJ_OTHER,
    CancelReject,
    CancelRequest,
    ExecReport,
    MassStatusRequest,
    NewOrderRequest,
    PositionsRequest,
    StatusRequest,
)
from bastion.venue_server.read_only import _Budget
from kit.venuesim_desk import BUY, SYM, T0, Desk
from kit.venuesim_wire import NodeApp

ACCOUNT = AccountConfig(name="acct", comp_id="NODE", username="u", password="secret:fix/acct")


def drill(**changes: object) -> ReadOnlySessionConfig:
    """A valid read-only session on ``acct``, with ``changes``."""
    fields: dict[str, object] = {
        "name": "drill",
        "comp_id": "DRILL",
        "username": "d",
        "password": "secret:fix/drill",
        "account": "acct",
    }
    fields.update(changes)
    return ReadOnlySessionConfig(**fields)  # type: ignore[arg-type]


def sim(
    read_only: list[ReadOnlySessionConfig], accounts: list[AccountConfig] | None = None
) -> VenueSimConfig:
    return VenueSimConfig(
        accounts=[ACCOUNT] if accounts is None else accounts,
        read_only_sessions=read_only,
        instruments=[InstrumentConfig(id="XYZ.SIM", venue="SIM", tick_size=Decimal("0.01"))],
    )


# -- config -----------------------------------------------------------------------------------
def test_when_read_only_session_configured_then_its_password_is_a_secret_ref() -> None:
    """``secret_refs`` names its password beside the accounts'; ``repr`` shows no secret."""
    config = sim([drill()])
    assert config.secret_refs() == [
        ("accounts[0].password", "fix/acct"),
        ("read_only_sessions[0].password", "fix/drill"),
    ]
    assert "secret" not in repr(config.read_only_sessions[0])
    assert sim([drill(password=None, password_env="DRILL_PW")]).secret_refs() == [
        ("accounts[0].password", "fix/acct")
    ]


@pytest.mark.parametrize(
    ("changes", "key", "reason"),
    [
        ({"username": ""}, r"read_only_sessions\[0\]\.username", "must not be empty"),
        ({"comp_id": ""}, r"read_only_sessions\[0\]\.comp_id", "must not be empty"),
        ({"password_env": "PW"}, r"read_only_sessions\[0\]'", "exactly one of"),
        ({"password": None}, r"read_only_sessions\[0\]'", "exactly one of"),
        ({"password": "hunter2"}, r"read_only_sessions\[0\]\.password", ""),
        ({"account": "other"}, r"read_only_sessions\[0\]\.account", "'other' is not an"),
        ({"account": ""}, r"read_only_sessions\[0\]\.account", "is not an"),
        ({"name": "acct"}, r"read_only_sessions\[0\]\.name", r"also accounts\[0\]"),
        ({"comp_id": "NODE"}, r"read_only_sessions\[0\]\.comp_id", r"also accounts\[0\]"),
        ({"allowed_ips": ["10.0.0.0/33"]}, r"read_only_sessions\[0\]\.allowed_ips\[0\]", ""),
        ({"client_cert_cn": "n"}, r"read_only_sessions\[0\]\.client_cert_cn", "client_ca_file"),
        (
            {"client_cert_sha256": "ab" * 32},
            r"read_only_sessions\[0\]\.client_cert_sha256",
            "client_ca_file",
        ),
        ({"max_reports_per_s": 0.0}, r"read_only_sessions\[0\]\.max_reports_per_s", "positive"),
        (
            {"max_reports_per_s": float("inf")},
            r"read_only_sessions\[0\]\.max_reports_per_s",
            "positive",
        ),
        ({"max_reports_burst": 0}, r"read_only_sessions\[0\]\.max_reports_burst", "at least 1"),
    ],
)
def test_when_read_only_session_invalid_then_error_names_the_key(
    changes: dict[str, object], key: str, reason: str
) -> None:
    """Each rule an account has, and its account, refused naming the read-only key."""
    with pytest.raises(ConfigError, match=rf"key '{key}.*{reason}") as raised:
        sim([drill(**changes)])
    assert "hunter2" not in str(raised.value)


def test_when_two_read_only_sessions_share_a_name_or_comp_id_then_the_second_is_named() -> None:
    """Uniqueness holds among read-only sessions too, and the error names both tables."""
    with pytest.raises(
        ConfigError, match=r"read_only_sessions\[1\]\.name'.*read_only_sessions\[0\]"
    ):
        sim([drill(), drill(comp_id="OTHER")])
    with pytest.raises(ConfigError, match=r"read_only_sessions\[1\]\.comp_id'"):
        sim([drill(), drill(name="recon")])


_IDS = st.sampled_from(["a", "b", "c", "d"])


@settings(max_examples=60, deadline=None)
@given(
    accounts=st.lists(st.tuples(_IDS, _IDS), min_size=1, max_size=3),
    read_only=st.lists(st.tuples(_IDS, _IDS), max_size=3),
)
def test_when_names_and_comp_ids_drawn_then_refused_exactly_when_one_repeats(
    accounts: list[tuple[str, str]], read_only: list[tuple[str, str]]
) -> None:
    """Any mix of accounts and read-only sessions (name, comp_id) loads if and only if
    no name and no CompID appears twice across both lists."""
    account_configs = [
        AccountConfig(name=name, comp_id=comp_id, username="u", password_env="PW")
        for name, comp_id in accounts
    ]
    read_only_configs = [
        drill(name=name, comp_id=comp_id, account=accounts[0][0]) for name, comp_id in read_only
    ]
    everything = accounts + read_only
    unique = len({n for n, _ in everything}) == len(everything) and len(
        {c for _, c in everything}
    ) == len(everything)
    if unique:
        assert len(sim(read_only_configs, account_configs).logons()) == len(everything)
    else:
        with pytest.raises(ConfigError, match="duplicate"):
            sim(read_only_configs, account_configs)


def test_when_read_only_table_has_an_unknown_key_then_load_names_it(tmp_path: Path) -> None:
    """``[[read_only_sessions]]`` is read from TOML; a misspelt key is named."""
    path = tmp_path / "venue-sim.toml"
    base = """
accounts = [{ name = "acct", comp_id = "NODE", username = "u", password_env = "PW" }]
instruments = [{ id = "XYZ.SIM", venue = "SIM", tick_size = "0.01" }]
[[read_only_sessions]]
name = "drill"
comp_id = "DRILL"
username = "d"
password_env = "DRILL_PW"
"""
    path.write_text(base + 'account = "acct"\n')
    assert load_config(path, VenueSimConfig).read_only_sessions == [
        drill(password=None, password_env="DRILL_PW")
    ]
    path.write_text(base + 'acount = "acct"\n')
    with pytest.raises(ConfigError, match="acount"):
        load_config(path, VenueSimConfig)


# -- the fence --------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["tag", "strict"])
@pytest.mark.parametrize("epoch", ["9", "abc", None])
def test_when_session_is_not_an_accounts_then_fence_passes_it_and_moves_no_epoch(
    tmp_path: Path, mode: str, epoch: str | None
) -> None:
    """The fence guards the accounts' sessions only: a read-only session's Logon is
    admitted whatever its 8014 (absent, higher, malformed, strict mode), never takes a
    connection over, and no epoch is recorded; the account's session is still fenced."""
    clock = SimClock(T0)
    with VenueLedger(tmp_path / "ledger.sqlite") as ledger:
        account_session = _session(tmp_path, "NODE", clock)
        read_only_session = _session(tmp_path, "DRILL", clock)
        counters: Counter[str] = Counter()
        fence = VenueFence(
            mode,  # type: ignore[arg-type]
            ledger=ledger,
            clock=clock,
            accounts={account_session.settings.key: "acct"},
            counters=counters,
        )
        assert fence.admit(account_session, FixMessage.of("A", (8014, "3"))) is None
        logon = FixMessage.of("A") if epoch is None else FixMessage.of("A", (8014, epoch))
        assert fence.admit(read_only_session, logon) is None
        assert fence.takes_over(read_only_session, logon) is None
        assert fence.highest == {account_session.settings.key: 3} == ledger.session_epochs()
        assert fence.admit(account_session, FixMessage.of("A", (8014, "2"))) is not None
        assert counters["fence_takeovers"] == 0
        for session in (account_session, read_only_session):
            session.store.close()


def _session(tmp_path: Path, their_comp_id: str, clock: SimClock) -> FixSession:
    settings = SessionSettings(sender_comp_id="SIM", target_comp_id=their_comp_id)
    store = SqliteSessionStore(tmp_path / "sessions.sqlite", settings.key, now_ns=T0)
    return FixSession(settings, store, NodeApp(), clock=clock)


# -- the engine answers at once ---------------------------------------------------------------
def test_when_engine_has_latency_then_queries_and_refusals_still_answer_before_returning(
    tmp_path: Path,
) -> None:
    """With ``latency_ms`` an order waits, but status, mass status, positions and a
    refusal report inside the call (what routing a read-only session's answers needs)."""
    desk = Desk(tmp_path / "venue.db", latency_ms=50)
    try:
        desk.new("o1")
        assert desk.take() == []  # the order is in flight
        desk.clock.advance_to(T0 + 50_000_000)
        assert [r.exec_type for r in desk.execs()] == ["0"]
        queries = [
            StatusRequest(cl_ord_id="o1", symbol=SYM, side=BUY),
            MassStatusRequest(mass_status_req_id="m1"),
            PositionsRequest(pos_req_id="p1", pos_req_type=0),
        ]
        for query in queries:
            desk.engine.handle("A", query)
            assert desk.take("A"), query
        order = NewOrderRequest(
            cl_ord_id="ro-1", symbol=SYM, side=BUY, order_type=OrderType.MARKET, quantity=Decimal(1)
        )
        desk.engine.refuse("A", order, "read-only session: no", ord_rej_reason=REJ_OTHER)
        (rejected,) = desk.take("A")
        assert isinstance(rejected, ExecReport)
        assert (rejected.exec_type, rejected.ord_rej_reason, rejected.order_id) == ("8", 99, "NONE")
        cancel = CancelRequest(cl_ord_id="ro-2", orig_cl_ord_id="o1", symbol=SYM, side=BUY)
        desk.engine.refuse("A", cancel, "read-only session: no")
        (refused,) = desk.take("A")
        assert isinstance(refused, CancelReject) and refused.ord_status == "0"
        assert [o.cl_ord_id for o in desk.ledger.orders("A")] == ["o1"]
    finally:
        desk.close()


def test_when_the_answer_budget_is_spent_then_the_next_message_waits_for_its_refill() -> None:
    """The burst exactly, then nothing until one token refills (one step before: not);
    a mass status is answered whole (the bucket below zero) and repaid by the rate;
    a long idle saves the burst, no more."""
    budget = _Budget(2.0, 3, 0.0)
    assert budget.available(0.0)
    budget.charge(3)
    assert not budget.available(0.0)
    assert not budget.available(0.49)
    assert budget.available(0.5)
    budget.charge(40)
    assert not budget.available(10.0)  # 1 - 40 + 19
    assert not budget.available(20.0)  # 1 - 40 + 39: 0
    assert budget.available(20.5)
    assert budget.available(1_000.0)
    budget.charge(3)
    assert not budget.available(1_000.0)
