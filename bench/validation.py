#!/usr/bin/env python3
"""Cost of market data validation per quote, with the default validators. Prints one
JSON line.

A feed's quotes (a random walk on a 0.01 tick, valid) pass through ``ValidatedFeed``
(``bastion.feeds.validation``) into a sink that does nothing, with the live clock, as a
node's feed delivers them to its kernel (``compiled``: whether the validators run as C
extensions, ``bastion.native``):

- ``validate_p50_ns`` / ``validate_p99_ns``: one quote's ``on_quote``, timed alone
  (``perf_counter_ns`` around the call; the timer's own cost, ``timer_ns``, included);
- ``per_quote_ns``: the mean over a batch of ``--quotes`` quotes timed as a whole, less
  the same loop delivering straight to the sink (``baseline_per_quote_ns``).

    python bench/validation.py [--quotes 200000] [--spike-z 6]

``--pass-only validated`` (or ``direct``) runs one untimed pass and prints nothing, for
counting instructions: the difference of the two runs under callgrind, over
``--quotes``, is validation's instructions per quote:

    PYTHONHASHSEED=0 valgrind --tool=callgrind python bench/validation.py \
        --quotes 20000 --pass-only validated   # then --pass-only direct
"""

from __future__ import annotations

import argparse
import json
import random
import time
from decimal import Decimal

from bastion import native
from bastion.clock import LiveClock
from bastion.feeds.validation import ValidatedFeed, ValidationConfig
from bastion.model.data import Bar, QuoteTick
from bastion.model.instruments import Instrument


class _Sink:
    def __init__(self) -> None:
        self.n = 0

    def on_quote(self, quote: QuoteTick) -> None:
        self.n += 1

    def on_bar(self, bar: Bar) -> None:
        pass


def _quotes(n: int, clock: LiveClock) -> list[QuoteTick]:
    rng = random.Random(7)
    mid = 10_000
    out = []
    ts = clock.timestamp_ns()
    for i in range(n):
        mid += rng.choice((-1, 0, 0, 1))
        out.append(QuoteTick("XYZ.SIM", ts + i, mid, mid + 1, 100, 100, i + 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quotes", type=int, default=200_000)
    parser.add_argument("--spike-z", type=Decimal, default=None, help="also the z-score test")
    parser.add_argument("--pass-only", choices=("validated", "direct"), default=None)
    args = parser.parse_args()
    clock = LiveClock()
    instrument = Instrument(
        id="XYZ.SIM",
        venue="SIM",
        tick_size=Decimal("0.01"),
        lot_size=Decimal(1),
        quote_currency="USD",
    )
    config = ValidationConfig(spike_z=args.spike_z)
    sink = _Sink()
    # max_age_ms is the default 5 s: the quotes are stamped at the start, so a run
    # longer than that would see them stale; each pass re-stamps
    quotes = _quotes(args.quotes, clock)
    perf = time.perf_counter_ns

    def fresh() -> ValidatedFeed:
        return ValidatedFeed(
            feed="bench", instruments=[instrument], config=config, sink=sink, clock=clock
        )

    if args.pass_only is not None:
        on_quote = fresh().on_quote if args.pass_only == "validated" else sink.on_quote
        for quote in quotes:
            on_quote(quote)
        if sink.n != args.quotes:
            raise SystemExit(f"{args.quotes - sink.n} valid quotes were dropped")
        return
    # per-quote samples
    feed = fresh()
    on_quote = feed.on_quote
    samples = []
    for quote in quotes:
        t0 = perf()
        on_quote(quote)
        samples.append(perf() - t0)
    timer = []
    for _ in range(10_000):
        t0 = perf()
        timer.append(perf() - t0)
    timer.sort()
    # batch: validated, and straight to the sink
    quotes = _quotes(args.quotes, clock)
    feed = fresh()
    on_quote = feed.on_quote
    sink.n = 0
    t0 = perf()
    for quote in quotes:
        on_quote(quote)
    validated_ns = perf() - t0
    delivered = sink.n
    direct = sink.on_quote
    t0 = perf()
    for quote in quotes:
        direct(quote)
    direct_ns = perf() - t0
    if delivered != args.quotes:
        raise SystemExit(f"{args.quotes - delivered} valid quotes were dropped: {feed.counts()}")
    samples.sort()
    n = len(samples)
    print(
        json.dumps(
            {
                "bench": "validation",
                "quotes": args.quotes,
                "spike_z": None if args.spike_z is None else str(args.spike_z),
                "compiled": native.compiled("bastion.feeds.validation"),
                "validate_p50_ns": samples[n // 2],
                "validate_p99_ns": samples[int(n * 0.99)],
                "timer_ns": timer[len(timer) // 2],
                "per_quote_ns": round((validated_ns - direct_ns) / args.quotes),
                "baseline_per_quote_ns": round(direct_ns / args.quotes),
            }
        )
    )


if __name__ == "__main__":
    main()
