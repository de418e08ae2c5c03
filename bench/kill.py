#!/usr/bin/env python3
"""The kill switch of an isolated node while its strategy misbehaves. Prints one JSON line.

A node is built as ``bastion run`` builds it with ``isolation = "process"``: the kernel
on an asyncio loop with the live clock, the SQLite journal (group commit), the
default risk config, the in-process simulated venue, its control socket served by
``serve_control`` with ``NodeOperator`` behind its guard, and a quote every millisecond from a feed
task. One strategy, in its own process, rests ``--orders`` limit orders (1,000) far
from the touch; once the venue has accepted them all, the feed marks its quotes and
the strategy turns bad (``--variant``):

- ``spin``: it enters ``while True: pass`` in ``on_quote`` and never comes back;
- ``flood``: on every quote it submits ``--burst`` market orders (alternating sides),
  more than the core can take, so the core's loop is saturated by its commands. Its
  ``max_backlog`` / ``max_handler_ms`` are raised so the watchdog leaves it running;
- ``idle``: it does nothing more (the baseline: a well-behaved strategy).

``--misbehave-ms`` later an operator, in a process of its own, sends ``kill`` over the
control socket (``bastion kill``'s request, ``bastion.node.control.request``). The node
keeps running (and the strategy misbehaving) for ``--after-ms`` more.

- ``kill_all_ms``: from the operator's request leaving its process to the last
  resting order's cancel handed to the venue adapter (``cancel``);
- ``halted_ms``: from the request to the node going HALTED (``TradingStateChanged``);
- ``all_canceled_ms``: from the request to the venue's last cancel confirmation
  (``OrderCanceled``); with this zero-latency venue, right after ``kill_all_ms``;
- ``reply_ms``: from the request to its reply reaching the operator (after the journal
  commit); ``node_kill_ms``: the reply's own ``kill_ms`` (halt and cancels, timed inside
  the node);
- ``accepted_after_kill``: orders the risk gate let through (``OrderSubmitted``) once
  the node was HALTED (must be 0); ``denied_after_kill``: orders it denied meanwhile;
- ``orders_accepted_before_kill``: the flood's orders the gate let through before.

Times are CLOCK_MONOTONIC (``time.perf_counter_ns``) on both sides of the socket.

    python bench/kill.py [--variant spin|flood|idle] [--orders 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from bastion.clock import LiveClock
from bastion.config import InstrumentConfig, NodeSection, PaperConfig
from bastion.data.config import SyntheticFeedConfig
from bastion.isolation.host import ProcessStrategyHost
from bastion.journal.config import JournalConfig
from bastion.journal.sqlite import SqliteJournal
from bastion.logs import configure_logging
from bastion.model.data import QuoteTick
from bastion.model.enums import TradingState
from bastion.model.events import OrderCanceled, OrderDenied, OrderSubmitted, TradingStateChanged
from bastion.model.orders import Order
from bastion.node.access import command_guard
from bastion.node.actions import NodeOperator
from bastion.node.control import open_control_socket, serve_control, socket_path
from bastion.node.identity import Identities
from bastion.node.kernel import Kernel
from bastion.strategy.config import ProcessLimits, StrategyConfig
from bastion.tasks import spawn

GO_SIZE = 7
"""The bid size of the feed's quotes once the strategy is to misbehave."""

STRATEGY = '''
from bastion.model.enums import OrderSide
from bastion.strategy import QuoteTick, Strategy


class Bad(Strategy):
    """Rests ``resting`` limit orders, then (on a quote of bid size ``go_size``) spins
    forever or floods market orders."""

    def on_start(self) -> None:
        self.iid = self.params["instrument"]
        self.lot = self.instrument(self.iid).lot_raw
        self.placed = False
        self.n = 0
        self.subscribe_quotes(self.iid)

    def on_quote(self, quote: QuoteTick) -> None:
        if not self.placed:
            self.placed = True
            for i in range(int(self.params["resting"])):
                if i % 2:
                    self.submit(OrderSide.BUY, self.iid, self.lot, quote.bid - 100 - i)
                else:
                    self.submit(OrderSide.SELL, self.iid, self.lot, quote.ask + 100 + i)
            return
        if quote.bid_size != self.params["go_size"]:
            return
        if self.params["variant"] == "idle":
            return
        if self.params["variant"] == "spin":
            while True:
                pass
        for _ in range(int(self.params["burst"])):
            self.n += 1
            self.submit(OrderSide.BUY if self.n % 2 else OrderSide.SELL, self.iid, self.lot)
'''

# The operator: imports first, says so, then on "go" times bastion kill's request.
OPERATOR = """
import json, sys, time
from pathlib import Path
from bastion.node.control import request
print("ready", flush=True)
sys.stdin.readline()
sent = time.perf_counter_ns()
response = request(Path(sys.argv[1]), {"cmd": "kill", "why": "kill bench"})
answered = time.perf_counter_ns()
print(json.dumps({"sent_ns": sent, "answered_ns": answered, "response": response}), flush=True)
"""
# Started through a launcher that exits at once, so the operator is not a descendant
# of the node (the control socket refuses the node's own processes).
LAUNCHER = "import subprocess, sys; subprocess.Popen(sys.argv[1:])"


def _config(root: Path, args: argparse.Namespace) -> PaperConfig:
    (root / "bad.py").write_text(STRATEGY)
    limits = ProcessLimits()
    if args.variant == "flood":  # the watchdog would fail it for its backlog first
        limits = ProcessLimits(max_backlog=10_000_000, max_handler_ms=600_000)
    return PaperConfig(
        node=NodeSection(isolation="process"),
        instruments=[InstrumentConfig(id="XYZ.SIM", tick_size=Decimal("0.01"))],
        strategies=[
            StrategyConfig(
                name="bad",
                path="bad.py",
                class_name="Bad",
                params={
                    "instrument": "XYZ.SIM",
                    "resting": args.orders,
                    "variant": args.variant,
                    "burst": args.burst,
                    "go_size": GO_SIZE,
                },
                limits=limits,
            )
        ],
        feed=SyntheticFeedConfig(instrument="XYZ.SIM"),
        journal=JournalConfig(path="journal.sqlite"),
    )


def _start_operator(sock_path: Path) -> subprocess.Popen[str]:
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, sys.executable, "-c", OPERATOR, str(sock_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    launcher.wait()  # the operator runs on, reparented away from this process
    assert launcher.stdout is not None
    if launcher.stdout.readline().strip() != "ready":
        raise SystemExit("the operator process did not start")
    return launcher


async def _feed(kernel: Kernel, clock: LiveClock, marked: list[bool]) -> None:
    """A quote every millisecond; marked (bid size ``GO_SIZE``) once ``marked[0]``."""
    mid = 10_000
    i = 0
    while True:
        i += 1
        mid += 1 if (i * 7919) % 3 else -1
        size = GO_SIZE if marked[0] else 100
        kernel.on_quote(QuoteTick("XYZ.SIM", clock.timestamp_ns(), mid, mid + 1, size, 100))
        await asyncio.sleep(0.001)


async def _until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def _run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    config = _config(root, args)
    loop = asyncio.get_running_loop()
    clock = LiveClock()
    journal = SqliteJournal.from_config(root / "journal.sqlite", config.journal)
    epoch = journal.begin_run(config.node.id, clock.timestamp_ns())
    holder: list[Kernel] = []

    def request_flush() -> None:
        loop.call_soon(holder[0].flush)

    kernel = Kernel(
        config=config,
        base_dir=root,
        clock=clock,
        epoch=epoch,
        journal=journal,
        request_flush=request_flush,
    )
    holder.append(kernel)
    host = kernel.strategies
    assert isinstance(host, ProcessStrategyHost)
    (proc,) = host.processes.values()
    operator = NodeOperator(kernel)
    sock_path = socket_path(journal.path)
    operator_process = _start_operator(sock_path)
    assert operator_process.stdin is not None and operator_process.stdout is not None

    perf = time.perf_counter_ns
    halted_at: list[int] = []
    canceled_at: list[int] = []
    cancel_asked_at: list[int] = []
    after_kill = {"accepted": 0, "denied": 0}
    accepted_before = [0]

    def on_state(event: TradingStateChanged) -> None:
        if event.state is TradingState.HALTED and not halted_at:
            halted_at.append(perf())

    def on_submitted(_: OrderSubmitted) -> None:
        if halted_at:
            after_kill["accepted"] += 1
        else:
            accepted_before[0] += 1

    def on_denied(_: OrderDenied) -> None:
        if halted_at:
            after_kill["denied"] += 1

    def on_canceled(_: OrderCanceled) -> None:
        canceled_at.append(perf())

    kernel.bus.subscribe(TradingStateChanged, on_state)
    kernel.bus.subscribe(OrderSubmitted, on_submitted)
    kernel.bus.subscribe(OrderDenied, on_denied)
    kernel.bus.subscribe(OrderCanceled, on_canceled)
    venue = kernel.venue
    venue_cancel = venue.cancel

    def timed_cancel(order: Order) -> None:
        cancel_asked_at.append(perf())
        venue_cancel(order)

    venue.cancel = timed_cancel  # type: ignore[method-assign]

    # the node's own account, as a paper node without [access]: the operator process runs as it
    guard = command_guard(operator, identities=Identities(None), epoch=epoch, mode="paper")
    control = spawn("control", serve_control(open_control_socket(sock_path), sock_path, guard))
    await venue.connect()
    marked = [False]
    feed: asyncio.Task[None] | None = None
    try:
        kernel.start()
        feed = spawn("feed", _feed(kernel, clock, marked))
        await _until(
            lambda: (
                len(kernel.execution.open_orders()) >= args.orders
                and all(o.venue_order_id for o in kernel.execution.open_orders())
            ),
            60,
            f"{args.orders} resting orders",
        )
        resting = len(kernel.execution.open_orders())
        marked[0] = True
        await asyncio.sleep(args.misbehave_ms / 1000)
        open_at_kill = len(kernel.execution.open_orders())
        operator_process.stdin.write("go\n")
        operator_process.stdin.flush()
        answer = json.loads(await asyncio.to_thread(operator_process.stdout.readline))
        await asyncio.sleep(args.after_ms / 1000)
        open_after = len(kernel.execution.open_orders())
        strategy_state = proc.state
    finally:
        if feed is not None:
            feed.cancel()
        kernel.stop_strategies()
        control.cancel()
        await asyncio.gather(control, *(t for t in (feed,) if t), return_exceptions=True)
        journal.close()
    sent = answer["sent_ns"]
    response = answer["response"]
    if not response.get("ok"):
        raise SystemExit(f"the kill was refused: {response}")
    kill_cancels = [t for t in cancel_asked_at if t >= halted_at[0]]
    return {
        "bench": "kill",
        "variant": args.variant,
        "resting_orders": resting,
        "open_at_kill": open_at_kill,
        "kill_all_ms": round((kill_cancels[-1] - sent) / 1e6, 3),
        "accepted_after_kill": after_kill["accepted"],
        "denied_after_kill": after_kill["denied"],
        "halted_ms": round((halted_at[0] - sent) / 1e6, 3),
        "all_canceled_ms": round((canceled_at[-1] - sent) / 1e6, 3),
        "reply_ms": round((answer["answered_ns"] - sent) / 1e6, 3),
        "node_kill_ms": response["kill_ms"],
        "cancels_sent": response["cancels_sent"],
        "open_after_kill": open_after,
        "orders_accepted_before_kill": accepted_before[0] - resting,
        "strategy_state": strategy_state,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("spin", "flood", "idle"), default="spin")
    parser.add_argument("--orders", type=int, default=1_000, help="resting at the kill")
    parser.add_argument("--burst", type=int, default=50, help="flood: orders per quote")
    parser.add_argument("--misbehave-ms", type=int, default=200, help="before the kill")
    parser.add_argument("--after-ms", type=int, default=200, help="running after the kill")
    parser.add_argument("--quick", action="store_true", help="a short run (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.orders, args.misbehave_ms, args.after_ms = 100, 50, 50
    configure_logging("warning", "console")
    with tempfile.TemporaryDirectory(prefix="bastion-kill-") as tmp:
        result = asyncio.run(_run(args, Path(tmp)))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
