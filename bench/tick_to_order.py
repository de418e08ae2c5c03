#!/usr/bin/env python3
"""Tick-to-order latency of a live-mode node. Prints one JSON line.

A node is built as ``bastion run`` builds it: the kernel on an asyncio loop with the
live clock, the SQLite journal committing on its writer thread (group commit), the
risk gate with its default config, and the in-process venue. It is fed quotes as fast
as it takes them; the loop runs between quotes, so the venue's flush and the journal's
thread see live-mode scheduling. The strategy sends a market order every
``--every`` quotes, alternating buy and sell.

- ``p50_us`` / ``p99_us``: from a quote entering the node (``Kernel.on_quote``) to the
  resulting order being handed to the venue adapter (``submit``), through strategy,
  risk gate, OMS and journal enqueue;
- ``quotes_per_s``: quotes the node took per second over the whole run, orders included.

    python bench/tick_to_order.py [--quotes 200000] [--every 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from bastion.clock import LiveClock
from bastion.config import InstrumentConfig, PaperConfig
from bastion.data.config import SyntheticFeedConfig
from bastion.journal.config import JournalConfig
from bastion.journal.sqlite import SqliteJournal
from bastion.logs import configure_logging
from bastion.model.data import QuoteTick
from bastion.model.orders import Order
from bastion.node.kernel import Kernel
from bastion.strategy.config import StrategyConfig

STRATEGY = '''
from bastion.model.enums import OrderSide
from bastion.strategy import QuoteTick, Strategy


class EveryN(Strategy):
    """A market order every ``every`` quotes, alternating sides: flat on average."""

    def on_start(self) -> None:
        self.iid = self.params["instrument"]
        self.every = int(self.params["every"])
        self.lot = self.instrument(self.iid).lot_raw
        self.n = 0
        self.subscribe_quotes(self.iid)

    def on_quote(self, quote: QuoteTick) -> None:
        self.n += 1
        if self.n % self.every == 0:
            side = OrderSide.BUY if (self.n // self.every) % 2 else OrderSide.SELL
            self.submit(side, self.iid, self.lot)
'''


def _config(root: Path, every: int) -> PaperConfig:
    (root / "every_n.py").write_text(STRATEGY)
    return PaperConfig(
        instruments=[InstrumentConfig(id="XYZ.SIM", tick_size=Decimal("0.01"))],
        strategies=[
            StrategyConfig(
                name="every_n",
                path="every_n.py",
                class_name="EveryN",
                params={"instrument": "XYZ.SIM", "every": every},
            )
        ],
        feed=SyntheticFeedConfig(instrument="XYZ.SIM"),
        journal=JournalConfig(path="journal.sqlite"),
    )


async def _run(args: argparse.Namespace, root: Path) -> dict[str, object]:
    config = _config(root, args.every)
    loop = asyncio.get_running_loop()
    clock = LiveClock()
    journal = SqliteJournal.from_config(root / "journal.sqlite", config.journal)
    epoch = journal.begin_run(config.node.id, clock.timestamp_ns())
    holder: list[Kernel] = []
    kernel = Kernel(
        config=config,
        base_dir=root,
        clock=clock,
        epoch=epoch,
        journal=journal,
        request_flush=lambda: loop.call_soon(holder[0].venue.flush),
    )
    holder.append(kernel)
    venue = kernel.venue
    handed: list[int] = []
    submit = venue.submit

    def timed_submit(order: Order) -> None:
        handed.append(time.perf_counter_ns())
        submit(order)

    venue.submit = timed_submit  # type: ignore[method-assign]
    kernel.start()
    latencies: list[int] = []
    perf = time.perf_counter_ns
    mid = 10_000
    t_start = time.perf_counter()
    try:
        for i in range(args.quotes):
            mid += 1 if (i * 7919) % 3 else -1
            quote = QuoteTick("XYZ.SIM", clock.timestamp_ns(), mid, mid + 1, 100, 100)
            before = len(handed)
            t0 = perf()
            kernel.on_quote(quote)
            if len(handed) > before and i >= args.warmup:
                latencies.append(handed[before] - t0)
            if i % 16 == 0:
                await asyncio.sleep(0)  # the loop runs: venue flush, timers
        elapsed = time.perf_counter() - t_start
    finally:
        kernel.stop_strategies()
        journal.close()
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] / 1000, 1)

    return {
        "bench": "tick_to_order",
        "quotes": args.quotes,
        "orders_timed": len(latencies),
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "max_us": round(latencies[-1] / 1000, 1),
        "quotes_per_s": round(args.quotes / elapsed),
        "journal_events": journal.last_seq,
        "fills": sum(1 for o in kernel.execution.orders() if o.filled_qty),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quotes", type=int, default=200_000)
    parser.add_argument("--every", type=int, default=10, help="an order every N quotes")
    parser.add_argument("--warmup", type=int, default=2_000, help="quotes not timed at start")
    args = parser.parse_args()
    configure_logging("warning", "console")
    with tempfile.TemporaryDirectory(prefix="bastion-t2o-") as tmp:
        result = asyncio.run(_run(args, Path(tmp)))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
