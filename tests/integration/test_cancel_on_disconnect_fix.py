"""Cancel on disconnect end to end: `bastion venue sim` and a `bastion run` node as
processes, talking through a TCP relay that the test cuts, so the FIX session drops while
both processes live (and stays down until the test lets the node back in).

- ``venue``: the node's Logon asks for 8013=Y; the venue cancels the orders as the
  session drops, while the node is away; the node learns it from the resend.
- ``reconnect``: the venue leaves them; the node cancels them right after its next logon,
  once the resend and the reconciliation have settled.
- ``off``: the orders survive the drop in both books.

At the end the node's journal and the venue's ledger agree order by order. Waits use
``eventually``, never a sleep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bastion.model import events as ev
from bastion.model.enums import OrderStatus
from bastion.venue_server.ledger import VenueLedger
from kit.fix_node_desk import (
    ACCOUNT,
    ledger_open,
    ledger_orders,
    process,
    started_venue,
    write_desk,
)
from kit.journal_reading import (
    assert_every_order_terminal,
    peek_journal,
    read_journal,
    replay_orders,
)
from kit.net import free_tcp_port, relay
from kit.node_process import START_TIMEOUT_S, still_running, terminate
from kit.waiting import eventually

RESTER = '''
"""Places three limit orders 2 % away from the market on its first quote, then waits:
whatever happens to them afterwards is the venue's or the node's doing."""

from bastion.model.enums import OrderSide
from bastion.strategy import QuoteTick, Strategy


class Rester(Strategy):
    def on_start(self) -> None:
        self.iid = self.params["instrument"]
        self.inst = self.instrument(self.iid)
        self.placed = False
        self.subscribe_quotes(self.iid)

    def on_quote(self, quote: QuoteTick) -> None:
        if self.placed:
            return
        self.placed = True
        away = quote.bid // 50  # 2 %
        lot = self.inst.lot_raw
        self.submit(OrderSide.BUY, self.iid, lot, quote.bid - away)
        self.submit(OrderSide.BUY, self.iid, lot, quote.bid - away - self.inst.tick_raw)
        self.submit(OrderSide.SELL, self.iid, lot, quote.ask + away)
'''

RESTING = 3


def rester_orders(journal: Path) -> dict[str, Any]:
    """The strategy's orders as the journal has them (rebuilt through the state machine)."""
    orders = {
        coid: o
        for coid, o in replay_orders(peek_journal(journal)).items()
        if o.strategy_id == "rester"
    }
    assert len(orders) == RESTING, f"{len(orders)} orders journaled"
    return orders


def reconciliations(journal: Path) -> list[int]:
    return [s for s, e in peek_journal(journal) if isinstance(e, ev.ReconciliationCompleted)]


def canceled_seqs(journal: Path, ids: set[str]) -> dict[str, tuple[int, str]]:
    return {
        e.client_order_id: (s, e.reason)
        for s, e in peek_journal(journal)
        if isinstance(e, ev.OrderCanceled) and e.client_order_id in ids
    }


def venue_status(root: Path) -> dict[str, str]:
    return {o.root_cl_ord_id: o.status for o in ledger_orders(root)}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["venue", "reconnect", "off"])
def test_when_session_drops_then_orders_canceled_per_mode_and_both_books_agree(
    tmp_path: Path, mode: str
) -> None:
    """The session drops under two live processes: per ``cancel_on_disconnect`` the venue
    (while the node is away) or the node (after logon and reconciliation) cancels the
    resting orders, or nobody does; journal and ledger agree."""
    port = free_tcp_port()
    venue_log, node_log = tmp_path / "venue.log", tmp_path / "node.log"
    with relay(port) as link:
        venue_cfg, node_cfg, journal = write_desk(
            tmp_path,
            venue_port=port,
            node_port=link.port,
            strategy="rester",
            source=RESTER,
            cls="Rester",
            cod=mode,
        )
        with process("venue", "sim", venue_cfg, cwd=tmp_path, log=venue_log) as venue:
            started_venue(venue, venue_log, port)
            with process("run", node_cfg, cwd=tmp_path, log=node_log) as node:

                def resting() -> dict[str, Any]:
                    still_running(node, node_log)
                    orders = rester_orders(journal)
                    assert {o.status for o in orders.values()} == {OrderStatus.ACCEPTED}
                    assert len(ledger_open(tmp_path)) == RESTING, "not resting at the venue yet"
                    assert len(reconciliations(journal)) == 1
                    return orders

                ids = set(eventually(resting, START_TIMEOUT_S + 15))
                asked = "cancel_on_disconnect=True" in venue_log.read_text()
                assert asked is (mode == "venue"), "8013=Y on the Logon in venue mode only"

                # -- the session drops; the node cannot get back in ---------------------
                link.refusing = True
                link.cut()
                eventually(lambda: "account_logged_out" in venue_log.read_text(), 10)
                eventually(lambda: "fix_disconnected" in node_log.read_text(), 10)
                if mode == "venue":  # canceled at the venue while the node is away
                    assert ledger_open(tmp_path) == []
                    assert set(venue_status(tmp_path).values()) == {"4"}
                    assert canceled_seqs(journal, ids) == {}, "the node cannot know yet"
                else:
                    assert len(ledger_open(tmp_path)) == RESTING

                # -- the node logs on again ---------------------------------------------
                link.refusing = False

                def settled() -> bool:
                    still_running(node, node_log)
                    assert len(reconciliations(journal)) == 2, "not reconciled after relogon"
                    if mode != "off":
                        orders = rester_orders(journal)
                        assert {o.status for o in orders.values()} == {OrderStatus.CANCELED}
                        assert ledger_open(tmp_path) == []
                    return True

                eventually(settled, 20)
                relogon_reconciled = reconciliations(journal)[1]
                canceled = canceled_seqs(journal, ids)
                statuses = venue_status(tmp_path)
                if mode == "venue":  # resent before the reconciliation's answers
                    assert all(s < relogon_reconciled for s, _ in canceled.values())
                    assert {r for _, r in canceled.values()} == {"cancel on disconnect"}
                elif mode == "reconnect":  # sent by the node after the reconciliation
                    assert all(s > relogon_reconciled for s, _ in canceled.values())
                    assert "fix_cancel_on_disconnect" in node_log.read_text()
                    with VenueLedger(tmp_path / "venue" / "ledger.sqlite") as ledger:
                        chains = [ledger.chain(o.order_id) for o in ledger.orders(ACCOUNT)]
                    assert all(len(chain) == 2 for chain in chains)  # D, then the node's F
                else:
                    assert canceled == {}
                    assert set(statuses.values()) == {"0"}
                    assert {o.status for o in rester_orders(journal).values()} == {
                        OrderStatus.ACCEPTED
                    }
                if mode != "off":
                    assert set(statuses.values()) == {"4"}
                    assert set(statuses) == ids
                assert terminate(node) == 0, node_log.read_text()
            assert terminate(venue) == 0, venue_log.read_text()

    # both books, once both processes stopped: every order ended, the same way
    events = read_journal(journal)
    orders = assert_every_order_terminal(events)
    statuses = venue_status(tmp_path)
    assert {coid: o.status for coid, o in orders.items()} == {
        coid: OrderStatus.CANCELED for coid in statuses
    }
    assert set(statuses.values()) == {"4"}


@pytest.mark.timeout(120)
def test_when_node_killed_in_reconnect_mode_then_restart_cancels_its_orders_before_trading(
    tmp_path: Path,
) -> None:
    """A restart is a dropped session: the orders recovered from the journal are canceled
    after the reconciliation, before any strategy runs; the strategy's new ones rest."""
    port = free_tcp_port()
    venue_cfg, node_cfg, journal = write_desk(
        tmp_path, venue_port=port, strategy="rester", source=RESTER, cls="Rester", cod="reconnect"
    )
    venue_log, node_log = tmp_path / "venue.log", tmp_path / "node.log"
    with process("venue", "sim", venue_cfg, cwd=tmp_path, log=venue_log) as venue:
        started_venue(venue, venue_log, port)
        with process("run", node_cfg, cwd=tmp_path, log=node_log) as node:

            def resting() -> set[str]:
                still_running(node, node_log)
                assert len(ledger_open(tmp_path)) == RESTING, "not resting at the venue yet"
                return set(rester_orders(journal))

            old = eventually(resting, START_TIMEOUT_S + 15)
            node.kill()  # SIGKILL: no shutdown, the orders stay at the venue
            node.wait()
        assert len(ledger_open(tmp_path)) == RESTING
        last_seq_1 = peek_journal(journal)[-1][0]
        with process("run", node_cfg, cwd=tmp_path, log=node_log) as node:

            def replaced() -> list[tuple[int, Any]]:
                still_running(node, node_log)
                open_now = {o.root_cl_ord_id for o in ledger_open(tmp_path)}
                assert len(open_now) == RESTING and not open_now & old, "old orders still open"
                # the journal commits in groups: wait until it holds what the venue shows
                run_2 = [(s, e) for s, e in peek_journal(journal) if s > last_seq_1]
                assert any(isinstance(e, ev.OrderInitialized) for _, e in run_2), "not yet"
                return run_2

            run_2 = eventually(replaced, START_TIMEOUT_S + 15)
            (reconciled,) = [s for s, e in run_2 if isinstance(e, ev.ReconciliationCompleted)]
            pending = [
                s
                for s, e in run_2
                if isinstance(e, ev.OrderPendingCancel) and e.client_order_id in old
            ]
            first_new = min(s for s, e in run_2 if isinstance(e, ev.OrderInitialized))
            assert len(pending) == RESTING
            assert reconciled < min(pending) and max(pending) < first_new
            assert terminate(node) == 0, node_log.read_text()
        assert terminate(venue) == 0, venue_log.read_text()
    statuses = venue_status(tmp_path)
    assert len(statuses) == 2 * RESTING and set(statuses.values()) == {"4"}
    orders = assert_every_order_terminal(read_journal(journal))
    assert {o.status for o in orders.values()} == {OrderStatus.CANCELED}
