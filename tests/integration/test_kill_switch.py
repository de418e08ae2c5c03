"""The kill switch end to end: a paper node in a subprocess, `bastion kill --flatten` and
`bastion resume` as an operator types them, checked through the node's status command
and its journal (read-only while it runs). HALTED survives a restart.

Waits use ``eventually``, never a sleep.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from bastion.model import events as ev
from bastion.model.enums import OrderSide, TradingState
from bastion.node.control import socket_path
from kit.hoarder_node import hoarder_node_toml
from kit.journal_reading import (
    halted_denials_after,
    last_state_change,
    net_position,
    peek_journal,
    read_journal,
    trading_long_with_resting_orders,
)
from kit.node_process import (
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    run_to_end,
    running_node,
    status,
    still_running,
)
from kit.strategies import HOARDER
from kit.waiting import eventually

KILL_TOML = hoarder_node_toml(
    "kill-1",
    """
[journal]
path = "j/node.sqlite"
""",
)


def write_desk(root: Path) -> tuple[Path, Path]:
    """The config and strategy of the kill test: (config, journal)."""
    (root / "strategies").mkdir(parents=True, exist_ok=True)
    (root / "strategies" / "hoarder.py").write_text(HOARDER, encoding="utf-8")
    config = root / "kill.toml"
    config.write_text(KILL_TOML, encoding="utf-8")
    return config, root / "j" / "node.sqlite"


@pytest.mark.timeout(120)
def test_when_killed_with_flatten_then_flat_halted_across_restart_until_resumed(
    tmp_path: Path,
) -> None:
    """kill --flatten: no open orders, flat, HALTED; a restart stays HALTED; resume trades."""
    config, journal = write_desk(tmp_path)
    sock = socket_path(journal)

    # -- run 1: trade, kill --flatten, stop ------------------------------------------
    with running_node("run", config.name, cwd=tmp_path) as (proc, log):
        eventually(
            lambda: still_running(proc, log) and trading_long_with_resting_orders(journal),
            timeout_s=START_TIMEOUT_S,
        )
        assert sock.is_socket() and (sock.stat().st_mode & 0o777) == 0o600
        killed = run_to_end("kill", config.name, "--flatten", "--why", "test drill", cwd=tmp_path)
        assert killed.returncode == 0, killed.stderr
        answer = json.loads(killed.stdout)
        assert answer["ok"] is True
        assert answer["state"] == "HALTED"
        assert answer["cancels_sent"] >= 2  # the two resting quotes at least
        assert answer["flatten_sent"] == 1
        assert answer["flatten_denied"] == 0
        assert answer["open_orders"] == 0
        assert answer["positions"] == {"XYZ.SIM": "0"}
        assert answer["elapsed_ms"] >= answer["committed_ms"] >= answer["kill_ms"] >= 0

        def flat_and_halted() -> dict[str, Any]:
            now = status(journal)
            assert now["state"] == "HALTED"
            assert now["open_orders"] == 0
            assert now["positions"] == {"XYZ.SIM": "0"}, now
            return now

        after_kill = eventually(flat_and_halted, timeout_s=5)
        assert "test drill" in after_kill["reason"]
        seq_halt, halt = last_state_change(peek_journal(journal))
        assert halt.state is TradingState.HALTED
        assert "kill by " in halt.reason and "test drill" in halt.reason
        # the strategy keeps trying: every new order is denied TRADING_HALTED
        denied = eventually(lambda: halted_denials_after(journal, seq_halt, "hoarder"), timeout_s=5)
        assert {e.reason for e in denied} == {"TRADING_HALTED"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_TIMEOUT_S) == 0, log.read_text()
    assert not sock.exists()

    events_1 = read_journal(journal)
    assert net_position(events_1) == 0
    operator_fills = [
        e for _, e in events_1 if isinstance(e, ev.OrderFilled) and e.strategy_id == "operator"
    ]
    assert len(operator_fills) == 1 and operator_fills[0].side is OrderSide.SELL
    submitted_after = [
        e
        for s, e in events_1
        if s > seq_halt and isinstance(e, ev.OrderSubmitted) and e.strategy_id != "operator"
    ]
    assert submitted_after == []
    last_seq_1 = events_1[-1][0]

    # -- run 2: restored HALTED, nothing sent; resume, orders flow ------------------------
    with running_node("run", config.name, cwd=tmp_path) as (proc, log):
        restarted = eventually(
            lambda: still_running(proc, log) and status(journal), timeout_s=START_TIMEOUT_S
        )
        assert restarted["state"] == "HALTED"
        assert restarted["restored"] is True
        assert "test drill" in restarted["reason"]
        eventually(lambda: halted_denials_after(journal, last_seq_1, "hoarder"), timeout_s=5)
        run_2 = [(s, e) for s, e in peek_journal(journal) if s > last_seq_1]
        assert not [e for _, e in run_2 if isinstance(e, ev.OrderSubmitted)]
        assert "trading_state_restored" in log.read_text()

        resumed = run_to_end("resume", config.name, "--why", "drill over", cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout) == {"ok": True, "state": "ACTIVE", "previous": "HALTED"}

        def orders_flow() -> bool:
            events = peek_journal(journal)
            seq_resume, change = last_state_change(events)
            assert change.state is TradingState.ACTIVE
            assert "drill over" in change.reason
            sent = [e for s, e in events if s > seq_resume and isinstance(e, ev.OrderAccepted)]
            assert sent, "no order accepted since resume"
            return True

        eventually(orders_flow, timeout_s=5)
        assert status(journal)["state"] == "ACTIVE"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_TIMEOUT_S) == 0, log.read_text()


@pytest.mark.timeout(120)
def test_when_the_node_dies_right_after_kill_answers_then_it_restarts_halted(
    tmp_path: Path,
) -> None:
    """kill answers once HALTED is committed: a node SIGKILLed right after the answer, with
    a journal that commits only every 60 s, restarts HALTED with the kill's reason."""
    config, journal = write_desk(tmp_path)
    slow = KILL_TOML.replace(
        'path = "j/node.sqlite"\n', 'path = "j/node.sqlite"\nflush_interval_ms = 60000\n'
    )
    assert slow != KILL_TOML
    config.write_text(slow, encoding="utf-8")
    with running_node("run", config.name, cwd=tmp_path) as (proc, log):
        eventually(
            lambda: still_running(proc, log) and status(journal)["open_orders"] >= 1,
            timeout_s=START_TIMEOUT_S,
        )
        killed = run_to_end("kill", config.name, "--why", "crash drill", cwd=tmp_path)
        assert killed.returncode == 0, killed.stderr
        proc.kill()  # no orderly shutdown: only what was committed survives
        proc.wait(timeout=STOP_TIMEOUT_S)
    with running_node("run", config.name, cwd=tmp_path) as (proc, log):
        restarted = eventually(
            lambda: still_running(proc, log) and status(journal), timeout_s=START_TIMEOUT_S
        )
        assert restarted["state"] == "HALTED" and restarted["restored"] is True
        assert "kill by " in restarted["reason"] and "crash drill" in restarted["reason"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_TIMEOUT_S) == 0, log.read_text()


def test_when_no_node_running_then_kill_exits_2_naming_socket(tmp_path: Path) -> None:
    """`bastion kill CONFIG` without a node: exit 2, the message names the socket path."""
    config, journal = write_desk(tmp_path)
    proc = run_to_end("kill", config.name, "--flatten", cwd=tmp_path)
    assert proc.returncode == 2
    assert str(socket_path(journal.resolve())) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_when_no_config_and_no_node_then_default_socket_named(tmp_path: Path) -> None:
    """Without CONFIG the embedded defaults' socket (./bastion-journal.sqlite.sock) is used."""
    proc = run_to_end("resume", cwd=tmp_path)
    assert proc.returncode == 2
    assert str(tmp_path / "bastion-journal.sqlite.sock") in proc.stderr


def test_when_config_invalid_then_kill_exits_2(tmp_path: Path) -> None:
    """A config that does not load is a usage error, before any socket is tried."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[node]\nnope = 1\n", encoding="utf-8")
    proc = run_to_end("kill", bad.name, cwd=tmp_path)
    assert proc.returncode == 2
    assert "nope" in proc.stderr
