"""The commands a console needs, on a real kernel journaling to a real journal:
``view`` (every key of the contract, money as decimal strings), ``audit`` (newest
first, searched and paged from the journal), ``pause_instrument`` and
``strategy_stop`` / ``strategy_start``."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bastion.journal import SqliteJournal
from bastion.journal.locator import JournalLocator
from bastion.model.enums import OrderStatus
from kit.operator_desk import Desk, audit_drill
from kit.risk_kernel import IID, market, quote

STR, INT, BOOL, NULL = str, int, bool, type(None)
ISO = "iso"
MONEY = "money"
# The contract's VIEW: key -> type (a list of one dict: the shape of each item)
VIEW: dict[str, Any] = {
    "node": STR,
    "mode": STR,
    "ts": ISO,
    "ts_ms": INT,
    "state": STR,
    "reason": (STR, NULL),
    "venues": [{"name": STR, "session": STR, "halted": BOOL, "open_orders": INT}],
    "feeds": [{"name": STR, "instruments": list, "last_quote_age_ms": (INT, NULL), "stale": BOOL}],
    "alerts": [
        {
            "id": STR,
            "alert": STR,
            "severity": STR,
            "summary": STR,
            "since": ISO,
            "acknowledged_by": (STR, NULL),
        }
    ],
    "pnl": {"realized": MONEY, "unrealized": MONEY, "total": MONEY, "currency": STR},
    "exposure": {"gross": MONEY, "net": MONEY, "currency": STR},
    "positions": [
        {
            "instrument": STR,
            "quantity": MONEY,
            "avg_price": (MONEY, NULL),
            "mark": (MONEY, NULL),
            "unrealized": (MONEY, NULL),
        }
    ],
    "orders": [
        {
            "id": STR,
            "instrument": STR,
            "side": STR,
            "type": STR,
            "quantity": MONEY,
            "filled": MONEY,
            "price": (MONEY, NULL),
            "status": STR,
            "strategy": (STR, NULL),
            "venue": STR,
        }
    ],
    "strategies": [
        {
            "name": STR,
            "running": BOOL,
            "disabled": BOOL,
            "disabled_reason": (STR, NULL),
            "pnl": (MONEY, NULL),
            "open_orders": INT,
        }
    ],
    "limits": [
        {
            "path": STR,
            "configured": STR,
            "effective": STR,
            "ceiling": (MONEY, NULL),
            "utilisation": (MONEY, NULL),
        }
    ],
    "overrides": [{"id": STR, "path": STR, "value": STR, "until": ISO, "by": STR, "why": STR}],
    "approvals": [
        {
            "id": STR,
            "command": STR,
            "summary": STR,
            "requested_by": STR,
            "expires": ISO,
            "expires_ms": INT,
        }
    ],
    "paused_instruments": [{"instrument": STR, "until": ISO, "reason": STR}],
}


def check(value: Any, shape: Any, where: str) -> None:
    """``value`` has ``shape``: every key (none missing, none extra), each of its type;
    MONEY a decimal string (never a float), ISO a timestamp."""
    if isinstance(shape, tuple):
        errors = []
        for option in shape:
            try:
                check(value, option, where)
                return
            except AssertionError as error:
                errors.append(str(error))
        raise AssertionError(f"{where}: {value!r} is none of {shape}: {errors}")
    if shape == MONEY:
        assert isinstance(value, str), f"{where}: {value!r} is not a decimal string"
        Decimal(value)  # raises if it is not one
        assert "E" not in value.upper(), where
    elif shape == ISO:
        assert isinstance(value, str) and value[:4].isdigit() and "T" in value, where
    elif isinstance(shape, dict):
        assert isinstance(value, dict) and set(value) == set(shape), (where, value)
        for key, sub in shape.items():
            check(value[key], sub, f"{where}.{key}")
    elif isinstance(shape, list):
        assert isinstance(value, list), where
        for i, item in enumerate(value):
            check(item, shape[0], f"{where}[{i}]")
    elif shape is INT:
        assert type(value) is int, f"{where}: {value!r}"
    else:
        assert isinstance(value, shape), f"{where}: {value!r} is not {shape}"


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    journal = SqliteJournal(tmp_path / "j.sqlite")
    try:
        yield Desk(tmp_path, journal, JournalLocator.sqlite(journal.path))
    finally:
        journal.close()


def test_when_a_trading_node_is_viewed_then_every_contract_key_has_its_type(desk: Desk) -> None:
    """A position, a working order, an override, a pause and a pending approval: each
    list has an item, and every key of the contract is there with its type."""
    quote(desk.kernel, 10_000, desk.kernel.clock.timestamp_ns() + 1_000_000)
    market(desk.kernel, "a")
    assert desk.limit_buy("b") is not None
    assert desk.ask(
        "rita",
        {"cmd": "risk_set", "path": "max_order_quantity", "value": "5", "for_s": 60, "why": "calm"},
    )["ok"]
    assert desk.ask(
        "rita",
        {
            "cmd": "risk_set",
            "path": "max_order_quantity",
            "value": "20",
            "for_s": 60,
            "why": "more",
        },
    )["pending"]
    assert desk.ask(
        "rita", {"cmd": "pause_instrument", "instrument": IID, "for_s": 30, "why": "news"}
    )["ok"]
    answer = desk.ask("vic", {"cmd": "view"})
    assert answer["ok"] is True
    view = answer["view"]
    check(view, VIEW, "view")
    for key in (
        "positions",
        "orders",
        "strategies",
        "limits",
        "overrides",
        "approvals",
        "paused_instruments",
        "venues",
    ):
        assert view[key], key
    (position,) = view["positions"]
    assert (position["instrument"], position["quantity"]) == (IID, "1")
    assert position["avg_price"] == "100.01"  # bought at the ask
    assert view["approvals"][0]["requested_by"] == "rita"
    assert (
        view["approvals"][0]["summary"]
        == "risk_set for_s=60.0 path=max_order_quantity value=20: more"
    )
    limit = {row["path"]: row for row in view["limits"]}["max_order_quantity"]
    assert (limit["configured"], limit["effective"], limit["ceiling"]) == ("10", "5", "20")
    assert {row["path"] for row in view["limits"]} >= {"max_long_quantity"}
    assert view["paused_instruments"][0]["reason"] == "paused by rita: news"


def test_when_audited_then_newest_first_searched_and_paged(desk: Desk) -> None:
    """Newest first, who and where from; a search finds the refusal; pages of one
    follow each other; a limit out of range is refused."""
    answers = audit_drill(desk)
    answer = answers["all"]
    records = answer["records"]
    assert answer["ok"] is True and answer["more"] is False
    assert [r["seq"] for r in records] == sorted((r["seq"] for r in records), reverse=True)
    types = [r["type"] for r in records]
    assert types[:3] == ["TradingStateChanged", "OperatorCommand", "OperatorRefused"]
    assert records[1]["operator"] == "rita" and records[1]["source"] == "local socket"
    refused = answers["refused"]["records"]
    assert [r["type"] for r in refused] == ["OperatorRefused"]
    first, older = answers["first"], answers["older"]
    assert first["more"] is True and len(first["records"]) == 1
    assert older["records"][0]["seq"] < first["records"][0]["seq"]
    assert [bad["ok"] for bad in answers["bad"]] == [False, False]


def test_when_an_instrument_is_paused_then_orders_are_denied_until_it_ends(desk: Desk) -> None:
    kernel = desk.kernel
    quote(kernel, 10_000, kernel.clock.timestamp_ns() + 1_000_000)
    assert (
        desk.ask("vic", {"cmd": "pause_instrument", "instrument": IID, "for_s": 5, "why": "x"})[
            "ok"
        ]
        is False
    )
    assert (
        desk.ask("rita", {"cmd": "pause_instrument", "instrument": IID, "for_s": 5, "why": "news"})[
            "ok"
        ]
        is True
    )
    assert market(kernel, "a").status is OrderStatus.DENIED
    kernel.clock.advance_to(kernel.clock.timestamp_ns() + 6_000_000_000)  # type: ignore[attr-defined]
    assert kernel.risk.paused_instruments == {}
    assert market(kernel, "a").status is OrderStatus.FILLED
    desk.ask("rita", {"cmd": "pause_instrument", "instrument": IID, "for_s": 60, "why": "y"})
    assert desk.ask("rita", {"cmd": "resume", "instrument": IID, "why": "ok"})["resumed"] is True
    assert market(kernel, "a").status is OrderStatus.FILLED
    bad = {"cmd": "pause_instrument", "instrument": IID, "for_s": 86_401, "why": "x"}
    assert desk.ask("rita", bad)["ok"] is False


def test_when_a_strategy_is_stopped_then_its_orders_are_canceled_and_start_runs_it_again(
    desk: Desk,
) -> None:
    kernel = desk.kernel
    quote(kernel, 10_000, kernel.clock.timestamp_ns() + 1_000_000)
    order = desk.limit_buy("a")
    stopped = desk.ask("rita", {"cmd": "strategy_stop", "strategy": "a", "why": "odd"})
    assert stopped == {"ok": True, "stopped": "a", "cancels_sent": 1}
    assert order.status is OrderStatus.CANCELED
    view = desk.ask("vic", {"cmd": "view"})["view"]
    assert {s["name"]: s["running"] for s in view["strategies"]} == {"a": False, "b": True}
    again = desk.ask("rita", {"cmd": "strategy_stop", "strategy": "a", "why": "odd"})
    assert again["ok"] is False and "not running" in again["error"]
    assert desk.ask("rita", {"cmd": "strategy_start", "strategy": "a", "why": "ok"})["ok"]
    assert "a" in kernel.strategies.running
    assert desk.ask("rita", {"cmd": "strategy_start", "strategy": "zz", "why": "ok"})["ok"] is False
