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

from bastion.errors import CommandRefused
from bastion.journal import SqliteJournal
from bastion.model.enums import OrderStatus, TradingState
from bastion.model.events import (
    AlertAcknowledged,
    AlertSilenced,
    InstrumentResumed,
    OrderFilled,
    RiskOverrideEnded,
    RiskOverrideSet,
    StrategyEnabled,
    TradingStateChanged,
    VenueSessionLost,
)
from bastion.monitor.alerts.engine import AlertEngine
from bastion.monitor.alerts.rules import alert_rules
from bastion.node.actions import NodeOperator
from bastion.node.kernel import OPERATOR_STRATEGY_ID
from kit.alerts import RecordingNotifier
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


def alerting(operator: NodeOperator) -> AlertEngine:
    """The built-in alert rules on the operator's kernel, notifying a recorder."""
    kernel = operator.kernel
    engine = AlertEngine(
        bus=kernel.bus,
        clock=kernel.clock,
        rules=alert_rules([], quote_stale_s=5.0, daily_loss=None),
        routes=[],
        notifier=RecordingNotifier(),
        node="node-1",
        id_prefix="1.",
    )
    operator.alerts = engine
    return engine


def test_when_an_alert_is_acknowledged_then_the_answer_comes_once_it_is_on_disk(
    node: tuple[NodeOperator, SqliteJournal],
) -> None:
    """alert_ack: AlertAcknowledged (with who and why) is committed before the answer."""
    operator, journal = node
    engine = alerting(operator)
    operator.kernel.bus.publish(VenueSessionLost(ts_ns=T0, venue="SIM", reason="dropped"))
    (alert_id,) = engine.by_id
    answer, event = answered(
        journal, operator.alert_ack(alert_id=alert_id, who="op", why="on it"), AlertAcknowledged
    )
    assert answer == {"acknowledged": alert_id, "alert": "venue-disconnected"}
    assert (event.alert_id, event.who, event.why) == (alert_id, "op", "on it")
    listed = asyncio.run(operator.alerts_list())
    assert listed["alerts"][0]["acknowledged"] == {"who": "op", "why": "on it"}


def test_when_alerts_are_silenced_then_the_answer_comes_once_it_is_on_disk(
    node: tuple[NodeOperator, SqliteJournal],
) -> None:
    """alert_silence: AlertSilenced (who, why, until) is committed before the answer."""
    operator, journal = node
    alerting(operator)
    command = operator.alert_silence(
        alert="stale-market-data", labels={"instrument": IID}, for_s=3600, who="op", why="halt"
    )
    answer, event = answered(journal, command, AlertSilenced)
    assert answer["silence"] == event.silence_id and answer["labels"] == {"instrument": IID}
    assert (event.alert, event.who, event.why) == ("stale-market-data", "op", "halt")
    assert event.until_ns == operator.kernel.clock.timestamp_ns() + 3600 * 10**9


def test_when_alerting_is_off_then_alert_commands_are_refused(
    node: tuple[NodeOperator, SqliteJournal],
) -> None:
    """A node without monitoring says so instead of pretending."""
    operator, _ = node
    with pytest.raises(CommandRefused, match="alerting is off on this node"):
        asyncio.run(operator.alerts_list())
