"""Read-only sessions of the venue simulator over real TCP (``[[read_only_sessions]]``,
``bastion.venue_server.read_only``): a drill's session logs on beside the account's
trading session, is answered the account's orders and positions on its own session, is
refused anything that would trade, and leaves the account's session, its sequence
numbers and its fence exactly as they were. The simulator runs in this process; both
peers are raw FIX counterparties that send exactly what a test says."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.fix.codec import FixMessage
from bastion.fix.session import SessionState
from bastion.venue_server.server import VenueSimServer
from kit.fix_tcp import RawCounterparty, run
from kit.venuesim_peers import (
    SYM,
    TRANSACT_TIME,
    buy,
    cancel,
    logon,
    market_buy,
    replace,
    round_trip,
    venue,
)
from kit.waiting import until

PASSWORD = "pw-account-ro"
DRILL_PASSWORD = "pw-drill-ro"
READ_ONLY = """
[[read_only_sessions]]
name = "drill"
comp_id = "DRILL"
username = "drill"
password_env = "BASTION_DRILL_PASSWORD"
account = "acct"
"""
# what differs between two answers to one query: the header, ids the venue mints per
# report, and the time of the answer
_PER_ANSWER = frozenset({8, 9, 10, 34, 43, 49, 52, 56, 97, 122, 17, 721, 60, 715})


@pytest.fixture(autouse=True)
def _passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_FIX_PASSWORD", PASSWORD)
    monkeypatch.setenv("BASTION_DRILL_PASSWORD", DRILL_PASSWORD)


async def drill_logon(
    port: int, *fields: tuple[int, object], password: str = DRILL_PASSWORD, seq: int = 1
) -> RawCounterparty:
    return await logon(
        port, sender="DRILL", username="drill", password=password, seq=seq, fields=fields
    )


async def ask_everything(peer: RawCounterparty, account: str) -> list[FixMessage]:
    """The answers to a status request for each order (and an unknown one), a mass status
    request and a request for positions naming ``account``, in order."""
    answers = []
    for cl_ord_id in ("acct-1", "acct-2", "unknown"):
        peer.send("H", (11, cl_ord_id), (55, SYM), (54, 1))
        answers.append(await peer.expect("8", t11=cl_ord_id, t150="I"))
    peer.send("AF", (584, "mass"), (585, 7))
    answers.append(await peer.expect("8", t584="mass", t912="Y"))
    peer.send(
        "AN", (710, "pos"), (724, 0), (1, account), (581, 1), (715, "20240102"), (60, TRANSACT_TIME)
    )
    ack = await peer.expect("AO", t710="pos")
    answers.append(ack)
    for _ in range(int(ack.get(727) or 0)):
        answers.append(await peer.expect("AP", t710="pos"))
    return answers


def comparable(answers: list[FixMessage]) -> list[list[tuple[int, str]]]:
    return [[(t, v) for t, v in m.fields if t not in _PER_ANSWER] for m in answers]


def account_seqs(server: VenueSimServer) -> tuple[int, int]:
    """The account's session at the venue: (next outbound, next inbound) MsgSeqNum."""
    session = server.apps["acct"].session
    assert session is not None
    return session.store.next_sender_seq, session.store.next_target_seq


def test_when_read_only_session_queries_beside_trading_account_then_answered_on_it_alone(
    tmp_path: Path,
) -> None:
    """The account trades (a fill, a resting order) and stays logged on; the drill logs on
    at the same time and its H/AF/AN answers are the account's own, field for field; its
    D/F/G are refused on it and leave the ledger as it was; the account's session got
    nothing meanwhile (its numbers did not move: a TestRequest comes back as the next
    expected number) and the drill gets none of the account's later reports; the drill's
    logout cancels nothing, though the venue cancels an account's orders on disconnect."""

    async def main() -> None:
        async with venue(tmp_path, cancel_on_disconnect=True, tail=READ_ONLY) as server:
            account = await logon(server.port, password=PASSWORD)
            await account.expect("A", skip_others=True)
            await until(lambda: SYM in server.last_quotes, what="a quote to buy at")
            market_buy(account, "acct-1", 2)
            await account.expect("8", t11="acct-1", t150="F", t39="2", skip_others=True)
            buy(account, "acct-2")
            await account.expect("8", t11="acct-2", t150="0", skip_others=True)
            own = await ask_everything(account, "acct")
            assert [m.get(39) for m in own[:3]] == ["2", "0", "8"]
            assert own[5].get(704) == "2"  # the position the fill made

            seqs = account_seqs(server)
            received = len(account.received)
            orders = server.ledger.orders("acct")
            fenced = server.ledger.order_epochs("acct")
            orders_received = server.counters["orders_received"]

            drill = await drill_logon(server.port)
            await drill.expect("A")
            states = sorted(s.value for s in server._session_states())
            assert states == [SessionState.ACTIVE.value] * 2
            assert comparable(await ask_everything(drill, "acct")) == comparable(own)
            by_comp_id = await ask_everything(drill, "DRILL")  # its CompID names the account
            assert comparable(by_comp_id) == comparable(own)

            market_buy(drill, "drill-1", 1)
            rejected = await drill.expect("8", t11="drill-1")
            assert (rejected.get(150), rejected.get(39), rejected.get(103)) == ("8", "8", "99")
            assert (rejected.get(58) or "").startswith("read-only session: NewOrderSingle")
            cancel(drill, "drill-2", orig="acct-2")
            refused = await drill.expect("9", t11="drill-2")
            assert (refused.get(434), refused.get(102), refused.get(39)) == ("1", "99", "0")
            assert (refused.get(58) or "").startswith("read-only session: OrderCancelRequest")
            replace(drill, "drill-3", orig="acct-2", quantity=5)
            refused = await drill.expect("9", t11="drill-3")
            assert (refused.get(434), refused.get(102)) == ("2", "99")
            assert (refused.get(58) or "").startswith("read-only session: OrderCancelReplace")
            await round_trip(drill, "drill-served")

            assert server.ledger.orders("acct") == orders
            assert server.ledger.order_epochs("acct") == fenced
            assert server.counters["read_only_refused"] == 3
            assert server.counters["orders_received"] == orders_received
            assert account_seqs(server) == seqs
            heartbeat = await round_trip(account, "after-drill")
            between = account.received[received:]
            assert all(m.msg_type == "0" for m in between), between
            assert heartbeat.get(34) == str(seqs[0] + len(between) - 1)
            assert account_seqs(server)[1] == seqs[1] + 1  # the TestRequest, in sequence

            drill_received = len(drill.received)
            buy(account, "acct-3")  # the account's report goes to the account alone
            await account.expect("8", t11="acct-3", t150="0")
            await round_trip(drill, "no-copy")
            assert all(m.msg_type == "0" for m in drill.received[drill_received:])

            drill.send("5")
            await drill.expect("5")
            await drill.closed()
            await round_trip(account, "after-drill-logout")
            assert sorted(o.cl_ord_id for o in server.engine.open_orders("acct")) == [
                "acct-2",
                "acct-3",
            ]
            session = server.apps["acct"].session
            assert session is not None and session.logged_on
            for peer in (account, drill):
                await peer.close()

    run(main)


@pytest.mark.parametrize("fencing", ["tag", "strict"])
def test_when_read_only_logon_carries_fencing_epoch_then_account_is_neither_fenced_nor_taken(
    tmp_path: Path, fencing: str
) -> None:
    """The account is fenced at epoch 3; the drill logs on with 8014=9 (then again with
    none, then a malformed one): the account's recorded epoch stays 3, nothing is taken
    over, a second drill Logon is refused as a second connection, and the account's
    orders and cancels minted with epoch 3 are still accepted."""

    async def main() -> None:
        async with venue(tmp_path, fencing=fencing, tail=READ_ONLY) as server:
            account = await logon(server.port, password=PASSWORD, fields=((8014, 3),))
            await account.expect("A", skip_others=True)
            buy(account, "desk-3-1")
            await account.expect("8", t11="desk-3-1", t150="0", skip_others=True)
            epochs = server.ledger.session_epochs()
            assert list(epochs.values()) == [3]

            drill = await drill_logon(server.port, (8014, 9))
            await drill.expect("A")
            second = await drill_logon(server.port, (8014, 10), seq=50)
            assert await second.closed() == []  # refused: the drill is connected
            await round_trip(drill, "still-drill")
            assert server.fence.highest == epochs == server.ledger.session_epochs()
            assert server.acceptor.counters["takeovers"] == 0
            assert server.counters["fence_takeovers"] == 0

            buy(account, "desk-3-2")
            await account.expect("8", t11="desk-3-2", t150="0")
            cancel(account, "desk-3-1/3.1", orig="desk-3-1")
            await account.expect("8", t11="desk-3-1/3.1", t150="4")
            await round_trip(account, "still-account")
            assert server.counters["fence_orders_refused"] == 0

            drill.send("5")
            await drill.expect("5")
            await drill.closed()
            for fields in ((), ((8014, "abc"),)):  # no tag in strict mode, or a bad one
                again = await drill_logon(server.port, *fields, seq=drill.next_seq)
                await again.expect("A")
                again.send("5")
                await again.expect("5")
                await again.closed()
                drill.next_seq = again.next_seq
                await again.close()
            assert server.ledger.session_epochs() == epochs
            await round_trip(account, "never-dropped")
            for peer in (account, drill, second):
                await peer.close()

    run(main)


def test_when_read_only_logon_has_bad_password_or_asks_cancel_on_disconnect_then_refused(
    tmp_path: Path,
) -> None:
    """A wrong password, and CancelOrdersOnDisconnect Y or S (it has no orders), get a
    Logout saying why; with 8013=N the drill logs on."""
    refusals = [
        ((), "wrong", "invalid username or password"),
        (((8013, "Y"),), DRILL_PASSWORD, "CancelOrdersOnDisconnect (8013) must be N"),
        (((8013, "S"),), DRILL_PASSWORD, "CancelOrdersOnDisconnect (8013) must be N"),
    ]

    async def main() -> None:
        async with venue(tmp_path, tail=READ_ONLY) as server:
            for fields, password, reason in refusals:
                peer = await drill_logon(server.port, *fields, password=password)
                (logout,) = await peer.closed()
                assert logout.msg_type == "5" and reason in (logout.get(58) or ""), logout
                assert DRILL_PASSWORD not in repr(logout)
                await peer.close()
            drill = await drill_logon(server.port, (8013, "N"))
            await drill.expect("A")
            await round_trip(drill, "in")
            await drill.close()

    run(main)


def test_when_read_only_asks_another_accounts_positions_then_not_authorized(
    tmp_path: Path,
) -> None:
    """AN naming any account but its own account's name or its CompID (the account's
    CompID included) gets PosReqResult 3 and no report; market data is served."""

    async def main() -> None:
        async with venue(tmp_path, tail=READ_ONLY) as server:
            drill = await drill_logon(server.port)
            await drill.expect("A")
            for n, other in enumerate(("other", "NODE")):
                drill.send(
                    "AN",
                    (710, f"pos-{n}"),
                    (724, 0),
                    (1, other),
                    (581, 1),
                    (715, "20240102"),
                    (60, TRANSACT_TIME),
                )
                ack = await drill.expect("AO", t710=f"pos-{n}")
                assert (ack.get(728), ack.get(729), ack.get(727)) == ("3", "2", "0")
                assert f"not authorized for account {other}" in (ack.get(58) or "")
            drill.send(
                "V",
                (262, "md"),
                (263, 0),
                (264, 1),
                (267, 2),
                (269, 0),
                (269, 1),
                (146, 1),
                (55, SYM),
            )
            snapshot = await drill.expect("W", t262="md")
            assert snapshot.get(55) == SYM
            await drill.close()

    run(main)
