#!/usr/bin/env python3
"""HA failover: RTO and RPO of a leader's SIGKILL, on the default lease timings.

An HA pair (the test kit's ``kit.ha_chaos``: a local PostgreSQL, the venue simulator
process, two members as processes under a supervisor that restarts each one that
exits) trades; the leader is SIGKILLed at a random moment, ``--takeovers`` times, each
time once the standby is following again.

- **RTO**: from the SIGKILL to the venue's acceptance of the new leader's first order
  (the venue ledger's receipt time of the first ClOrdID of the new epoch; the
  strategy acts every 5 quotes of 20 ms, so up to ~100 ms of it is the strategy's
  own cadence).
- **RPO**: acknowledged events lost at takeover: the orders and fills the venue had
  acknowledged by the SIGKILL (its ledger read right after the process died) that
  the group's journal still lacks once the new leader has reconciled (``ha_took_over``
  is logged after recovery and reconciliation): ``rpo_orders + rpo_fills``. A
  takeover whose reconciliation found a mismatch halts the new leader; it is counted
  (``halted_takeovers``) and resumed so the run goes on.

One JSON line per takeover (``"part": "takeover"``), then the summary with
``rto_p50_s``, ``rto_p99_s``, ``rto_max_s`` and ``rpo_events``.

    python bench/failover.py [--takeovers 20] [--seed N] [--durability group|fsync_each]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--takeovers", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--durability", choices=("group", "fsync_each"), default="group")
    parser.add_argument("--quick", action="store_true", help="two takeovers (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.takeovers = 2
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from bastion.node.control import request
    from kit.chaos_oracle import epoch_of
    from kit.ha_chaos import ha_group
    from kit.ha_desk import member_logs, venue_fills, venue_orders
    from kit.waiting import eventually

    rng = random.Random(args.seed)
    rtos: list[float] = []
    lost_orders = lost_fills = halted = 0
    timeout_s = 45.0
    with (
        tempfile.TemporaryDirectory() as tmp,
        ha_group(Path(tmp) / "desk", durability=args.durability) as group,
    ):
        desk = group.desk
        mark_ns = 0

        def trading(epoch: int, after_ns: int) -> int:
            for coid, ts in venue_orders(desk):
                if ts > after_ns and epoch_of(coid) >= epoch:
                    return ts
            raise AssertionError(f"no order of epoch {epoch} yet")

        for n in range(1, args.takeovers + 1):
            lease = eventually(group.lease, timeout_s)
            assert lease is not None
            leader, epoch = lease.holder, lease.epoch
            eventually(lambda: trading(epoch, mark_ns), timeout_s)  # noqa: B023
            standby = group.other(leader)
            eventually(lambda: group.is_standby(standby), timeout_s)  # noqa: B023
            time.sleep(rng.uniform(0.2, 0.6))  # the kill's random moment
            killed_ns = time.time_ns()
            group.kill(leader)
            fills, orders = set(venue_fills(desk)), {c for c, _ in venue_orders(desk)}
            took = eventually(
                lambda: [
                    (m, r)
                    for m in ("a", "b")  # the killed member may be back and win first
                    for r in member_logs(desk, m, "ha_took_over")
                    if r["epoch"] > epoch  # noqa: B023
                ],
                timeout_s,
            )[0]
            new, took = took
            status = request(desk.socket(new), {"cmd": "status"}, timeout_s=10)
            if status.get("state") == "HALTED":
                halted += 1
                request(desk.socket(new), {"cmd": "resume", "why": "bench"}, timeout_s=10)
            first_ns = eventually(lambda: trading(epoch + 1, killed_ns), timeout_s)  # noqa: B023
            events = group.journal()
            exec_ids = {e["exec_id"] for _, t, e in events if t == "OrderFilled"}
            coids = {e["client_order_id"] for _, t, e in events if t == "OrderInitialized"}
            lost = (len(orders - coids), len(fills - exec_ids))
            lost_orders, lost_fills = lost_orders + lost[0], lost_fills + lost[1]
            rto = (first_ns - killed_ns) / 1e9
            rtos.append(rto)
            mark_ns = killed_ns
            line: dict[str, Any] = {
                "part": "takeover",
                "n": n,
                "epoch": took["epoch"],
                "rto_s": round(rto, 3),
                "lease_to_ready_ms": took["lease_to_ready_ms"],
                "lost_orders": lost[0],
                "lost_fills": lost[1],
                "halted": status.get("state") == "HALTED",
            }
            print(json.dumps(line), flush=True)
    print(
        json.dumps(
            {
                "bench": "failover",
                "takeovers": len(rtos),
                "lease_ms": 1000,
                "margin_ms": 250,
                "durability": args.durability,
                "rto_p50_s": round(statistics.median(rtos), 3),
                "rto_p99_s": round(_percentile(rtos, 0.99), 3),
                "rto_max_s": round(max(rtos), 3),
                "rpo_events": lost_orders + lost_fills,
                "rpo_orders": lost_orders,
                "rpo_fills": lost_fills,
                "halted_takeovers": halted,
            }
        )
    )


if __name__ == "__main__":
    main()
