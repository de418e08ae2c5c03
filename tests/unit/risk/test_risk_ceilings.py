"""Overrides are bounded: each numeric limit loosens in one direction, at most
``max_override_factor`` times its configured value (divided, for a limit looser lower),
measured against the config's value where the limit applies (never an override in
force, nor an instrument table left unset); an admin raises a ceiling, journaled."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, get_args

import msgspec
import pytest

from bastion.bus import MessageBus
from bastion.clock import SimClock
from bastion.errors import ConfigError
from bastion.model.events import RiskCeilingRaised, RiskOverrideSet
from bastion.risk.ceilings import LOOSER_HIGHER, LOOSER_LOWER, Ceilings, assess
from bastion.risk.config import (
    AccountRiskConfig,
    InstrumentRiskConfig,
    RiskConfig,
    StrategyRiskConfig,
    ThrottleConfig,
)
from bastion.risk.overrides import RiskOverrides

TWO = Decimal(2)
BASE = RiskConfig(
    max_order_quantity=Decimal(10),
    max_order_notional=Decimal(1000),
    fills_window_ms=1000,
    max_fills=5,
    collar_window_pct=Decimal(2),
    collar_window_ms=1000,
    collar_window_pause_ms=5000,
    instruments={"B.SIM": InstrumentRiskConfig(max_order_quantity=Decimal(4))},
    strategies={"ema": StrategyRiskConfig(max_daily_loss=Decimal(100))},
    venues={"SIM": ThrottleConfig(max_messages_per_s=50)},
    accounts={"desk": AccountRiskConfig(strategies=["ema"], max_cash_usage=Decimal(500))},
)


def numeric_fields() -> set[str]:
    """Every numeric limit an override may set, found from the config structs."""
    found: set[str] = set()
    for struct in (RiskConfig, InstrumentRiskConfig, StrategyRiskConfig, ThrottleConfig):
        for field in msgspec.structs.fields(struct):
            types = set(get_args(field.type)) or {field.type}
            if types & {int, Decimal} and not types & {bool}:
                found.add(field.name)
    return found


def test_when_a_numeric_limit_exists_then_it_has_exactly_one_direction() -> None:
    """A new numeric limit fails here until it is said to be looser higher or lower."""
    assert LOOSER_HIGHER.isdisjoint(LOOSER_LOWER)
    assert numeric_fields() == LOOSER_HIGHER | LOOSER_LOWER


@pytest.mark.parametrize(
    ("path", "value", "looser", "ceiling"),
    [
        ("max_order_quantity", "20", True, "20"),  # at the ceiling: allowed
        ("max_order_quantity", "5", False, "20"),  # tighter
        ("max_order_quantity", "10", False, "20"),  # the config's own value
        ("fills_window_ms", "500", True, "500"),  # shorter window: looser, at the ceiling
        ("fills_window_ms", "2000", False, "500"),  # longer window: tighter
        ("instruments.A.SIM.max_order_quantity", "20", True, "20"),  # inherits [risk]'s 10
        ("instruments.B.SIM.max_order_quantity", "8", True, "8"),  # its own 4
        ("strategies.ema.max_daily_loss", "200", True, "200"),
        ("strategies.other.max_fills", "10", True, "10"),  # inherits [risk]'s 5
        ("venues.SIM.max_messages_per_s", "100", True, "100"),
        ("accounts.desk.max_cash_usage", "1000", True, "1000"),
        ("max_daily_loss_node", "1000000000000000", False, None),  # unset: any is tighter
        ("self_trade", "deny", True, None),  # unordered: any change
        ("trading_day_start", "12:00", True, None),
    ],
)
def test_when_an_override_is_assessed_then_its_direction_and_ceiling_follow_the_config(
    path: str, value: str, looser: bool, ceiling: str | None
) -> None:
    """Looser or not is against the config's value where the limit applies; the ceiling
    is 2x that value (or half, for a window)."""
    change = assess(BASE, path, value, factor=TWO, raised={})
    assert change.looser is looser
    assert change.ceiling == (None if ceiling is None else Decimal(ceiling))


@pytest.mark.parametrize(
    ("path", "value", "bound"),
    [
        ("max_order_quantity", "20.01", "above its ceiling 20 (2 x the configured 10)"),
        ("max_order_quantity", "1000000000000000", "above its ceiling 20"),
        ("fills_window_ms", "499", "below its ceiling 500 (the configured 1000 / 2)"),
        ("collar_window_pause_ms", "1", "below its ceiling 2500"),
        # an instrument's table unset cannot escape [risk]'s bound
        ("instruments.A.SIM.max_order_quantity", "21", "above its ceiling 20"),
        ("strategies.other.max_fills", "11", "above its ceiling 10"),
    ],
)
def test_when_an_override_goes_beyond_its_ceiling_then_refused_naming_the_bound(
    path: str, value: str, bound: str
) -> None:
    """One step past the ceiling is refused, naming the bound and how to raise it."""
    with pytest.raises(ConfigError, match="ceiling") as refused:
        assess(BASE, path, value, factor=TWO, raised={})
    assert bound in str(refused.value)
    assert "an admin may raise the ceiling" in str(refused.value)


def overrides(clock: SimClock, factor: Decimal = TWO) -> tuple[RiskOverrides, list[Any]]:
    bus = MessageBus()
    events: list[Any] = []
    for kind in (RiskOverrideSet, RiskCeilingRaised):
        bus.subscribe(kind, events.append)
    applied: list[RiskConfig] = []
    return (
        RiskOverrides(
            base=BASE,
            apply=applied.append,
            bus=bus,
            clock=clock,
            id_prefix="1.",
            ceilings=Ceilings(factor),
        ),
        events,
    )


def test_when_overrides_stack_then_each_is_bounded_by_the_config_not_the_last() -> None:
    """Setting 20 and then 40 does not ratchet: 40 is beyond 2x the config's 10."""
    risk, _ = overrides(SimClock(1))
    risk.set("max_order_quantity", "20", 60, who="rita", why="auction")
    with pytest.raises(ConfigError, match="above its ceiling 20"):
        risk.set("max_order_quantity", "40", 60, who="rita", why="more")
    assert [o.value for o in risk.active.values()] == ["20"]


def test_when_a_ceiling_is_raised_then_overrides_may_reach_it_and_it_is_journaled() -> None:
    """raise_ceiling 50: an override of 50 is allowed, 51 refused naming the raised
    ceiling; RiskCeilingRaised says the new and the old bound, who and why."""
    risk, events = overrides(SimClock(1))
    assert risk.raise_ceiling("max_order_quantity", "50", who="ada", why="rebalance") == 50
    risk.set("max_order_quantity", "50", 60, who="rita", why="rebalance")
    with pytest.raises(ConfigError, match=r"above its ceiling 50 \(raised by an admin\)"):
        risk.set("max_order_quantity", "51", 60, who="rita", why="more")
    raised = [e for e in events if isinstance(e, RiskCeilingRaised)]
    assert [(e.path, e.ceiling, e.previous, e.who, e.why) for e in raised] == [
        ("max_order_quantity", "50", "20", "ada", "rebalance")
    ]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("max_order_quantity", "15", r"must be above the current one \(20\)"),
        ("fills_window_ms", "600", r"must be below the current one \(500\)"),
        ("self_trade", "off", "has no ceiling to raise: it is not a number"),
        ("max_daily_loss_node", "5", "has no ceiling to raise: the config sets no value"),
        ("max_order_quantity", "lots", "max_order_quantity"),
    ],
)
def test_when_a_ceiling_raise_is_not_a_raise_then_refused(
    path: str, value: str, message: str
) -> None:
    """A ceiling is only raised (looser than the current bound), and only where there
    is one; nothing is journaled then."""
    risk, events = overrides(SimClock(1))
    with pytest.raises(ConfigError, match=message):
        risk.raise_ceiling(path, value, who="ada", why="x")
    assert events == [] and risk.ceilings.raised == {}


def test_when_the_factor_is_one_then_no_override_loosens_without_a_raised_ceiling() -> None:
    """max_override_factor = 1: the config's value is the ceiling."""
    risk, _ = overrides(SimClock(1), factor=Decimal(1))
    risk.set("max_order_quantity", "10", 60, who="rita", why="same")
    with pytest.raises(ConfigError, match="above its ceiling 10"):
        risk.set("max_order_quantity", "10.5", 60, who="rita", why="more")
    with pytest.raises(ValueError, match="at least 1"):
        Ceilings(Decimal("0.5"))
