"""A hostile strategy in a paper node, isolated as a live node runs it: every way out of
its process that the reviewer of issue 13 tried fails, while the core keeps trading.

The node runs two strategies, each in its sandboxed process: ``trader`` (one-lot
orders, the business that must go on) and ``hostile`` (``strategies/hostile.py``),
which tries to reach the core's objects, secrets, files, sockets, control channel and
process, sends a 5,000-lot order with ``max_order_quantity = 100``, and at last writes
a forged order straight on its channel. It logs one ``attack`` line per attempt; the
node relays them to its stderr (JSON logs). The node's environment holds a secret
(``BASTION_FIX_PASSWORD``) that must appear nowhere the strategy could report it.
Waits use ``eventually``, never a sleep.
"""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bastion.isolation.sandbox import ENV_ALWAYS, landlock_abi
from bastion.model import events as ev
from bastion.model.enums import TradingState
from bastion.node.control import socket_path
from kit.journal_reading import peek_journal, read_journal
from kit.node_process import START_TIMEOUT_S, STOP_TIMEOUT_S, running_node, status, still_running
from kit.paths import TESTS_DIR
from kit.strategies import HOARDER
from kit.waiting import eventually

HOSTILE_FILE = TESTS_DIR / "integration" / "strategies" / "hostile.py"
SECRET_NAME = "BASTION_FIX_PASSWORD"
SECRET = "fix-pw-7Qz4-never-in-a-strategy"
MAX_LOTS = 100

ATTACKS = frozenset(
    {
        "own_fds",
        "bound_method_self",
        "gc_core_objects",
        "gc_sockets",
        "set_trading_state",
        "environ",
        "proc_core_environ",
        "proc_core_mem",
        "proc_core_fd_list",
        "proc_core_fd_open",
        "ptrace_core",
        "journal_read",
        "journal_write",
        "tcp_connect",
        "tcp_listen",
        "udp_send",
        "control_kill",
        "control_resume",
        "control_kill_exited_child",
        "signal_core_sigterm",
        "signal_core_sigstop",
        "process_left_behind",
        "oversized_order",
    }
)
"""Every attempt ``hostile.py`` makes (its ``attack`` lines' names)."""

NODE_TOML = """
[node]
id = "attacked"
log_format = "json"

[[instruments]]
id = "XYZ.SIM"
tick_size = "0.01"
lot_size = "1"

[[strategies]]
name = "trader"
path = "strategies/hoarder.py"
class = "Hoarder"
[strategies.params]
instrument = "XYZ.SIM"
market_every = 3

[[strategies]]
name = "hostile"
path = "{hostile}"
class = "Hostile"
[strategies.params]
instrument = "XYZ.SIM"
journal = "{journal}"
control_socket = "{control}"
tcp_port = {port}
udp_port = {udp_port}
victim = "trader"

[risk]
max_order_quantity = "{max_lots}"
max_order_notional = "10000000"

[venue]
latency_ms = 2

[feed]
instrument = "XYZ.SIM"
interval_ms = 20

[journal]
path = "j/node.sqlite"
"""


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP port listening on 127.0.0.1 that the strategy must not reach."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        sock.setblocking(False)
        yield sock


@pytest.fixture
def udp_listener() -> Iterator[socket.socket]:
    """A UDP port on 127.0.0.1 that the strategy must not reach."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        yield sock


def write_desk(root: Path, port: int, udp_port: int) -> tuple[Path, Path]:
    """The node's config and its trader's file: (config, journal)."""
    journal = root / "j" / "node.sqlite"
    (root / "strategies").mkdir()
    (root / "strategies" / "hoarder.py").write_text(HOARDER, encoding="utf-8")
    config = root / "attacked.toml"
    config.write_text(
        NODE_TOML.format(
            hostile=HOSTILE_FILE,
            journal=journal,
            control=socket_path(journal),
            port=port,
            udp_port=udp_port,
            max_lots=MAX_LOTS,
        ),
        encoding="utf-8",
    )
    return config, journal


def node_logs(log: Path) -> list[dict[str, Any]]:
    """The node's stderr as JSON log lines (its own and its strategy processes')."""
    text = log.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def hostile_done_and_failed(journal: Path, log: Path) -> int:
    """The journal's last seq once the hostile strategy has reported every attempt and
    its forged frame has failed its process."""
    assert any(line["event"] == "attacks_done" for line in node_logs(log)), "attacks not done"
    events = peek_journal(journal)
    failed = [e for _, e in events if isinstance(e, ev.StrategyFailed)]
    assert failed, "the forged frame has not failed the hostile process yet"
    return events[-1][0]


def trader_filled_after(journal: Path, seq: int) -> bool:
    fills = [
        e
        for s, e in peek_journal(journal)
        if s > seq and isinstance(e, ev.OrderFilled) and e.strategy_id == "trader"
    ]
    assert len(fills) >= 3, "the trader has not traded since"
    return True


@pytest.mark.skipif(landlock_abi() < 6, reason="needs Landlock ABI 6 (signals scoped)")
@pytest.mark.timeout(90)
def test_when_a_strategy_attacks_the_node_then_every_attempt_fails_and_trading_goes_on(
    tmp_path: Path,
    listener: socket.socket,
    udp_listener: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every attempt blocked; nothing over 100 lots reaches the venue; ACTIVE, trading."""
    monkeypatch.setenv(SECRET_NAME, SECRET)
    config, journal = write_desk(tmp_path, listener.getsockname()[1], udp_listener.getsockname()[1])
    with running_node("run", config.name, cwd=tmp_path) as (proc, log):
        seq = eventually(
            lambda: still_running(proc, log) and hostile_done_and_failed(journal, log),
            timeout_s=START_TIMEOUT_S,
        )
        eventually(lambda: trader_filled_after(journal, seq), timeout_s=5)
        now = status(journal)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_TIMEOUT_S) == 0, log.read_text()

    logs = node_logs(log)
    attacks = {line["name"]: line for line in logs if line["event"] == "attack"}
    assert set(attacks) == ATTACKS
    breaches = {name: line["detail"] for name, line in attacks.items() if not line["blocked"]}
    assert breaches == {}
    environ = next(line["environ"] for line in logs if line["event"] == "environ_seen")
    assert set(environ) <= set(ENV_ALWAYS)
    own_fds = next(line for line in logs if line["event"] == "own_fds")
    assert set(own_fds["fds"]) == {"0", "1", "2", str(own_fds["channel"])}
    refused = [line for line in logs if line["event"] == "control_refused_own_descendant"]
    assert len(refused) == 2  # kill and resume (its child was never born)
    assert "Operation not permitted" in attacks["control_kill_exited_child"]["detail"]
    assert SECRET not in log.read_text(encoding="utf-8")
    with pytest.raises(BlockingIOError):
        listener.accept()  # nothing connected to the port
    with pytest.raises(BlockingIOError):
        udp_listener.recv(16)  # nothing came in

    assert now["state"] == TradingState.ACTIVE.value
    processes = now["strategies"]["processes"]
    assert processes["trader"]["state"] == "running"
    assert processes["hostile"]["state"] == "failed"
    assert "protocol violation" in processes["hostile"]["failure"]

    events = read_journal(journal)
    assert not [e for _, e in events if isinstance(e, ev.TradingStateChanged)]
    quantity = {
        e.client_order_id: e.quantity for _, e in events if isinstance(e, ev.OrderInitialized)
    }
    submitted = [e for _, e in events if isinstance(e, ev.OrderSubmitted)]
    assert submitted and all(quantity[e.client_order_id] <= MAX_LOTS for e in submitted)
    fills = [e for _, e in events if isinstance(e, ev.OrderFilled)]
    assert fills and all(e.last_qty <= MAX_LOTS for e in fills)
    assert {e.strategy_id for e in fills} == {"trader"}
    big = [coid for coid, qty in quantity.items() if qty > MAX_LOTS]
    assert len(big) == 1  # the one sent through the API; the forged one never became an order
    (denied,) = [e for _, e in events if isinstance(e, ev.OrderDenied) and e.client_order_id in big]
    assert denied.strategy_id == "hostile" and denied.reason == "MAX_ORDER_QUANTITY"
    (failed,) = [e for _, e in events if isinstance(e, ev.StrategyFailed)]
    assert failed.strategy_id == "hostile"
    assert "'trader' is not one of this process's" in failed.error
