"""Credit per risk account ([risk.accounts.NAME]): exposure and cash usage of a group of
strategies, at the limit and one unit beyond, beside the node's own limits."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bastion.errors import ConfigError
from bastion.risk.config import AccountRiskConfig, RiskConfig
from bastion.risk.overrides import apply_override, value_at
from kit.risk_config import load
from kit.risk_node import BUY, FUTURE, SELL, Wired, assert_denied, assert_sent


def desk(**limits: Any) -> RiskConfig:
    """Strategy s1 in account "desk" with ``limits``; s2 in no account."""
    node = {k: limits.pop(k) for k in list(limits) if k.startswith("node_")}
    return RiskConfig(
        accounts={"desk": AccountRiskConfig(strategies=["s1"], **limits)},
        **{k.removeprefix("node_"): v for k, v in node.items()},
    )


def test_when_account_exposure_at_max_then_allowed_and_one_lot_beyond_denied() -> None:
    """s1 long 50 at mid 100 + sell 20 + buy 30 working = 10000 passes; one more lot not."""
    node = Wired(desk(max_total_exposure=Decimal(10_000)))
    node.quote(10_000, 10_000)
    node.hold(50, strategy="s1")
    assert_sent(node, node.submit(SELL, 20, 10_000, strategy="s1"))
    assert_sent(node, node.submit(BUY, 30, 10_000, strategy="s1"))
    assert_denied(node, node.submit(BUY, 1, 10_000, strategy="s1"), "CREDIT_LIMIT")
    assert node.denied[-1].message == (
        "account desk: total exposure 10100.00 (positions + working orders of its "
        "strategies) would exceed max_total_exposure 10000 (risk.accounts.desk)"
    )


def test_when_account_exposure_one_tick_beyond_then_denied() -> None:
    """Buy 30 at 100.01 on top of 7000 held makes 10000.30: denied; at 100.00 it passes."""
    node = Wired(desk(max_total_exposure=Decimal(10_000)))
    node.quote(10_000, 10_000)
    node.trade(BUY, 70, 10_000, strategy="s1")
    assert_denied(node, node.submit(BUY, 30, 10_001, strategy="s1"), "CREDIT_LIMIT")
    assert_sent(node, node.submit(BUY, 30, 10_000, strategy="s1"))


def test_when_account_cash_usage_at_max_then_allowed_and_one_cent_beyond_denied() -> None:
    """5000 spent + 0.50 fee + buy 49 at 100 + buy 1 at 99.50 = 10000.00 passes; a buy of
    1 at 0.01 more is denied; a sell is not checked for cash."""
    node = Wired(desk(max_cash_usage=Decimal(10_000)))
    node.trade(BUY, 50, 10_000, strategy="s1", fee="0.50")
    assert_sent(node, node.submit(BUY, 49, 10_000, strategy="s1"))
    assert_sent(node, node.submit(BUY, 1, 9_950, strategy="s1"))
    assert_denied(node, node.submit(BUY, 1, 1, strategy="s1"), "CREDIT_LIMIT")
    assert node.denied[-1].message == (
        "account desk: cash usage 10000.01 (spent + working buys of its strategies) would "
        "exceed max_cash_usage 10000 (risk.accounts.desk)"
    )
    assert_sent(node, node.submit(SELL, 100, 10_000, strategy="s1"))


def test_when_account_sells_then_cash_comes_back_exactly() -> None:
    """Bought 100 at 100, sold 60 at 100.01 (fee 0.01 each): 3999.42 spent, 6000.58 left."""
    node = Wired(desk(max_cash_usage=Decimal(10_000)))
    node.trade(BUY, 100, 10_000, strategy="s1", fee="0.01")
    node.trade(SELL, 60, 10_001, strategy="s1", fee="0.01")
    assert_denied(node, node.submit(BUY, 60, 10_001, strategy="s1"), "CREDIT_LIMIT")
    assert "cash usage 10000.02" in node.denied[-1].message
    assert_sent(node, node.submit(BUY, 58, 10_000, strategy="s1"))
    assert_sent(node, node.submit(BUY, 1, 20_058, strategy="s1"))  # 10000.00 in all
    assert_denied(node, node.submit(BUY, 1, 1, strategy="s1"), "CREDIT_LIMIT")


def test_when_strategy_outside_any_account_then_account_limits_do_not_apply() -> None:
    """s2 (in no account) trades beyond desk's limits; its orders do not count for s1."""
    node = Wired(desk(max_total_exposure=Decimal(1_000), max_cash_usage=Decimal(1_000)))
    node.quote(10_000, 10_000)
    node.trade(BUY, 50, 10_000, strategy="s2")
    assert_sent(node, node.submit(BUY, 50, 10_000, strategy="s2"))
    assert_sent(node, node.submit(BUY, 10, 10_000, strategy="s1"))
    assert_denied(node, node.submit(BUY, 1, 10_000, strategy="s1"), "CREDIT_LIMIT")
    checks = node.gate._checks
    assert checks is not None
    assert checks._lanes["s2"]["XYZ.SIM"].credit is None  # nothing to check for s2


def test_when_node_limit_is_tighter_then_it_still_applies_to_every_strategy() -> None:
    """Node max_total_exposure 1500 over desk's 10000: s1 and s2 together are held to it."""
    node = Wired(desk(max_total_exposure=Decimal(10_000), node_max_total_exposure=Decimal(1_500)))
    node.quote(10_000, 10_000)
    assert_sent(node, node.submit(BUY, 10, 10_000, strategy="s2"))
    assert_sent(node, node.submit(BUY, 5, 10_000, strategy="s1"))
    assert_denied(node, node.submit(BUY, 1, 10_000, strategy="s1"), "CREDIT_LIMIT")
    assert node.denied[-1].message.startswith("total exposure 1600.00")
    assert_denied(node, node.submit(BUY, 1, 10_000, strategy="s2"), "CREDIT_LIMIT")


def test_when_node_cash_limit_and_account_then_both_apply() -> None:
    """Node max_cash_usage 10000, desk's 500: s1 stops at 500, s2 goes on to the node's."""
    node = Wired(desk(max_cash_usage=Decimal(500), node_max_cash_usage=Decimal(10_000)))
    assert_sent(node, node.submit(BUY, 5, 10_000, strategy="s1"))
    assert_denied(node, node.submit(BUY, 1, 10_000, strategy="s1"), "CREDIT_LIMIT")
    assert "account desk" in node.denied[-1].message
    assert_sent(node, node.submit(BUY, 95, 10_000, strategy="s2"))
    assert_denied(node, node.submit(BUY, 1, 10_000, strategy="s2"), "CREDIT_LIMIT")
    assert "account" not in node.denied[-1].message


def test_when_account_strategies_hold_opposite_positions_then_they_net() -> None:
    """s1 long 10 and s3 short 10 in one account: no position exposure, 2000 of room."""
    account = AccountRiskConfig(strategies=["s1", "s3"], max_total_exposure=Decimal(2_000))
    node = Wired(RiskConfig(accounts={"desk": account}))
    node.quote(10_000, 10_000)
    node.trade(BUY, 10, 10_000, strategy="s1")
    node.trade(SELL, 10, 10_000, strategy="s3")  # 1000 held + 1000 working: at the limit
    assert_sent(node, node.submit(BUY, 20, 10_000, strategy="s3"))
    assert_denied(node, node.submit(SELL, 1, 10_000, strategy="s1"), "CREDIT_LIMIT")


def test_when_account_amend_grows_then_the_larger_size_counts() -> None:
    """Buy 5 at 100 amended to 10 fits desk's 1000; to 11 it is denied (CommandDenied)."""
    node = Wired(desk(max_total_exposure=Decimal(1_000)))
    node.quote(10_000, 10_000)
    order = node.submit(BUY, 5, 10_000, strategy="s1")
    assert node.gate.modify_order(order, 10, 10_000)
    assert not node.gate.modify_order(order, 11, 10_000)
    assert node.command_denied[-1].reason == "CREDIT_LIMIT"


def test_when_account_order_fills_then_working_becomes_position_at_the_mid() -> None:
    """Buy 10 at 100 fills while the mid is 90: 900 of exposure, so 100 more fits 1000."""
    node = Wired(desk(max_total_exposure=Decimal(1_000)))
    node.quote(9_000, 9_000)
    node.trade(BUY, 10, 10_000, strategy="s1")
    assert_sent(node, node.submit(BUY, 1, 10_000, strategy="s1"))
    assert_denied(node, node.submit(BUY, 1, 1, strategy="s1"), "CREDIT_LIMIT")
    node.quote(8_000, 8_000)  # revalued at the quote: 800 + 100 held, room for 100 more
    assert_sent(node, node.submit(BUY, 1, 10_000, strategy="s1"))


def test_when_account_position_has_no_quote_then_no_reference_price() -> None:
    """A position of the account in an instrument without a quote cannot be valued."""
    node = Wired(desk(max_total_exposure=Decimal(10**9)))
    node.quote(10_000, 10_000)
    node.hold(1, 400_000, FUTURE, strategy="s1")
    assert_denied(node, node.submit(BUY, 1, 10_000, strategy="s1"), "NO_REFERENCE_PRICE")
    assert node.denied[-1].message == (
        "no quote to value the position in ES.SIM for max_total_exposure of account desk"
    )
    assert_sent(node, node.submit(BUY, 1, 10_000, strategy="s2"))
    node.quote(400_000, 400_000, FUTURE)  # the position is valued at its first quote
    assert_sent(node, node.submit(BUY, 1, 10_000, strategy="s1"))


def test_when_no_accounts_then_the_book_keeps_no_account_sums() -> None:
    """A node with node-level credit only: no account state, lanes check the node."""
    node = Wired(RiskConfig(max_total_exposure=Decimal(10**6)))
    node.quote(10_000, 10_000)
    assert_sent(node, node.submit(BUY, 1, 10_000))
    checks = node.gate._checks
    assert checks is not None and checks._book is not None and checks._credit is not None
    assert checks._book._accounts is None
    assert checks._credit.accounts == {}
    lane = checks._lanes["s1"]["XYZ.SIM"]
    assert lane.credit is checks._credit
    assert lane.account is None


# -- configuration ---------------------------------------------------------------------
def test_when_accounts_in_toml_then_they_load(tmp_path: Path) -> None:
    """[risk.accounts.NAME] loads with its strategies and exact limits."""
    config = load(
        tmp_path,
        """
        [risk.accounts.desk_a]
        strategies = ["s1"]
        max_total_exposure = "2000000"
        max_cash_usage = "500000.005"
        """,
    )
    account = config.risk.accounts["desk_a"]
    assert account.strategies == ["s1"]
    assert account.max_total_exposure == Decimal(2_000_000)
    assert account.max_cash_usage == Decimal("500000.005")
    assert config.risk.account_of() == {"s1": "desk_a"}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            '[risk.accounts.a]\nstrategies = ["s1"]\nmax_cash_usage = "1"\n'
            '[risk.accounts.b]\nstrategies = ["s1"]\nmax_cash_usage = "1"\n',
            r"key 'risk\.accounts\.\"b\"\.strategies\[0\]': strategy 's1' is in account 'a' "
            r"already, and in 'b'",
        ),
        (
            '[risk.accounts.a]\nstrategies = ["s1", "s1"]\nmax_cash_usage = "1"\n',
            r"key 'risk\.accounts\.\"a\"\.strategies\[1\]': strategy 's1' listed twice",
        ),
        (
            '[risk.accounts.a]\nstrategies = ["s1"]\n',
            r"key 'risk\.accounts\.\"a\"': an account needs a limit: max_total_exposure or "
            r"max_cash_usage",
        ),
        (
            '[risk.accounts.a]\nmax_cash_usage = "1"\n',
            r"key 'risk\.accounts\.\"a\"\.strategies': must name at least one strategy",
        ),
        (
            '[risk.accounts.a]\nstrategies = ["s1"]\nmax_cash_usage = "-1"\n',
            r"key 'risk\.accounts\.\"a\"\.max_cash_usage': must be >= 0",
        ),
        (
            '[risk.accounts.a]\nstrategies = ["s1"]\nmax_cash_usage = "NaN"\n',
            r"key 'risk\.accounts\.\"a\"\.max_cash_usage': must be a finite number",
        ),
        ('[risk.accounts.a]\nstrategies = ["s1"]\nmax_exposure = "1"\n', "max_exposure"),
    ],
    ids=["two-accounts", "twice", "no-limit", "no-strategy", "negative", "nan", "unknown-key"],
)
def test_when_account_table_invalid_then_config_error_names_the_key(
    tmp_path: Path, table: str, message: str
) -> None:
    """A bad [risk.accounts.NAME] table is refused with the key and what is wrong."""
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, table)


def test_when_account_names_undefined_strategy_in_kernel_then_config_error(
    tmp_path: Path,
) -> None:
    """The kernel passes its strategy names: an account listing another is refused."""
    from bastion.clock import SimClock
    from bastion.node.kernel import Kernel

    config = load(
        tmp_path, '[risk.accounts.a]\nstrategies = ["s1", "ghost"]\nmax_cash_usage = "1"\n'
    )
    with pytest.raises(
        ConfigError,
        match=r"key 'risk\.accounts\.\"a\"\.strategies\[1\]': unknown strategy 'ghost' "
        r"\(defined: s1\)",
    ):
        Kernel(config=config, base_dir=tmp_path, clock=SimClock(0), epoch=1)


# -- operator overrides ----------------------------------------------------------------
def test_when_account_limit_is_overridden_then_the_account_uses_it() -> None:
    """``accounts.desk.max_cash_usage`` changes that limit; the gate applies it."""
    base = desk(max_cash_usage=Decimal(500))
    changed = apply_override(base, "accounts.desk.max_cash_usage", "1000.50")
    assert value_at(changed, "accounts.desk.max_cash_usage") == "1000.50"
    assert changed.accounts["desk"].strategies == ["s1"]
    node = Wired(base)
    assert_sent(node, node.submit(BUY, 5, 10_000, strategy="s1"))
    node.gate.reconfigure(changed)  # the working buy keeps counting
    assert_sent(node, node.submit(BUY, 5, 10_010, strategy="s1"))
    assert_denied(node, node.submit(BUY, 1, 1, strategy="s1"), "CREDIT_LIMIT")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("accounts.nope.max_cash_usage", "unknown account 'nope' (defined in the config: desk)"),
        ("accounts.desk.strategies", "'strategies' is not a limit of [risk.accounts]"),
        ("accounts.desk.max_total_exposure", "must be >= 0"),
        ("accounts", "not a limit that can be set"),
    ],
)
def test_when_account_override_is_invalid_then_config_error_names_it(
    path: str, message: str
) -> None:
    """An override of an unknown account, of its strategies, or a bad value is refused."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        apply_override(desk(max_cash_usage=Decimal(1)), path, "-5")
