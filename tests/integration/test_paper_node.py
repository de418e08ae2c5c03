"""`bastion run` as an operator runs it: a real paper node in a subprocess, stopped by a
signal, with its SQLite journal read back to check that nothing was left working.

Waits use ``eventually`` on the journal (opened read-only while the node writes it),
never a sleep.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from bastion.model import events as ev
from bastion.model.enums import OrderType
from kit.journal_reading import assert_every_order_terminal, peek_journal, read_journal
from kit.node_process import (
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    run_to_end,
    running_node,
    still_running,
)
from kit.waiting import eventually

QUOTER = '''
"""Keeps one limit BUY 5 ticks under the bid and one limit SELL 5 ticks over the ask,
and sends a market order every ``market_every`` quotes (alternating sides)."""

from bastion.model.enums import OrderSide, OrderStatus
from bastion.model.orders import Order
from bastion.strategy import QuoteTick, Strategy

BUY, SELL = OrderSide.BUY, OrderSide.SELL


class Quoter(Strategy):
    def on_start(self) -> None:
        self.iid = self.params["instrument"]
        self.inst = self.instrument(self.iid)
        self.offset = int(self.params["offset_ticks"]) * self.inst.tick_raw
        self.every = int(self.params["market_every"])
        self.n = 0
        self.bid: Order | None = None
        self.ask: Order | None = None
        self.subscribe_quotes(self.iid)

    def on_quote(self, quote: QuoteTick) -> None:
        self.n += 1
        # the bid is moved with modify(), the ask with cancel + a new order
        self.bid = self._keep(self.bid, BUY, quote.bid - self.offset, replace=True)
        self.ask = self._keep(self.ask, SELL, quote.ask + self.offset, replace=False)
        if self.n % self.every == 0:
            side = BUY if (self.n // self.every) % 2 else SELL
            self.submit(side, self.iid, self.inst.lot_raw)

    def _keep(self, order: Order | None, side: OrderSide, price: int, *, replace: bool) -> Order:
        if order is None or order.is_closed:
            return self.submit(side, self.iid, self.inst.lot_raw, price)
        if order.price == price or order.status is not OrderStatus.ACCEPTED:
            return order  # in place, or an answer from the venue is still on its way
        if replace:
            self.modify(order, price=self.inst.price(price))
            return order
        self.cancel(order)
        return self.submit(side, self.iid, self.inst.lot_raw, price)
'''

PAPER_TOML = """
[node]
id = "paper-1"

[[instruments]]
id = "XYZ.SIM"
tick_size = "0.01"
lot_size = "1"

[[strategies]]
name = "quoter"
path = "strategies/quoter.py"
class = "Quoter"
[strategies.params]
instrument = "XYZ.SIM"
offset_ticks = 5
market_every = 25

[risk]
max_order_quantity = "100"
max_order_notional = "100000"

[venue]
latency_ms = 5

[feed]
instrument = "XYZ.SIM"
interval_ms = 20

[journal]
path = "{journal}"
"""


# -- helpers -----------------------------------------------------------------------------


def write_desk(root: Path) -> tuple[Path, Path]:
    """A paper config, its strategy file and where its journal will be: (config, journal)."""
    journal = root / "journal" / "paper.sqlite"
    (root / "strategies").mkdir(parents=True, exist_ok=True)
    (root / "strategies" / "quoter.py").write_text(QUOTER, encoding="utf-8")
    config = root / "paper.toml"
    config.write_text(PAPER_TOML.format(journal="journal/paper.sqlite"), encoding="utf-8")
    return config, journal


def has_fill_and_resting_order(path: Path) -> bool:
    events = [e for _, e in peek_journal(path)]
    limits = {
        e.client_order_id
        for e in events
        if isinstance(e, ev.OrderInitialized) and e.order_type is OrderType.LIMIT
    }
    fills = [e for e in events if isinstance(e, ev.OrderFilled)]
    accepted_limits = [
        e for e in events if isinstance(e, ev.OrderAccepted) and e.client_order_id in limits
    ]
    assert fills, "no fill yet"
    assert accepted_limits, "no resting limit order accepted yet"
    return True


_CONSOLE_LINE = re.compile(r"^\S+ \[(?P<level>\w+)\s*\] (?P<event>\S+)\s*(?P<fields>.*)$")
_CONSOLE_FIELD = re.compile(r"(\w+)=(\S+)")


def parse_logs(stderr_text: str, fmt: str) -> list[dict[str, Any]]:
    """The node's log lines as dicts; every stderr line must be a log line.

    ``json`` lines are decoded; ``console`` lines (``time [level] event k=v ...``) keep
    their values as text (enough for the scalar fields checked here).
    """
    assert "Traceback" not in stderr_text, stderr_text
    lines = [line for line in stderr_text.splitlines() if line.strip()]
    if fmt == "json":
        return [json.loads(line) for line in lines]
    logs = []
    for line in lines:
        match = _CONSOLE_LINE.match(line)
        assert match is not None, f"not a console log line: {line!r}"
        fields: dict[str, Any] = dict(_CONSOLE_FIELD.findall(match["fields"]))
        logs.append({**fields, "event": match["event"], "level": match["level"]})
    return logs


def the_log(logs: list[dict[str, Any]], event: str) -> dict[str, Any]:
    found = [line for line in logs if line["event"] == event]
    assert len(found) == 1, f"{event}: {found}"
    return found[0]


def journal_epochs(path: Path) -> list[int]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return [row[0] for row in db.execute("SELECT epoch FROM runs ORDER BY epoch")]


# -- tests -------------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("sig", "fmt"),
    [(signal.SIGTERM, "json"), (signal.SIGINT, "console")],
    ids=["SIGTERM-json", "SIGINT-console"],
)
def test_when_signaled_while_trading_then_exit_0_and_every_order_ends_terminal(
    tmp_path: Path, sig: signal.Signals, fmt: str
) -> None:
    """A signal mid-trading: open orders canceled, journal flushed, exit 0, none left open."""
    config, journal = write_desk(tmp_path)
    with running_node("run", config.name, "--log-format", fmt, cwd=tmp_path) as (proc, log):
        eventually(
            lambda: still_running(proc, log) and has_fill_and_resting_order(journal),
            timeout_s=START_TIMEOUT_S,
        )
        proc.send_signal(sig)
        assert proc.wait(timeout=STOP_TIMEOUT_S) == 0, log.read_text()

    logs = parse_logs(log.read_text(encoding="utf-8"), fmt)
    assert the_log(logs, "shutdown_requested")["signal"] == sig.name
    shutdown = the_log(logs, "shutdown_complete")
    assert int(shutdown["open_orders"]) == 0
    assert int(shutdown["cancels_sent"]) >= 1  # the two resting quotes at least
    assert int(the_log(logs, "node_stopped")["exit_code"]) == 0
    assert not [line for line in logs if line["event"] == "orders_left_open"]

    events = read_journal(journal)
    orders = assert_every_order_terminal(events)
    statuses = {o.status.value for o in orders.values()}
    assert "FILLED" in statuses
    assert "CANCELED" in statuses
    market = [o for o in orders.values() if o.order_type is OrderType.MARKET]
    assert market, "the strategy sent market orders"
    assert all(o.client_order_id.startswith("paper-1-1-") for o in orders.values())


@pytest.mark.timeout(60)
def test_when_run_without_config_then_embedded_defaults_journal_in_cwd(tmp_path: Path) -> None:
    """`bastion run --duration-s 3` in an empty directory runs the defaults and exits 0."""
    proc = run_to_end("run", "--duration-s", "3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "embedded defaults" in proc.stderr
    assert "shutdown_complete" in proc.stderr
    journal = tmp_path / "bastion-journal.sqlite"
    assert journal.is_file()
    assert journal_epochs(journal) == [1]
    assert {p.name for p in tmp_path.iterdir()} <= {
        "bastion-journal.sqlite",
        "bastion-journal.sqlite-wal",
        "bastion-journal.sqlite-shm",
        "bastion-journal.sqlite.lock",  # the writer's lock (held only while running)
        ".bastion-mode",  # the journal directory is a paper node's (bastion.live.separation)
    }
    assert (tmp_path / ".bastion-mode").read_text() == "paper\n"


@pytest.mark.timeout(90)
def test_when_second_run_on_same_journal_then_new_epoch_and_fresh_order_ids(
    tmp_path: Path,
) -> None:
    """A restart takes a new epoch: none of run 2's client order ids were used by run 1."""
    config, journal = write_desk(tmp_path)
    first = run_to_end("run", config.name, "--duration-s", "1.5", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    events_1 = read_journal(journal)
    ids_1 = {e.client_order_id for _, e in events_1 if isinstance(e, ev.OrderInitialized)}
    last_seq_1 = events_1[-1][0]

    second = run_to_end("run", config.name, "--duration-s", "1.5", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    events_all = read_journal(journal)
    assert events_all[: len(events_1)] == events_1  # append-only
    events_2 = [(seq, e) for seq, e in events_all if seq > last_seq_1]
    ids_2 = {e.client_order_id for _, e in events_2 if isinstance(e, ev.OrderInitialized)}

    assert ids_1
    assert ids_2
    assert ids_1.isdisjoint(ids_2)
    assert all(coid.startswith("paper-1-1-") for coid in ids_1)
    assert all(coid.startswith("paper-1-2-") for coid in ids_2)
    # run 2's events only ever concern run 2's orders
    assert {e.client_order_id for _, e in events_2 if isinstance(e, ev.OrderEvent)} == ids_2
    assert journal_epochs(journal) == [1, 2]
    assert_every_order_terminal(events_1)
    assert_every_order_terminal(events_2)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "not a number: 'abc'"),
        ("0", "must be a positive number of seconds"),
        ("-1", "must be a positive number of seconds"),
        ("nan", "must be a positive number of seconds"),
        ("inf", "must be a positive number of seconds"),
    ],
)
def test_when_duration_is_not_a_positive_number_then_usage_exit_2(
    tmp_path: Path, value: str, message: str
) -> None:
    """A bad --duration-s is refused by the argument parser before anything starts."""
    proc = run_to_end("run", "--duration-s", value, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "usage: bastion run" in proc.stderr
    assert "--duration-s" in proc.stderr
    assert message in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no journal created


def test_quoter_config_is_valid(tmp_path: Path) -> None:
    """The config this file writes loads under the real schema (guards the fixtures)."""
    from bastion.config import PaperConfig, load_config

    config, _ = write_desk(tmp_path)
    loaded = load_config(config, PaperConfig)
    assert loaded.venue.latency_ms == 5
    assert loaded.feed is not None
    assert loaded.feed.interval_ms == 20
