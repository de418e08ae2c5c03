"""An operator command that changes the node's state answers only once its event is
committed to the journal: a crash right after the answer cannot lose a kill (the node
would trade after a restart), a resume, an enabled strategy, a risk override or its
end. The journal here commits only every 60 s, so only the command itself can have
put its event on disk."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.journal import SqliteJournal
from bastion.model.enums import OrderStatus, TradingState
from bastion.model.events import (
    InstrumentResumed,
    OrderFilled,
    RiskOverrideEnded,
    RiskOverrideSet,
    StrategyEnabled,
    TradingStateChanged,
)
from bastion.node.actions import NodeOperator
from bastion.node.kernel import OPERATOR_STRATEGY_ID
from kit.journal_reading import peek_journal
from kit.risk_kernel import IID, MS, T0, build, market, quote
from kit.strategies import IDLE_STRATEGY


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[NodeOperator, SqliteJournal]]:
    """A backtest kernel (strategies a and b, a collar window) journaling to a journal
    that commits seldom; XYZ.SIM paused by a jump, strategy a disabled."""
    (tmp_path / "idle.py").write_text(IDLE_STRATEGY)
    journal = SqliteJournal(tmp_path / "j.sqlite", commit_interval_ms=60_000)
    try:
        kernel = build(tmp_path, journal)
        kernel.start()
        quote(kernel, 10_000, T0)
        quote(kernel, 10_201, T0 + MS)  # 2.01 % within 1 ms: paused
        kernel.risk.disable_strategy("a", "max_fills")
        # the node's own events wait for the writer's interval
        assert journal.committed_seq < journal.last_seq
        yield NodeOperator(kernel), journal
    finally:
        journal.close()


def answered(
    journal: SqliteJournal, command: Coroutine[Any, Any, dict[str, Any]], kind: type
) -> tuple[dict[str, Any], Any]:
    """Run ``command``; once it has answered, everything it journaled is in the file, read
    by another connection, and its last event is a ``kind``."""
    answer = asyncio.run(command)
    assert journal.committed_seq == journal.last_seq
    _, last = peek_journal(journal.path)[-1]
    assert isinstance(last, kind), last
    return answer, last


@pytest.mark.parametrize("flatten", [False, True], ids=["kill", "kill-flatten"])
def test_when_kill_answers_then_halted_is_on_disk(
    node: tuple[NodeOperator, SqliteJournal], flatten: bool
) -> None:
    """kill: HALTED is committed before the answer; the answer says how long each part
    took (HALT and cancels handed over, then committed, then everything)."""
    operator, journal = node
    answer, event = answered(
        journal, operator.kill(flatten=flatten, who="op", why="drill"), TradingStateChanged
    )
    assert event.state is TradingState.HALTED and event.reason == "kill by op: drill"
    assert answer["state"] == "HALTED"
    assert answer["elapsed_ms"] >= answer["committed_ms"] >= answer["kill_ms"] >= 0


def test_when_kill_flatten_answers_then_its_flatten_orders_are_on_disk(tmp_path: Path) -> None:
    """kill --flatten with a position: the flatten order it sends, and its fill, are
    committed before the answer too (the last of them is the fill)."""
    (tmp_path / "idle.py").write_text(IDLE_STRATEGY)
    journal = SqliteJournal(tmp_path / "j.sqlite", commit_interval_ms=60_000)
    try:
        kernel = build(tmp_path, journal)
        kernel.start()
        quote(kernel, 10_000, T0)
        assert market(kernel, "b").status is OrderStatus.FILLED
        assert kernel.portfolio.net_quantity(IID) == 1
        assert journal.committed_seq < journal.last_seq
        answer, fill = answered(
            journal,
            NodeOperator(kernel).kill(flatten=True, who="op", why="drill"),
            OrderFilled,
        )
        assert (answer["flatten_sent"], answer["flatten_denied"]) == (1, 0)
        assert fill.strategy_id == OPERATOR_STRATEGY_ID
        assert kernel.portfolio.net_quantity(IID) == 0
    finally:
        journal.close()


def test_when_a_state_changing_command_answers_then_its_event_is_on_disk(
    node: tuple[NodeOperator, SqliteJournal],
) -> None:
    """kill, resume, resume --instrument, enable, risk set and risk clear: each answer
    comes after its event is committed."""
    operator, journal = node
    answered(journal, operator.kill(flatten=False, who="op", why="drill"), TradingStateChanged)
    answer, event = answered(journal, operator.resume(who="op", why="over"), TradingStateChanged)
    assert (answer["state"], event.state) == ("ACTIVE", TradingState.ACTIVE)
    answer, event = answered(
        journal, operator.resume(who="op", why="calm", instrument=IID), InstrumentResumed
    )
    assert answer["resumed"] is True and event.instrument_id == IID
    answer, event = answered(
        journal, operator.enable(strategy="a", who="op", why="checked"), StrategyEnabled
    )
    assert answer["enabled"] is True and event.strategy_id == "a"
    answer, event = answered(
        journal,
        operator.risk_set(path="max_order_quantity", value="5", for_s=60, who="op", why="x"),
        RiskOverrideSet,
    )
    override_id = answer["override"]["id"]
    assert event.override_id == override_id
    answer, event = answered(
        journal, operator.risk_clear(override_id=override_id, who="op", why="y"), RiskOverrideEnded
    )
    assert answer["cleared"] == event.override_id == override_id and event.how == "cleared"
