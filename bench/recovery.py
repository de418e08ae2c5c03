#!/usr/bin/env python3
"""Recovery time of a node from its journal, with snapshots and without. Prints one JSON line.

Setup (not timed): a journal of ``--events`` events is written the way a node writes it
(SQLite, group commit) from a synthetic but realistic order flow of the default paper
config (``ema_cross`` on ``XYZ.SIM``, simulated venue). A few orders are in flight at
any time and their events interleave. Per order: ``OrderInitialized``,
``OrderSubmitted``, then ``OrderAccepted`` and one fill (~55 %), two fills (~15 %),
a cancel (``OrderPendingCancel`` + ``OrderCanceled``, ~24 %), a partial fill then a
cancel (~5 %); market orders fill straight from submitted; ~1 % are rejected; a few
limit orders (0.2 % of those not filled in full) are left resting, open, for good. Five
``TradingStateChanged`` are spread over the run. A fill that adds to a position is
priced at the position's average price, so averages stay whole ticks:
``--fractional-avg`` lifts that (exact averages then become fractions whose
denominators grow with every partial close, which slows fills and recovery alike).
Every event is applied to a "live" kernel as recovery applies it
(``ExecutionEngine.replay``, then ``Portfolio.on_fill`` for a fill) before it is
appended, and every ``--snapshot-every`` events the live kernel is snapshotted
(``capture`` + ``SqliteJournal.snapshot``), as ``journal.snapshot_every_events`` makes
a node do. No snapshot is taken at the very end: the last one is ``--snapshot-every``
events before it, i.e. the worst case, a crash just before the next snapshot was due.

Measured (the live kernel is freed first; each run builds a new kernel, ``journal=None``,
then times opening the journal file and ``recover_state`` on it, wall clock):

- ``recovery_s`` / ``recovery_s_best``: median and best of ``--repeat`` runs: the newest
  snapshot loaded, then the ``tail_events`` after it replayed; ``open_s`` is the part
  spent opening the journal, ``kernel_build_s`` (not included) building the kernel;
- ``recovery_no_snapshot_s``: the same on a copy of the file with its snapshots deleted
  (the whole journal replayed); ``replay_events_per_s`` = events / that time;
- ``snapshot_bytes``: size of the newest snapshot; ``snapshot_capture_s``: what taking it
  cost (``capture``, which a live node runs on its event loop).

Every run is checked against the live kernel: every order's state, open orders,
ExecIDs, positions (net quantity, cost, realized PnL per instrument), cash, fees and
the trading state must be equal, or the bench fails. The file is in the page cache, as
after a process crash (not after a reboot).

    python bench/recovery.py [--events 1000000] [--snapshot-every 100000] [--repeat 3]
                             [--dir DIR]

``--events 100000`` is a quick smoke run (``--snapshot-every`` then defaults to a tenth of
``--events``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from msgspec.structs import replace

from bastion.clock import SimClock
from bastion.config import PaperConfig, default_paper_config
from bastion.journal.sqlite import SqliteJournal
from bastion.logs import configure_logging
from bastion.model import events as ev
from bastion.model.enums import (
    LiquiditySide,
    OrderSide,
    OrderType,
    TimeInForce,
    TradingState,
)
from bastion.node.kernel import Kernel
from bastion.recovery.replay import RecoveryReport, recover_state
from bastion.recovery.state import capture

T0 = 1_798_761_600_000_000_000  # 2027-01-01 UTC
IN_FLIGHT = 8  # orders whose events interleave at any time
STATE_CHANGES = (
    (0.15, TradingState.HALTED, "operator: kill"),
    (0.16, TradingState.ACTIVE, "operator: resume"),
    (0.55, TradingState.REDUCING, "reconciliation with SIM: mismatch"),
    (0.56, TradingState.ACTIVE, "operator: resume"),
    (0.95, TradingState.REDUCING, "operator: reduce only"),
)

Flow = Iterator[ev.OrderEvent | ev.TradingStateChanged]


def order_flow(
    n: int,
    *,
    node_id: str,
    epoch: int,
    instrument_id: str,
    fractional_avg: bool = False,
    seed: int = 7,
) -> Flow:
    """``n`` events of interleaved orders (see the module docstring for the mix)."""
    rng = random.Random(seed)
    held = avg = 0  # the position, to fill adds at its average price (unless fractional_avg)
    strategy_id = "ema_cross"
    mid = 10_000  # raw price (tick 0.01)
    state_at = {int(f * n): (state, reason) for f, state, reason in STATE_CHANGES}
    active: list[deque[ev.OrderEvent]] = []
    next_order = 0
    exec_n = 0
    ts = T0
    for k in range(n):
        ts += rng.randrange(20_000, 200_000)
        change = state_at.get(k)
        if change is not None:
            yield ev.TradingStateChanged(ts_ns=ts, state=change[0], reason=change[1])
            continue
        if len(active) < IN_FLIGHT:
            next_order += 1
            mid += rng.choice((-1, 1)) * rng.randrange(0, 3)
            coid = f"{node_id}-{epoch}-{next_order}"
            voi = f"{epoch}-{next_order}"
            common = {
                "client_order_id": coid,
                "strategy_id": strategy_id,
                "instrument_id": instrument_id,
            }
            side = OrderSide.BUY if rng.random() < 0.5 else OrderSide.SELL
            qty = rng.randrange(1, 11)
            r = rng.random()
            market = r < 0.70 and rng.random() < 0.3  # only filled outcomes can be market
            price = (
                None if market else mid + (-1 if side is OrderSide.BUY else 1) * rng.randrange(3)
            )
            px = mid if price is None else price
            yield ev.OrderInitialized(
                ts_ns=ts,
                client_order_id=coid,
                strategy_id=strategy_id,
                instrument_id=instrument_id,
                side=side,
                order_type=OrderType.MARKET if market else OrderType.LIMIT,
                time_in_force=TimeInForce.IOC if market else TimeInForce.GTC,
                quantity=qty,
                price=price,
            )
            later: deque[ev.OrderEvent] = deque()
            later.append(ev.OrderSubmitted(ts_ns=0, **common, venue="SIM"))
            if r < 0.01:
                later.append(ev.OrderRejected(ts_ns=0, **common, reason="venue: price band"))
                active.append(later)
                continue
            if not market:
                later.append(ev.OrderAccepted(ts_ns=0, **common, venue_order_id=voi))
            if r < 0.70:
                qtys = [qty] if r < 0.55 or qty == 1 else [qty // 2, qty - qty // 2]
            elif r < 0.75:
                qtys = [max(1, qty // 2)] if qty > 1 else []
            else:
                qtys = []
            liquidity = LiquiditySide.TAKER if market else LiquiditySide.MAKER
            for q in qtys:
                exec_n += 1
                later.append(
                    ev.OrderFilled(
                        ts_ns=0,
                        **common,
                        venue_order_id=voi,
                        exec_id=f"SIM-{epoch}-E{exec_n}",
                        side=side,
                        last_qty=q,
                        last_px=px,
                        fee=Decimal(0),  # set when emitted, with the price
                        fee_currency="USD",
                        liquidity=liquidity,
                    )
                )
            if r >= 0.70 and rng.random() >= 0.002:  # a few stay resting for good
                later.append(ev.OrderPendingCancel(ts_ns=0, **common))
                later.append(ev.OrderCanceled(ts_ns=0, **common, reason="canceled"))
            active.append(later)
            continue
        i = rng.randrange(len(active))
        pending = active[i]
        event = replace(pending.popleft(), ts_ns=ts)  # stamped when it happens
        if type(event) is ev.OrderFilled:
            sign = 1 if event.side is OrderSide.BUY else -1
            q, px = event.last_qty, event.last_px
            if held == 0:
                avg = px
            elif held * sign > 0 and not fractional_avg:
                px = avg  # an add at any other price makes the average a fraction
            elif held * sign < 0 and (held + sign * q) * sign > 0:
                avg = px  # flips: the new position opens at this price
            held += sign * q
            fee = Decimal(q * px * 2).scaleb(-6)  # 0.2 bps of notional
            event = replace(event, last_px=px, fee=fee)
        if not pending:
            active[i] = active[-1]
            active.pop()
        yield event


def build_kernel(config: PaperConfig, base_dir: Path, epoch: int) -> Kernel:
    return Kernel(config=config, base_dir=base_dir, clock=SimClock(T0), epoch=epoch)


def write_journal(
    path: Path,
    n: int,
    snapshot_every: int,
    config: PaperConfig,
    base_dir: Path,
    *,
    fractional_avg: bool,
    journal: Any = None,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Write the journal (a SQLite file at ``path``, or ``journal``, opened: a
    PostgreSQL one); return the live kernel's state summary and setup figures."""
    if journal is None:
        journal = SqliteJournal(path, durability="group")
    node_id = config.node.id
    epoch = journal.begin_run(node_id, T0)
    kernel = build_kernel(config, base_dir, epoch)
    kernel.start()  # strategies running, so snapshots carry their saved state
    clock = kernel.clock
    assert isinstance(clock, SimClock)
    replay = kernel.execution.replay
    on_fill = kernel.portfolio.on_fill
    append = journal.append
    instrument_id = next(iter(kernel.instruments))
    snapshot_bytes = 0
    capture_s = 0.0
    started = time.perf_counter()
    flow = order_flow(
        n, node_id=node_id, epoch=epoch, instrument_id=instrument_id, fractional_avg=fractional_avg
    )
    for k, event in enumerate(flow, 1):
        clock.now_ns = event.ts_ns
        if type(event) is ev.TradingStateChanged:
            kernel.risk.set_trading_state(event.state, event.reason)
        elif type(event) is ev.OrderFilled:
            if not replay(event):
                raise SystemExit(f"generated fill not applied: {event}")
            on_fill(event)
        elif not replay(event):  # type: ignore[arg-type]
            raise SystemExit(f"generated event not applied: {event}")
        append(event)
        if k % snapshot_every == 0 and k < n:
            t = time.perf_counter()
            payload = capture(kernel, node_id=node_id, epoch=epoch)
            capture_s = time.perf_counter() - t
            snapshot_bytes = len(payload)
            journal.snapshot(payload, event.ts_ns)
            journal.flush()  # bounds the writer's queue
    journal.close()
    setup = {
        "setup_s": round(time.perf_counter() - started, 1),
        "snapshot_bytes": snapshot_bytes,
        "snapshot_capture_s": round(capture_s, 3),
    }
    return state_summary(kernel), setup


def state_summary(kernel: Kernel) -> dict[str, Any]:
    """What recovery must rebuild: every order's fields, ExecIDs, positions, cash..."""
    execution = kernel.execution
    portfolio = kernel.portfolio
    orders = {
        o.client_order_id: (
            o.client_order_id,
            o.strategy_id,
            o.instrument_id,
            o.venue,
            o.side.value,
            o.order_type.value,
            o.time_in_force.value,
            o.quantity,
            o.price,
            o.reduce_only,
            o.ts_init,
            o.ts_last,
            o.status.value,
            o.previous_status.value,
            o.filled_qty,
            o.filled_notional,
            o.venue_order_id,
        )
        for o in execution.orders()
    }
    traded = portfolio.instruments_traded()
    return {
        "orders": orders,
        "open_orders": sorted(
            (o.client_order_id, o.status.value, o.filled_qty) for o in execution.open_orders()
        ),
        "exec_ids": set(execution.exec_ids),
        "net_quantity": {iid: portfolio.net_quantity(iid) for iid in traded},
        "realized_pnl": {iid: str(portfolio.realized_pnl(iid)) for iid in traded},
        "positions": sorted(
            (p.strategy_id, p.instrument_id, p.quantity, str(p.cost), str(p.realized))
            for p in portfolio.positions()
        ),
        "cash": str(portfolio.cash()),
        "fees": str(portfolio.fees),
        "n_fills": portfolio.n_fills,
        "trading_state": (kernel.risk.state.value, kernel.risk.state_reason),
    }


_SUBSETS = ("orders", "exec_ids")


def recover_once(
    path: Path, config: PaperConfig, base_dir: Path, expected: dict[str, Any]
) -> tuple[float, float, float, RecoveryReport]:
    """(kernel build, journal open, open + recover_state) seconds, and the report."""
    gc.collect()
    t0 = time.perf_counter()
    kernel = build_kernel(config, base_dir, epoch=2)
    t1 = time.perf_counter()
    journal = SqliteJournal(path)
    t2 = time.perf_counter()
    report = recover_state(kernel, journal)
    t3 = time.perf_counter()
    journal.close()
    got = state_summary(kernel)
    # A snapshot keeps every open order and the most recent ones (and the most recent
    # ExecIDs): from one, what is recovered must be a subset, each order equal to the
    # live one; a full replay must give everything.
    partial = report.snapshot_seq is not None
    wrong = sorted(k for k in expected if k not in _SUBSETS and got.get(k) != expected[k])
    for key in _SUBSETS:
        ok = (
            got[key].items() <= expected[key].items()
            if key == "orders"
            else got[key] <= expected[key]
        )
        if not ok or (not partial and got[key] != expected[key]):
            wrong.append(key)
    if wrong:
        raise SystemExit(
            f"recovered state differs from the live kernel's in {wrong}: "
            + "; ".join(f"{k}: {got.get(k)!r:.200} != {expected[k]!r:.200}" for k in wrong)
        )
    if report.open_orders != len(expected["open_orders"]):
        raise SystemExit(f"report.open_orders {report.open_orders} != live kernel's")
    return t1 - t0, t2 - t1, t3 - t1, report


def measure(
    path: Path, config: PaperConfig, base_dir: Path, expected: dict[str, Any], repeat: int
) -> dict[str, Any]:
    builds, opens, totals = [], [], []
    report: RecoveryReport | None = None
    for _ in range(repeat):
        build_s, open_s, total_s, report = recover_once(path, config, base_dir, expected)
        builds.append(build_s)
        opens.append(open_s)
        totals.append(total_s)
    assert report is not None
    return {
        "s": round(statistics.median(totals), 3),
        "best_s": round(min(totals), 3),
        "open_s": round(statistics.median(opens), 4),
        "kernel_build_s": round(statistics.median(builds), 4),
        "snapshot_seq": report.snapshot_seq,
        "replayed": report.replayed_events,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--snapshot-every",
        type=int,
        help="events between snapshots (default: 100000, or a tenth of --events if less)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="recoveries timed per mode")
    parser.add_argument("--dir", type=Path, help="where to create the journal (default: tmp)")
    parser.add_argument(
        "--fractional-avg",
        action="store_true",
        help="fill adds to a position at any price (default: at its average price)",
    )
    args = parser.parse_args()
    every = args.snapshot_every or max(1, min(100_000, args.events // 10))
    if not 0 < every < args.events:
        parser.error("--snapshot-every must be positive and below --events")
    configure_logging("warning", "console")
    config, base_dir = default_paper_config()
    with tempfile.TemporaryDirectory(prefix="bastion-recovery-", dir=args.dir) as tmp:
        path = Path(tmp) / "journal.sqlite"
        expected, setup = write_journal(
            path, args.events, every, config, base_dir, fractional_avg=args.fractional_avg
        )
        gc.collect()  # the live kernel is gone: recovery runs as in a fresh process
        full_path = Path(tmp) / "journal-no-snapshots.sqlite"
        shutil.copyfile(path, full_path)
        db = sqlite3.connect(full_path)
        with db:
            db.execute("DELETE FROM snapshots")
        db.close()
        with_snapshot = measure(path, config, base_dir, expected, args.repeat)
        full = measure(full_path, config, base_dir, expected, args.repeat)
    if with_snapshot["snapshot_seq"] is None or full["snapshot_seq"] is not None:
        raise SystemExit(f"unexpected snapshot use: {with_snapshot} / {full}")
    if full["replayed"] != args.events:
        raise SystemExit(f"full replay read {full['replayed']} events, not {args.events}")
    print(
        json.dumps(
            {
                "bench": "recovery",
                "events": args.events,
                "snapshot_every": every,
                "recovery_s": with_snapshot["s"],
                "recovery_s_best": with_snapshot["best_s"],
                "open_s": with_snapshot["open_s"],
                "kernel_build_s": with_snapshot["kernel_build_s"],
                "tail_events": with_snapshot["replayed"],
                "orders": len(expected["orders"]),
                "open_orders": len(expected["open_orders"]),
                "snapshot_bytes": setup["snapshot_bytes"],
                "snapshot_capture_s": setup["snapshot_capture_s"],
                "recovery_no_snapshot_s": full["s"],
                "recovery_no_snapshot_s_best": full["best_s"],
                "replay_events_per_s": round(args.events / full["s"]),
                "setup_s": setup["setup_s"],
                "python": sys.version.split()[0],
                "cpus": os.cpu_count(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
