"""The venue simulator's fence against a deposed HA leader, over real TCP: FencingEpoch
(8014) on the Logon, session takeover, and the epoch in each ClOrdID (docs/ha.md "At
the venue"). The simulator runs in this process (``VenueSimServer``) or, for the restart,
as ``bastion venue sim``; the leaders are raw FIX peers that send exactly what a test
says."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bastion.config import load_config
from bastion.errors import ConfigError
from bastion.venue_server.config import VenueSimConfig
from bastion.venue_server.ledger import VenueLedger
from kit.fix_desk import fix_process, venue_sim_toml
from kit.fix_tcp import RawCounterparty, run
from kit.ha_oracle import epoch_violations
from kit.net import free_tcp_port, listening
from kit.node_process import START_TIMEOUT_S, still_running
from kit.venuesim_peers import buy, cancel, logon, replace, round_trip, venue
from kit.waiting import eventually

PASSWORD = "pw-fence-8014"


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_FIX_PASSWORD", PASSWORD)


async def leader(port: int, epoch: object | None, *, seq: int = 1) -> RawCounterparty:
    """A connection that sends a Logon (with FencingEpoch ``epoch`` unless None)."""
    fence = () if epoch is None else ((8014, epoch),)
    return await logon(port, password=PASSWORD, seq=seq, fields=fence)


async def take_over(old: RawCounterparty, port: int, epoch: int) -> RawCounterparty:
    """A Logon with ``epoch`` that goes on with ``old``'s numbers: ``old`` is dropped."""
    new = await leader(port, epoch, seq=old.next_seq)
    await new.expect("A", skip_others=True)
    await old.closed()
    return new


def test_when_newer_epoch_logs_on_then_older_is_dropped_refused_and_its_orders_rejected(
    tmp_path: Path,
) -> None:
    """Epoch 1 trades; epoch 2 takes over with a higher MsgSeqNum (ResendRequest, then
    GapFill): epoch 1 is dropped and cannot log on again; on epoch 2's connection an
    order or cancel minted by epoch 1 is rejected, never booked, while a cancel of
    epoch 1's order by epoch 2 (``{order}/{epoch}.{n}``) goes through."""

    async def main() -> None:
        async with venue(tmp_path) as server:
            one = await leader(server.port, 1)
            await one.expect("A", skip_others=True)
            buy(one, "desk-1-1")
            await one.expect("8", t11="desk-1-1", t150="0", skip_others=True)

            two = await leader(server.port, 2, seq=10)
            await two.expect("A", skip_others=True)
            resend = await two.expect("2", skip_others=True)
            assert resend.get(7) == str(one.next_seq)  # the session's numbers go on
            two.send("4", (43, "Y"), (123, "Y"), (36, 11), seq=one.next_seq)
            two.next_seq = 11
            await one.closed()  # dropped without a Logout
            assert all(m.msg_type != "5" for m in one.received)

            buy(two, "desk-2-1")
            await two.expect("8", t11="desk-2-1", t150="0", skip_others=True)
            buy(two, "desk-1-2")  # the deposed leader's order, late
            rejected = await two.expect("8", t11="desk-1-2", skip_others=True)
            assert (rejected.get(150), rejected.get(39), rejected.get(37)) == ("8", "8", "NONE")
            assert "epoch 1" in (rejected.get(58) or "") and "2" in (rejected.get(58) or "")
            cancel(two, "desk-1-3", orig="desk-2-1")
            refused = await two.expect("9", t11="desk-1-3", skip_others=True)
            assert "epoch 1" in (refused.get(58) or "")
            cancel(two, "desk-1-1/2.1", orig="desk-1-1")  # the new leader cleans up
            await two.expect("8", t11="desk-1-1/2.1", t150="4", skip_others=True)

            three = await leader(server.port, 1)
            (logout,) = await three.closed()
            assert logout.msg_type == "5"
            assert "epoch 1 is older than the session's newest, 2" in (logout.get(58) or "")
            await round_trip(two, "still-2")

            assert server.counters["fence_logons_refused"] == 1
            assert server.counters["fence_orders_refused"] == 2
            assert server.acceptor.counters["takeovers"] == 1
            for peer in (one, two, three):
                await peer.close()

        with VenueLedger(tmp_path / "venue" / "ledger.sqlite") as ledger:
            booked = {o.root_cl_ord_id: o.status for o in ledger.orders("acct")}
            refused = {r.cl_ord_id for r in ledger.order_epochs("acct") if r.refused}
        assert booked == {"desk-1-1": "4", "desk-2-1": "0"}
        assert refused == {"desk-1-2", "desk-1-3"}
        assert epoch_violations(tmp_path / "venue" / "ledger.sqlite") == []

    run(main)


def test_when_deposed_leader_cancels_or_replaces_late_then_refused_and_successors_taken(
    tmp_path: Path,
) -> None:
    """On epoch 2's session, a cancel and a replace whose ClOrdID says epoch 1 sent them
    (``{order}/1.{n}``) get an OrderCancelReject naming both epochs and leave the order
    as it was; epoch 2's replace and cancel of epoch 1's orders (``{order}/2.{n}``) go
    through, and so does an older node's ``{order}/{n}``, which names no sender. The
    ledger records each with its sender's epoch, and the oracle finds no violation."""

    async def main() -> None:
        async with venue(tmp_path) as server:
            one = await leader(server.port, 1)
            await one.expect("A", skip_others=True)
            for order in ("desk-1-1", "desk-1-2"):
                buy(one, order)
                await one.expect("8", t11=order, t150="0", skip_others=True)
            two = await take_over(one, server.port, 2)

            cancel(two, "desk-1-1/1.a", orig="desk-1-1")  # the deposed leader's, late
            refused = await two.expect("9", t11="desk-1-1/1.a", skip_others=True)
            assert (refused.get(41), refused.get(434), refused.get(39)) == ("desk-1-1", "1", "0")
            text = refused.get(58) or ""
            assert "carries epoch 1, older than the session's newest, 2" in text, text
            replace(two, "desk-1-1/1.b", orig="desk-1-1", quantity=5)
            refused = await two.expect("9", t11="desk-1-1/1.b", skip_others=True)
            assert refused.get(434) == "2"
            assert "carries epoch 1" in (refused.get(58) or "")

            replace(two, "desk-1-2/2.1", orig="desk-1-2", quantity=3)  # the successor's
            await two.expect("8", t11="desk-1-2/2.1", t150="5", skip_others=True)
            cancel(two, "desk-1-1/2.2", orig="desk-1-1")
            await two.expect("8", t11="desk-1-1/2.2", t150="4", skip_others=True)
            cancel(two, "desk-1-2/3f", orig="desk-1-2/2.1")  # an older node's cancel id
            await two.expect("8", t11="desk-1-2/3f", t150="4", skip_others=True)
            assert server.counters["fence_orders_refused"] == 2
            await one.close()
            await two.close()

        ledger_path = tmp_path / "venue" / "ledger.sqlite"
        with VenueLedger(ledger_path) as ledger:
            books = {o.root_cl_ord_id: (o.status, o.quantity) for o in ledger.orders("acct")}
            logged = {
                r.cl_ord_id: (r.msg_type, r.epoch, r.refused) for r in ledger.order_epochs("acct")
            }
        assert books == {"desk-1-1": ("4", 1), "desk-1-2": ("4", 3)}
        assert {c: (m, e, r is not None) for c, (m, e, r) in logged.items()} == {
            "desk-1-1": ("D", 1, False),
            "desk-1-2": ("D", 1, False),
            "desk-1-1/1.a": ("F", 1, True),
            "desk-1-1/1.b": ("G", 1, True),
            "desk-1-2/2.1": ("G", 2, False),
            "desk-1-1/2.2": ("F", 2, False),
            "desk-1-2/3f": ("F", None, False),
        }
        assert epoch_violations(ledger_path) == []

    run(main)


def test_when_same_epoch_logs_on_again_then_it_takes_over_and_keeps_the_session(
    tmp_path: Path,
) -> None:
    """A restarted leader (same epoch) takes its session over; the old connection's
    task finishes before the new one is served, so its cleanup never drops the new one."""

    async def main() -> None:
        async with venue(tmp_path) as server:
            expected = 1  # the venue's next inbound MsgSeqNum
            for round_ in range(3):  # each takeover races the old task's cleanup
                old = await leader(server.port, 7, seq=expected)
                await old.expect("A", skip_others=True)
                new = await leader(server.port, 7, seq=old.next_seq + 5)
                await new.expect("A", skip_others=True)
                after_logon = new.next_seq
                new.send("4", (43, "Y"), (123, "Y"), (36, after_logon), seq=old.next_seq)
                new.next_seq = after_logon
                await old.closed()
                await asyncio.sleep(0.3)  # several ticks: a late cleanup would have run
                await round_trip(new, f"after-{round_}")
                session = server.apps["acct"].session
                assert session is not None and session.logged_on
                new.send("5", (58, "bye"))
                await new.closed()
                expected = new.next_seq
                await old.close()
                await new.close()
            assert server.acceptor.counters["takeovers"] == 3

    run(main)


def test_when_logon_has_no_tag_then_sessions_behave_as_without_fencing(tmp_path: Path) -> None:
    """Without 8014 a second connection is refused while the first is live, and orders
    are not checked for an epoch (any ClOrdID is taken)."""

    async def main() -> None:
        async with venue(tmp_path) as server:
            first = await leader(server.port, None)
            await first.expect("A", skip_others=True)
            second = await leader(server.port, None, seq=50)
            assert await second.closed() == []
            buy(first, "desk-1-1")
            await first.expect("8", t11="desk-1-1", t150="0", skip_others=True)
            buy(first, "desk-0-1")  # an older epoch: not fenced, taken
            await first.expect("8", t11="desk-0-1", t150="0", skip_others=True)
            buy(first, "no epoch here")
            await first.expect("8", t11="no epoch here", t150="0", skip_others=True)
            await round_trip(first, "still")
            assert server.counters["fence_orders_refused"] == 0
            await first.close()
            await second.close()

    run(main)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("abc", "FencingEpoch (8014) must be a non-negative integer, got 'abc'"),
        ("-3", "FencingEpoch (8014) must be a non-negative integer, got '-3'"),
        ("1.5", "must be a non-negative integer"),
        ("9" * 40, "is above the largest taken"),
        (str(2**63), "is above the largest taken"),
    ],
)
def test_when_fencing_epoch_is_malformed_then_logout_names_the_reason(
    tmp_path: Path, value: str, reason: str
) -> None:
    """A FencingEpoch that is not an integer from 0 to 2**63-1 refuses the Logon with a
    Logout saying why; the session is untouched and the address not locked out."""

    async def main() -> None:
        async with venue(tmp_path) as server:
            for _ in range(server.config.limits.max_logon_failures + 1):
                peer = await leader(server.port, value)
                (logout,) = await peer.closed()
                assert logout.msg_type == "5" and reason in (logout.get(58) or "")
                await peer.close()
            good = await leader(server.port, 1)
            await good.expect("A", skip_others=True)
            await good.close()

    run(main)


def test_when_strict_then_logon_needs_the_tag_and_orders_an_epoch(tmp_path: Path) -> None:
    """``fencing = "strict"``: a Logon without 8014 is refused, an order whose ClOrdID
    carries no epoch is rejected, and so is a cancel whose ClOrdID names no sender's
    epoch (an older node's ``{order}/{n}``)."""

    async def main() -> None:
        async with venue(tmp_path, fencing="strict") as server:
            bare = await leader(server.port, None)
            (logout,) = await bare.closed()
            assert "FencingEpoch (8014) required" in (logout.get(58) or "")
            peer = await leader(server.port, 4)
            await peer.expect("A", skip_others=True)
            buy(peer, "no-epoch")
            refused = await peer.expect("8", t11="no-epoch", skip_others=True)
            assert "carries no epoch" in (refused.get(58) or "")
            buy(peer, "desk-4-1")
            await peer.expect("8", t11="desk-4-1", t150="0", skip_others=True)
            cancel(peer, "desk-4-1/1f", orig="desk-4-1")  # an older node's: no sender epoch
            refused = await peer.expect("9", t11="desk-4-1/1f", skip_others=True)
            assert "carries its order's epoch, not its sender's" in (refused.get(58) or "")
            cancel(peer, "desk-4-1/4.20", orig="desk-4-1")
            await peer.expect("8", t11="desk-4-1/4.20", t150="4", skip_others=True)
            for p in (bare, peer):
                await p.close()

    run(main)


def test_when_fencing_off_then_tag_ignored(tmp_path: Path) -> None:
    """``fencing = "off"``: 8014 changes nothing, a lower epoch logs on once the session
    is free and its orders and cancels are taken (the oracle names the late cancel)."""

    async def main() -> None:
        async with venue(tmp_path, fencing="off") as server:
            two = await leader(server.port, 2)
            await two.expect("A", skip_others=True)
            one = await leader(server.port, 1, seq=20)
            assert await one.closed() == []  # a second connection, as ever
            buy(two, "desk-1-1")
            await two.expect("8", t11="desk-1-1", t150="0", skip_others=True)
            buy(two, "desk-2-1")
            await two.expect("8", t11="desk-2-1", t150="0", skip_others=True)
            cancel(two, "desk-2-1/1.5", orig="desk-2-1")  # epoch 1's, after epoch 2's order
            await two.expect("8", t11="desk-2-1/1.5", t150="4", skip_others=True)
            await one.close()
            await two.close()
        found = epoch_violations(tmp_path / "venue" / "ledger.sqlite")
        assert [f.split(" accepted")[0] for f in found] == [
            "fence log: account acct: F desk-2-1/1.5 (epoch 1)"
        ]

    run(main)


def test_when_fencing_mode_unknown_then_config_error_names_key(tmp_path: Path) -> None:
    """A ``fencing`` value other than off, tag or strict is refused at load."""
    (tmp_path / "venue-sim.toml").write_text(venue_sim_toml(0, fencing="sometimes"))
    with pytest.raises(ConfigError, match="fencing"):
        load_config(tmp_path / "venue-sim.toml", VenueSimConfig)


def test_when_venue_sim_restarts_then_highest_epoch_still_fences(tmp_path: Path) -> None:
    """``bastion venue sim`` keeps each session's highest epoch in its ledger: after a
    restart, an older epoch is still refused and the newest still logs on."""
    port = free_tcp_port()
    (tmp_path / "venue-sim.toml").write_text(venue_sim_toml(port))
    log = tmp_path / "venue.log"

    async def logon_answer(epoch: int, seq: int) -> tuple[str, str]:
        peer = await leader(port, epoch, seq=seq)
        if epoch >= 5:
            first = await peer.expect("A", skip_others=True)
        else:
            first = (await peer.closed())[0]
        await peer.close()
        return first.msg_type, first.get(58) or ""

    for answers in ([(5, "A")], [(4, "5"), (5, "A")]):
        cmd = ("venue", "sim", tmp_path / "venue-sim.toml")
        with fix_process(*cmd, cwd=tmp_path, log=log, password=PASSWORD) as proc:
            eventually(lambda p=proc: still_running(p, log) and listening(port), START_TIMEOUT_S)
            for epoch, msg_type in answers:
                seq = 100 if msg_type == "A" else 1
                got, text = asyncio.run(logon_answer(epoch, seq))
                assert got == msg_type, text
                if msg_type == "5":
                    assert "fencing epoch 4 is older than the session's newest, 5" in text
            proc.terminate()
            proc.wait(timeout=15)
