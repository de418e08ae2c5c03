"""Strategies that misbehave in their own processes, against a paper node in a
subprocess (``node.isolation = "process"``, the default): the kill switch keeps its
100 ms whatever they do, the watchdog finds the ones that stop answering, a crash of
any kind is a ``StrategyFailed`` naming its cause while the node and the other
strategies trade on, a restart brings a strategy back with the state it saved last,
and the core's event loop stays free while a strategy spins.

The misbehaving strategy is ``strategies/misbehaving.py`` (it rests two orders and
holds a lot before it misbehaves); the well-behaved one is the kit's ``Hoarder``.
Waits use ``eventually``, never a sleep.
"""

from __future__ import annotations

import functools
import json
import shutil
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bastion.model import events as ev
from bastion.model.enums import OrderSide, OrderStatus, OrderType, TradingState
from bastion.node.control import request, socket_path
from kit.journal_reading import (
    halted_denials_after,
    last_state_change,
    net_position,
    peek_journal,
    read_journal,
    replay_orders,
)
from kit.node_process import (
    START_TIMEOUT_S,
    running_node,
    status,
    still_running,
    terminate,
)
from kit.strategies import HOARDER
from kit.waiting import eventually

STRATEGY_FILE = Path(__file__).parent / "strategies" / "misbehaving.py"
KILL_BOUND_MS = 100.0
"""The kill switch's bound (issue 13): request sent to answer received."""
MAX_LOOP_LAG_MS = 50.0
"""The most the core's event loop may lag while strategies misbehave."""

NODE_TOML = """
[node]
id = "{node_id}"
log_format = "json"

[[instruments]]
id = "XYZ.SIM"
tick_size = "0.01"
lot_size = "1"

[risk]
max_order_quantity = "1000"
max_order_notional = "1000000"
collar_pct = "5"
reference_max_age_ms = 2000

[venue]
latency_ms = 5

[feed]
instrument = "XYZ.SIM"
interval_ms = {interval_ms}

[journal]
path = "j/node.sqlite"
snapshot_interval_s = {snapshot_interval_s}
{strategies}
"""

HOARDER_TOML = """
[[strategies]]
name = "hoarder"
path = "strategies/hoarder.py"
class = "Hoarder"
[strategies.params]
instrument = "XYZ.SIM"
market_every = 10
"""


def misbehaving(
    name: str,
    how: str,
    *,
    limits: str = "",
    settings: str = "",
    in_timer: bool = False,
    after_save: bool = False,
) -> str:
    """A ``[[strategies]]`` entry for ``Misbehaving``: ``settings`` are keys of the
    strategy's table (``on_error``, ``restart``...), ``limits`` of its ``limits``;
    ``in_timer`` and ``after_save`` are its params of those names."""
    return f"""
[[strategies]]
name = "{name}"
path = "strategies/misbehaving.py"
class = "Misbehaving"
{settings}
[strategies.params]
instrument = "XYZ.SIM"
how = "{how}"
after_save = {str(after_save).lower()}
in_timer = {str(in_timer).lower()}
[strategies.limits]
{limits}
"""


def write_desk(
    root: Path,
    node_id: str,
    *strategies: str,
    interval_ms: int = 20,
    snapshot_interval_s: float = 60.0,
) -> tuple[Path, Path]:
    """A paper node's config with ``strategies`` (quotes every ``interval_ms``; the
    strategies' states asked for every ``snapshot_interval_s``) and the files they
    need: (config, journal)."""
    (root / "strategies").mkdir(parents=True, exist_ok=True)
    shutil.copy(STRATEGY_FILE, root / "strategies" / "misbehaving.py")
    (root / "strategies" / "hoarder.py").write_text(HOARDER, encoding="utf-8")
    config = root / "node.toml"
    toml = NODE_TOML.format(
        node_id=node_id,
        strategies="".join(strategies),
        interval_ms=interval_ms,
        snapshot_interval_s=snapshot_interval_s,
    )
    config.write_text(toml, encoding="utf-8")
    return config, root / "j" / "node.sqlite"


# -- reading the node -------------------------------------------------------------------


def node_logs(log: Path, event: str) -> list[dict[str, Any]]:
    """The JSON log lines named ``event`` on the node's stderr (its strategy processes'
    lines are relayed there too)."""
    found = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == event:
                found.append(record)
    return found


def log_ns(record: dict[str, Any]) -> int:
    """A log line's wall-clock time in ns."""
    when = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
    return int(when.timestamp() * 1_000_000) * 1000


def failures(journal: Path) -> dict[str, list[ev.StrategyFailed]]:
    """The ``StrategyFailed`` events journaled so far, per strategy."""
    found: dict[str, list[ev.StrategyFailed]] = {}
    for _, e in peek_journal(journal):
        if isinstance(e, ev.StrategyFailed):
            found.setdefault(e.strategy_id, []).append(e)
    return found


def failed(journal: Path, *names: str) -> dict[str, list[ev.StrategyFailed]]:
    """Once each of ``names`` has failed: the failures; AssertionError until then."""
    found = failures(journal)
    missing = set(names) - set(found)
    assert not missing, f"not failed yet: {sorted(missing)}"
    return found


def resting_with_position(journal: Path, strategy: str) -> bool:
    """True once ``strategy`` has two limit orders accepted and a filled lot."""
    events = orders_events(peek_journal(journal), strategy)
    limits = {
        e.client_order_id
        for _, e in events
        if isinstance(e, ev.OrderInitialized) and e.order_type is OrderType.LIMIT
    }
    accepted = {e.client_order_id for _, e in events if isinstance(e, ev.OrderAccepted)}
    assert len(limits & accepted) >= 2, f"{strategy}: resting orders not accepted yet"
    assert net_position(events) > 0, f"{strategy}: no position yet"
    return True


def process_status(journal: Path, group: str) -> dict[str, Any]:
    processes: dict[str, Any] = status(journal)["strategies"]["processes"]
    return dict(processes[group])


def stalled(journal: Path, group: str) -> dict[str, Any]:
    """Once ``group``'s process has stopped handling its inputs: its status."""
    now = process_status(journal, group)
    assert now["state"] == "running", now
    assert now["pending_inputs"] >= 3, f"{group} still handles its inputs: {now}"
    return now


def command(journal: Path, cmd: str, **fields: object) -> dict[str, Any]:
    """One control command, as ``bastion kill``/``resume`` sends it."""
    answer = request(socket_path(journal), {"cmd": cmd, **fields}, timeout_s=10)
    assert answer["ok"] is True, answer
    return answer


def orders_of(events: list[tuple[int, Any]], strategy: str) -> dict[str, Any]:
    """``strategy``'s orders, rebuilt from ``events``."""
    return {coid: o for coid, o in replay_orders(events).items() if o.strategy_id == strategy}


def orders_events(events: list[tuple[int, Any]], strategy: str) -> list[tuple[int, Any]]:
    """``strategy``'s order events among ``events``."""
    return [(s, e) for s, e in events if getattr(e, "strategy_id", None) == strategy]


def trades_after(journal: Path, seq: int, strategy: str) -> bool:
    """True once ``strategy`` had an order accepted and one filled after ``seq``."""
    later = [(s, e) for s, e in peek_journal(journal) if s > seq]
    assert any(isinstance(e, ev.OrderAccepted) and e.strategy_id == strategy for _, e in later), (
        f"{strategy}: no order accepted after seq {seq}"
    )
    assert any(isinstance(e, ev.OrderFilled) and e.strategy_id == strategy for _, e in later), (
        f"{strategy}: no fill after seq {seq}"
    )
    return True


def strategy_pids(log: Path, *groups: str) -> list[int]:
    """The pids of every process the node started for ``groups`` (restarts included)."""
    return [r["pid"] for r in node_logs(log, "strategy_process_started") if r["group"] in groups]


def gone(pids: list[int]) -> bool:
    """True once none of ``pids`` exists any more (killed, and reaped by the node)."""
    left = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    assert not left, f"processes still there: {left}"
    return True


def ordered_since(journal: Path, ts_ns: int, strategy: str) -> bool:
    """True once the node created an order of ``strategy``'s at ``ts_ns`` or later."""
    assert any(
        isinstance(e, ev.OrderInitialized) and e.strategy_id == strategy and e.ts_ns >= ts_ns
        for _, e in peek_journal(journal)
    ), f"{strategy}: no order since {ts_ns}"
    return True


# -- 1. the kill switch -----------------------------------------------------------------

STALLS = ["spin", "sleep", "stop"]
"""Spinning in ``on_quote``, blocked in a system call, stopped (its channel unread)."""


def kill(journal: Path, *, flatten: bool, why: str) -> tuple[dict[str, Any], list[Any]]:
    """``bastion kill [--flatten]``, timed: its answer within ``KILL_BOUND_MS`` of the
    request, and honest about its times; what the journal holds by then (committed
    before the answer): HALTED, and a cancel asked for every order open at the halt.
    Returns (answer, journal)."""
    sent_ns = time.time_ns()
    started = time.perf_counter()
    answer = command(journal, "kill", flatten=flatten, why=why)
    round_trip_ms = (time.perf_counter() - started) * 1000
    assert round_trip_ms < KILL_BOUND_MS, (round_trip_ms, answer)
    assert answer["state"] == "HALTED"
    assert 0 <= answer["kill_ms"] <= answer["elapsed_ms"] <= round_trip_ms, answer
    committed = peek_journal(journal)
    seq_halt, halt = last_state_change(committed)
    assert halt.state is TradingState.HALTED and why in halt.reason
    assert sent_ns <= halt.ts_ns <= sent_ns + KILL_BOUND_MS * 1e6
    at_halt = replay_orders([(s, e) for s, e in committed if s <= seq_halt])
    open_at_halt = {coid for coid, o in at_halt.items() if o.is_open}
    cancel_asked = {
        e.client_order_id
        for s, e in committed
        if s > seq_halt and isinstance(e, ev.OrderPendingCancel)
    }
    assert open_at_halt and open_at_halt <= cancel_asked, (open_at_halt, cancel_asked)
    assert answer["cancels_sent"] == len(open_at_halt), answer
    return answer, committed


@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", STALLS)
def test_when_a_strategy_stalls_then_kill_and_kill_flatten_answer_within_100ms(
    tmp_path: Path, how: str
) -> None:
    """A strategy with two resting orders and a lot stalls (``how``): ``kill`` halts and
    cancels every open order, its two included, and ``kill --flatten`` (after a resume)
    cancels and flattens, its lot included; each answers within 100 ms of the request,
    with the halt, the cancels and the flatten fill committed to the journal by then.
    The core's event-loop lag stays small meanwhile."""
    config, journal = write_desk(
        tmp_path,
        f"kill-{how}",
        misbehaving("stalled", how, limits="max_handler_ms = 60000"),
        HOARDER_TOML,
    )
    with running_node("run", config.name, cwd=tmp_path) as (proc, log):
        eventually(
            lambda: (
                still_running(proc, log)
                and resting_with_position(journal, "stalled")
                and resting_with_position(journal, "hoarder")
                and stalled(journal, "stalled")
            ),
            timeout_s=START_TIMEOUT_S,
        )
        assert [r["how"] for r in node_logs(log, "misbehaving_now")] == [how]
        assert status(journal)["strategies"]["loop_lag_max_ms"] < MAX_LOOP_LAG_MS

        # -- kill: HALTED, every open order asked to cancel, the stalled one's too ------
        stalled_open = {
            coid for coid, o in orders_of(peek_journal(journal), "stalled").items() if o.is_open
        }
        assert len(stalled_open) == 2, stalled_open
        answer, committed = kill(journal, flatten=False, why=f"drill {how}")
        canceled = {e.client_order_id for _, e in committed if isinstance(e, ev.OrderPendingCancel)}
        assert stalled_open <= canceled
        assert stalled(journal, "stalled")  # it never knew

        def stalled_orders_canceled() -> bool:
            orders = orders_of(peek_journal(journal), "stalled")
            assert {orders[c].status for c in stalled_open} == {OrderStatus.CANCELED}
            return True

        eventually(stalled_orders_canceled, timeout_s=5)

        # -- resume: the hoarder rests orders again; kill --flatten flattens all --------
        command(journal, "resume", why="drill")
        seq_resume, _ = last_state_change(peek_journal(journal))
        eventually(lambda: trades_after(journal, seq_resume, "hoarder"), timeout_s=5)
        eventually(lambda: status(journal)["open_orders"] >= 1, timeout_s=5)
        assert net_position(orders_events(peek_journal(journal), "stalled")) == 1
        sent_ns = time.time_ns()
        answer, committed = kill(journal, flatten=True, why=f"drill {how} flatten")
        assert answer["flatten_sent"] == 1 and answer["flatten_denied"] == 0, answer
        assert answer["open_orders"] == 0
        assert answer["positions"] == {"XYZ.SIM": "0"}, answer
        assert net_position(committed) == 0
        (flatten,) = [
            e for _, e in committed if isinstance(e, ev.OrderFilled) and e.strategy_id == "operator"
        ]
        assert flatten.side is OrderSide.SELL
        assert sent_ns <= flatten.ts_ns <= sent_ns + KILL_BOUND_MS * 1e6
        assert stalled(journal, "stalled")
        assert status(journal)["strategies"]["loop_lag_max_ms"] < MAX_LOOP_LAG_MS


# -- 2. the watchdog --------------------------------------------------------------------

MAX_HANDLER_MS = 200


@pytest.mark.timeout(90)
def test_when_strategies_stop_answering_then_each_fails_unresponsive_and_the_node_trades_on(
    tmp_path: Path,
) -> None:
    """Spinning, blocked and stopped strategies (``max_handler_ms = 200``), one that spins
    in a timer with no data flowing (found by the node's ping) and one whose inputs pile
    up (``max_backlog = 10``) are each failed as unresponsive: a ``StrategyFailed``
    200-300 ms after they stalled (not before), their orders canceled, their processes
    killed (``on_error = "stop"``), while the hoarder trades on and the node stays
    ACTIVE."""
    handler = f"max_handler_ms = {MAX_HANDLER_MS}"
    config, journal = write_desk(
        tmp_path,
        "watch",
        *(misbehaving(how, how, limits=handler) for how in STALLS),
        misbehaving("timer", "spin", limits=handler, in_timer=True),
        misbehaving("backlog", "sleep", limits="max_handler_ms = 60000\nmax_backlog = 10"),
        HOARDER_TOML,
    )
    trading = [*STALLS, "backlog"]
    names = [*trading, "timer"]
    with running_node("run", config.name, cwd=tmp_path) as (proc, log):
        found = eventually(
            lambda: still_running(proc, log) and failed(journal, *names),
            timeout_s=START_TIMEOUT_S,
        )
        stalled_at = {r["strategy"]: log_ns(r) for r in node_logs(log, "misbehaving_now")}
        for name in [*STALLS, "timer"]:
            (failure,) = found[name]
            assert failure.error.startswith("unresponsive: "), failure
            assert f"(max_handler_ms {MAX_HANDLER_MS})" in failure.error, failure
            detected_ms = (failure.ts_ns - stalled_at[name]) / 1e6
            assert MAX_HANDLER_MS - 20 <= detected_ms <= MAX_HANDLER_MS + 500, (name, detected_ms)
        assert found["timer"][0].error.startswith("unresponsive: 1 inputs unhandled"), found
        (backlog,) = found["backlog"]
        assert backlog.error.startswith("unresponsive: "), backlog
        assert "(max_backlog 10)" in backlog.error, backlog
        assert (backlog.ts_ns - stalled_at["backlog"]) / 1e6 < 60_000

        last_failure = max(s for s, e in peek_journal(journal) if isinstance(e, ev.StrategyFailed))
        eventually(lambda: trades_after(journal, last_failure, "hoarder"), timeout_s=5)

        def failed_orders_canceled() -> bool:
            events = peek_journal(journal)
            for name in trading:
                orders = orders_of(events, name)
                limits = [o for o in orders.values() if o.order_type is OrderType.LIMIT]
                assert len(limits) == 2, (name, orders)
                assert {o.status for o in limits} == {OrderStatus.CANCELED}, (name, orders)
            return True

        eventually(failed_orders_canceled, timeout_s=5)
        now = status(journal)
        assert now["state"] == "ACTIVE"
        assert now["strategies"]["running"] == ["hoarder"]
        processes = now["strategies"]["processes"]
        for name in names:
            assert processes[name]["state"] == "failed"
            assert processes[name]["failure"] == found[name][0].error
            assert processes[name]["restarts"] == 0
        assert processes["hoarder"]["state"] == "running"
        eventually(lambda: gone(strategy_pids(log, *names)), timeout_s=5)
        assert terminate(proc) == 0, log.read_text()
    events = read_journal(journal)
    assert {e.strategy_id for _, e in events if isinstance(e, ev.StrategyFailed)} == set(names)
    for name in names:  # nothing of theirs reached the venue once they had failed
        failed_seq = next(
            s for s, e in events if isinstance(e, ev.StrategyFailed) and e.strategy_id == name
        )
        assert not [
            e
            for s, e in events
            if s > failed_seq and isinstance(e, ev.OrderSubmitted) and e.strategy_id == name
        ]


@pytest.mark.timeout(90)
def test_when_a_halt_strategy_stops_answering_then_the_node_halts(tmp_path: Path) -> None:
    """``on_error = "halt"``: a spinning strategy failed as unresponsive halts the node
    (journaled, with the cause), its orders are canceled and its process killed; the
    hoarder runs on, its new orders denied."""
    config, journal = write_desk(
        tmp_path,
        "watch-halt",
        misbehaving(
            "spinner",
            "spin",
            limits=f"max_handler_ms = {MAX_HANDLER_MS}",
            settings='on_error = "halt"',
        ),
        HOARDER_TOML,
    )
    with running_node("run", config.name, cwd=tmp_path) as (proc, log):
        found = eventually(
            lambda: still_running(proc, log) and failed(journal, "spinner"),
            timeout_s=START_TIMEOUT_S,
        )
        (failure,) = found["spinner"]
        assert failure.error.startswith("unresponsive: ")
        now = eventually(lambda: status(journal), timeout_s=5)
        assert now["state"] == "HALTED"
        assert now["reason"] == f"strategy spinner failed: {failure.error}"
        seq_halt, halt = last_state_change(peek_journal(journal))
        assert halt.state is TradingState.HALTED and halt.reason == now["reason"]
        denied = eventually(lambda: halted_denials_after(journal, seq_halt, "hoarder"))
        assert {e.reason for e in denied} == {"TRADING_HALTED"}

        def spinner_orders_canceled() -> bool:
            orders = orders_of(peek_journal(journal), "spinner")
            limits = [o for o in orders.values() if o.order_type is OrderType.LIMIT]
            assert len(limits) == 2 and {o.status for o in limits} == {OrderStatus.CANCELED}
            return True

        eventually(spinner_orders_canceled, timeout_s=5)
        eventually(lambda: gone(strategy_pids(log, "spinner")), timeout_s=5)
        assert process_status(journal, "hoarder")["state"] == "running"
        assert terminate(proc) == 0, log.read_text()


# -- 3. crashes, and 4. restarts --------------------------------------------------------

CRASHES = {
    "raise": ("raise", "", "strategy raise raised: RuntimeError: misbehaving on purpose"),
    "exit": ("exit", "", "process exited with code 3"),
    "segfault": ("segfault", "", "process died of SIGSEGV (a crash in native code)"),
    "oom": ("oom", "memory_mb = 256", "MemoryError"),
    "cpu": ("spin", "cpu_s = 1\nmax_handler_ms = 60000", "process died of SIGXCPU"),
    "files": ("files", "open_files = 32", "[Errno 24] Too many open files"),
}
"""Per strategy: what it does, its limits, and what its ``StrategyFailed`` must say."""
RESTARTS = 2


@pytest.mark.timeout(90)
def test_when_strategies_crash_then_each_fails_with_its_cause_and_on_failure_restarts(
    tmp_path: Path,
) -> None:
    """Six strategies crash (an exception, ``os._exit(3)``, a segfault, out of memory,
    out of CPU time, out of file descriptors): each is one ``StrategyFailed`` naming the
    cause, its orders canceled, never restarted (``restart = "never"``). A seventh, with
    ``restart = "on_failure"``, comes back after its backoff with the state its
    ``on_save`` gave last, twice (``max_restarts = 2``), then stays failed. The hoarder
    trades on throughout, and the node stops cleanly."""
    phoenix = misbehaving(
        "phoenix",
        "raise",
        settings=f'restart = "on_failure"\nrestart_backoff_s = 0.1\nmax_restarts = {RESTARTS}',
        after_save=True,
    )
    config, journal = write_desk(
        tmp_path,
        "crash",
        *(misbehaving(name, how, limits=limits) for name, (how, limits, _) in CRASHES.items()),
        phoenix,
        HOARDER_TOML,
        snapshot_interval_s=0.1,  # its state, saved often
    )

    def all_failed() -> dict[str, list[ev.StrategyFailed]]:
        found = failed(journal, *CRASHES, "phoenix")
        assert len(found["phoenix"]) == 1 + RESTARTS, found["phoenix"]
        return found

    with running_node("run", config.name, cwd=tmp_path) as (proc, log):
        found = eventually(
            lambda: still_running(proc, log) and all_failed(), timeout_s=START_TIMEOUT_S
        )
        for name, (_, _, cause) in CRASHES.items():
            (failure,) = found[name]
            assert cause in failure.error, (name, failure.error)
        assert [f.error for f in found["phoenix"]] == [
            "strategy phoenix raised: RuntimeError: misbehaving on purpose"
        ] * (1 + RESTARTS)

        last_failure = max(s for s, e in peek_journal(journal) if isinstance(e, ev.StrategyFailed))
        eventually(lambda: trades_after(journal, last_failure, "hoarder"), timeout_s=5)

        def crashed_orders_canceled() -> bool:
            events = peek_journal(journal)
            for name in [*CRASHES, "phoenix"]:
                limits = [
                    o for o in orders_of(events, name).values() if o.order_type is OrderType.LIMIT
                ]
                assert len(limits) >= 2, (name, limits)
                assert {o.status for o in limits} == {OrderStatus.CANCELED}, (name, limits)
            return True

        eventually(crashed_orders_canceled, timeout_s=5)
        now = status(journal)
        assert now["state"] == "ACTIVE"
        assert now["strategies"]["running"] == ["hoarder"]
        processes = now["strategies"]["processes"]
        for name in CRASHES:
            assert (processes[name]["state"], processes[name]["restarts"]) == ("failed", 0)
        eventually(lambda: gone(strategy_pids(log, *CRASHES, "phoenix")), timeout_s=5)
        assert (processes["phoenix"]["state"], processes["phoenix"]["restarts"]) == (
            "failed",
            RESTARTS,
        )
        assert terminate(proc) == 0, log.read_text()

    # -- the restarts: after the backoff, doubled each time, with the state saved last ----
    scheduled = node_logs(log, "strategy_restart_scheduled")
    assert [(r["group"], r["in_s"]) for r in scheduled] == [("phoenix", 0.1), ("phoenix", 0.2)]
    started = [r for r in node_logs(log, "strategy_process_started") if r["group"] == "phoenix"]
    assert len(started) == 1 + RESTARTS
    for backoff_s, failure, restart in zip(
        (0.1, 0.2), found["phoenix"][:RESTARTS], started[1:], strict=True
    ):
        assert (log_ns(restart) - failure.ts_ns) / 1e9 >= backoff_s
    runs = [r for r in node_logs(log, "misbehaving_started") if r["strategy"] == "phoenix"]
    saves = [r for r in node_logs(log, "misbehaving_saved") if r["strategy"] == "phoenix"]
    assert [r["runs"] for r in runs] == [1, 2, 3]
    assert runs[0]["loaded"] is None
    for run in runs[1:]:
        last_saved = [s["state"] for s in saves if s["state"]["runs"] == run["runs"] - 1][-1]
        assert run["loaded"] == last_saved, (run, last_saved)
    # it counted on from the state it loaded (a save may come before its next quote, so
    # the count is the one it logged as it misbehaved, after at least one more quote)
    nows = [r for r in node_logs(log, "misbehaving_now") if r["strategy"] == "phoenix"]
    assert len(nows) == 1 + RESTARTS
    assert nows[-1]["quotes"] > runs[-1]["loaded"]["quotes"]


# -- 5. the core's event loop -----------------------------------------------------------

CORE_STALL_S = 0.25
CORE_STALLS = 8


@pytest.mark.timeout(90)
def test_when_a_strategy_spins_then_loop_lag_stays_small_and_core_stalls_are_not_blamed(
    tmp_path: Path,
) -> None:
    """While a strategy spins, the core's event-loop lag in ``bastion status`` stays under
    50 ms. When the core itself is stopped (250 ms, longer than the hoarder's
    ``max_handler_ms`` of 200), status reports that lag, and the watchdog does not
    count it against the hoarder, whose answers were waiting to be read."""
    config, journal = write_desk(
        tmp_path,
        "lag",
        misbehaving("spinner", "spin", limits="max_handler_ms = 60000"),
        HOARDER_TOML + f"[strategies.limits]\nmax_handler_ms = {MAX_HANDLER_MS}\n",
        interval_ms=5,
    )
    with running_node("run", config.name, cwd=tmp_path) as (proc, log):
        spinning = eventually(
            lambda: (
                still_running(proc, log)
                and resting_with_position(journal, "hoarder")
                and stalled(journal, "spinner")
            ),
            timeout_s=START_TIMEOUT_S,
        )
        # half a second more of spinning (100 quotes it does not handle), then the lag
        eventually(
            lambda: (
                stalled(journal, "spinner")["pending_inputs"] >= spinning["pending_inputs"] + 100
            ),
            timeout_s=5,
        )
        lag = status(journal)["strategies"]
        assert 0 < lag["loop_lag_max_ms"] < MAX_LOOP_LAG_MS, lag

        def lag_reported() -> dict[str, Any]:
            lag = status(journal)["strategies"]
            assert lag["loop_lag_max_ms"] >= CORE_STALL_S * 1000 * 0.9, lag
            return lag

        for _ in range(CORE_STALLS):
            proc.send_signal(signal.SIGSTOP)
            time.sleep(CORE_STALL_S)  # the stall itself, not a wait for something
            proc.send_signal(signal.SIGCONT)
            resumed_ns = time.time_ns()
            eventually(lag_reported, timeout_s=5)
            # once the core has read an order the hoarder sent after the stall, the
            # stall can no longer count against it
            eventually(functools.partial(ordered_since, journal, resumed_ns, "hoarder"))
        assert "hoarder" not in failures(journal)
        assert process_status(journal, "hoarder")["state"] == "running"
