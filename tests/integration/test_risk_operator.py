"""Operator changes to a running node's risk limits, as an operator types them: a
temporary override that expires by itself, one that survives a restart and is cleared,
a strategy the gate disabled and the operator enables, and a config file change at
start: each journaled with who and why. Waits use ``eventually``, never a sleep."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

from bastion.model import events as ev
from kit.journal_reading import peek_journal, read_journal
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

TOML = """
[node]
id = "ops-1"

[[instruments]]
id = "XYZ.SIM"
tick_size = "0.01"
lot_size = "1"

[[strategies]]
name = "hoarder"
path = "strategies/hoarder.py"
class = "Hoarder"
[strategies.params]
instrument = "XYZ.SIM"
market_every = 5

[risk]
max_order_quantity = "{max_qty}"
max_fills = 3
fills_window_ms = 600000

[feed]
instrument = "XYZ.SIM"
interval_ms = 20

[journal]
path = "j/node.sqlite"
"""


def write(root: Path, max_qty: str = "10") -> tuple[Path, Path]:
    (root / "strategies").mkdir(parents=True, exist_ok=True)
    (root / "strategies" / "hoarder.py").write_text(HOARDER, encoding="utf-8")
    config = root / "ops.toml"
    config.write_text(TOML.replace("{max_qty}", max_qty), encoding="utf-8")
    return config, root / "j" / "node.sqlite"


def cli(*args: str | Path, cwd: Path) -> tuple[int, dict[str, Any], str]:
    proc: subprocess.CompletedProcess[str] = run_to_end(*args, cwd=cwd)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return proc.returncode, json.loads(lines[-1]) if lines else {}, proc.stderr


def events_of(journal: Path, kind: type) -> list[Any]:
    return [e for _, e in peek_journal(journal) if isinstance(e, kind)]


def test_overrides_enable_and_config_changes_are_applied_and_journaled(tmp_path: Path) -> None:
    config, journal = write(tmp_path)
    with running_node("run", config, cwd=tmp_path) as (node, log):
        eventually(lambda: still_running(node, log) and status(journal), START_TIMEOUT_S)
        # 1. the first start journals the limits it runs with
        (first,) = eventually(lambda: events_of(journal, ev.RiskLimitsChanged))
        assert "max_order_quantity: none -> 10" in first.changes

        # 2. a short override applies at once and ends by itself
        code, answer, err = cli(
            "risk",
            "set",
            config,
            "max_order_quantity",
            "2",
            "--for",
            "1s",
            "--why",
            "drill",
            cwd=tmp_path,
        )
        assert code == 0, err
        short_id = answer["override"]["id"]
        (set_event,) = events_of(journal, ev.RiskOverrideSet)
        assert (set_event.path, set_event.value, set_event.previous) == (
            "max_order_quantity",
            "2",
            "10",
        )
        assert set_event.why == "drill" and set_event.who
        ended = eventually(lambda: events_of(journal, ev.RiskOverrideEnded), timeout_s=10)
        assert [(e.override_id, e.how) for e in ended] == [(short_id, "expired")]

        # 3. a bad key or value is refused by the node, naming it; nothing changes
        code, answer, err = cli(
            "risk",
            "set",
            config,
            "max_order_qty",
            "2",
            "--for",
            "1m",
            "--why",
            "typo",
            cwd=tmp_path,
        )
        assert code == 1 and "not a limit that can be set" in err
        code, _, err = cli(
            "risk",
            "set",
            config,
            "max_order_quantity",
            "-3",
            "--for",
            "1m",
            "--why",
            "x",
            cwd=tmp_path,
        )
        assert code == 1 and "must be > 0" in err
        code, _, err = cli(
            "risk",
            "set",
            config,
            "max_order_quantity",
            "3",
            "--for",
            "0s",
            "--why",
            "x",
            cwd=tmp_path,
        )
        assert code == 2 and "must be more than 0" in err
        assert len(events_of(journal, ev.RiskOverrideSet)) == 1

        # 4. a long override, still running when the node restarts
        code, answer, err = cli(
            "risk",
            "set",
            config,
            "instruments.XYZ.SIM.max_order_quantity",
            "4",
            "--for",
            "1h",
            "--why",
            "open auction",
            cwd=tmp_path,
        )
        assert code == 0, err
        long_id = answer["override"]["id"]

        # 5. the hoarder's fills pass max_fills: disabled; the operator enables it
        disabled = eventually(lambda: events_of(journal, ev.StrategyDisabled), timeout_s=15)
        assert disabled[0].strategy_id == "hoarder" and "max_fills 3" in disabled[0].reason
        code, answer, err = cli("status", config, cwd=tmp_path)
        assert code == 0, err
        assert answer["disabled_strategies"] == {"hoarder": disabled[0].reason}
        assert answer["state"] == "ACTIVE" and answer["risk_overrides"] == 1
        code, answer, err = cli("enable", config, "hoarder", "--why", "drill", cwd=tmp_path)
        assert code == 0 and answer["enabled"] is True, err
        (enabled,) = events_of(journal, ev.StrategyEnabled)
        assert (enabled.strategy_id, enabled.why) == ("hoarder", "drill")
        code, _, err = cli("enable", config, "nobody", "--why", "x", cwd=tmp_path)
        assert code == 1 and "no strategy 'nobody'" in err
        node.send_signal(signal.SIGTERM)
        assert node.wait(timeout=STOP_TIMEOUT_S) == 0

    # 6. restart with another max_order_quantity in the file: journaled as a change;
    # the long override is still in force and is cleared by the operator
    config, journal = write(tmp_path, max_qty="20")
    with running_node("run", config, cwd=tmp_path) as (node, log):
        eventually(lambda: still_running(node, log) and status(journal), START_TIMEOUT_S)
        changes = eventually(lambda: events_of(journal, ev.RiskLimitsChanged)[1:])
        assert changes[0].changes == ["max_order_quantity: 10 -> 20"]
        code, answer, err = cli("risk", "list", config, cwd=tmp_path)
        assert code == 0, err
        assert [o["id"] for o in answer["overrides"]] == [long_id]
        code, answer, err = cli(
            "risk", "clear", config, long_id, "--why", "auction over", cwd=tmp_path
        )
        assert code == 0 and answer["cleared"] == long_id, err
        code, answer, _ = cli("risk", "list", config, cwd=tmp_path)
        assert answer["overrides"] == []
        node.send_signal(signal.SIGTERM)
        assert node.wait(timeout=STOP_TIMEOUT_S) == 0
    ended = [e for _, e in read_journal(journal) if isinstance(e, ev.RiskOverrideEnded)]
    assert [(e.override_id, e.how, e.why) for e in ended] == [
        (short_id, "expired", "its time ran out"),
        (long_id, "cleared", "auction over"),
    ]
