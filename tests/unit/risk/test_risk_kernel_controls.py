"""The new controls through a whole Kernel: quotes pause an instrument, fills disable a
strategy, the events are journaled, and a disabled strategy stays disabled after a
restart (journal replay and snapshot)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from bastion.journal import SqliteJournal
from bastion.model.enums import OrderStatus, TradingState
from bastion.recovery.replay import recover_state
from bastion.recovery.state import capture, decode
from bastion.risk.config import RiskConfig
from kit.risk_kernel import IID, MS, T0, build, journaled_types, market, quote
from kit.strategies import IDLE_STRATEGY


@pytest.fixture
def base(tmp_path: Path) -> Path:
    (tmp_path / "idle.py").write_text(IDLE_STRATEGY)
    return tmp_path


def test_when_quotes_jump_and_fills_repeat_then_events_are_journaled(base: Path) -> None:
    """Kernel.on_quote pauses and resumes the instrument; the third fill of strategy a
    disables it; the operator enables it; all four events are in the journal."""
    path = base / "j.sqlite"
    journal = SqliteJournal(path)
    try:
        kernel = build(base, journal)
        kernel.start()
        quote(kernel, 10_000, T0)
        quote(kernel, 10_201, T0 + MS)  # 2.01 % in 1 ms
        assert kernel.risk.paused_instruments.keys() == {IID}
        assert market(kernel, "a").status is OrderStatus.DENIED
        quote(kernel, 10_201, T0 + 101 * MS)  # the pause has ended
        assert kernel.risk.paused_instruments == {}
        for _ in range(3):
            assert market(kernel, "a").status is OrderStatus.FILLED
        assert kernel.risk.disabled.keys() == {"a"}
        assert market(kernel, "a").status is OrderStatus.DENIED
        assert market(kernel, "b").status is OrderStatus.FILLED
        assert kernel.risk.enable_strategy("a", "alice", "checked")
        assert market(kernel, "a").status is OrderStatus.FILLED
    finally:
        journal.close()
    types = journaled_types(path)
    assert types.index("InstrumentPaused") < types.index("InstrumentResumed")
    assert types.index("StrategyDisabled") < types.index("StrategyEnabled")
    assert kernel.risk.denials == {"INSTRUMENT_PAUSED": 1, "STRATEGY_DISABLED": 1}


def test_when_restarted_then_a_disabled_strategy_stays_disabled(base: Path) -> None:
    """Recovery replays StrategyDisabled/StrategyEnabled: the last word per strategy holds."""
    path = base / "j.sqlite"
    journal = SqliteJournal(path)
    try:
        live = build(base, journal)
        live.start()
        live.risk.disable_strategy("a", "max_fills")
        live.risk.disable_strategy("b", "max_daily_loss")
        live.risk.enable_strategy("b", "alice", "ok")
    finally:
        journal.close()
    journal = SqliteJournal(path)
    try:
        recovered = build(base, None)
        report = recover_state(recovered, journal)
    finally:
        journal.close()
    assert recovered.risk.disabled == {"a": "max_fills"}
    assert report.disabled_strategies == ["a"]
    recovered.start()
    quote(recovered, 10_000, T0)
    assert market(recovered, "a").status is OrderStatus.DENIED
    assert market(recovered, "b").status is OrderStatus.FILLED


def test_when_snapshot_then_it_holds_the_disabled_set_and_the_tail_updates_it(
    base: Path,
) -> None:
    """The snapshot carries the disabled strategies; events after it still apply."""
    path = base / "j.sqlite"
    journal = SqliteJournal(path)
    try:
        live = build(base, journal)
        live.start()
        live.risk.disable_strategy("a", "max_fills")
        live.risk.disable_strategy("b", "max_drawdown")
        journal.snapshot(capture(live, node_id="n", epoch=1), T0)
        live.risk.enable_strategy("a", "alice", "ok")
    finally:
        journal.close()
    journal = SqliteJournal(path)
    try:
        recovered = build(base, None)
        report = recover_state(recovered, journal)
    finally:
        journal.close()
    assert report.snapshot_seq is not None
    assert recovered.risk.disabled == {"b": "max_drawdown"}


def test_when_snapshot_predates_the_disabled_set_then_it_still_decodes(base: Path) -> None:
    """An older snapshot without disabled_strategies decodes with none disabled."""
    live = build(base, None)
    live.risk.disable_strategy("a", "x")
    raw = msgspec.msgpack.decode(capture(live, node_id="n", epoch=1))
    assert raw.pop("disabled_strategies") == {"a": "x"}
    assert decode(msgspec.msgpack.encode(raw)).disabled_strategies == {}


def test_when_node_loss_limit_breached_through_fills_then_kernel_halts(base: Path) -> None:
    """A node-wide breach found on a fill halts the node (TradingStateChanged journaled)."""
    path = base / "j.sqlite"
    journal = SqliteJournal(path)
    try:
        kernel = build(base, journal, RiskConfig(max_daily_loss_node=Decimal("0.01")))
        kernel.start()
        quote(kernel, 10_000, T0)
        market(kernel, "a")  # bought at the ask 100.01, marked at the bid 99.99: -0.02
        assert kernel.risk.state is TradingState.HALTED
        assert "max_daily_loss_node 0.01" in kernel.risk.state_reason
    finally:
        journal.close()
    assert "TradingStateChanged" in journaled_types(path)


def test_when_strategies_are_known_then_the_operator_is_not_limited(base: Path) -> None:
    """Per-strategy limits apply to the node's strategies, not to operator orders."""
    kernel = build(base, None, RiskConfig(max_fills=1, fills_window_ms=1_000))
    kernel.start()
    quote(kernel, 10_000, T0)
    for _ in range(3):
        market(kernel, "operator")
    assert kernel.risk.disabled == {}
