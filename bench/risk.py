#!/usr/bin/env python3
"""What the pre-trade risk checks cost per order. Prints one JSON line.

A realistic flow on three instruments from three strategies: passive limit orders
around a moving mid (inside the collar), some marketable and market orders, cancels
that keep about ``--open`` orders working, partial fills, and the occasional
duplicate or over-limit order, with EVERY control configured (collar, reference
age, time-window collar, stale data, per-instrument and per-strategy position and
gross limits, credit for the node and for a risk account holding two of the three
strategies, throttle per strategy and per venue, duplicates, self-trade,
permissions, repeated executions, daily loss and drawdown per strategy and node).

- ``p50_us`` / ``p99_us``: time of the full check set per order: the clock read, then
  ``RiskGate._decide`` as ``submit_order`` runs it, until the order may go or is known
  denied (a denial's message is not built yet);
- ``passed_*`` / ``denied_*``: the same time for the orders the checks let through and
  for those they denied (about a tenth: self-trade, notional, duplicates);
- ``submit_p50_us`` / ``submit_p99_us``: the whole ``RiskGate.submit_order`` (checks,
  then the OMS: state machine, events on the bus, the venue call);
  ``denied_submit_*``: the same for the denied orders (the checks, the message built
  from the denial's figures, the ``OrderDenied`` event and its log line);
- ``baseline_submit_p50_us`` / ``baseline_submit_p99_us``: the same flow with the
  default config (no limits), for comparison;
- ``quote_hook_p50_us`` / ``quote_hook_p99_us``: the gate's work per quote (the
  time-window collar's sliding window, and the revaluation of the positions held in
  the quote's instrument for the exposure limits), what ``Kernel.on_quote`` adds;
- ``fill_post_trade_p50_us`` / ``fill_post_trade_p99_us``: the post-trade work per fill
  (``RiskGate.fill_post_trade``: repeated executions, daily loss and drawdown, every strategy's
  PnL); ``post_trade_eval_p50_us``: the periodic ``check_post_trade`` (every 1 s);
- ``compiled``: whether the gate ran as the C extensions ``setup.py`` builds with mypyc
  at install (else interpreted: ``BASTION_PURE_PYTHON=1`` at install, or no compiler);
- ``kill_all_ms``: the kill switch (``Kernel.kill``: HALT, then a cancel for every open
  order) with ``--kill-orders`` (1,000) limit orders resting at the simulated venue
  (5 ms latency), from the call until every cancel request has been handed to the
  venue; ``accepted_after_kill``: strategy orders the gate let through after it (must
  be 0, out of ``--kill-orders`` tried).

    python bench/risk.py [--orders 50000] [--open 30]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from bastion import native
from bastion.bus import MessageBus
from bastion.clock import SimClock
from bastion.config import InstrumentConfig, PaperConfig
from bastion.data.config import SyntheticFeedConfig
from bastion.execution.engine import ExecutionEngine
from bastion.execution.ids import ClientOrderIdGenerator
from bastion.logs import configure_logging
from bastion.model.data import QuoteTick
from bastion.model.enums import LiquiditySide, OrderSide, OrderType
from bastion.model.events import OrderCanceled, OrderFilled
from bastion.model.instruments import Instrument
from bastion.model.orders import Order
from bastion.node.kernel import Kernel
from bastion.portfolio.portfolio import Portfolio
from bastion.risk.config import (
    AccountRiskConfig,
    InstrumentRiskConfig,
    RiskConfig,
    StrategyRiskConfig,
    ThrottleConfig,
)
from bastion.risk.fills import FillPipeline
from bastion.risk.gate import RiskGate
from bastion.strategy.runner import GateView
from bastion.venues.base import VenueAdapter
from bastion.venues.sim.config import SimVenueConfig

T0 = 1_704_205_800_000_000_000
BUY, SELL = OrderSide.BUY, OrderSide.SELL
INSTRUMENTS = [
    Instrument(id="XYZ.SIM", venue="SIM", tick_size=Decimal("0.01"), lot_size=Decimal(1),
               quote_currency="USD"),
    Instrument(id="ABC.SIM", venue="SIM", tick_size=Decimal("0.05"), lot_size=Decimal(10),
               quote_currency="USD"),
    Instrument(id="ES.SIM", venue="SIM", tick_size=Decimal("0.25"), lot_size=Decimal(1),
               quote_currency="USD", multiplier=Decimal(50)),
]  # fmt: skip
MIDS = {"XYZ.SIM": 10_000, "ABC.SIM": 5_000, "ES.SIM": 400_000}
STRATEGIES = ("mm", "trend", "arb")


def all_checks() -> RiskConfig:
    return RiskConfig(
        max_order_quantity=Decimal(500),
        max_order_notional=Decimal(2_000_000),
        collar_pct=Decimal(5),
        collar_ticks=400,
        reference_max_age_ms=5_000,
        max_long_quantity=Decimal(100_000),
        max_short_quantity=Decimal(100_000),
        max_gross_notional=Decimal(100_000_000),
        max_total_exposure=Decimal(1_000_000_000),
        max_cash_usage=Decimal(1_000_000_000),
        duplicate_window_ms=5,
        self_trade="deny",
        max_new_orders_per_s=400,
        max_amends_per_s=400,
        max_messages_per_s=1_000,
        collar_window_pct=Decimal(5),
        collar_window_ms=1_000,
        collar_window_pause_ms=5_000,
        stale_data_ms=1_000,
        max_fills=200,
        fills_window_ms=1_000,
        max_daily_loss=Decimal(1_000_000_000),
        max_drawdown=Decimal(1_000_000_000),
        max_daily_loss_node=Decimal(1_000_000_000),
        max_drawdown_node=Decimal(1_000_000_000),
        instruments={"ES.SIM": InstrumentRiskConfig(max_long_quantity=Decimal(2_000))},
        strategies={
            name: StrategyRiskConfig(
                max_long_quantity=Decimal(20_000),
                max_short_quantity=Decimal(20_000),
                max_gross_notional=Decimal(50_000_000),
                instruments=[i.id for i in INSTRUMENTS],
                venues=["SIM"],
            )
            for name in STRATEGIES
        },
        venues={"SIM": ThrottleConfig(max_messages_per_s=3_000)},
        accounts={
            "desk": AccountRiskConfig(
                strategies=["mm", "arb"],  # "trend" is in no account
                max_total_exposure=Decimal(500_000_000),
                max_cash_usage=Decimal(500_000_000),
            )
        },
    )


class QuietVenue(VenueAdapter):
    """Takes requests and answers nothing: fills are injected by the bench."""

    def submit(self, order: Order) -> None:
        pass

    def cancel(self, order: Order) -> None:
        pass

    def modify(self, order: Order, quantity: int, price: int | None) -> None:
        pass

    async def open_order_ids(self) -> set[str]:
        return set()


def run(config: RiskConfig, n_orders: int, n_open: int, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    bus = MessageBus()
    clock = SimClock(T0)
    instruments = {i.id: i for i in INSTRUMENTS}
    quotes: dict[str, QuoteTick] = {}
    portfolio = Portfolio(
        instruments=instruments, last_quotes=quotes, currency="USD", starting_cash=Decimal(10**9)
    )
    execution = ExecutionEngine(
        bus=bus,
        clock=clock,
        ids=ClientOrderIdGenerator("bench", 1),
        venues={"SIM": QuietVenue("SIM")},
    )
    perf = time.perf_counter_ns
    gate = RiskGate(
        config=config,
        bus=bus,
        clock=clock,
        execution=execution,
        portfolio=portfolio,
        instruments=instruments,
        last_quotes=quotes,
        venues={"SIM"},
        strategies=STRATEGIES,
    )
    fill_ns: list[int] = []

    def timed_post_trade(fill: OrderFilled) -> None:
        t = perf()
        gate.fill_post_trade(fill)
        fill_ns.append(perf() - t)

    # as Kernel wires it (``risk.fills``), the post-trade stage timed
    timed_gate = SimpleNamespace(
        fill_pre_trade=gate.fill_pre_trade,
        fill_post_trade=timed_post_trade,
        books_fills=gate.books_fills,
        watches_fills=gate.watches_fills,
    )
    fills = FillPipeline(portfolio=portfolio, risk=timed_gate)
    fills.attach(bus)
    fills.refresh()
    quote_hook = gate.quote_hook
    mids = dict(MIDS)
    check_ns: list[int] = []
    pass_ns: list[int] = []  # the same, split: orders the checks let through
    deny_ns: list[int] = []  # and orders they denied (a message built)
    submit_ns: list[int] = []
    denied_submit_ns: list[int] = []
    quote_ns: list[int] = []
    eval_ns: list[int] = []
    next_eval = T0
    working: list[Order] = []
    exec_seq = 0
    previous: tuple[Any, ...] | None = None
    for n in range(n_orders):
        now = T0 + n * 3_000_000  # an order every 3 ms of simulated time
        clock.set_time(now)
        inst = INSTRUMENTS[n % 3]
        iid = inst.id
        tick = inst.tick_raw
        mids[iid] += rng.choice((-tick, 0, 0, tick))
        mid = mids[iid]
        quote = quotes[iid] = QuoteTick(iid, now, mid - tick, mid + tick, 100, 100)
        if quote_hook is not None:
            t = perf()
            quote_hook(quote)
            quote_ns.append(perf() - t)
        if now >= next_eval:  # the node's periodic post-trade evaluation
            next_eval += 1_000_000_000
            t = perf()
            gate.check_post_trade()
            eval_ns.append(perf() - t)
        side = BUY if rng.random() < 0.5 else SELL
        roll = rng.random()
        if roll < 0.05:
            price: int | None = None  # market order
        elif roll < 0.10:
            price = mid + (tick if side is BUY else -tick)  # marketable
        else:
            away = rng.randint(1, 20) * tick
            price = mid - away if side is BUY else mid + away
        qty = inst.lot_raw * rng.randint(1, 10)
        strategy = STRATEGIES[rng.randrange(3)]
        if previous is not None and rng.random() < 0.01:
            strategy, iid, side, price, qty = previous  # a duplicate
            inst = instruments[iid]
        previous = (strategy, iid, side, price, qty)
        order = execution.create_order(
            strategy_id=strategy,
            instrument_id=iid,
            venue="SIM",
            side=side,
            order_type=OrderType.MARKET if price is None else OrderType.LIMIT,
            quantity=qty,
            price=price,
        )
        t0 = perf()
        denial = gate._decide(order, side, qty, price, clock.timestamp_ns(), True, True)
        t1 = perf()
        sent = gate.submit_order(order)
        t2 = perf()
        check_ns.append(t1 - t0)
        (pass_ns if denial is None else deny_ns).append(t1 - t0)
        submit_ns.append(t2 - t1)
        if denial is not None:
            denied_submit_ns.append(t2 - t1)
        if sent:
            working.append(order)
        # fills: a marketable order fills at once, sometimes in part
        if sent and (price is None or roll < 0.10):
            exec_seq += 1
            fill_qty = qty if rng.random() < 0.7 else inst.lot_raw
            execution.process(
                OrderFilled(
                    ts_ns=now,
                    client_order_id=order.client_order_id,
                    strategy_id=strategy,
                    instrument_id=iid,
                    venue_order_id=f"V{exec_seq}",
                    exec_id=f"E{exec_seq}",
                    side=side,
                    last_qty=fill_qty,
                    last_px=price if price is not None else mid,
                    fee=Decimal(0),
                    fee_currency="USD",
                    liquidity=LiquiditySide.TAKER,
                )
            )
        # keep about n_open orders working: cancel the oldest (the venue confirms at once)
        working = [o for o in working if o.is_open]
        while len(working) > n_open:
            old = working.pop(0)
            gate.cancel_order(old)
            execution.process(_canceled(old, now))
    warm = min(2_000, n_orders // 10)
    return {
        "check": _percentiles(check_ns[warm:]),
        "pass": _percentiles(pass_ns[len(pass_ns) * warm // n_orders :]),
        "deny": _percentiles(deny_ns[len(deny_ns) * warm // n_orders :]),
        "submit": _percentiles(submit_ns[warm:]),
        "denied_submit": _percentiles(denied_submit_ns[len(deny_ns) * warm // n_orders :]),
        "quote": _percentiles(quote_ns[warm:]) if quote_ns else (0.0, 0.0),
        "fill": _percentiles(fill_ns[warm // 10 :]) if fill_ns else (0.0, 0.0),
        "eval": _percentiles(eval_ns) if eval_ns else (0.0, 0.0),
        "denials": dict(sorted(gate.denials.items())),
        "open_at_end": len(execution.open_orders()),
    }


def kill_all(n_orders: int) -> dict[str, Any]:
    """Rest ``n_orders`` limit orders at the simulated venue, then time ``Kernel.kill``."""
    from pathlib import Path

    clock = SimClock(T0)
    config = PaperConfig(
        instruments=[InstrumentConfig(id="XYZ.SIM", tick_size=Decimal("0.01"))],
        strategies=[],
        venue=SimVenueConfig(latency_ms=5),
        feed=SyntheticFeedConfig(instrument="XYZ.SIM"),
    )
    kernel = Kernel(config=config, base_dir=Path.cwd(), clock=clock, epoch=1)
    kernel.on_quote(QuoteTick("XYZ.SIM", T0, 10_000, 10_002, 100, 100))
    gate = GateView(kernel.risk)  # what a strategy holds
    execution = kernel.execution

    def order(i: int) -> Order:
        side = BUY if i % 2 else SELL
        return execution.create_order(
            strategy_id="bench",
            instrument_id="XYZ.SIM",
            venue="SIM",
            side=side,
            order_type=OrderType.LIMIT,
            quantity=1,
            price=9_000 - i if side is BUY else 11_000 + i,  # far from the touch: they rest
        )

    for i in range(n_orders):
        gate.submit_order(order(i))
    clock.advance_to(T0 + 10_000_000)  # past the venue latency: all accepted
    resting = len(execution.open_orders())
    requested: list[int] = []
    venue_cancel = kernel.venue.cancel

    def counting_cancel(o: Order) -> None:
        requested.append(0)
        venue_cancel(o)

    kernel.venue.cancel = counting_cancel  # type: ignore[method-assign]
    t0 = time.perf_counter_ns()
    asked = kernel.kill("bench").sent
    elapsed_ns = time.perf_counter_ns() - t0
    accepted = sum(gate.submit_order(order(n_orders + i)) for i in range(n_orders))
    clock.advance_to(T0 + 20_000_000)
    return {
        "resting": resting,
        "cancels_asked": asked,
        "cancels_handed_to_venue": len(requested),
        "kill_all_ms": round(elapsed_ns / 1e6, 3),
        "accepted_after_kill": accepted,
        "open_after_kill": len(execution.open_orders()),
    }


def _canceled(order: Order, now: int) -> OrderCanceled:
    return OrderCanceled(
        ts_ns=now,
        client_order_id=order.client_order_id,
        strategy_id=order.strategy_id,
        instrument_id=order.instrument_id,
    )


def _percentiles(samples_ns: list[int]) -> tuple[float, float]:
    if not samples_ns:
        return 0.0, 0.0
    ordered = sorted(samples_ns)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return round(p50 / 1000, 2), round(p99 / 1000, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--open", type=int, default=30, help="orders kept working")
    parser.add_argument("--kill-orders", type=int, default=1_000, help="resting at the kill")
    args = parser.parse_args()
    configure_logging("warning", "console")
    # first, in a fresh heap: after the long runs a GC pass can land inside the kill
    kill = kill_all(args.kill_orders)
    full = run(all_checks(), args.orders, args.open)
    base = run(RiskConfig(), args.orders, args.open)
    if kill["cancels_handed_to_venue"] != kill["resting"] or kill["open_after_kill"]:
        raise SystemExit(f"kill switch bench: not every order was canceled: {kill}")
    result = {
        "bench": "risk",
        "compiled": native.compiled("bastion.risk"),
        "n_orders": args.orders,
        "open_orders": args.open,
        "p50_us": full["check"][0],
        "p99_us": full["check"][1],
        "passed_p50_us": full["pass"][0],
        "passed_p99_us": full["pass"][1],
        "denied_p50_us": full["deny"][0],
        "denied_p99_us": full["deny"][1],
        "submit_p50_us": full["submit"][0],
        "submit_p99_us": full["submit"][1],
        "denied_submit_p50_us": full["denied_submit"][0],
        "denied_submit_p99_us": full["denied_submit"][1],
        "baseline_check_p50_us": base["check"][0],
        "baseline_check_p99_us": base["check"][1],
        "baseline_submit_p50_us": base["submit"][0],
        "baseline_submit_p99_us": base["submit"][1],
        "quote_hook_p50_us": full["quote"][0],
        "quote_hook_p99_us": full["quote"][1],
        "fill_post_trade_p50_us": full["fill"][0],
        "fill_post_trade_p99_us": full["fill"][1],
        "post_trade_eval_p50_us": full["eval"][0],
        "denials": full["denials"],
        "kill_orders": kill["resting"],
        "kill_all_ms": kill["kill_all_ms"],
        "accepted_after_kill": kill["accepted_after_kill"],
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
