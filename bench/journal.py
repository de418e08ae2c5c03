#!/usr/bin/env python3
"""Journal append throughput in both durability modes, and what append() costs the caller.

Appends a realistic order flow (initialized, submitted, accepted, filled: the events
the OMS journals per order) to a fresh SQLite journal and prints one JSON line:

- ``group_events_per_s``: ``n_group`` events / (first append .. ``close()`` returned,
  i.e. everything committed and fsynced);
- ``fsync_each_events_per_s``: the same for ``n_fsync_each`` events, one fsync each;
- ``append_p50_us`` / ``append_p99_us`` / ``append_max_us``: the time one ``append()``
  takes on the caller's thread in group mode (the latency the journal adds to the
  order path), measured while the writer thread is busy with the same run;
- ``fsync_each_p50_us`` / ``fsync_each_p99_us``: the same in fsync_each mode.

    python bench/journal.py [--n-group 100000] [--n-fsync-each 2000] [--dir DIR]

Use ``--dir`` on the disk a real journal would live on: fsync cost is the disk's.

The same figures follow for a PostgreSQL journal (one more JSON line; each line says its
``backend``), on a local server started with the test kit's ``kit.postgres`` (fsync on;
over TCP on 127.0.0.1). ``--no-postgres`` skips it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from bastion.journal import SqliteJournal, verify_journal
from bastion.journal.keys import JournalKeys
from bastion.logs import configure_logging
from bastion.model import events as ev
from bastion.model.enums import LiquiditySide, OrderSide, OrderType, TimeInForce

T0 = 1_704_205_800_000_000_000


def order_flow(n: int) -> list[Any]:
    """``n`` events: per order, initialized -> submitted -> accepted -> filled."""
    events: list[Any] = []
    i = 0
    while len(events) < n:
        coid = f"O-20260101-node-1-1-{i:08d}"
        side = OrderSide.BUY if i % 2 == 0 else OrderSide.SELL
        base = {
            "client_order_id": coid,
            "strategy_id": "ema_cross",
            "instrument_id": "XYZ.SIM",
        }
        ts = T0 + i * 1_000_000
        events += [
            ev.OrderInitialized(
                ts_ns=ts,
                **base,
                side=side,
                order_type=OrderType.LIMIT,
                time_in_force=TimeInForce.GTC,
                quantity=100,
                price=10_000 + i % 50,
            ),
            ev.OrderSubmitted(ts_ns=ts + 1_000, **base, venue="SIM"),
            ev.OrderAccepted(ts_ns=ts + 50_000, **base, venue_order_id=f"SIM-{i}"),
            ev.OrderFilled(
                ts_ns=ts + 90_000,
                **base,
                venue_order_id=f"SIM-{i}",
                exec_id=f"SIM-E-{i}",
                side=side,
                last_qty=100,
                last_px=10_000 + i % 50,
                fee=Decimal("0.0125"),
                fee_currency="USD",
                liquidity=LiquiditySide.MAKER,
            ),
        ]
        i += 1
    return events[:n]


def percentile_us(samples_ns: list[int], q: float) -> float:
    ordered = sorted(samples_ns)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000, 2)


def run(
    path: Path,
    events: list[Any],
    durability: Any,
    keys: JournalKeys,
    pg: Callable[[Any], tuple[Any, Callable[[], Any]]] | None = None,
) -> dict[str, float]:
    """``pg(durability)``: a PostgreSQL journal and how to verify it (else SQLite)."""
    if pg is None:
        journal: Any = SqliteJournal(path, durability=durability, keys=keys)
    else:
        journal, check = pg(durability)
    append = journal.append
    clock = time.perf_counter_ns
    samples = [0] * len(events)
    started = clock()
    for n, event in enumerate(events):
        t = clock()
        append(event)
        samples[n] = clock() - t
    journal.close()
    wall_s = (clock() - started) / 1e9
    result = verify_journal(path, keys=keys) if pg is None else check()
    if not result.ok or result.events != len(events):
        raise SystemExit(f"journal check failed: {result}")
    return {
        "events_per_s": round(len(events) / wall_s),
        "p50_us": percentile_us(samples, 0.50),
        "p99_us": percentile_us(samples, 0.99),
        "max_us": round(max(samples) / 1000, 2),
        "commits": journal.commits,
    }


def postgres_runs(
    args: argparse.Namespace, keys: JournalKeys
) -> tuple[dict[str, float], dict[str, float]]:
    """The group and fsync_each runs on a local PostgreSQL server of the test kit's."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from bastion.journal.pg_reader import PostgresJournalReader
    from bastion.journal.postgres import PostgresJournal
    from kit.postgres import postgres_server

    with postgres_server() as server, tempfile.TemporaryDirectory(dir=args.dir) as tmp:

        def opener(durability: Any) -> tuple[Any, Callable[[], Any]]:
            params = conninfo_to_dict(server.dsn(server.create_database()))
            password = str(params.pop("password"))
            url = make_conninfo(**params)  # type: ignore[arg-type]
            journal = PostgresJournal(
                url,
                name="bench",
                path=Path(tmp) / f"{durability}.pg",
                password=password,
                durability=durability,
                keys=keys,
            )

            def check() -> Any:
                with PostgresJournalReader(url, name="bench", password=password, keys=keys) as r:
                    return r.verify()

            return journal, check

        group = run(Path(tmp), order_flow(args.n_group), "group", keys, opener)
        each = run(Path(tmp), order_flow(args.n_fsync_each), "fsync_each", keys, opener)
    return group, each


def line(
    backend: str, args: argparse.Namespace, group: dict[str, float], each: dict[str, float]
) -> str:
    return json.dumps(
        {
            "bench": "journal",
            "backend": backend,
            "encrypted": args.encrypt,
            "n_group": args.n_group,
            "group_events_per_s": group["events_per_s"],
            "group_commits": group["commits"],
            "append_p50_us": group["p50_us"],
            "append_p99_us": group["p99_us"],
            "append_max_us": group["max_us"],
            "n_fsync_each": args.n_fsync_each,
            "fsync_each_events_per_s": each["events_per_s"],
            "fsync_each_p50_us": each["p50_us"],
            "fsync_each_p99_us": each["p99_us"],
            "python": sys.version.split()[0],
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-group", type=int, default=100_000)
    parser.add_argument("--n-fsync-each", type=int, default=2_000)
    parser.add_argument("--dir", type=Path, help="where to create the journals (default: tmp)")
    parser.add_argument(
        "--encrypt",
        action="store_true",
        help="encrypted (SQLCipher) with a keyed chain (HMAC-SHA256) and anchors",
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    keys = JournalKeys()
    if args.encrypt:
        keys = JournalKeys(encryption=os.urandom(32), chain=os.urandom(32))
    configure_logging("warning", "console")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        group = run(Path(tmp) / "group.sqlite", order_flow(args.n_group), "group", keys)
        each = run(Path(tmp) / "each.sqlite", order_flow(args.n_fsync_each), "fsync_each", keys)
    print(line("sqlite", args, group, each), flush=True)
    if not args.no_postgres:
        print(line("postgres", args, *postgres_runs(args, keys)), flush=True)


if __name__ == "__main__":
    main()
