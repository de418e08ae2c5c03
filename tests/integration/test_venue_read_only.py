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


OTHER_ACCOUNT = """
[[accounts]]
name = "other"
comp_id = "OTHER"
username = "other"
password_env = "BASTION_FIX_PASSWORD"
"""

_NOW = TRANSACT_TIME
_RESEND = ((43, "Y"), (97, "Y"), (122, _NOW))  # PossDupFlag, PossResend, OrigSendingTime
_BUY = ((55, SYM), (54, 1), (60, _NOW))
_MARKET = (*_BUY, (38, 1), (40, 1))
_LIMIT = (*_BUY, (38, 1), (40, 2), (44, "1.00"), (59, 1))
HOSTILE: list[tuple[str, tuple[tuple[int, object], ...]]] = [
    # an order, in every dress: a resend (PossDup, PossResend) of the account's own
    # ClOrdID and of a new one, on behalf of the account's CompID, naming the account,
    # for the other account, with ClOrdID twice, with a message smuggled into its Text,
    # with the account's SenderCompID in its body
    ("D", (*_RESEND, (11, "acct-2"), *_LIMIT)),
    ("D", ((43, "Y"), (122, _NOW), (11, "ro-0"), *_MARKET)),
    ("D", ((115, "NODE"), (1, "acct"), (11, "ro-1"), *_MARKET)),
    ("D", ((1, "other"), (11, "ro-2"), (55, SYM), (54, 2), (60, _NOW), (38, 1), (40, 1))),
    ("D", ((11, "ro-3"), *_LIMIT, (11, "ro-4"))),
    ("D", ((11, "ro-5"), (58, "x\x0135=F\x0141=acct-2"), *_MARKET)),
    ("D", ((11, "ro-13"), (49, "NODE"), (56, "SIM"), *_MARKET)),  # the account's, in the body
    # cancels and replaces of the account's resting order (a resend too), the other's
    ("F", (*_RESEND, (11, "ro-6"), (41, "acct-2"), *_BUY)),
    ("F", ((11, "ro-7"), (41, "other-1"), *_BUY, (1, "other"))),
    ("G", ((11, "ro-8"), (41, "acct-2"), *_BUY, (38, 3), (40, 2), (44, "1.00"))),
    # what the venue does not serve at all: mass cancel, lists, crosses, a user request
    ("q", ((11, "ro-9"), (530, 7), (60, _NOW))),
    ("q", ((11, "ro-10"), (530, 1), (55, SYM), (60, _NOW))),
    ("E", ((66, "l1"), (394, 3), (68, 1), (73, 1), (11, "ro-11"), (67, 1), *_MARKET)),
    ("BE", ((923, "u1"), (924, 3), (553, "trader"), (554, "x"), (925, "y"))),
    ("8", ((37, "o"), (17, "e"), (150, "4"), (39, "4"), *_BUY[:2], (151, 0), (14, 0), (6, 0))),
    ("AB", ((11, "ro-12"), (555, 1), (600, SYM), (60, _NOW), (54, 1), (38, 1), (40, 1))),
    # queries for what is not its account's
    ("H", ((11, "other-1"), (55, SYM), (54, 1))),
    ("H", ((11, "other-1"), (55, SYM), (54, 1), (1, "other"))),
    ("AF", ((584, "m-other"), (585, 7), (1, "other"))),
    ("AN", ((710, "p"), (724, 0), (1, "acct"), (1, "other"), (581, 1), (715, "20240102"))),
    # session-level: a reset Logon mid-session, a SequenceReset, a resend, a logout
    ("A", ((98, 0), (108, 30), (141, "Y"), (553, "trader"), (554, PASSWORD), (8014, 99))),
    ("4", ((123, "N"), (36, 500))),
    ("2", ((7, 1), (16, 0))),
    ("5", ((58, "bye"),)),
]
"""Messages a holder of the read-only session's credentials sends, one per logon: each
must change nothing of the account's (or the other account's) orders and session."""


async def answered_or_closed(peer: RawCounterparty, test_id: str) -> list[FixMessage] | None:
    """What came before the answer to a TestRequest; None if the connection closed."""
    peer.send("1", (112, test_id))
    got: list[FixMessage] = []
    while (msg := await peer.receive()) is not None:
        if msg.msg_type == "0" and msg.get(112) == test_id:
            return got
        got.append(msg)
    return None


def test_when_read_only_sends_anything_at_all_then_no_account_changes_and_nothing_crashes(
    tmp_path: Path,
) -> None:
    """Every message of ``HOSTILE`` (and one whose header names the account's CompID), on
    a fresh logon each: the two accounts' orders, the fence's epochs, the ledger's order
    epochs, the account's session and its sequence numbers are as they were; the
    account's session got nothing but Heartbeats; the simulator still serves. A query
    answers only the read-only session's own account ("unknown order" for the other's)."""

    async def main() -> None:
        async with venue(tmp_path, fencing="tag", tail=READ_ONLY + OTHER_ACCOUNT) as server:
            account = await logon(server.port, password=PASSWORD, fields=((8014, 3),))
            await account.expect("A", skip_others=True)
            other = await logon(server.port, password=PASSWORD, sender="OTHER", username="other")
            await other.expect("A", skip_others=True)
            buy(account, "acct-2")
            await account.expect("8", t11="acct-2", t150="0", skip_others=True)
            buy(other, "other-1")
            await other.expect("8", t11="other-1", t150="0", skip_others=True)
            await round_trip(account, "before")
            state = (
                server.ledger.orders("acct"),
                server.ledger.orders("other"),
                server.ledger.order_epochs("acct"),
                server.ledger.session_epochs(),
                dict(server.fence.highest),
                server.counters["orders_received"],
            )
            seqs = account_seqs(server)
            received = len(account.received)

            answers: dict[str, list[FixMessage] | None] = {}
            for n, (msg_type, body) in enumerate(HOSTILE):
                drill = await drill_logon(server.port, (141, "Y"))
                await drill.expect("A")
                drill.send(msg_type, *body)
                answers[f"{n}:{msg_type}"] = await answered_or_closed(drill, f"t{n}")
                await drill.close()
            posing = await drill_logon(server.port, (141, "Y"))
            await posing.expect("A")
            posing.sender = "NODE"  # the account's CompID in the header, on this connection
            posing.send("D", (11, "ro-pose"), (55, SYM), (54, 1), (60, _NOW), (38, 1), (40, 1))
            assert await answered_or_closed(posing, "pose") is None
            await posing.close()

            refused = [
                m
                for a in answers.values()
                if a
                for m in a
                if m.msg_type in ("8", "9", "j") and m.get(150) != "I"
            ]
            assert all(
                (m.get(58) or "").startswith(("read-only session:", "unsupported")) for m in refused
            )
            assert server.counters["read_only_refused"] == 11  # 4 D, 2 F, 1 G, 2 q, E, AB
            assert not any(
                m.msg_type == "8" and m.get(150) in ("0", "F", "4", "5")
                for a in answers.values()
                if a
                for m in a
            )
            status = [m for a in answers.values() if a for m in a if m.get(150) == "I"]
            assert status and all(m.get(39) == "8" for m in status if m.get(11) == "other-1")
            assert all(m.get(11) != "other-1" for m in status if m.get(584) == "m-other")
            assert (
                server.ledger.orders("acct"),
                server.ledger.orders("other"),
                server.ledger.order_epochs("acct"),
                server.ledger.session_epochs(),
                dict(server.fence.highest),
                server.counters["orders_received"],
            ) == state
            assert account_seqs(server) == seqs
            assert server.acceptor.counters["takeovers"] == 0
            await round_trip(account, "after")
            between = account.received[received:]
            assert all(m.msg_type == "0" for m in between), between
            session = server.apps["acct"].session
            assert session is not None and session.logged_on
            assert sorted(o.cl_ord_id for o in server.engine.open_orders()) == ["acct-2", "other-1"]
            for peer in (account, other):
                await peer.close()

    run(main)


def test_when_read_only_floods_mass_status_then_the_account_session_is_served_and_it_is_throttled(
    tmp_path: Path,
) -> None:
    """An account with 40 resting orders; the read-only session (budget: 100 reports, 50
    a second) sends 2,000 mass status requests in one write (each would be answered by
    40 reports). It is sent no more than its budget allows (the rest get a
    BusinessMessageReject), the account's TestRequest is answered meanwhile, and once
    the budget refills a mass status is answered whole again."""
    budget = "max_reports_per_s = 50\nmax_reports_burst = 100\n"

    async def main() -> None:
        async with venue(tmp_path, tail=READ_ONLY + budget) as server:
            account = await logon(server.port, password=PASSWORD)
            await account.expect("A", skip_others=True)
            for i in range(40):
                buy(account, f"acct-{i}")
            await until(lambda: len(server.engine.open_orders("acct")) == 40)
            drill = await drill_logon(server.port)
            await drill.expect("A")
            started = server.clock.monotonic_s()
            drill.send_raw(
                b"".join(drill.message("AF", (584, f"m{i}"), (585, 7)) for i in range(2000))
            )
            await round_trip(account, "during")
            answered = await answered_or_closed(drill, "flood")
            elapsed = server.clock.monotonic_s() - started
            assert answered is not None
            reports = [m for m in answered if m.msg_type == "8"]
            throttled = [m for m in answered if m.msg_type == "j"]
            # the burst, the refill while it ran, and one request's overshoot
            assert len(reports) <= 100 + 50 * elapsed + 40, (len(reports), elapsed)
            assert len(reports) + len(throttled) <= 2000 * 40
            assert throttled and "max_reports_per_s" in (throttled[0].get(58) or "")
            assert server.counters["read_only_throttled"] == len(throttled)

            # the budget refills at 50 a second: ask (each ask a round trip) until a mass
            # status is answered whole, within a deadline; a throttled ask costs nothing
            deadline = server.clock.monotonic_s() + 30
            while True:
                drill.send("AF", (584, "again"), (585, 7))
                got = await answered_or_closed(drill, f"again-{drill.next_seq}")
                assert got is not None
                if sum(m.get(584) == "again" for m in got) == 40:
                    break
                assert all(m.msg_type == "j" for m in got), got
                assert server.clock.monotonic_s() < deadline, "the budget never refilled"
            for peer in (account, drill):
                await peer.close()

    run(main)
