"""Disabling a strategy takes it out of the market (``cancel_on_disable``): its open
orders are canceled at every venue through the execution engine, other strategies'
orders stay, the working-order sums follow, and recovery replays the journal without
sending a cancel."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from bastion.errors import ConfigError
from bastion.journal import SqliteJournal, verify_journal
from bastion.model.enums import OrderSide, OrderStatus, OrderType
from bastion.model.events import OrderPendingCancel, StrategyDisabled
from bastion.model.orders import Order
from bastion.node.kernel import Kernel
from bastion.recovery.replay import recover_state
from bastion.risk.config import RiskConfig
from bastion.risk.overrides import apply_override, value_at
from kit.risk_config import load
from kit.risk_kernel import IID, T0, build, journaled_types, market, quote
from kit.risk_node import BUY, Wired, stock_at
from kit.strategies import IDLE_STRATEGY

FILLS = {"max_fills": 2, "fills_window_ms": 1_000}
ACCEPTED, CANCELED = OrderStatus.ACCEPTED, OrderStatus.CANCELED


@pytest.fixture
def base(tmp_path: Path) -> Path:
    (tmp_path / "idle.py").write_text(IDLE_STRATEGY)
    return tmp_path


def rest(kernel: Kernel, strategy: str, price: int = 9_000) -> Order:
    """A limit buy of 1 resting at the simulated venue, below the touch."""
    order = kernel.execution.create_order(
        strategy_id=strategy,
        instrument_id=IID,
        venue="SIM",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=1,
        price=price,
    )
    assert kernel.risk.submit_order(order)
    kernel.venue.flush()
    assert order.status is ACCEPTED
    return order


def disable_a(kernel: Kernel) -> tuple[Order, Order, Order]:
    """Start, rest two buys of strategy a and one of b, then fill a three times (its
    third fill disables it: ``FILLS``). The resting orders, a's first."""
    kernel.start()
    quote(kernel, 10_000, T0)
    resting = rest(kernel, "a"), rest(kernel, "a"), rest(kernel, "b")
    for _ in range(3):
        assert market(kernel, "a").status is OrderStatus.FILLED
    assert kernel.risk.disabled.keys() == {"a"}
    return resting


def disabled_events(kernel: Kernel) -> list[StrategyDisabled]:
    events: list[StrategyDisabled] = []
    kernel.bus.subscribe(StrategyDisabled, events.append)
    return events


def venue_open_ids(kernel: Kernel) -> set[str]:
    """The orders resting in the simulated venue's books."""
    return set(kernel.venue._open)  # type: ignore[union-attr]


# -- repeated executions -----------------------------------------------------------------


def test_when_max_fills_disables_a_strategy_then_its_orders_are_canceled_at_the_venue(
    base: Path,
) -> None:
    """Strategy a rests two buys, b one; a's third fill disables a: both of a's orders
    are canceled at the simulated venue at once, b's stays; StrategyDisabled says 2
    cancels and comes before them in the journal."""
    path = base / "j.sqlite"
    journal = SqliteJournal(path)
    try:
        kernel = build(base, journal, RiskConfig(**FILLS))
        events = disabled_events(kernel)
        a1, a2, b1 = disable_a(kernel)
        assert (a1.status, a2.status, b1.status) == (CANCELED, CANCELED, ACCEPTED)
        assert venue_open_ids(kernel) == {b1.client_order_id}
        assert kernel.execution.open_orders() == [b1]
        assert [(e.strategy_id, e.cancels_requested) for e in events] == [("a", 2)]
    finally:
        journal.close()
    types = journaled_types(path)
    disabled_at = types.index("StrategyDisabled")
    assert types[disabled_at + 1 : disabled_at + 3] == ["OrderPendingCancel"] * 2
    assert types.count("OrderCanceled") == 2


def test_when_cancel_on_disable_is_false_then_the_disabled_strategys_orders_stay(
    base: Path,
) -> None:
    """cancel_on_disable = false: a is disabled, its resting orders keep working."""
    kernel = build(base, None, RiskConfig(**FILLS, cancel_on_disable=False))
    events = disabled_events(kernel)
    a1, a2, b1 = disable_a(kernel)
    assert (a1.status, a2.status, b1.status) == (ACCEPTED, ACCEPTED, ACCEPTED)
    assert venue_open_ids(kernel) == {o.client_order_id for o in (a1, a2, b1)}
    assert [e.cancels_requested for e in events] == [0]


@pytest.mark.parametrize(("cancel_on_disable", "b_sent"), [(True, True), (False, False)])
def test_when_disabled_strategys_orders_are_canceled_then_the_position_limit_frees_up(
    base: Path, cancel_on_disable: bool, b_sent: bool
) -> None:
    """max_long_quantity 6: a holds 3 after its fills, with a's 2 and b's 1 resting buys
    the worst case is 6. Once a's buys are canceled b may buy 2 (3 + 1 + 2); while they
    work (cancel_on_disable = false) it may not: the working sums follow the cancels."""
    risk = RiskConfig(**FILLS, max_long_quantity=Decimal(6), cancel_on_disable=cancel_on_disable)
    kernel = build(base, None, risk)
    disable_a(kernel)
    order = kernel.execution.create_order(
        strategy_id="b",
        instrument_id=IID,
        venue="SIM",
        side=OrderSide.BUY,
        order_type=OrderType.LIMIT,
        quantity=2,
        price=9_000,
    )
    assert kernel.risk.submit_order(order) is b_sent
    assert kernel.risk.denials == ({} if b_sent else {"POSITION_LIMIT": 1})


def test_when_a_strategy_has_orders_at_two_venues_then_both_venues_get_its_cancels() -> None:
    """Every venue: a's orders at SIM and SIM2 are canceled, s2's at SIM2 is not; the
    cancels go through the execution engine (PENDING_CANCEL until the venue answers)."""
    node = Wired(RiskConfig(max_fills=1, fills_window_ms=1_000), extra_venues=("SIM2",))
    at_sim = node.submit(BUY, 1, 9_000)
    at_sim2 = node.submit(BUY, 1, 9_000, instrument=stock_at("SIM2"))
    other = node.submit(BUY, 1, 9_000, instrument=stock_at("SIM2"), strategy="s2")
    node.trade(BUY, 1, 10_000)
    node.trade(BUY, 1, 10_000)
    assert [(e.strategy_id, e.cancels_requested) for e in node.disabled] == [("s1", 2)]
    sim2 = node.execution._venues["SIM2"]
    assert node.venue.canceled == [at_sim.client_order_id]
    assert sim2.canceled == [at_sim2.client_order_id]  # type: ignore[attr-defined]
    assert at_sim.status is at_sim2.status is OrderStatus.PENDING_CANCEL
    assert other.status is OrderStatus.SUBMITTED


def test_when_disabled_again_then_no_second_round_of_cancels() -> None:
    """disable_strategy on a disabled strategy does nothing: no event, no cancel."""
    node = Wired()
    node.submit(BUY, 1, 9_000)
    assert node.gate.disable_strategy("s1", "first")
    assert not node.gate.disable_strategy("s1", "second")
    assert len(node.venue.canceled) == 1 and len(node.disabled) == 1


def test_when_an_override_turns_cancel_on_disable_off_then_orders_stay(base: Path) -> None:
    """bastion risk set cancel_on_disable false applies at the next disable."""
    kernel = build(base, None, RiskConfig(**FILLS))
    kernel.start()
    quote(kernel, 10_000, T0)
    kernel.risk_overrides.set("cancel_on_disable", "false", 60, who="alice", why="drill")
    a1 = rest(kernel, "a")
    for _ in range(3):
        market(kernel, "a")
    assert kernel.risk.disabled.keys() == {"a"}
    assert a1.status is ACCEPTED


# -- post-trade limits -------------------------------------------------------------------


def test_when_a_fill_breaches_the_daily_loss_then_the_strategys_orders_are_canceled(
    base: Path,
) -> None:
    """max_daily_loss 0.01: a buys at the ask 100.01, marked at the bid 99.99 (-0.02):
    a is disabled on that fill and its two resting buys are canceled; b's stays."""
    kernel = build(base, None, RiskConfig(max_daily_loss=Decimal("0.01")))
    events = disabled_events(kernel)
    kernel.start()
    quote(kernel, 10_000, T0)
    a1, a2, b1 = rest(kernel, "a"), rest(kernel, "a"), rest(kernel, "b")
    market(kernel, "a")
    assert kernel.risk.disabled.keys() == {"a"}
    assert "beyond max_daily_loss 0.01" in events[0].reason
    assert events[0].cancels_requested == 2
    assert (a1.status, a2.status, b1.status) == (CANCELED, CANCELED, ACCEPTED)
    assert venue_open_ids(kernel) == {b1.client_order_id}


@pytest.mark.parametrize("cancel_on_disable", [True, False])
def test_when_the_periodic_check_finds_a_loss_then_cancels_reach_the_venue_at_its_flush(
    base: Path, cancel_on_disable: bool
) -> None:
    """A breach found by check_post_trade (the node's timer) disables a; its cancels are
    requested at once (PENDING_CANCEL) and the venue handles them at its next flush (a
    live node's venue asks for one); with cancel_on_disable = false nothing is sent."""
    risk = RiskConfig(max_daily_loss=Decimal(1), cancel_on_disable=cancel_on_disable)
    kernel = build(base, None, risk)
    kernel.start()
    quote(kernel, 10_000, T0)
    a1, b1 = rest(kernel, "a"), rest(kernel, "b")
    market(kernel, "a")  # loss 0.02: within the limit
    quote(kernel, 9_800, T0 + 1)  # marked at 97.99: a has lost 2.02
    assert kernel.risk.disabled == {}
    kernel.risk.check_post_trade()
    assert kernel.risk.disabled.keys() == {"a"}
    expected = OrderStatus.PENDING_CANCEL if cancel_on_disable else ACCEPTED
    assert (a1.status, b1.status) == (expected, ACCEPTED)
    kernel.venue.flush()
    assert (a1.status, b1.status) == (CANCELED if cancel_on_disable else ACCEPTED, ACCEPTED)


# -- recovery ----------------------------------------------------------------------------


@pytest.mark.parametrize("cancel_on_disable", [True, False])
def test_when_the_journal_holds_a_strategy_disabled_then_replay_sends_no_cancel(
    base: Path, monkeypatch: pytest.MonkeyPatch, cancel_on_disable: bool
) -> None:
    """A node disables a (its cancels requested, or not) and stops before the venue
    answered; a recovered node (which cancels on disable) replays StrategyDisabled and
    the orders' events without sending anything: a's orders are as journaled."""
    path = base / "j.sqlite"
    journal = SqliteJournal(path)
    try:
        live = build(base, journal, RiskConfig(**FILLS, cancel_on_disable=cancel_on_disable))
        live.start()
        quote(live, 10_000, T0)
        rest(live, "a"), rest(live, "b")
        live.risk.disable_strategy("a", "max_fills")  # the venue is not flushed
    finally:
        journal.close()
    recovered = build(base, None, RiskConfig(**FILLS))
    sent: list[Order] = []
    published: list[OrderPendingCancel] = []
    monkeypatch.setattr(recovered.venue, "cancel", sent.append)
    recovered.bus.subscribe(OrderPendingCancel, published.append)
    journal = SqliteJournal(path)
    try:
        report = recover_state(recovered, journal)
    finally:
        journal.close()
    assert report.disabled_strategies == ["a"]
    assert sent == [] and published == [] and not recovered.venue.inbox
    statuses = {o.strategy_id: o.status for o in recovered.execution.open_orders()}
    a_status = OrderStatus.PENDING_CANCEL if cancel_on_disable else ACCEPTED
    assert statuses == {"a": a_status, "b": ACCEPTED}


class Before:
    """Events as journaled before they changed (the journal's type column is the
    class name)."""

    class StrategyDisabled(msgspec.Struct, frozen=True, kw_only=True, tag="StrategyDisabled"):
        """Before it counted its cancels."""

        ts_ns: int
        strategy_id: str
        reason: str


def test_when_journal_predates_cancels_requested_then_it_decodes_and_replays(
    base: Path,
) -> None:
    """An old StrategyDisabled record (no cancels_requested) reads back with 0, the
    journal verifies, and recovery restores the disabled strategy."""
    path = base / "j.sqlite"
    journal = SqliteJournal(path)
    try:
        journal.append(Before.StrategyDisabled(ts_ns=T0, strategy_id="a", reason="max_fills"))
        journal.flush()
        (event,) = [e for _, e in journal.read()]
    finally:
        journal.close()
    assert event == StrategyDisabled(ts_ns=T0, strategy_id="a", reason="max_fills")
    assert event.cancels_requested == 0
    assert verify_journal(path).ok
    recovered = build(base, None)
    journal = SqliteJournal(path)
    try:
        recover_state(recovered, journal)
    finally:
        journal.close()
    assert recovered.risk.disabled == {"a": "max_fills"}


# -- config ------------------------------------------------------------------------------


def test_when_cancel_on_disable_in_toml_then_it_loads_and_defaults_to_true(
    tmp_path: Path,
) -> None:
    """cancel_on_disable is a [risk] key, true unless set."""
    assert RiskConfig().cancel_on_disable is True
    config = load(tmp_path, "[risk]\ncancel_on_disable = false\n")
    assert config.risk.cancel_on_disable is False


@pytest.mark.parametrize(
    ("risk", "match"),
    [
        ("cancel_on_disable = 1", r"key 'risk\.cancel_on_disable': expected bool, got int"),
        ('cancel_on_disable = "yes"', r"key 'risk\.cancel_on_disable': expected bool, got str"),
        (
            "[risk.strategies.s1]\ncancel_on_disable = false",
            r"unknown key 'risk\.strategies.*\.cancel_on_disable'",
        ),
    ],
)
def test_when_cancel_on_disable_is_invalid_then_config_error_names_it(
    tmp_path: Path, risk: str, match: str
) -> None:
    """Not a boolean, or in a strategy's table (it is a node-wide key): refused."""
    with pytest.raises(ConfigError, match=match):
        load(tmp_path, "[risk]\n" + risk + "\n")


def test_when_risk_config_built_with_a_non_bool_then_config_error_names_the_key() -> None:
    """Built in code (no TOML type check), a non-boolean is refused by the config itself."""
    with pytest.raises(ConfigError, match=r"key 'risk\.cancel_on_disable': must be true or false"):
        RiskConfig(cancel_on_disable="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["1", "0", "True", "yes", ""])
def test_when_override_of_cancel_on_disable_is_not_true_or_false_then_refused(
    value: str,
) -> None:
    """An override takes what TOML takes: true or false, nothing the loose conversion
    would turn into a boolean."""
    with pytest.raises(ConfigError, match=r"risk key 'cancel_on_disable': must be true or false"):
        apply_override(RiskConfig(), "cancel_on_disable", value)


def test_when_cancel_on_disable_is_overridden_then_it_reads_as_toml_writes_it() -> None:
    """false/true set it, shown as TOML writes them."""
    changed = apply_override(RiskConfig(), "cancel_on_disable", "false")
    assert changed.cancel_on_disable is False
    assert value_at(changed, "cancel_on_disable") == "false"
    assert value_at(RiskConfig(), "cancel_on_disable") == "true"
    assert apply_override(changed, "cancel_on_disable", "true").cancel_on_disable is True


@pytest.mark.parametrize("cancel_now", [True, False])
def test_when_a_strategy_disabled_before_a_restart_still_has_orders_then_start_cancels_them(
    base: Path, monkeypatch: pytest.MonkeyPatch, cancel_now: bool
) -> None:
    """Disabled with the key off (its order stayed); the restarted node, with the key on,
    cancels that order once recovered, and nothing of strategy b; with the key still
    off, nothing."""
    path = base / "j.sqlite"
    journal = SqliteJournal(path)
    try:
        live = build(base, journal, RiskConfig(**FILLS, cancel_on_disable=False))
        live.start()
        quote(live, 10_000, T0)
        a_order, _ = rest(live, "a"), rest(live, "b")
        live.risk.disable_strategy("a", "max_fills")
    finally:
        journal.close()
    recovered = build(base, None, RiskConfig(**FILLS, cancel_on_disable=cancel_now))
    sent: list[Order] = []
    monkeypatch.setattr(recovered.venue, "cancel", sent.append)
    journal = SqliteJournal(path)
    try:
        recover_state(recovered, journal)
    finally:
        journal.close()
    asked = recovered.cancel_disabled_orders()
    if cancel_now:
        assert asked == 1
        assert [o.client_order_id for o in sent] == [a_order.client_order_id]
    else:
        assert asked == 0 and sent == []
    recovered.cancel_disabled_orders()  # a cancel pending already is not sent again
    assert len(sent) == (1 if cancel_now else 0)
