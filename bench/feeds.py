#!/usr/bin/env python3
"""Cost of the feed path per quote, failover time, and the NATS feed path's latency and
throughput. Prints two JSON lines.

- ``validator_us_per_quote``: ``ValidatedFeed`` with the default validators (as
  ``bench/validation.py``), mean over a batch, less the batch delivered straight to a
  sink that does nothing;
- ``arbiter_us_per_quote``: the arbiter (two feeds of the instrument) on a quote of the
  feed it follows, delivered; ``arbiter_other_us_per_quote``: on a quote of the other
  feed (kept, dropped); both less the same baseline. An instrument with one feed never
  reaches the arbiter: its cost there is 0;
- ``recorder_us_per_quote``: the recorder's tap (``[recording]``, the delivered
  stream) in front of the sink, its writer thread running and writing to a temporary
  directory, less the same baseline: the trading loop's share of recording a quote
  (an append, a batch handed over every 1,024, and what the writer's thread takes of
  the GIL meanwhile); ``recorder_writer_rows_per_s``: the writer alone, from quotes
  handed over to closed Parquet files on disk (Arrow conversion, zstd, fsync);
- ``failover_p50_ms`` / ``failover_p99_ms``: two feeds quote every ``--interval-ms`` on
  the event loop (live clock); the primary stops; the time from its last quote to the
  first quote of the backup delivered, with ``stale_ms`` = ``--stale-ms`` and the
  arbiter's timer at ``poll_ms`` 20 (``--trials`` trials).

A second line (``"part": "nats"``, unless ``--no-nats``) has ``bench/nats_feed.py``'s
figures, run as a process of its own (a real NATS server, a ``bastion feed`` process):
the end-to-end latency handler -> node (``nats_latency_p50_us`` / ``_p99_us``), the
throughput of one handler publishing (``nats_handler_quotes_per_s``) and of a node
consuming (``nats_node_quotes_per_s``).

    python bench/feeds.py [--quotes 200000] [--trials 30] [--stale-ms 100] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from bastion.clock import LiveClock
from bastion.feeds.arbiter import Arbiter, ArbitrationConfig
from bastion.feeds.recorder import Recorder, RecordingConfig
from bastion.feeds.validation import ValidatedFeed, ValidationConfig
from bastion.logs import configure_logging
from bastion.model.data import Bar, QuoteTick
from bastion.model.instruments import Instrument

IID = "XYZ.SIM"
INSTRUMENT = Instrument(
    id=IID, venue="SIM", tick_size=Decimal("0.01"), lot_size=Decimal(1), quote_currency="USD"
)


class _Sink:
    def __init__(self) -> None:
        self.n = 0
        self.last: QuoteTick | None = None

    def on_quote(self, quote: QuoteTick) -> None:
        self.n += 1
        self.last = quote

    def on_bar(self, bar: Bar) -> None:
        pass


def _quotes(n: int, ts: int) -> list[QuoteTick]:
    rng = random.Random(7)
    mid = 10_000
    out = []
    for i in range(n):
        mid += rng.choice((-1, 0, 0, 1))
        out.append(QuoteTick(IID, ts + i, mid, mid + 1, 100, 100, i + 1))
    return out


def _batch_ns(deliver: Callable[[QuoteTick], None], quotes: list[QuoteTick]) -> int:
    perf = time.perf_counter_ns
    t0 = perf()
    for quote in quotes:
        deliver(quote)
    return perf() - t0


def _arbiter(clock: LiveClock, sink: _Sink, config: ArbitrationConfig) -> Arbiter:
    return Arbiter(
        instruments=[INSTRUMENT],
        lanes={IID: ("a", "b")},
        config=config,
        sink=sink,
        clock=clock,
        publish=lambda event: None,
    )


def costs(n: int) -> dict[str, float]:
    clock = LiveClock()
    sink = _Sink()
    quotes = _quotes(n, clock.timestamp_ns())
    direct = min(_batch_ns(sink.on_quote, quotes) for _ in range(3))
    validated = []
    for _ in range(3):
        feed = ValidatedFeed(
            feed="a", instruments=[INSTRUMENT], config=ValidationConfig(), sink=sink, clock=clock
        )
        validated.append(_batch_ns(feed.on_quote, _quotes(n, clock.timestamp_ns())))
    followed, other = [], []
    config = ArbitrationConfig(stale_ms=60_000)  # nothing goes stale during the batch
    for _ in range(3):
        arbiter = _arbiter(clock, sink, config)
        port_a, port_b = arbiter.port("a", sink), arbiter.port("b", sink)
        port_b.on_quote(quotes[0])  # b has ticked: it is a live second feed
        sink.n = 0
        followed.append(_batch_ns(port_a.on_quote, quotes))
        if sink.n != n:
            raise SystemExit(f"the arbiter delivered {sink.n} of {n} quotes")
        sink.n = 0
        other.append(_batch_ns(port_b.on_quote, quotes))
        if sink.n:
            raise SystemExit("the arbiter delivered quotes of the feed it does not follow")
    return {
        **recorder_costs(n, direct),
        "validator_us_per_quote": round((min(validated) - direct) / n / 1000, 3),
        "arbiter_us_per_quote": round((min(followed) - direct) / n / 1000, 3),
        "arbiter_other_us_per_quote": round((min(other) - direct) / n / 1000, 3),
        "baseline_us_per_quote": round(direct / n / 1000, 3),
    }


def recorder_costs(n: int, direct_ns: int) -> dict[str, float]:
    clock = LiveClock()
    sink = _Sink()
    taps, written = [], []
    for _ in range(3):
        with tempfile.TemporaryDirectory() as directory:
            config = RecordingConfig(path=directory, streams=["delivered"], max_buffered_rows=2 * n)
            recorder = Recorder(
                config, root=Path(directory), instruments={IID: INSTRUMENT}, clock=clock
            )
            recorder.start()
            taps.append(_batch_ns(recorder.delivered(sink).on_quote, _quotes(n, 0)))
            recorder.close()
            stats = recorder.stats()
            if stats.written != n or stats.dropped:
                raise SystemExit(f"the recorder wrote {stats.written} of {n} quotes")
            # the writer alone: everything handed over first, then written
            idle = Recorder(
                config, root=Path(directory) / "idle", instruments={IID: INSTRUMENT}, clock=clock
            )
            tap = idle.delivered(sink)
            for quote in _quotes(n, 0):
                tap.on_quote(quote)
            idle.flush()
            t0 = time.perf_counter()
            idle.start()
            idle.close()
            written.append(n / (time.perf_counter() - t0))
    return {
        "recorder_us_per_quote": round((min(taps) - direct_ns) / n / 1000, 3),
        "recorder_writer_rows_per_s": round(max(written)),
    }


async def _failover(stale_ms: int, interval_ms: int, rng: random.Random) -> float:
    clock = LiveClock()
    sink = _Sink()
    arbiter = _arbiter(clock, sink, ArbitrationConfig(stale_ms=stale_ms, poll_ms=20))
    ports = {f: arbiter.port(f, sink) for f in ("a", "b")}
    last_primary = 0
    stop_after = time.monotonic() + rng.uniform(0.05, 0.1)
    switched = asyncio.Event()

    async def feed(name: str) -> None:
        nonlocal last_primary
        while True:
            now = clock.timestamp_ns()
            if name == "a":
                if time.monotonic() > stop_after:
                    return
                last_primary = now
            ports[name].on_quote(QuoteTick(IID, now, 10_000, 10_002, 5, 5))
            if name == "b" and sink.last is not None and sink.last.ts_ns == now:
                switched.set()
                return
            await asyncio.sleep(interval_ms / 1000 * rng.uniform(0.8, 1.2))

    async def poll() -> None:
        while True:
            await asyncio.sleep(0.02)
            arbiter.poll()

    timer = asyncio.create_task(poll())
    await asyncio.wait_for(asyncio.gather(feed("a"), feed("b")), 10)
    timer.cancel()
    assert switched.is_set() and sink.last is not None
    return (sink.last.ts_ns - last_primary) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quotes", type=int, default=200_000)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--stale-ms", type=int, default=100)
    parser.add_argument("--interval-ms", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a short run (smoke tests)")
    parser.add_argument("--no-nats", action="store_true", help="skip the NATS part")
    args = parser.parse_args()
    if args.quick:
        args.quotes, args.trials = 20_000, 5
    configure_logging("error", "json")  # each trial's switch is logged: not here
    result: dict[str, object] = {"bench": "feeds", "part": "path", "quotes": args.quotes}
    result.update(costs(args.quotes))
    rng = random.Random(11)
    times = sorted(
        asyncio.run(_failover(args.stale_ms, args.interval_ms, rng)) for _ in range(args.trials)
    )
    result.update(
        {
            "stale_ms": args.stale_ms,
            "feed_interval_ms": args.interval_ms,
            "failover_trials": args.trials,
            "failover_p50_ms": round(times[len(times) // 2], 1),
            "failover_p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 1),
        }
    )
    print(json.dumps(result), flush=True)
    if not args.no_nats:
        print(json.dumps({"bench": "feeds", "part": "nats", **_nats(quick=args.quick)}))


def _nats(*, quick: bool) -> dict[str, object]:
    """``bench/nats_feed.py``'s figures: it starts a NATS server and a handler process,
    so it runs as a process of its own."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("nats_feed.py"))]
        + (["--quick"] if quick else []),
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench/nats_feed.py failed:\n{done.stderr[-3000:]}")
    figures: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


if __name__ == "__main__":
    main()
