"""One node, two venues and a feed that is neither: the in-process simulated venue
``SIM`` (instrument ``ABC.SIM``), the venue simulator process ``bastion venue sim`` over
FIX (``FIXSIM``, instrument ``XYZ.SIM``), and the node's own synthetic feed quoting both.

Checked as an operator would see it (``bastion status``, ``kill --venue``, ``resume
--venue``), through the journal and, for the FIX venue, its ledger as the independent
witness: each order reaches its instrument's venue, each venue is reconciled on its own,
a venue's kill leaves the other trading, and when the simulator process dies the node
reports ``XYZ.SIM`` unavailable, rejects its orders with the reason and trades on at
``SIM``; once the simulator is back, ``FIXSIM`` is reconciled again and trades. A venue's
halt outlives a restart of the node (a crash or a clean stop) until it is resumed.
Waits poll with a deadline (``eventually``); nothing sleeps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bastion.journal.sqlite import SqliteJournal, StoredSnapshot
from bastion.model import events as ev
from bastion.recovery.state import decode
from bastion.venue_server.ledger import OrderRow, VenueLedger
from kit.fix_desk import fix_process, node_fix_venue_toml, venue_sim_toml
from kit.journal_reading import peek_journal
from kit.net import free_tcp_port, listening
from kit.node_process import status, still_running, terminate
from kit.waiting import eventually

PASSWORD = "two-venues-test-password"
ACCOUNT = "acct"
SIM_IID, FIX_IID = "ABC.SIM", "XYZ.SIM"
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0
HALTED_AT_VENUE = "venue FIXSIM halted"
NOT_LOGGED_ON = "venue session not logged on"

TRADER = '''
"""On each instrument: one limit BUY 5 % under the bid, kept resting (sent again when it
closes), and one lot bought at market every ``market_every`` quotes."""

from bastion.model.enums import OrderSide
from bastion.strategy import QuoteTick, Strategy


class Trader(Strategy):
    def on_start(self) -> None:
        self.resting = {}
        self.quotes = {}
        self.every = int(self.params["market_every"])
        for iid in self.params["instruments"]:
            self.subscribe_quotes(iid)

    def on_quote(self, quote: QuoteTick) -> None:
        iid = quote.instrument_id
        inst = self.instrument(iid)
        n = self.quotes[iid] = self.quotes.get(iid, 0) + 1
        order = self.resting.get(iid)
        if order is None or order.is_closed:
            price = quote.bid * 95 // 100 // inst.tick_raw * inst.tick_raw
            self.resting[iid] = self.submit(OrderSide.BUY, iid, inst.lot_raw, price)
        if n % self.every == 1:
            self.submit(OrderSide.BUY, iid, inst.lot_raw)
'''

NODE_TOML = """
[node]
id = "two"

[[instruments]]
id = "ABC.SIM"
venue = "SIM"
tick_size = "0.01"

[[instruments]]
id = "XYZ.SIM"
venue = "FIXSIM"
tick_size = "0.01"

[[strategies]]
name = "trader"
path = "trader.py"
class = "Trader"
[strategies.params]
instruments = ["ABC.SIM", "XYZ.SIM"]
market_every = 20

[risk]
max_order_quantity = "1000"
max_order_notional = "1000000"

[[venues]]
kind = "sim"
name = "SIM"

{fix_venue}
[[feeds]]
kind = "synthetic"
name = "house"
instruments = ["ABC.SIM", "XYZ.SIM"]
interval_ms = 20

[journal]
path = "j/node.sqlite"
"""


# -- helpers ------------------------------------------------------------------------------------
def write_desk(root: Path, port: int, *, logon_ms: int = 5000) -> tuple[Path, Path, Path]:
    """(venue config, node config, journal) of the two-venue desk."""
    (root / "trader.py").write_text(TRADER, encoding="utf-8")
    venue_cfg = root / "venue-sim.toml"
    venue_cfg.write_text(venue_sim_toml(port, seed=7), encoding="utf-8")
    node_cfg = root / "node.toml"
    node_cfg.write_text(
        NODE_TOML.format(
            fix_venue=node_fix_venue_toml(
                port,
                table="[[venues]]",
                heartbeat_s=5,
                logon_timeout_ms=logon_ms,
                extra="market_data = false",
            )
        ),
        encoding="utf-8",
    )
    return venue_cfg, node_cfg, root / "j" / "node.sqlite"


@contextmanager
def process(*args: str | Path, cwd: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with fix_process(*args, cwd=cwd, log=log, password=PASSWORD) as proc:
        yield proc


def bastion(*args: str | Path, cwd: Path) -> dict[str, Any]:
    """``bastion ARGS`` to its end; its JSON answer (exit 0 required)."""
    done = subprocess.run(
        [sys.executable, "-m", "bastion", *(str(a) for a in args)],
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    assert answer["ok"] is True, answer
    return answer


def last_seq(journal: Path) -> int:
    return peek_journal(journal)[-1][0]


def after(journal: Path, seq: int, kind: type[Any], instrument: str | None = None) -> list[Any]:
    """Events of ``kind`` (for ``instrument``) journaled after ``seq``."""
    return [
        e
        for s, e in peek_journal(journal)
        if s > seq
        and isinstance(e, kind)
        and (instrument is None or getattr(e, "instrument_id", None) == instrument)
    ]


def reconciliations(journal: Path, venue: str) -> list[ev.ReconciliationCompleted]:
    return [
        e
        for _, e in peek_journal(journal)
        if isinstance(e, ev.ReconciliationCompleted) and e.venue == venue
    ]


def ledger_orders(root: Path) -> list[OrderRow]:
    with VenueLedger(root / "venue" / "ledger.sqlite") as ledger:
        return ledger.orders(ACCOUNT)


def ledger_open(root: Path) -> list[OrderRow]:
    with VenueLedger(root / "venue" / "ledger.sqlite") as ledger:
        return ledger.open_orders(ACCOUNT)


# -- the test -----------------------------------------------------------------------------------
@pytest.mark.timeout(240)
def test_when_node_has_two_venues_then_orders_routed_venues_killed_and_dropped_one_by_one(
    tmp_path: Path,
) -> None:
    """Routing by instrument, per-venue reconciliation, kill --venue, and a dropped venue
    process: the other venue trades on, the dropped one's instrument is unavailable until
    the venue is back and reconciled."""
    port = free_tcp_port()
    venue_cfg, node_cfg, journal = write_desk(tmp_path, port)
    venue_log, node_log = tmp_path / "venue.log", tmp_path / "node.log"

    with process("venue", "sim", venue_cfg, cwd=tmp_path, log=venue_log) as venue:
        eventually(lambda: still_running(venue, venue_log) and listening(port), START_TIMEOUT_S)
        with process("run", node_cfg, cwd=tmp_path, log=node_log) as node:
            # -- both venues reconciled, each instrument trading at its own venue ----------
            def trading_at_both() -> dict[str, Any]:
                still_running(node, node_log)
                answer = status(journal)
                for iid in (SIM_IID, FIX_IID):
                    assert after(journal, 0, ev.OrderFilled, iid), f"no fill on {iid} yet"
                assert any(o.is_open for o in ledger_orders(tmp_path)), "nothing rests at FIXSIM"
                return answer

            started = eventually(trading_at_both, START_TIMEOUT_S + 15)
            assert started["state"] == "ACTIVE"
            assert started["unavailable_instruments"] == []
            venues = started["venues"]
            assert (venues["SIM"]["kind"], venues["FIXSIM"]["kind"]) == ("sim", "fix")
            assert venues["SIM"]["connected"] and venues["FIXSIM"]["connected"]
            assert venues["SIM"]["instruments"] == [SIM_IID]
            assert venues["FIXSIM"]["instruments"] == [FIX_IID]
            for name in ("SIM", "FIXSIM"):
                (first,) = reconciliations(journal, name)
                assert first.mismatches == []
            routed = {
                (e.instrument_id, e.venue)
                for _, e in peek_journal(journal)
                if type(e) is ev.OrderSubmitted
            }
            assert routed == {(SIM_IID, "SIM"), (FIX_IID, "FIXSIM")}
            assert {o.symbol for o in ledger_orders(tmp_path)} == {FIX_IID}

            # -- kill one venue: its orders canceled, its instrument refused, SIM trades on --
            killed = bastion(
                "kill", node_cfg.name, "--venue", "FIXSIM", "--why", "drill", cwd=tmp_path
            )
            assert killed["venue"] == "FIXSIM" and killed["halted"].endswith(": drill")
            assert killed["state"] == "ACTIVE"
            assert killed["cancels_sent"] >= 1
            assert killed["unavailable_instruments"] == [FIX_IID]
            kill_seq = last_seq(journal)
            eventually(lambda: ledger_open(tmp_path) == [], 10)

            def refused_while_sim_trades() -> bool:
                rejected = after(journal, kill_seq, ev.OrderRejected, FIX_IID)
                assert rejected, "no XYZ.SIM order refused yet"
                assert all(HALTED_AT_VENUE in e.reason for e in rejected)
                assert after(journal, kill_seq, ev.OrderFilled, SIM_IID), "SIM stopped trading"
                return True

            eventually(refused_while_sim_trades, 10)
            assert not after(journal, kill_seq, ev.OrderFilled, FIX_IID)
            halted = status(journal)
            assert halted["venues"]["FIXSIM"]["halted"].endswith(": drill")
            assert halted["venues"]["SIM"]["halted"] is None

            orders_before = {o.order_id for o in ledger_orders(tmp_path)}
            resumed = bastion("resume", node_cfg.name, "--venue", "FIXSIM", cwd=tmp_path)
            assert (resumed["venue"], resumed["resumed"]) == ("FIXSIM", True)
            eventually(
                lambda: any(
                    o.order_id not in orders_before and o.status != "8"
                    for o in ledger_orders(tmp_path)
                ),
                10,
            )
            assert status(journal)["unavailable_instruments"] == []

            # -- the venue process dies: XYZ.SIM unavailable, SIM trades on -----------------
            venue.kill()
            venue.wait(timeout=STOP_TIMEOUT_S)
            drop_seq = last_seq(journal)

            def dropped() -> dict[str, Any]:
                answer = status(journal)
                assert answer["venues"]["FIXSIM"]["connected"] is False
                return answer

            down = eventually(dropped, 10)
            assert down["unavailable_instruments"] == [FIX_IID]
            assert down["venues"]["SIM"]["connected"] is True
            assert down["state"] == "ACTIVE"

            def refused_while_down() -> bool:
                rejected = after(journal, drop_seq, ev.OrderRejected, FIX_IID)
                assert any(NOT_LOGGED_ON in e.reason for e in rejected), "no refusal yet"
                assert after(journal, drop_seq, ev.OrderFilled, SIM_IID), "SIM stopped trading"
                return True

            eventually(refused_while_down, 15)
            still_running(node, node_log)

            # -- the venue is back: reconciled again on its own, then it trades -------------
            with process("venue", "sim", venue_cfg, cwd=tmp_path, log=venue_log) as venue:
                eventually(
                    lambda: still_running(venue, venue_log) and listening(port), START_TIMEOUT_S
                )
                back_seq = last_seq(journal)

                def reconciled_again() -> bool:
                    assert len(reconciliations(journal, "FIXSIM")) == 2, "not reconciled yet"
                    assert status(journal)["unavailable_instruments"] == []
                    return True

                eventually(reconciled_again, 20)
                assert reconciliations(journal, "FIXSIM")[-1].mismatches == []
                assert len(reconciliations(journal, "SIM")) == 1  # SIM never dropped
                assert status(journal)["state"] == "ACTIVE"
                eventually(lambda: after(journal, back_seq, ev.OrderAccepted, FIX_IID), 10)

                assert terminate(node) == 0, node_log.read_text()
                assert terminate(venue) == 0, venue_log.read_text()

    events = SqliteJournal(journal)
    try:
        fills = [e for _, e in events.read() if isinstance(e, ev.OrderFilled)]
    finally:
        events.close()
    with VenueLedger(tmp_path / "venue" / "ledger.sqlite") as ledger:
        assert ledger.verify() == []
        assert ledger.open_orders(ACCOUNT) == []
        venue_fills = {f.exec_id: (f.qty, f.px) for f in ledger.fills(ACCOUNT)}
    node_fix_fills = {
        e.exec_id: (Decimal(e.last_qty), Decimal(e.last_px) / 100)
        for e in fills
        if e.instrument_id == FIX_IID
    }
    assert node_fix_fills == venue_fills  # every FIX fill the node has, the venue made
    assert {e.instrument_id for e in fills} == {SIM_IID, FIX_IID}
    assert PASSWORD not in venue_log.read_text() + node_log.read_text()


@pytest.mark.timeout(180)
def test_when_fix_venue_down_at_start_then_sim_trades_and_fix_joins_once_reconciled(
    tmp_path: Path,
) -> None:
    """A node whose FIX venue is not running at start trades at SIM after the logon wait,
    with XYZ.SIM unavailable; once the venue runs, FIXSIM is reconciled and trades."""
    port = free_tcp_port()
    venue_cfg, node_cfg, journal = write_desk(tmp_path, port, logon_ms=500)
    venue_log, node_log = tmp_path / "venue.log", tmp_path / "node.log"
    with process("run", node_cfg, cwd=tmp_path, log=node_log) as node:

        def sim_trades_alone() -> dict[str, Any]:
            still_running(node, node_log)
            answer = status(journal)
            assert after(journal, 0, ev.OrderFilled, SIM_IID), "no SIM fill yet"
            rejected = after(journal, 0, ev.OrderRejected, FIX_IID)
            assert any(NOT_LOGGED_ON in e.reason for e in rejected), "no refusal yet"
            return answer

        alone = eventually(sim_trades_alone, START_TIMEOUT_S + 10)
        assert alone["state"] == "ACTIVE"
        assert alone["unavailable_instruments"] == [FIX_IID]
        assert alone["venues"]["FIXSIM"]["connected"] is False
        assert reconciliations(journal, "FIXSIM") == []
        (sim,) = reconciliations(journal, "SIM")
        assert sim.mismatches == []

        with process("venue", "sim", venue_cfg, cwd=tmp_path, log=venue_log) as venue:
            eventually(lambda: still_running(venue, venue_log) and listening(port), START_TIMEOUT_S)
            joined_seq = last_seq(journal)

            def fix_joined() -> bool:
                done = reconciliations(journal, "FIXSIM")
                assert len(done) == 1, "FIXSIM not reconciled yet"
                assert done[0].mismatches == []
                assert status(journal)["unavailable_instruments"] == []
                assert after(journal, joined_seq, ev.OrderAccepted, FIX_IID), "no XYZ order yet"
                return True

            eventually(fix_joined, 20)
            assert any(o.symbol == FIX_IID for o in ledger_orders(tmp_path))
            assert status(journal)["state"] == "ACTIVE"
            assert terminate(node) == 0, node_log.read_text()
            assert terminate(venue) == 0, venue_log.read_text()
    with VenueLedger(tmp_path / "venue" / "ledger.sqlite") as ledger:
        assert ledger.open_orders(ACCOUNT) == []


@pytest.mark.timeout(300)
def test_when_node_restarts_after_kill_venue_then_the_venue_stays_halted_until_resumed(
    tmp_path: Path,
) -> None:
    """kill --venue FIXSIM, then the node is SIGKILLed and restarted (the halt comes back
    from the journal tail), then stopped and restarted (from the snapshot it took on the
    way out): each time FIXSIM stays halted, no XYZ.SIM order reaches the venue (its ledger
    is the witness) and SIM trades; a resume naming a venue the node does not have is
    refused, and resume --venue FIXSIM lets XYZ.SIM trade again."""
    port = free_tcp_port()
    venue_cfg, node_cfg, journal = write_desk(tmp_path, port)
    venue_log, node_log = tmp_path / "venue.log", tmp_path / "node.log"

    def restarted_halted(node: subprocess.Popen[bytes], since: int, reason: str) -> None:
        """After a restart at ``since``: FIXSIM halted for ``reason``, SIM trading."""

        def halted_while_sim_trades() -> dict[str, Any]:
            still_running(node, node_log)
            answer = status(journal)
            assert after(journal, since, ev.OrderFilled, SIM_IID), "SIM not trading yet"
            rejected = after(journal, since, ev.OrderRejected, FIX_IID)
            assert rejected, "no XYZ.SIM order refused yet"
            assert all(HALTED_AT_VENUE in e.reason for e in rejected)
            return answer

        answer = eventually(halted_while_sim_trades, START_TIMEOUT_S + 15)
        assert answer["venues"]["FIXSIM"]["halted"] == reason
        assert answer["venues"]["SIM"]["halted"] is None
        assert answer["unavailable_instruments"] == [FIX_IID]
        assert answer["state"] == "ACTIVE"
        assert not after(journal, since, ev.OrderAccepted, FIX_IID)

    with process("venue", "sim", venue_cfg, cwd=tmp_path, log=venue_log) as venue:
        eventually(lambda: still_running(venue, venue_log) and listening(port), START_TIMEOUT_S)
        with process("run", node_cfg, cwd=tmp_path, log=node_log) as node:

            def trading_at_both() -> bool:
                still_running(node, node_log)
                for iid in (SIM_IID, FIX_IID):
                    assert after(journal, 0, ev.OrderFilled, iid), f"no fill on {iid} yet"
                return True

            eventually(trading_at_both, START_TIMEOUT_S + 15)
            bastion("kill", node_cfg.name, "--venue", "FIXSIM", "--why", "drill", cwd=tmp_path)
            # committed before the answer: there for the SIGKILL below
            ((halt_seq, halt),) = [
                (s, e) for s, e in peek_journal(journal) if type(e) is ev.VenueHalted
            ]
            assert (halt.venue, halt.why) == ("FIXSIM", "drill") and halt.who
            assert halt.reason == f"kill by {halt.who}: drill"
            eventually(lambda: ledger_open(tmp_path) == [], 10)
            node.kill()  # SIGKILL: no snapshot on the way out
            node.wait(timeout=STOP_TIMEOUT_S)
        sent_to_venue = {o.order_id for o in ledger_orders(tmp_path)}

        # -- after the crash: the halt comes back from the journal tail -------------------
        assert latest_snapshot(journal).seq < halt_seq
        crash_seq = last_seq(journal)
        with process("run", node_cfg, cwd=tmp_path, log=node_log) as node:
            restarted_halted(node, crash_seq, halt.reason)
            assert terminate(node) == 0, node_log.read_text()
        assert {o.order_id for o in ledger_orders(tmp_path)} == sent_to_venue

        # -- after a clean stop: the halt comes back from the snapshot --------------------
        stored = latest_snapshot(journal)
        assert stored.seq > halt_seq
        assert decode(stored.payload).halted_venues == {"FIXSIM": halt.reason}
        stop_seq = last_seq(journal)
        with process("run", node_cfg, cwd=tmp_path, log=node_log) as node:
            restarted_halted(node, stop_seq, halt.reason)
            assert {o.order_id for o in ledger_orders(tmp_path)} == sent_to_venue

            # -- a resume of another venue is refused; FIXSIM's own resume lets it trade --
            refused = subprocess.run(
                [sys.executable, "-m", "bastion", "resume", node_cfg.name, "--venue", "NOPE"],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                timeout=30,
                check=False,
            )
            assert refused.returncode == 1, refused.stderr
            assert "no venue 'NOPE' on this node" in refused.stdout
            assert status(journal)["venues"]["FIXSIM"]["halted"] == halt.reason
            assert not after(journal, 0, ev.VenueResumed)
            resumed = bastion("resume", node_cfg.name, "--venue", "FIXSIM", cwd=tmp_path)
            assert (resumed["venue"], resumed["resumed"]) == ("FIXSIM", True)
            (back,) = after(journal, 0, ev.VenueResumed)
            assert (back.venue, back.who) == ("FIXSIM", halt.who)
            eventually(
                lambda: any(o.order_id not in sent_to_venue for o in ledger_orders(tmp_path)),
                10,
            )
            assert status(journal)["unavailable_instruments"] == []
            assert terminate(node) == 0, node_log.read_text()
        assert terminate(venue) == 0, venue_log.read_text()
    with VenueLedger(tmp_path / "venue" / "ledger.sqlite") as ledger:
        assert ledger.verify() == []
        assert ledger.open_orders(ACCOUNT) == []


def latest_snapshot(journal: Path) -> StoredSnapshot:
    """The journal's newest snapshot (the node stopped)."""
    stored = SqliteJournal(journal)
    try:
        snapshot = stored.latest_snapshot()
    finally:
        stored.close()
    assert snapshot is not None, "no snapshot"
    return snapshot
