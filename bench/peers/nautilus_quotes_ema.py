#!/usr/bin/env python3
"""The shared quotes-ema workload (shared/bench/WORKLOAD.md) in NautilusTrader's BacktestEngine.

A peer for bench/quotes_ema.py. It runs in its own virtualenv, not bastion's:

    python3 -m venv /tmp/nt-venv
    /tmp/nt-venv/bin/pip install nautilus_trader==1.221.0 pyarrow
    /tmp/nt-venv/bin/python bench/peers/nautilus_quotes_ema.py --data quotes_1000000.parquet
    /tmp/nt-venv/bin/python bench/peers/nautilus_quotes_ema.py \
        --data quotes_1000000.parquet --purge-every 100

Setup: one Equity (price precision 2, size precision 0, maker/taker fee 0) on a
NETTING / MARGIN venue with an L1 book fed by QuoteTicks, bar_execution=False,
trade_execution=False, no latency model, FillModel with no slippage and the
MakerTakerFeeModel (so zero commission). A MARKET order submitted inside
on_quote_tick is matched against the same quote's touch (buy at ask, sell at bid).

Timing: ``load_s`` reads the file and builds the QuoteTick objects; ``add_s`` is
engine.add_data (validation + sort); ``wall_s`` is engine.run() only (the post-run
analysis is switched off with run_analysis=False); ``ticks_per_s = n_ticks / wall_s``.

``--purge-every K`` purges closed orders, closed positions and account-state events
from the cache (Cache.purge_closed_orders / purge_closed_positions /
purge_account_events, buffer 0) on the first quote after every K further fills.
Orders, fills and PnL are counted by the strategy itself, so they survive purging.

``realized_pnl`` is the sum of the ``realized_pnl`` of Nautilus' PositionClosed
events (NETTING splits each flip fill into a close and a re-open).
``own_realized_pnl`` is an independent closed-units tally from the fills in
integer cents; ``fills_off_touch`` counts fills not at the same quote's touch.
Prints one JSON line; exit status 1 if a 100k/1M run does not match the workload.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from decimal import Decimal

import nautilus_trader
import numpy as np
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.backtest.models import FillModel, MakerTakerFeeModel
from nautilus_trader.config import BacktestEngineConfig, LoggingConfig, StrategyConfig
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.enums import AccountType, BookType, OmsType, OrderSide
from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
from nautilus_trader.model.instruments import Equity
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.trading.strategy import Strategy

EXPECTED = {
    100_000: (2_898, 2_898, 1, "-28.26"),
    1_000_000: (28_730, 28_730, 1, "-336.23"),
}


class QuotesEmaConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    fast: int = 10
    slow: int = 50
    purge_every: int = 0


class QuotesEma(Strategy):
    def __init__(self, config: QuotesEmaConfig) -> None:
        super().__init__(config)
        self.instrument_id = config.instrument_id
        self.a_fast = 2.0 / (config.fast + 1)
        self.b_fast = 1.0 - self.a_fast
        self.a_slow = 2.0 / (config.slow + 1)
        self.b_slow = 1.0 - self.a_slow
        self.warmup = config.slow
        self.purge_every = config.purge_every
        self.count = 0
        self.fast = 0.0
        self.slow = 0.0
        self.target = 0
        self.position = 0  # the strategy's own view (orders fill at once)
        self.n_orders = 0
        self.n_fills = 0
        self.fills_at_last_purge = 0
        self.n_purges = 0
        self.qty = {1: Quantity.from_int(1), 2: Quantity.from_int(2)}
        # independent tally, integer cents
        self.fill_pos = 0
        self.entry_cents = 0  # total cost of the open units, cents
        self.own_pnl_cents = 0
        self.closed_pnl = Decimal(0)  # sum of PositionClosed.realized_pnl
        self.last_bid = 0.0
        self.last_ask = 0.0
        self.fills_off_touch = 0

    def on_start(self) -> None:
        self.subscribe_quote_ticks(self.instrument_id)

    def on_quote_tick(self, tick: QuoteTick) -> None:
        bid = tick.bid_price.as_double()
        ask = tick.ask_price.as_double()
        self.last_bid = bid
        self.last_ask = ask
        mid = (bid + ask) / 2.0
        self.count += 1
        if self.count == 1:
            self.fast = mid
            self.slow = mid
            return
        prev_fast = self.fast
        prev_slow = self.slow
        fast = self.a_fast * mid + self.b_fast * prev_fast
        slow = self.a_slow * mid + self.b_slow * prev_slow
        self.fast = fast
        self.slow = slow
        if self.purge_every and self.n_fills - self.fills_at_last_purge >= self.purge_every:
            ts = self.clock.timestamp_ns()
            self.cache.purge_closed_orders(ts, 0)
            self.cache.purge_closed_positions(ts, 0)
            self.cache.purge_account_events(ts, 0)
            self.fills_at_last_purge = self.n_fills
            self.n_purges += 1
        if self.count < self.warmup:
            return
        if prev_fast <= prev_slow and fast > slow:
            self.target = 1
        elif prev_fast >= prev_slow and fast < slow:
            self.target = -1
        else:
            return
        delta = self.target - self.position
        if delta == 0:
            return
        order = self.order_factory.market(
            instrument_id=self.instrument_id,
            order_side=OrderSide.BUY if delta > 0 else OrderSide.SELL,
            quantity=self.qty[abs(delta)],
        )
        self.submit_order(order)
        self.n_orders += 1
        self.position += delta

    def on_order_filled(self, event) -> None:
        self.n_fills += 1
        px = event.last_px.as_double()
        cents = round(px * 100)
        qty = int(event.last_qty.as_double())
        if event.order_side == OrderSide.BUY:
            if px != self.last_ask:
                self.fills_off_touch += 1
            signed = qty
        else:
            if px != self.last_bid:
                self.fills_off_touch += 1
            signed = -qty
        pos = self.fill_pos
        if pos != 0 and (pos > 0) != (signed > 0):
            closing = min(abs(signed), abs(pos))
            avg = self.entry_cents / abs(pos)
            if pos > 0:
                self.own_pnl_cents += round(closing * (cents - avg))
            else:
                self.own_pnl_cents += round(closing * (avg - cents))
            self.entry_cents -= round(avg * closing)
            opening = abs(signed) - closing
            if abs(pos) == closing:
                self.entry_cents = 0
            self.entry_cents += opening * cents
        else:
            self.entry_cents += abs(signed) * cents
        self.fill_pos = pos + signed

    def on_position_closed(self, event) -> None:
        self.closed_pnl += event.realized_pnl.as_decimal()


def read_quotes(path: str, n: int | None):
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(path)
    else:
        import pyarrow.csv as pacsv

        table = pacsv.read_csv(path)
    if n is not None:
        table = table.slice(0, n)
    cols = {
        name: table[name].to_numpy() for name in ("ts_ns", "bid", "ask", "bid_size", "ask_size")
    }
    return cols


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="quotes_N.parquet or .csv")
    ap.add_argument("--n", type=int, default=None, help="take only the first N rows")
    ap.add_argument(
        "--purge-every", type=int, default=0, help="purge closed orders/positions every K fills"
    )
    args = ap.parse_args()

    venue = Venue("SIM")
    instrument_id = InstrumentId(Symbol("XYZ"), venue)
    instrument = Equity(
        instrument_id=instrument_id,
        raw_symbol=Symbol("XYZ"),
        currency=USD,
        price_precision=2,
        price_increment=Price.from_str("0.01"),
        lot_size=Quantity.from_int(1),
        ts_event=0,
        ts_init=0,
        maker_fee=Decimal(0),
        taker_fee=Decimal(0),
    )

    t0 = time.perf_counter()
    cols = read_quotes(args.data, args.n)
    ts = cols["ts_ns"].astype(np.uint64)
    ticks = QuoteTick.from_raw_arrays_to_list(
        instrument_id,
        2,
        0,
        np.array(cols["bid"], dtype=np.float64),  # writable copies (memoryview needs them)
        np.array(cols["ask"], dtype=np.float64),
        cols["bid_size"].astype(np.float64),
        cols["ask_size"].astype(np.float64),
        ts,
        ts,
    )
    del cols, ts
    load_s = time.perf_counter() - t0

    engine = BacktestEngine(
        config=BacktestEngineConfig(
            logging=LoggingConfig(log_level="ERROR", bypass_logging=True),
            run_analysis=False,
        )
    )
    engine.add_venue(
        venue=venue,
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        starting_balances=[Money(10_000_000, USD)],
        base_currency=USD,
        fill_model=FillModel(
            prob_fill_on_limit=1.0, prob_fill_on_stop=1.0, prob_slippage=0.0, random_seed=42
        ),
        fee_model=MakerTakerFeeModel(),
        latency_model=None,
        book_type=BookType.L1_MBP,
        bar_execution=False,
        trade_execution=False,
    )
    engine.add_instrument(instrument)
    t0 = time.perf_counter()
    engine.add_data(ticks)
    add_s = time.perf_counter() - t0
    n_ticks = len(ticks)
    del ticks

    strategy = QuotesEma(QuotesEmaConfig(instrument_id=instrument_id, purge_every=args.purge_every))
    engine.add_strategy(strategy)

    t0 = time.perf_counter()
    engine.run()
    wall_s = time.perf_counter() - t0
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    cache = engine.cache
    net = cache.positions_open(instrument_id=instrument_id)
    final_position = sum(p.signed_qty for p in net)
    realized = strategy.closed_pnl.quantize(Decimal("0.01"))
    own = (Decimal(strategy.own_pnl_cents) / 100).quantize(Decimal("0.01"))
    line = {
        "engine": f"nautilus_trader {nautilus_trader.__version__}",
        "variant": f"purge_every={args.purge_every}" if args.purge_every else "default",
        "data": args.data.rsplit("/", 1)[-1],
        "n_ticks": n_ticks,
        "load_s": round(load_s, 3),
        "add_s": round(add_s, 3),
        "wall_s": round(wall_s, 3),
        "ticks_per_s": round(n_ticks / wall_s),
        "n_orders": strategy.n_orders,
        "n_fills": strategy.n_fills,
        "final_position": int(final_position),
        "realized_pnl": str(realized),
        "own_realized_pnl": str(own),
        "fills_off_touch": strategy.fills_off_touch,
        "cache_orders": len(cache.orders()),
        "n_purges": strategy.n_purges,
        "peak_rss_mb": round(peak_rss_mb, 1),
    }
    exp = EXPECTED.get(n_ticks)
    got = (line["n_orders"], line["n_fills"], line["final_position"], line["realized_pnl"])
    line["matches_expected"] = (
        None if exp is None else (got == exp and line["own_realized_pnl"] == exp[3])
    )
    print(json.dumps(line), flush=True)
    engine.dispose()
    return 0 if line["matches_expected"] is not False else 1


if __name__ == "__main__":
    sys.exit(main())
