"""Canned node views for the console's browser tests, shaped as the console contract's
VIEW (decimal strings, ISO times with ``ts_ms`` where a chart needs them, ``null`` for
missing data). One node has a strategy named like markup, to prove the page shows node
data as text; one node is unreachable.

The views move as a node's would: ``moving`` brings a view to now with a new PnL at
each ``view`` request, ``act`` changes it as the node would for a command (a kill
halts it, a resume waits for a second operator), ``audit_page`` reads the records as
the node's ``audit`` does (search, newest first, paged by sequence number)."""

from __future__ import annotations

import datetime
import itertools
import time
from collections.abc import Callable
from typing import Any, Final

Json = dict[str, Any]

HOSTILE_NAME: Final = "<img src=x onerror=alert(1)>"
"""A strategy name (and audit text) that would run script if the page parsed it as HTML."""
NODES: Final = ("ldn-1", "ny-2", "sgp-3")
UNREACHABLE: Final = "sgp-3"


def iso(ms: int) -> str:
    """Milliseconds since the epoch as an ISO-8601 UTC time."""
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).isoformat()


def london(now_ms: int) -> Json:
    """A paper node trading two instruments on the simulator, with something everywhere."""
    return {
        "node": "ldn-1",
        "mode": "paper",
        "ts": iso(now_ms),
        "ts_ms": now_ms,
        "state": "ACTIVE",
        "reason": None,
        "venues": [{"name": "sim", "session": "logged_on", "halted": False, "open_orders": 3}],
        "feeds": [
            {
                "name": "primary",
                "instruments": ["BTC-USD", "ETH-USD"],
                "last_quote_age_ms": 42,
                "stale": False,
            },
            {
                "name": "backup",
                "instruments": ["BTC-USD"],
                "last_quote_age_ms": None,
                "stale": True,
            },
        ],
        "alerts": [
            {
                "id": "a-1",
                "alert": "FeedStale",
                "severity": "warning",
                "summary": "backup feed: no quote for 30 s",
                "since": iso(now_ms - 90_000),
                "acknowledged_by": None,
            }
        ],
        "pnl": {
            "realized": "1250.40",
            "unrealized": "-310.15",
            "total": "940.25",
            "currency": "USD",
        },
        "exposure": {"gross": "184250.00", "net": "61200.00", "currency": "USD"},
        "positions": [
            {
                "instrument": "BTC-USD",
                "quantity": "1.5",
                "avg_price": "61000.00",
                "mark": "60800.00",
                "unrealized": "-300.00",
            },
            {
                "instrument": "ETH-USD",
                "quantity": "-10",
                "avg_price": "3050.00",
                "mark": "3051.015",
                "unrealized": "-10.15",
            },
        ],
        "orders": [
            _order("o-101", "BTC-USD", "BUY", "0.5", "60750.00", "mm-btc"),
            _order("o-102", "BTC-USD", "SELL", "0.5", "60850.00", "mm-btc"),
            _order("o-103", "ETH-USD", "BUY", "4", "3045.50", HOSTILE_NAME),
        ],
        "strategies": [
            {
                "name": "mm-btc",
                "running": True,
                "disabled": False,
                "disabled_reason": None,
                "pnl": "980.10",
                "open_orders": 2,
            },
            {
                "name": HOSTILE_NAME,
                "running": True,
                "disabled": False,
                "disabled_reason": None,
                "pnl": "-39.85",
                "open_orders": 1,
            },
            {
                "name": "trend-eth",
                "running": False,
                "disabled": True,
                "disabled_reason": "max drawdown reached",
                "pnl": None,
                "open_orders": 0,
            },
        ],
        "limits": [
            _limit("risk.max_order_notional", "50000", "50000", "100000", "0.62"),
            _limit("risk.max_position.BTC-USD", "3", "3", "6", "0.5"),
            _limit("risk.max_gross_exposure", "200000", "250000", "400000", "0.737"),
            _limit("risk.max_orders_per_s", "20", "20", None, "0.95"),
        ],
        "overrides": [
            {
                "id": "ov-7",
                "path": "risk.max_gross_exposure",
                "value": "250000",
                "until": iso(now_ms + 3_600_000),
                "by": "rita",
                "why": f"month-end rebalance {HOSTILE_NAME}",
            }
        ],
        "approvals": [
            {
                "id": "ap-1",
                "command": "risk_set",
                "summary": "raise risk.max_order_notional to 80000 for 1 h",
                "requested_by": "omar",
                "expires": iso(now_ms + 240_000),
                "expires_ms": now_ms + 240_000,
            }
        ],
        "paused_instruments": [],
    }


def new_york(now_ms: int) -> Json:
    """A live node reducing after a venue fault, with little else."""
    return {
        "node": "ny-2",
        "mode": "live",
        "ts": iso(now_ms),
        "ts_ms": now_ms,
        "state": "REDUCING",
        "reason": "venue cme: session lost",
        "venues": [{"name": "cme", "session": "disconnected", "halted": True, "open_orders": 0}],
        "feeds": [
            {"name": "cme-md", "instruments": ["ES"], "last_quote_age_ms": 5, "stale": False}
        ],
        "alerts": [
            {
                "id": "a-9",
                "alert": "VenueDown",
                "severity": "critical",
                "summary": "cme session lost",
                "since": iso(now_ms - 30_000),
                "acknowledged_by": "rita",
            }
        ],
        "pnl": {"realized": "0", "unrealized": "125.00", "total": "125.00", "currency": "USD"},
        "exposure": {"gross": "250000.00", "net": "250000.00", "currency": "USD"},
        "positions": [
            {
                "instrument": "ES",
                "quantity": "1",
                "avg_price": "5000.00",
                "mark": "5002.50",
                "unrealized": "125.00",
            }
        ],
        "orders": [],
        "strategies": [
            {
                "name": "es-carry",
                "running": True,
                "disabled": False,
                "disabled_reason": None,
                "pnl": "125.00",
                "open_orders": 0,
            }
        ],
        "limits": [_limit("risk.max_order_notional", "300000", "300000", "600000", "0.2")],
        "overrides": [],
        "approvals": [],
        "paused_instruments": [
            {"instrument": "ES", "until": iso(now_ms + 600_000), "reason": "roll week"}
        ],
    }


def audit_records(now_ms: int, count: int = 130) -> list[Json]:
    """``count`` audit records, oldest first (seq 1..count), some naming the hostile text."""
    kinds = [
        ("OperatorAuth", "rita", "console 203.0.113.7 (uid 1001)", "login ok"),
        ("OperatorCommand", "rita", "console 203.0.113.7 (uid 1001)", "risk_set refused: above"),
        ("TradingStateChanged", None, None, "ACTIVE -> REDUCING: feed stale"),
        ("AlertFired", None, None, "FeedStale on backup"),
        ("StrategyDisabled", "omar", "uid 1002", f"disable {HOSTILE_NAME}"),
    ]
    records = []
    for seq in range(1, count + 1):
        kind, operator, source, summary = kinds[seq % len(kinds)]
        ts_ms = now_ms - (count - seq) * 60_000
        records.append(
            {
                "seq": seq,
                "ts": iso(ts_ms),
                "type": kind,
                "operator": operator,
                "source": source,
                "summary": f"{summary} #{seq}",
            }
        )
    return records


def _order(oid: str, instrument: str, side: str, qty: str, price: str, strategy: str) -> Json:
    return {
        "id": oid,
        "instrument": instrument,
        "side": side,
        "type": "LIMIT",
        "quantity": qty,
        "filled": "0",
        "price": price,
        "status": "ACCEPTED",
        "strategy": strategy,
        "venue": "sim",
    }


def _limit(path: str, configured: str, effective: str, ceiling: str | None, used: str) -> Json:
    return {
        "path": path,
        "configured": configured,
        "effective": effective,
        "ceiling": ceiling,
        "utilisation": used,
    }


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def moving() -> Callable[[Json], None]:
    """A ``FakeConsoleNode.on_view``: each view is of now, its PnL a little changed."""
    steps = itertools.count(1)

    def move(view: Json) -> None:
        n = next(steps)
        now = now_ms()
        view["ts"], view["ts_ms"] = iso(now), now
        view["pnl"]["total"] = f"{940 + (n * 7 % 23) - 11}.25"

    return move


def equity_history(now: int, count: int = 120) -> list[tuple[int, str]]:
    """An hour of ``(ts_ms, pnl.total)`` samples up to ``now``, climbing to where
    ``london``'s PnL stands (what a console watching since then would hold)."""
    return [
        (now - (count - i) * 30_000, f"{400 + i * 9 // 2 + (i * 37 % 23) - 11}.25")
        for i in range(count)
    ]


def act(view: Json, req: Json) -> Json:
    """Change ``view`` as the node would for the command ``req``; the node's answer."""
    now = now_ms()
    who = str(req.get("on_behalf", {}).get("operator"))
    cmd = req["cmd"]
    if cmd == "kill":
        view["state"], view["reason"] = "HALTED", f"kill by {who}: {req.get('why')}"
        view["orders"] = []
        for venue in view["venues"]:
            venue["halted"], venue["open_orders"] = True, 0
        if req.get("flatten"):
            view["positions"] = []
        return {"ok": True, "state": "HALTED"}
    if cmd == "resume" and req.get("instrument"):
        view["paused_instruments"] = [
            p for p in view["paused_instruments"] if p["instrument"] != req["instrument"]
        ]
    elif cmd in ("resume", "risk_set"):
        expires = now + 300_000
        approval = {
            "id": f"ap-{now}",
            "command": cmd,
            "summary": f"{cmd} by {who}: {req.get('why')}",
            "requested_by": who,
            "expires": iso(expires),
            "expires_ms": expires,
        }
        view["approvals"].append(approval)
        return {"ok": True, "pending": approval["id"]}
    elif cmd == "pause_instrument":
        until = iso(now + int(req["for_s"] * 1000))
        pause = {"instrument": req["instrument"], "until": until, "reason": req["why"]}
        view["paused_instruments"].append(pause)
    elif cmd in ("enable", "disable", "strategy_start", "strategy_stop"):
        for s in view["strategies"]:
            if s["name"] == req["strategy"]:
                if cmd in ("enable", "disable"):
                    s["disabled"] = cmd == "disable"
                    s["disabled_reason"] = req["why"] if s["disabled"] else None
                else:
                    s["running"] = cmd == "strategy_start"
    elif cmd == "risk_clear":
        view["overrides"] = [o for o in view["overrides"] if o["id"] != req["id"]]
    elif cmd == "approve":
        view["approvals"] = [a for a in view["approvals"] if a["id"] != req["id"]]
    elif cmd == "alert_ack":
        for a in view["alerts"]:
            if a["id"] == req["id"]:
                a["acknowledged_by"] = who
    return {"ok": True}


def audit_page(records: list[Json], *, query: str, limit: int, before_seq: int | None) -> Json:
    """The node's ``audit`` answer over ``records`` (oldest first): up to ``limit``
    older than ``before_seq``, newest first, whose type, operator, source or summary
    holds ``query`` (any case)."""
    needle = query.casefold()
    fields = ("type", "operator", "source", "summary")
    found = [
        r
        for r in reversed(records)
        if (before_seq is None or r["seq"] < before_seq)
        and any(needle in str(r[k] or "").casefold() for k in fields)
    ]
    page = found[:limit]
    more = len(found) > limit
    return {"records": page, "more": more, "next_before_seq": page[-1]["seq"] if more else None}
