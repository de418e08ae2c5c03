#!/usr/bin/env python3
"""Tick-to-order latency of a live-mode node. Prints one JSON line.

A node is built as ``bastion run`` builds it: the kernel on an asyncio loop with the
live clock, the SQLite journal committing on its writer thread (group commit), the
risk gate with its default config, and the in-process venue. The strategy sends a
market order every ``--every`` quotes, alternating buy and sell.

``--isolation inline`` (the default): the strategy runs in the node's process. The
node is fed quotes as fast as it takes them; the loop runs every 16 quotes, so the
venue's flush and the journal's thread see live-mode scheduling.

- ``p50_us`` / ``p99_us``: from a quote entering the node where its feed delivers it
  (``Kernel.feed_sinks``: the market data validators, then ``Kernel.on_quote``) to the
  resulting order being handed to the venue adapter (``submit``), through strategy,
  risk gate, OMS and journal enqueue;
- ``quotes_per_s``: quotes the node took per second over the whole run, orders included.

``--isolation process``: the strategy runs in its own process
(``ProcessStrategyHost`` and its worker, as in a node with ``isolation = "process"``),
the loop waiting in its selector between messages as a node's does. Two runs of
``--quotes`` quotes each:

- one quote at a time, the next sent once the strategy process has answered the last
  (its ``Done``): ``p50_us`` / ``p99_us`` from the quote entering ``Kernel.on_quote``,
  through the channel, the strategy process and back, the risk gate, OMS and journal
  enqueue, to the venue adapter's ``submit``: the path's own latency, nothing queued
  before the quote. ``roundtrip_p50_us`` / ``roundtrip_p99_us``: from a quote
  entering the node to the process's ``Done`` for it being handled, every quote;
  ``lockstep_quotes_per_s``: the rate of that run;
- quotes fed as fast as the process takes them (at most ``--window`` unanswered):
  ``quotes_per_s``, the quotes one strategy process takes per second, orders
  included; ``loaded_p50_us`` / ``loaded_p99_us``: the same tick-to-order span, now
  with the quotes queued before each one.

``--monitoring``: the node also runs its ``NodeMonitor`` (sampling every 250 ms on the
loop, its HTTP listener on a thread) and a scraper thread fetches ``/metrics`` every
100 ms for the whole run, as Prometheus would (far more often): compare ``p99_us`` with
and without it. ``scrapes`` says how many answered.

``--control SOCKET``: the node also serves its control socket at ``SOCKET`` (its
journal beside it, at ``SOCKET`` without ``.sock``, as a node's is), ``NodeOperator``
behind its guard as ``bastion run`` serves it: the node's own account is its owner and
is listed in ``[access] consoles``, so a ``bastion console`` running as it polls
``view`` and records its sign-ins. ``control_requests`` says how many requests it
answered during the run; ``control_p50_us`` / ``control_max_us`` how long the guard
and the command took on the loop for each (the quotes wait meanwhile; ``bench/console.py``
runs it so, with and without a console and its live-update clients).

``--journal postgres``: the journal is a PostgreSQL one (a local server started with
the test kit's ``kit.postgres``, fsync on, over TCP on 127.0.0.1), committing on its
writer thread as the SQLite one does: what an HA member pays on the order path.

    python bench/tick_to_order.py [--isolation inline|process] [--quotes 200000] [--every 10]
        [--monitoring] [--control SOCKET] [--journal sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from bastion.clock import LiveClock
from bastion.config import InstrumentConfig, NodeSection, PaperConfig
from bastion.data.config import SyntheticFeedConfig
from bastion.isolation import protocol as p
from bastion.isolation.host import ProcessStrategyHost, StrategyProcess
from bastion.journal.base import Journal
from bastion.journal.config import JournalConfig
from bastion.journal.keys import JournalKeys
from bastion.journal.sqlite import SqliteJournal
from bastion.logs import configure_logging
from bastion.model.data import QuoteTick
from bastion.model.orders import Order
from bastion.monitor.config import MonitoringConfig
from bastion.monitor.node import NodeMonitor
from bastion.node.access import command_guard
from bastion.node.actions import NodeOperator
from bastion.node.control import (
    Request,
    journal_of,
    open_control_socket,
    serve_control,
)
from bastion.node.identity import Identities, PeerCredentials
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


def _config(root: Path, every: int, isolation: str) -> PaperConfig:
    (root / "every_n.py").write_text(STRATEGY)
    return PaperConfig(
        node=NodeSection(isolation="process" if isolation == "process" else "inline"),
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


def _node(args: argparse.Namespace, root: Path) -> tuple[Kernel, Journal, list[int]]:
    """The node (not started), and the list its venue's ``submit`` stamps each order in."""
    config = _config(root, args.every, args.isolation)
    loop = asyncio.get_running_loop()
    clock = LiveClock()
    keys = JournalKeys()
    if args.encrypt:  # the file encrypted and the chain keyed, as a node with a vault runs
        keys = JournalKeys(encryption=os.urandom(32), chain=os.urandom(32))
    journal_path = root / "journal.sqlite" if args.control is None else journal_of(args.control)
    journal: Journal
    if args.pg_dsn is not None:
        from kit.pg_journal import open_pg

        journal = open_pg(args.pg_dsn, root, keys=keys)
    else:
        journal = SqliteJournal.from_config(journal_path, config.journal, keys=keys)
    epoch = journal.begin_run(config.node.id, clock.timestamp_ns())
    holder: list[Kernel] = []

    def request_flush() -> None:  # as the node's runner asks for it
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
    venue = kernel.venue
    handed: list[int] = []
    submit = venue.submit

    def timed_submit(order: Order) -> None:
        handed.append(time.perf_counter_ns())
        submit(order)

    venue.submit = timed_submit  # type: ignore[method-assign]
    return kernel, journal, handed


class _Scraper:
    """A thread that GETs ``url`` every ``every_s`` until stopped; counts the answers."""

    def __init__(self, url: str, every_s: float) -> None:
        self.url = url
        self.every_s = every_s
        self.scrapes = 0
        self.failures = 0
        self.bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as answer:
                    self.bytes += len(answer.read())
                self.scrapes += 1
            except OSError:
                self.failures += 1

    def __enter__(self) -> _Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@asynccontextmanager
async def _monitored(
    args: argparse.Namespace, kernel: Kernel, journal: Journal
) -> AsyncIterator[dict[str, object]]:
    """With ``--monitoring``: the node's monitor running and a scraper on its /metrics;
    yields the fields it adds to the result (filled in when the block ends)."""
    extra: dict[str, object] = {"monitoring": bool(args.monitoring)}
    if not args.monitoring:
        yield extra
        return
    monitor = NodeMonitor(
        MonitoringConfig(listen="127.0.0.1:0"), node_id="bench", mode="paper", clock=kernel.clock
    )
    monitor.attach(kernel, journal=journal, epoch=1)
    monitor.start()
    monitor.trading_started()
    try:
        with _Scraper(f"{monitor.url}/metrics", args.scrape_every_s) as scraper:
            yield extra
        extra.update(scrapes=scraper.scrapes, scrape_failures=scraper.failures)
    finally:
        await monitor.stop()


class _Timed:
    """The guard in front of the control socket, timing each request it answers."""

    def __init__(self, guard: Any) -> None:
        self._guard = guard
        self.spans_ns: list[int] = []

    async def handle(self, req: Request, peer: PeerCredentials) -> dict[str, Any]:
        t0 = time.perf_counter_ns()
        answer: dict[str, Any] = await self._guard.handle(req, peer)
        self.spans_ns.append(time.perf_counter_ns() - t0)
        return answer


@asynccontextmanager
async def _controlled(
    args: argparse.Namespace, kernel: Kernel, journal: Journal
) -> AsyncIterator[dict[str, object]]:
    """With ``--control``: the node's control socket served on the loop; yields the
    fields it adds to the result (filled in when the block ends)."""
    extra: dict[str, object] = {"control": args.control is not None}
    if args.control is None:
        yield extra
        return
    me = os.geteuid()
    guard = _Timed(
        command_guard(
            NodeOperator(kernel),
            identities=Identities(None, consoles=[me]),
            epoch=1,  # the prefix of approval ids; this run approves nothing
            mode="paper",
        )
    )
    sock = open_control_socket(args.control)
    server = asyncio.create_task(serve_control(sock, args.control, guard), name="control")
    try:
        yield extra
        spans = sorted(guard.spans_ns)
        extra["control_requests"] = len(spans)
        if spans:
            extra["control_p50_us"] = _pct(spans, 0.50)
            extra["control_max_us"] = round(spans[-1] / 1000, 1)
    finally:
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)


def _quotes(clock: LiveClock) -> Iterator[QuoteTick]:
    mid = 10_000
    i = 0
    while True:
        mid += 1 if (i * 7919) % 3 else -1
        i += 1
        yield QuoteTick("XYZ.SIM", clock.timestamp_ns(), mid, mid + 1, 100, 100)


def _pct(samples: list[int], p: float) -> float:
    return round(samples[min(len(samples) - 1, int(p * len(samples)))] / 1000, 1)


async def _run_inline(args: argparse.Namespace, root: Path) -> dict[str, object]:
    kernel, journal, handed = _node(args, root)
    clock = kernel.clock
    assert isinstance(clock, LiveClock)
    kernel.start()
    latencies: list[int] = []
    perf = time.perf_counter_ns
    mid = 10_000
    (feed_sink,) = kernel.feed_sinks.values()  # validation, then the kernel
    try:
        async with (
            _monitored(args, kernel, journal) as monitoring,
            _controlled(args, kernel, journal) as control,
        ):
            t_start = time.perf_counter()
            for i in range(args.quotes):
                mid += 1 if (i * 7919) % 3 else -1
                quote = QuoteTick("XYZ.SIM", clock.timestamp_ns(), mid, mid + 1, 100, 100)
                before = len(handed)
                t0 = perf()
                feed_sink.on_quote(quote)
                if len(handed) > before and i >= args.warmup:
                    latencies.append(handed[before] - t0)
                if i % 16 == 0:
                    await asyncio.sleep(0)  # the loop runs: venue flush, timers, sampler
            elapsed = time.perf_counter() - t_start
    finally:
        kernel.stop_strategies()
        journal.close()
    latencies.sort()
    return {
        **monitoring,
        **control,
        "bench": "tick_to_order",
        "isolation": "inline",
        "quotes": args.quotes,
        "orders_timed": len(latencies),
        "p50_us": _pct(latencies, 0.50),
        "p99_us": _pct(latencies, 0.99),
        "max_us": round(latencies[-1] / 1000, 1),
        "quotes_per_s": round(args.quotes / elapsed),
        "journal_events": journal.last_seq,
        "fills": sum(1 for o in kernel.execution.orders() if o.filled_qty),
    }


class _Answers:
    """Wakes the bench when the strategy process has answered up to an input: the
    host's message handler, with a look at each ``Done`` after the host handled it."""

    def __init__(self, host: ProcessStrategyHost, proc: StrategyProcess) -> None:
        self._proc = proc
        self._target = 0
        self._waiter: asyncio.Future[int] | None = None
        handle = host._handle

        def handle_and_wake(proc: StrategyProcess, message: p.WorkerMessage) -> None:
            handle(proc, message)
            waiter = self._waiter
            if waiter is not None and type(message) is p.Done and proc.acked >= self._target:
                self._waiter = None
                waiter.set_result(time.perf_counter_ns())

        host._handle = handle_and_wake  # type: ignore[method-assign]

    async def through(self, sent: int) -> int:
        """Wait until the process has handled its first ``sent`` inputs; the time the
        host handled the ``Done`` that said so (now, if it had already)."""
        if self._proc.acked >= sent:
            return time.perf_counter_ns()
        self._target = sent
        self._waiter = asyncio.get_running_loop().create_future()
        return await self._waiter


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _run_process(args: argparse.Namespace, root: Path) -> dict[str, object]:
    kernel, journal, handed = _node(args, root)
    clock = kernel.clock
    assert isinstance(clock, LiveClock)
    host = kernel.strategies
    assert isinstance(host, ProcessStrategyHost)
    (proc,) = host.processes.values()
    answers = _Answers(host, proc)
    kernel.start()
    perf = time.perf_counter_ns
    quotes = _quotes(clock)
    every = args.every
    try:
        deadline = time.monotonic() + 60
        while proc.state != "running" or not host.quote_subscribers.get("XYZ.SIM"):
            if proc.state not in ("starting", "running") or time.monotonic() > deadline:
                raise SystemExit(f"the strategy process did not start: {proc.status()}")
            await asyncio.sleep(0.005)
        # quote k (from 1) is the strategy's k-th: it orders on every ``every``-th
        seen = 0

        # one at a time: the path's own latency
        latencies: list[int] = []
        roundtrips: list[int] = []
        cpu_core, cpu_worker = time.process_time(), _cpu_s(proc.pid)
        t_start = perf()
        for i in range(args.quotes):
            quote = next(quotes)
            before = len(handed)
            t0 = perf()
            kernel.on_quote(quote)
            t_done = await answers.through(proc.sent)
            seen += 1
            if seen % every == 0 and len(handed) != before + 1:
                raise SystemExit(f"quote {seen}: its order did not reach the venue")
            if i >= args.warmup:
                roundtrips.append(t_done - t0)
                if seen % every == 0:
                    latencies.append(handed[before] - t0)
        lockstep_s = (perf() - t_start) / 1e9
        lockstep_cpu = (time.process_time() - cpu_core, _cpu_s(proc.pid) - cpu_worker)

        # as fast as the process takes them: its throughput, and the latency under load
        order_t0: list[int] = []
        base = len(handed)
        window = args.window
        cpu_core, cpu_worker = time.process_time(), _cpu_s(proc.pid)
        t_start = perf()
        for i in range(args.quotes):
            quote = next(quotes)
            t0 = perf()
            kernel.on_quote(quote)
            seen += 1
            if seen % every == 0:
                order_t0.append(t0)
            if proc.pending >= window:
                await answers.through(proc.sent - window // 2)
            elif i % 16 == 0:
                await asyncio.sleep(0)  # the loop runs: the process's answers, timers
        await answers.through(proc.sent)
        loaded_s = (perf() - t_start) / 1e9
        loaded_cpu = (time.process_time() - cpu_core, _cpu_s(proc.pid) - cpu_worker)
        if len(handed) - base != len(order_t0):
            raise SystemExit(f"{len(order_t0)} orders sent, {len(handed) - base} reached the venue")
        skip = args.warmup // every
        loaded = sorted(h - t for h, t in zip(handed[base + skip :], order_t0[skip:], strict=True))
        state = proc.state
    finally:
        kernel.stop_strategies()
        journal.close()
    if state != "running":
        raise SystemExit(f"the strategy process is {state}: {proc.failure}")
    latencies.sort()
    roundtrips.sort()
    n = args.quotes
    return {
        "bench": "tick_to_order",
        "isolation": "process",
        "quotes": n,
        "orders_timed": len(latencies),
        "p50_us": _pct(latencies, 0.50),
        "p99_us": _pct(latencies, 0.99),
        "max_us": round(latencies[-1] / 1000, 1),
        "roundtrip_p50_us": _pct(roundtrips, 0.50),
        "roundtrip_p99_us": _pct(roundtrips, 0.99),
        "lockstep_quotes_per_s": round(n / lockstep_s),
        "lockstep_core_cpu_us_per_quote": round(lockstep_cpu[0] / n * 1e6, 1),
        "lockstep_worker_cpu_us_per_quote": round(lockstep_cpu[1] / n * 1e6, 1),
        "quotes_per_s": round(n / loaded_s),
        "window": window,
        "loaded_p50_us": _pct(loaded, 0.50),
        "loaded_p99_us": _pct(loaded, 0.99),
        "loaded_core_cpu_us_per_quote": round(loaded_cpu[0] / n * 1e6, 1),
        "loaded_worker_cpu_us_per_quote": round(loaded_cpu[1] / n * 1e6, 1),
        "journal_events": journal.last_seq,
        "fills": sum(1 for o in kernel.execution.orders() if o.filled_qty),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isolation", choices=("inline", "process"), default="inline")
    parser.add_argument("--quotes", type=int, default=200_000)
    parser.add_argument("--every", type=int, default=10, help="an order every N quotes")
    parser.add_argument("--warmup", type=int, default=2_000, help="quotes not timed at start")
    parser.add_argument(
        "--window", type=int, default=256, help="process: most quotes unanswered at once"
    )
    parser.add_argument("--quick", action="store_true", help="a short run (a smoke test)")
    parser.add_argument(
        "--monitoring",
        action="store_true",
        help="inline: the node's monitor sampling, and a thread scraping /metrics",
    )
    parser.add_argument(
        "--scrape-every-s", type=float, default=0.1, help="--monitoring: seconds between scrapes"
    )
    parser.add_argument(
        "--encrypt",
        action="store_true",
        help="journal encrypted (SQLCipher) with a keyed chain (HMAC-SHA256) and anchors",
    )
    parser.add_argument(
        "--control",
        type=Path,
        metavar="SOCKET",
        help="inline: serve the control socket at SOCKET (ends in .sock; the journal is "
        "SOCKET without it, and must not exist yet)",
    )
    parser.add_argument("--journal", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    args.pg_dsn = None
    if args.monitoring and args.isolation == "process":
        parser.error("--monitoring: with --isolation inline only")
    if args.control is not None:
        if args.isolation == "process":
            parser.error("--control: with --isolation inline only")
        if args.control.suffix != ".sock":
            parser.error("--control: the socket's name ends in .sock")
        args.control = args.control.absolute()
        if journal_of(args.control).exists():
            parser.error(f"--control: {journal_of(args.control)} exists; give a fresh path")
    if args.quick:
        args.quotes, args.warmup = 2_000, 200
    configure_logging("warning", "console")
    run = _run_process if args.isolation == "process" else _run_inline
    with contextlib.ExitStack() as stack:
        if args.journal == "postgres":
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from kit.postgres import postgres_server

            server = stack.enter_context(postgres_server())
            args.pg_dsn = server.dsn(server.create_database())
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bastion-t2o-"))
        result = asyncio.run(run(args, Path(tmp)))
    result["encrypted"] = args.encrypt
    result["journal"] = args.journal
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
